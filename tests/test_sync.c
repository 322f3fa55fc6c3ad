/* Mutex and wait group: mutual exclusion under contention across Ps, FIFO hand-off,
 * trylock, misuse errors; wait groups with many waiters, reuse, negative counters. */
#include "t.h"
#include <stdatomic.h>

/* ---- mutex ------------------------------------------------------------------------------- */

static np_mutex mu = NP_MUTEX_INIT;
static np_wg wg = NP_WG_INIT;

static long counter;       /* protected by mu, deliberately not atomic */
static atomic_int inside;  /* coroutines inside the critical section */
static atomic_int overlap; /* times two were inside at once */

static void locker(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        CHECK_EQ(np_mutex_lock(&mu), 0);
        if (atomic_fetch_add(&inside, 1) != 0)
            atomic_fetch_add(&overlap, 1);
        long c = counter;
        if (i % 16 == 0)
            np_yield(); /* hold the lock across a switch */
        if (i % 500 == 0)
            np_sleep(1000);
        counter = c + 1;
        atomic_fetch_sub(&inside, 1);
        CHECK_EQ(np_mutex_unlock(&mu), 0);
        if (i % 3 == 0)
            np_yield();
    }
    np_wg_done(&wg);
}

static void counter_main(void *arg)
{
    int n = 16;
    long per = *(long *)arg;
    np_wg_add(&wg, n);
    for (int i = 0; i < n; i++)
        np_go(locker, (void *)(intptr_t)per);
    np_wg_wait(&wg);
}

static void t_mutex_counter_2p(void)
{
    long per = t_scaled(20000);
    t_procs(2);
    T_RUN(counter_main, &per);
    CHECK_EQ(counter, 16 * per);
    CHECK_EQ(atomic_load(&overlap), 0);
}

static void t_mutex_counter_1p(void)
{
    long per = t_scaled(20000);
    t_procs(1);
    T_RUN(counter_main, &per);
    CHECK_EQ(counter, 16 * per);
    CHECK_EQ(atomic_load(&overlap), 0);
}

/* Short critical sections without yields: the uncontended and spinning paths. */
static void tight_locker(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        CHECK_EQ(np_mutex_lock(&mu), 0);
        counter++;
        CHECK_EQ(np_mutex_unlock(&mu), 0);
    }
    np_wg_done(&wg);
}

static void tight_main(void *arg)
{
    long per = *(long *)arg;
    np_wg_add(&wg, 4);
    for (int i = 0; i < 4; i++)
        np_go(tight_locker, (void *)(intptr_t)per);
    np_wg_wait(&wg);
}

static void t_mutex_tight_2p(void)
{
    long per = t_scaled(250000);
    t_procs(2);
    T_RUN(tight_main, &per);
    CHECK_EQ(counter, 4 * per);
}

static void trylock_main(void *arg)
{
    np_mutex m = NP_MUTEX_INIT;
    CHECK_EQ(np_mutex_trylock(&m), 0);
    CHECK_ERR(np_mutex_trylock(&m), EBUSY);
    CHECK_EQ(np_mutex_unlock(&m), 0);
    CHECK_ERR(np_mutex_unlock(&m), EPERM); /* unlocked already */
    CHECK_EQ(np_mutex_lock(&m), 0);
    CHECK_ERR(np_mutex_trylock(&m), EBUSY);
    CHECK_EQ(np_mutex_unlock(&m), 0);
    CHECK_EQ(np_mutex_trylock(&m), 0);
    CHECK_EQ(np_mutex_unlock(&m), 0);
    /* zero-initialised works as NP_MUTEX_INIT */
    np_mutex z;
    memset(&z, 0, sizeof z);
    CHECK_ERR(np_mutex_unlock(&z), EPERM);
    CHECK_EQ(np_mutex_lock(&z), 0);
    CHECK_EQ(np_mutex_unlock(&z), 0);
}

static void t_mutex_trylock_and_misuse(void)
{
    t_procs(1);
    T_RUN(trylock_main, NULL);
    /* outside a coroutine: lock fails, the non-blocking calls still work */
    np_mutex m = NP_MUTEX_INIT;
    CHECK_ERR(np_mutex_lock(&m), EPERM);
    CHECK_ERR(np_mutex_unlock(&m), EPERM);
    CHECK_EQ(np_mutex_trylock(&m), 0);
    CHECK_EQ(np_mutex_unlock(&m), 0);
}

/* Ownership passes to waiters in the order they started waiting (one P makes that order
 * well defined: each records its turn just before it blocks). */
#define NW 16
static int lock_order[NW], nlock_order;
static int got_order[NW], ngot;

static void fifo_locker(void *arg)
{
    lock_order[nlock_order++] = (int)(intptr_t)arg;
    CHECK_EQ(np_mutex_lock(&mu), 0);
    got_order[ngot++] = (int)(intptr_t)arg;
    CHECK_EQ(np_yield(), 0);
    CHECK_EQ(np_mutex_unlock(&mu), 0);
    np_wg_done(&wg);
}

static void mutex_fifo_main(void *arg)
{
    CHECK_EQ(np_mutex_lock(&mu), 0);
    np_wg_add(&wg, NW);
    for (int i = 0; i < NW; i++)
        np_go(fifo_locker, (void *)(intptr_t)i);
    wait_blocked(NP_WAIT_MUTEX, NW); /* each blocks right after taking its turn */
    CHECK_EQ(nlock_order, NW);
    CHECK_EQ(ngot, 0);
    CHECK_EQ(np_mutex_unlock(&mu), 0);
    np_wg_wait(&wg);
}

static void t_mutex_fifo_handoff_1p(void)
{
    t_procs(1);
    T_RUN(mutex_fifo_main, NULL);
    CHECK_EQ(ngot, NW);
    for (int i = 0; i < NW; i++)
        CHECK_EQ(got_order[i], lock_order[i]);
}

/* The reference-count pattern: whoever drops the last reference under the lock frees
 * the object holding the mutex right after unlocking it. The other unlockers may not
 * touch the mutex once somebody else could have taken it. In every build: exactly one
 * of the three sees the count reach zero, and on odd rounds the last one, instead of
 * freeing, poisons the object and leaves it to the main coroutine, which finds the
 * poison intact once all three are done (no late write into it). On even rounds it
 * really frees it, for ASan and TSan to watch late reads too. */
typedef struct shared {
    np_mutex mu;
    int refs;
    bool keep; /* poison it and leave it to refcount_main, rather than free it */
} shared;

static atomic_int nlast;

static void drop_ref(void *arg)
{
    shared *s = arg;
    CHECK_EQ(np_mutex_lock(&s->mu), 0);
    for (volatile int i = 0; i < 50; i++) {
    }
    bool keep = s->keep;
    int last = --s->refs == 0;
    CHECK(s->refs >= 0);
    CHECK_EQ(np_mutex_unlock(&s->mu), 0);
    if (last) {
        atomic_fetch_add(&nlast, 1);
        memset(s, 0xdd, sizeof *s);
        if (!keep)
            free(s);
    }
    np_wg_done(&wg);
}

static void refcount_main(void *arg)
{
    long rounds = t_scaled(20000);
    for (long r = 0; r < rounds; r++) {
        shared *s = calloc(1, sizeof *s);
        s->refs = 3;
        s->keep = r % 2;
        atomic_store(&nlast, 0);
        np_wg_add(&wg, 3);
        np_go(drop_ref, s);
        np_go(drop_ref, s);
        np_go(drop_ref, s);
        np_wg_wait(&wg);
        CHECK_EQ(atomic_load(&nlast), 1);
        if (r % 2) {
            const unsigned char *b = (const unsigned char *)s;
            for (size_t i = 0; i < sizeof *s; i++)
                if (b[i] != 0xdd)
                    FAILF("round %ld: byte %zu of the dropped object is %#x: written after "
                          "its last unlock", r, i, b[i]);
            free(s);
        }
    }
}

static void t_mutex_free_after_last_unlock_2p(void)
{
    t_procs(2);
    T_RUN(refcount_main, NULL);
}

/* ---- wait group ------------------------------------------------------------------------------ */

static atomic_int done_count;
static atomic_int woke_early;

static void wg_worker(void *arg)
{
    np_sleep((int64_t)(intptr_t)arg * 10000);
    atomic_fetch_add(&done_count, 1);
    np_wg_done(&wg);
}

static np_wg all_waited = NP_WG_INIT;
static void wg_waiter(void *arg)
{
    int n = (int)(intptr_t)arg;
    CHECK_EQ(np_wg_wait(&wg), 0);
    if (atomic_load(&done_count) < n)
        atomic_fetch_add(&woke_early, 1);
    np_wg_done(&all_waited);
}

static void wg_main(void *arg)
{
    for (int round = 0; round < 5; round++) { /* a wait group is reusable */
        int n = 50 + round;
        atomic_store(&done_count, 0);
        CHECK_EQ(np_wg_add(&wg, n), 0);
        CHECK_EQ(np_wg_add(&all_waited, 8), 0);
        for (int i = 0; i < 8; i++)
            np_go(wg_waiter, (void *)(intptr_t)n);
        for (int i = 0; i < n; i++)
            np_go(wg_worker, (void *)(intptr_t)(i % 7));
        CHECK_EQ(np_wg_wait(&wg), 0);
        CHECK_EQ(atomic_load(&done_count), n);
        CHECK_EQ(np_wg_wait(&all_waited), 0);
        CHECK_EQ(np_wg_wait(&wg), 0); /* already zero: returns at once */
    }
    CHECK_EQ(atomic_load(&woke_early), 0);
}

static void t_waitgroup(void)
{
    t_procs(2);
    T_RUN(wg_main, NULL);
    t_procs(1);
    T_RUN(wg_main, NULL);
}

static void wg_neg_main(void *arg)
{
    np_wg w = NP_WG_INIT;
    CHECK_ERR(np_wg_done(&w), EINVAL);
    CHECK_ERR(np_wg_add(&w, -5), EINVAL);
    CHECK_EQ(np_wg_add(&w, 2), 0);
    CHECK_ERR(np_wg_add(&w, -3), EINVAL); /* left unchanged at 2 */
    CHECK_EQ(np_wg_add(&w, 0), 0);
    CHECK_EQ(np_wg_done(&w), 0);
    CHECK_EQ(np_wg_done(&w), 0);
    CHECK_ERR(np_wg_done(&w), EINVAL);
    CHECK_EQ(np_wg_wait(&w), 0);
    /* zero-initialised works as NP_WG_INIT */
    np_wg z;
    memset(&z, 0, sizeof z);
    CHECK_EQ(np_wg_wait(&z), 0);
    CHECK_EQ(np_wg_add(&z, 1), 0);
    CHECK_EQ(np_wg_done(&z), 0);
}

static void t_waitgroup_negative_einval(void)
{
    t_procs(1);
    T_RUN(wg_neg_main, NULL);
    np_wg w = NP_WG_INIT;
    CHECK_ERR(np_wg_wait(&w), EPERM); /* outside a coroutine */
    CHECK_ERR(np_wg_done(&w), EINVAL);
}

/* Many rounds of one coroutine waiting while others finish on the other P: the
 * counter reaching zero and the waiter parking race each other every time. Once
 * np_wg_wait has returned the wait group is the waiter's again: it frees it (as it
 * would free a structure holding one), and nothing may touch it any more. */
static void wg_race_child(void *arg) { np_wg_done(arg); }

static void wg_race_main(void *arg)
{
    long rounds = t_scaled(50000);
    for (long r = 0; r < rounds; r++) {
        np_wg *w = calloc(1, sizeof *w);
        np_wg_add(w, 2);
        np_go(wg_race_child, w);
        np_go(wg_race_child, w);
        if (r % 2)
            np_yield();
        CHECK_EQ(np_wg_wait(w), 0);
        CHECK_ERR(np_wg_done(w), EINVAL); /* the counter is zero: it cannot go below */
        memset(w, 0xdd, sizeof *w);
        free(w);
    }
}

static void t_waitgroup_race_2p(void)
{
    t_procs(2);
    T_RUN(wg_race_main, NULL);
}

static const t_case cases[] = {
    T(t_mutex_counter_2p),
    T(t_mutex_counter_1p),
    T(t_mutex_tight_2p),
    T(t_mutex_trylock_and_misuse),
    T(t_mutex_fifo_handoff_1p),
    T(t_mutex_free_after_last_unlock_2p),
    T(t_waitgroup),
    T(t_waitgroup_negative_einval),
    T(t_waitgroup_race_2p),
    {0},
};

T_MAIN(cases)
