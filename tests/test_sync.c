/* Mutex and wait group: mutual exclusion under contention across Ps, FIFO hand-off,
 * trylock, misuse errors; wait groups with many waiters, reuse, negative counters.
 * Condition variables (no lost signal across Ps, signal wakes one in FIFO order,
 * broadcast wakes all, from a plain thread too), reader/writer mutexes (shared readers,
 * exclusive writers, a writer not starved by a stream of readers, hand-off order, try
 * calls, free after the last unlock) and once (racing callers all wait for fn). */
#include "t.h"
#include <pthread.h>
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


static void never_called(void *arg) { FAILF("fn ran again"); }

#define WAIT_COND NP_WAIT_COND
#define WAIT_RWMUTEX NP_WAIT_RWMUTEX
#define WAIT_ONCE NP_WAIT_ONCE

/* ---- condition variable --------------------------------------------------------------------- */

/* A one-slot buffer between producers and consumers, each side waiting on its own cond
 * while the slot is full (producers) or empty (consumers). Across 2 Ps a waiter's
 * unlock and park race the other side's signal every round: one lost signal and both
 * sides wait for ever (the case's alarm). */
static np_cond notfull = NP_COND_INIT, notempty = NP_COND_INIT, cv = NP_COND_INIT;
static bool slot_full;
static long slot_val, consumed_sum, consumed_n;
static atomic_long nwaits;

#define NPROD 2
#define NCONS 2

static void producer(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 1; i <= n; i++) {
        CHECK_EQ(np_mutex_lock(&mu), 0);
        while (slot_full) {
            atomic_fetch_add(&nwaits, 1);
            CHECK_EQ(np_cond_wait(&notfull, &mu), 0);
            CHECK_ERR(np_mutex_trylock(&mu), EBUSY); /* relocked */
        }
        slot_full = true;
        slot_val = i;
        CHECK_EQ(np_cond_signal(&notempty), 0);
        CHECK_EQ(np_mutex_unlock(&mu), 0);
    }
    np_wg_done(&wg);
}

static void consumer(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        CHECK_EQ(np_mutex_lock(&mu), 0);
        while (!slot_full) {
            atomic_fetch_add(&nwaits, 1);
            CHECK_EQ(np_cond_wait(&notempty, &mu), 0);
        }
        slot_full = false;
        consumed_sum += slot_val;
        consumed_n++;
        CHECK_EQ(np_cond_signal(&notfull), 0);
        CHECK_EQ(np_mutex_unlock(&mu), 0);
    }
    np_wg_done(&wg);
}

static void prodcons_main(void *arg)
{
    long n = *(long *)arg;
    np_wg_add(&wg, NPROD + NCONS);
    for (int i = 0; i < NCONS; i++)
        np_go(consumer, (void *)(intptr_t)n);
    for (int i = 0; i < NPROD; i++)
        np_go(producer, (void *)(intptr_t)n);
    np_wg_wait(&wg);
}

static void t_cond_prodcons_2p(void)
{
    long n = t_scaled(100000);
    t_procs(2);
    T_RUN(prodcons_main, &n);
    CHECK_EQ(consumed_n, NPROD * n);
    CHECK_EQ(consumed_sum, NPROD * (n * (n + 1) / 2));
    CHECK(atomic_load(&nwaits) > 0); /* the waits were exercised */
    printf("    %ld items, %ld waits\n", consumed_n, (long)atomic_load(&nwaits));
}

/* The narrowest window: a plain thread spins on np_mutex_trylock and signals as soon as
 * it finds the waiter's flag set, so it often has the mutex within nanoseconds of the
 * waiter's unlock inside np_cond_wait, before the waiter has parked. Its signal must
 * still reach that wait (Go's rule: the wait is registered before the unlock). A lost
 * signal leaves the waiter parked for ever and the flag clear: the thread sees no
 * progress and fails the case. */
static int lost_flag; /* under mu: the waiter waits for a signal */
static atomic_long lost_rounds;
static atomic_bool lost_stop;

static void *lost_signaller(void *arg)
{
    long last = -1;
    double since = t_secs(), limit = 10.0 * (t_scale_v() > 1 ? 3 : 1);
    while (!atomic_load(&lost_stop)) {
        if (np_mutex_trylock(&mu) == 0) {
            if (lost_flag) {
                lost_flag = 0;
                CHECK_EQ(np_cond_signal(&cv), 0);
            }
            CHECK_EQ(np_mutex_unlock(&mu), 0);
        }
        long r = atomic_load(&lost_rounds);
        if (r != last) {
            last = r;
            since = t_secs();
        } else if (t_secs() - since > limit) {
            FAILF("round %ld: the waiter was never woken (a lost signal)", r);
        }
    }
    return NULL;
}

static void lost_main(void *arg)
{
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, lost_signaller, NULL), 0);
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        CHECK_EQ(np_mutex_lock(&mu), 0);
        lost_flag = 1;
        while (lost_flag)
            CHECK_EQ(np_cond_wait(&cv, &mu), 0);
        CHECK_EQ(np_mutex_unlock(&mu), 0);
        atomic_fetch_add(&lost_rounds, 1);
    }
    atomic_store(&lost_stop, true);
    CHECK_EQ(pthread_join(th, NULL), 0);
}

static void t_cond_no_lost_signal_2p(void)
{
    long n = t_scaled(50000);
    t_procs(2);
    T_RUN(lost_main, &n);
    CHECK_EQ(atomic_load(&lost_rounds), n);
}

/* Signal wakes exactly one waiter, the one that has waited longest (FIFO), and only
 * waits begun before it; broadcast wakes every waiter. A waiter records its place under
 * mu in the critical section where np_cond_wait registers it (so on any number of Ps
 * that is the order of registration), and its wake-up under mu right after; each
 * woken one is seen done before the next signal. */
#define NCW 12
static int wait_order[NCW], nwait_order, wake_order[NCW];
static atomic_int nwoken;

static void cond_waiter(void *arg)
{
    CHECK_EQ(np_mutex_lock(&mu), 0);
    wait_order[nwait_order++] = (int)(intptr_t)arg;
    CHECK_EQ(np_cond_wait(&cv, &mu), 0);
    wake_order[atomic_fetch_add(&nwoken, 1)] = (int)(intptr_t)arg;
    CHECK_EQ(np_mutex_unlock(&mu), 0);
    np_wg_done(&wg);
}

static void wait_woken(int n)
{
    int64_t t0 = np_now();
    while (atomic_load(&nwoken) < n) {
        if (np_now() - t0 > 10LL * 1000000000 * (t_scale_v() > 1 ? 3 : 1))
            FAILF("%d woken, want %d", atomic_load(&nwoken), n);
        CHECK_EQ(np_yield(), 0);
    }
}

static void cond_signal_main(void *arg)
{
    CHECK_EQ(np_cond_signal(&cv), 0); /* nobody waits: nothing to do, nothing kept */
    CHECK_EQ(np_cond_broadcast(&cv), 0);
    np_wg_add(&wg, NCW);
    for (int i = 0; i < NCW; i++)
        np_go(cond_waiter, (void *)(intptr_t)i);
    wait_blocked(WAIT_COND, NCW);
    for (int k = 1; k <= NCW / 2; k++) {
        CHECK_EQ(np_cond_signal(&cv), 0);
        wait_woken(k);                       /* one woke up ... */
        wait_blocked(WAIT_COND, NCW - k); /* ... and only one left the cond */
        CHECK_EQ(np_yield(), 0);
        CHECK_EQ(atomic_load(&nwoken), k);
    }
    CHECK_EQ(np_mutex_lock(&mu), 0);
    CHECK_EQ(nwait_order, NCW);
    for (int k = 0; k < NCW / 2; k++)
        CHECK_EQ(wake_order[k], wait_order[k]);
    CHECK_EQ(np_mutex_unlock(&mu), 0);
    CHECK_EQ(np_cond_broadcast(&cv), 0); /* the rest, all at once */
    wait_blocked(WAIT_COND, 0);
    np_wg_wait(&wg);
    CHECK_EQ(atomic_load(&nwoken), NCW);
}

static void t_cond_signal_one_fifo_1p(void)
{
    t_procs(1);
    T_RUN(cond_signal_main, NULL);
}

static void t_cond_signal_one_fifo_2p(void)
{
    t_procs(2);
    T_RUN(cond_signal_main, NULL);
}

/* Broadcast wakes all N waiters, round after round; a waiter registered after the
 * broadcast (the next round) is not woken by it. */
static long gen; /* under mu */

static void gen_waiter(void *arg)
{
    CHECK_EQ(np_mutex_lock(&mu), 0);
    long g0 = gen;
    while (gen == g0)
        CHECK_EQ(np_cond_wait(&cv, &mu), 0);
    CHECK_EQ(gen, g0 + 1);
    atomic_fetch_add(&nwoken, 1);
    CHECK_EQ(np_mutex_unlock(&mu), 0);
    np_wg_done(&wg);
}

static void broadcast_main(void *arg)
{
    int n = (int)t_coroutines(200);
    for (int round = 0; round < 20; round++) {
        atomic_store(&nwoken, 0);
        np_wg_add(&wg, n);
        for (int i = 0; i < n; i++)
            np_go(gen_waiter, NULL);
        wait_blocked(WAIT_COND, n);
        CHECK_EQ(np_mutex_lock(&mu), 0);
        gen++;
        CHECK_EQ(np_cond_broadcast(&cv), 0);
        CHECK_EQ(np_mutex_unlock(&mu), 0);
        np_wg_wait(&wg);
        CHECK_EQ(atomic_load(&nwoken), n);
    }
    /* nobody left behind, nothing pending: a new waiter is not woken by the old ones */
    np_wg_add(&wg, 1);
    np_go(gen_waiter, NULL);
    wait_blocked(WAIT_COND, 1);
    CHECK_EQ(np_mutex_lock(&mu), 0);
    gen++;
    CHECK_EQ(np_cond_signal(&cv), 0);
    CHECK_EQ(np_mutex_unlock(&mu), 0);
    np_wg_wait(&wg);
}

static void t_cond_broadcast_wakes_all_2p(void)
{
    t_procs(2);
    T_RUN(broadcast_main, NULL);
}

/* Signal and broadcast from a plain thread (no coroutine) wake coroutines. */
static void *thread_signal(void *arg)
{
    for (int k = 1; k <= 2; k++) {
        np_stats st;
        int64_t t0 = np_now();
        do { /* the waiter is parked in the cond (np_stats works from any thread) */
            CHECK_EQ(np_stats_get(&st), 0);
            if (np_now() - t0 > 30LL * 1000000000)
                FAILF("the waiter never waited");
        } while (st.waiting_by[WAIT_COND] != 1);
        CHECK_EQ(k == 1 ? np_cond_signal(&cv) : np_cond_broadcast(&cv), 0);
        while (atomic_load(&nwoken) < k)
            sched_yield();
    }
    return NULL;
}

static void cond_thread_main(void *arg)
{
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_signal, NULL), 0);
    for (int k = 1; k <= 2; k++) {
        CHECK_EQ(np_mutex_lock(&mu), 0);
        CHECK_EQ(np_cond_wait(&cv, &mu), 0);
        atomic_fetch_add(&nwoken, 1);
        CHECK_EQ(np_mutex_unlock(&mu), 0);
    }
    CHECK_EQ(pthread_join(th, NULL), 0); /* (quick: it is done once we were woken twice) */
}

static void t_cond_signal_from_thread(void)
{
    t_procs(2);
    T_RUN(cond_thread_main, NULL);
}

static void cond_misuse_main(void *arg)
{
    np_cond c = NP_COND_INIT;
    np_mutex m = NP_MUTEX_INIT;
    CHECK_ERR(np_cond_wait(&c, &m), EPERM); /* m not locked */
    CHECK_ERR(np_cond_wait(NULL, &m), EINVAL);
    CHECK_ERR(np_cond_wait(&c, NULL), EINVAL);
    CHECK_ERR(np_cond_signal(NULL), EINVAL);
    CHECK_ERR(np_cond_broadcast(NULL), EINVAL);
    /* the failed wait registered nothing: zero-initialised storage is still as it was */
    CHECK(memcmp(&c, &(np_cond)NP_COND_INIT, sizeof c) == 0);
    CHECK_EQ(np_mutex_trylock(&m), 0);
    CHECK_EQ(np_mutex_unlock(&m), 0);
}

static void t_cond_misuse(void)
{
    t_procs(1);
    T_RUN(cond_misuse_main, NULL);
    np_cond c = NP_COND_INIT;
    np_mutex m = NP_MUTEX_INIT;
    CHECK_EQ(np_mutex_trylock(&m), 0);
    CHECK_ERR(np_cond_wait(&c, &m), EPERM); /* outside a coroutine */
    CHECK_ERR(np_mutex_trylock(&m), EBUSY); /* still locked: not released by the wait */
    CHECK_EQ(np_mutex_unlock(&m), 0);
    CHECK_EQ(np_cond_signal(&c), 0);
    CHECK_EQ(np_cond_broadcast(&c), 0);
}

/* ---- reader/writer mutex -------------------------------------------------------------------- */

static np_rwmutex rw = NP_RWMUTEX_INIT;
static atomic_int rinside, winside, rmax;

/* Wait for cond (yielding), at most 10 s (30 s in slow builds). */
#define WAIT_FOR(cond, ...)                                                              \
    do {                                                                                 \
        int64_t t0_ = np_now();                                                          \
        while (!(cond)) {                                                                \
            if (np_now() - t0_ > 10LL * 1000000000 * (t_scale_v() > 1 ? 3 : 1))          \
                FAILF(__VA_ARGS__);                                                      \
            CHECK_EQ(np_yield(), 0);                                                     \
        }                                                                                \
    } while (0)

/* NR readers on 2 Ps all inside at once: each waits, holding its read lock, until all
 * are in (a read lock that excluded other readers would never let that happen). */
#define NR 8
static void sharing_reader(void *arg)
{
    CHECK_EQ(np_rwmutex_rlock(&rw), 0);
    atomic_fetch_add(&rinside, 1);
    WAIT_FOR(atomic_load(&rinside) == NR, "%d readers inside, want %d together",
             atomic_load(&rinside), NR);
    CHECK_ERR(np_rwmutex_trylock(&rw), EBUSY);
    atomic_fetch_add(&rmax, 1);
    WAIT_FOR(atomic_load(&rmax) == NR, "readers did not all see each other"); /* stay in */
    CHECK_EQ(np_rwmutex_runlock(&rw), 0);
    np_wg_done(&wg);
}

static void rw_share_main(void *arg)
{
    np_wg_add(&wg, NR);
    for (int i = 0; i < NR; i++)
        np_go(sharing_reader, NULL);
    np_wg_wait(&wg);
    /* free again */
    CHECK_EQ(np_rwmutex_trylock(&rw), 0);
    CHECK_EQ(np_rwmutex_unlock(&rw), 0);
}

static void t_rwmutex_readers_share_2p(void)
{
    t_procs(2);
    T_RUN(rw_share_main, NULL);
}

/* Writers and readers on 2 Ps: a writer is alone (no reader, no other writer inside;
 * two plain counters it bumps across a switch always agree for readers); readers are
 * seen inside together. */
static long wa, wb; /* under rw's write lock */

static void rw_writer(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        CHECK_EQ(np_rwmutex_lock(&rw), 0);
        if (atomic_fetch_add(&winside, 1) != 0 || atomic_load(&rinside) != 0)
            atomic_fetch_add(&overlap, 1);
        wa++;
        if (i % 8 == 0)
            np_yield();
        wb++;
        atomic_fetch_sub(&winside, 1);
        CHECK_EQ(np_rwmutex_unlock(&rw), 0);
    }
    np_wg_done(&wg);
}

static void rw_reader(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        CHECK_EQ(np_rwmutex_rlock(&rw), 0);
        int in = atomic_fetch_add(&rinside, 1) + 1;
        if (in > atomic_load(&rmax))
            atomic_store(&rmax, in);
        if (atomic_load(&winside) != 0)
            atomic_fetch_add(&overlap, 1);
        long a = wa;
        if (i % 4 == 0)
            np_yield();
        if (wb != a)
            atomic_fetch_add(&overlap, 1);
        atomic_fetch_sub(&rinside, 1);
        CHECK_EQ(np_rwmutex_runlock(&rw), 0);
    }
    np_wg_done(&wg);
}

static void rw_mix_main(void *arg)
{
    long n = *(long *)arg;
    np_wg_add(&wg, 8);
    for (int i = 0; i < 3; i++)
        np_go(rw_writer, (void *)(intptr_t)n);
    for (int i = 0; i < 5; i++)
        np_go(rw_reader, (void *)(intptr_t)(2 * n));
    np_wg_wait(&wg);
}

static void t_rwmutex_writers_exclusive_2p(void)
{
    long n = t_scaled(20000);
    t_procs(2);
    T_RUN(rw_mix_main, &n);
    CHECK_EQ(atomic_load(&overlap), 0);
    CHECK_EQ(wa, 3 * n);
    CHECK_EQ(wb, 3 * n);
    CHECK(atomic_load(&rmax) >= 2); /* readers did share */
    printf("    up to %d readers inside together\n", atomic_load(&rmax));
}

/* A stream of readers that never leaves the lock free: each reader holds its read lock
 * until a newer reader has come in (hand over hand), so a writer that waited for a
 * moment with no reader inside would wait for ever. It gets in because a waiting
 * writer holds back new readers: a reader that finds itself held back (a second
 * coroutine blocked on the rwmutex, besides the writer) lets the holders go. Each
 * writer, round after round, must get in within the bound while readers keep coming. */
#define NSTREAM 4
static atomic_long entries, reads;
static atomic_bool stop_readers;

static int64_t rw_blocked(void)
{
    np_stats st;
    CHECK_EQ(np_stats_get(&st), 0);
    return st.waiting_by[WAIT_RWMUTEX];
}

static void stream_reader(void *arg)
{
    while (!atomic_load(&stop_readers)) {
        CHECK_EQ(np_rwmutex_rlock(&rw), 0);
        CHECK_EQ(atomic_load(&winside), 0);
        long me = atomic_fetch_add(&entries, 1) + 1;
        atomic_fetch_add(&reads, 1);
        /* leave once a newer reader is in, or new readers are held back */
        while (atomic_load(&entries) == me && !atomic_load(&stop_readers) && rw_blocked() < 2)
            CHECK_EQ(np_yield(), 0);
        CHECK_EQ(np_rwmutex_runlock(&rw), 0);
    }
    np_wg_done(&wg);
}

static atomic_bool writer_in;

static void stream_writer(void *arg)
{
    CHECK_EQ(np_rwmutex_lock(&rw), 0);
    atomic_store(&winside, 1);
    CHECK_ERR(np_rwmutex_tryrlock(&rw), EBUSY);
    atomic_store(&winside, 0);
    CHECK_EQ(np_rwmutex_unlock(&rw), 0);
    atomic_store(&writer_in, true);
}

static void stream_main(void *arg)
{
    np_wg_add(&wg, NSTREAM);
    for (int i = 0; i < NSTREAM; i++)
        np_go(stream_reader, NULL);
    int rounds = (int)t_scaled(200);
    for (int r = 0; r < rounds; r++) {
        long r0 = atomic_load(&reads);
        WAIT_FOR(atomic_load(&reads) >= r0 + 20, "round %d: the readers stopped reading", r);
        atomic_store(&writer_in, false);
        np_go(stream_writer, NULL);
        WAIT_FOR(atomic_load(&writer_in),
                 "round %d: a writer starved by a stream of readers (%ld reads since)", r,
                 atomic_load(&reads) - r0);
    }
    atomic_store(&stop_readers, true);
    np_wg_wait(&wg);
    printf("    %d writers got in among %ld reads\n", rounds, (long)atomic_load(&reads));
}

static void t_rwmutex_writer_not_starved_2p(void)
{
    t_procs(2);
    T_RUN(stream_main, NULL);
}

/* Order of hand-offs with one P: readers and a writer queue behind a writer; its
 * unlock lets in every reader queued (together), not the writer; the last of them
 * hands the lock to the writer, and readers that come meanwhile queue behind it. */
static atomic_int order_step;

static void q_reader(void *arg)
{
    CHECK_EQ(np_rwmutex_rlock(&rw), 0);
    atomic_fetch_add(&rinside, 1);
    WAIT_FOR(atomic_load(&order_step) == 1, "the readers were not let go");
    atomic_fetch_sub(&rinside, 1);
    CHECK_EQ(np_rwmutex_runlock(&rw), 0);
    np_wg_done(&wg);
}

static void q_writer(void *arg)
{
    CHECK_EQ(np_rwmutex_lock(&rw), 0);
    CHECK_EQ(atomic_load(&rinside), 0);
    atomic_store(&winside, 1);
    CHECK_EQ(atomic_load(&order_step), 1);
    atomic_store(&winside, 0);
    CHECK_EQ(np_rwmutex_unlock(&rw), 0);
    np_wg_done(&wg);
}

static void late_reader(void *arg)
{
    CHECK_EQ(np_rwmutex_rlock(&rw), 0);
    CHECK_EQ(atomic_load(&winside), 0);
    atomic_fetch_add(&nwoken, 1);
    CHECK_EQ(np_rwmutex_runlock(&rw), 0);
    np_wg_done(&wg);
}

static void rw_order_main(void *arg)
{
    CHECK_EQ(np_rwmutex_lock(&rw), 0);
    np_wg_add(&wg, 3 + 1 + 2);
    for (int i = 0; i < 3; i++)
        np_go(q_reader, NULL);
    wait_blocked(WAIT_RWMUTEX, 3);
    np_go(q_writer, NULL);
    wait_blocked(WAIT_RWMUTEX, 4);
    CHECK_EQ(np_rwmutex_unlock(&rw), 0);
    /* the three readers are in together; the writer still waits */
    WAIT_FOR(atomic_load(&rinside) == 3, "%d readers let in, want 3", atomic_load(&rinside));
    wait_blocked(WAIT_RWMUTEX, 1);
    CHECK_ERR(np_rwmutex_tryrlock(&rw), EBUSY); /* a writer waits: no new reader */
    for (int i = 0; i < 2; i++)
        np_go(late_reader, NULL);
    wait_blocked(WAIT_RWMUTEX, 3); /* they queue behind the writer */
    CHECK_EQ(atomic_load(&nwoken), 0);
    atomic_store(&order_step, 1);
    np_wg_wait(&wg);
    CHECK_EQ(atomic_load(&nwoken), 2);
}

static void t_rwmutex_handoff_order_1p(void)
{
    t_procs(1);
    T_RUN(rw_order_main, NULL);
}

static void rw_try_main(void *arg)
{
    np_rwmutex r = NP_RWMUTEX_INIT;
    CHECK_ERR(np_rwmutex_unlock(&r), EPERM);  /* nobody holds it */
    CHECK_ERR(np_rwmutex_runlock(&r), EPERM);
    CHECK_EQ(np_rwmutex_trylock(&r), 0);
    CHECK_ERR(np_rwmutex_trylock(&r), EBUSY);
    CHECK_ERR(np_rwmutex_tryrlock(&r), EBUSY);
    CHECK_ERR(np_rwmutex_runlock(&r), EPERM); /* a writer holds it, no reader */
    CHECK_EQ(np_rwmutex_unlock(&r), 0);
    CHECK_ERR(np_rwmutex_unlock(&r), EPERM);
    CHECK_EQ(np_rwmutex_tryrlock(&r), 0);
    CHECK_EQ(np_rwmutex_tryrlock(&r), 0);     /* readers share */
    CHECK_EQ(np_rwmutex_rlock(&r), 0);
    CHECK_ERR(np_rwmutex_trylock(&r), EBUSY);
    CHECK_ERR(np_rwmutex_unlock(&r), EPERM);  /* readers hold it, no writer */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(np_rwmutex_runlock(&r), 0);
    CHECK_ERR(np_rwmutex_runlock(&r), EPERM);
    CHECK_EQ(np_rwmutex_lock(&r), 0);
    CHECK_EQ(np_rwmutex_unlock(&r), 0);
    CHECK_EQ(np_rwmutex_trylock(&r), 0);
    CHECK_EQ(np_rwmutex_unlock(&r), 0);
    CHECK(memcmp(&r, &(np_rwmutex)NP_RWMUTEX_INIT, sizeof r) == 0); /* back to zero */
    /* a reader holds it and a writer waits: tryrlock fails, trylock too */
    CHECK_EQ(np_rwmutex_rlock(&rw), 0);
    np_wg_add(&wg, 1);
    np_go(q_writer, NULL);
    wait_blocked(WAIT_RWMUTEX, 1);
    CHECK_ERR(np_rwmutex_tryrlock(&rw), EBUSY);
    CHECK_ERR(np_rwmutex_trylock(&rw), EBUSY);
    atomic_store(&order_step, 1);
    CHECK_EQ(np_rwmutex_runlock(&rw), 0); /* the writer's turn */
    np_wg_wait(&wg);
    CHECK_ERR(np_rwmutex_rlock(NULL), EINVAL);
    CHECK_ERR(np_rwmutex_lock(NULL), EINVAL);
    CHECK_ERR(np_rwmutex_runlock(NULL), EINVAL);
    CHECK_ERR(np_rwmutex_unlock(NULL), EINVAL);
    CHECK_ERR(np_rwmutex_tryrlock(NULL), EINVAL);
    CHECK_ERR(np_rwmutex_trylock(NULL), EINVAL);
}

static void t_rwmutex_try_and_misuse(void)
{
    t_procs(1);
    T_RUN(rw_try_main, NULL);
    /* outside a coroutine: the blocking calls fail, the others work */
    np_rwmutex r = NP_RWMUTEX_INIT;
    CHECK_ERR(np_rwmutex_rlock(&r), EPERM);
    CHECK_ERR(np_rwmutex_lock(&r), EPERM);
    CHECK_EQ(np_rwmutex_tryrlock(&r), 0);
    CHECK_EQ(np_rwmutex_runlock(&r), 0);
    CHECK_EQ(np_rwmutex_trylock(&r), 0);
    CHECK_EQ(np_rwmutex_unlock(&r), 0);
    CHECK_ERR(np_rwmutex_unlock(&r), EPERM);
}

/* The reference-count pattern of the mutex's test, with a read phase before each drop:
 * the last to drop its reference (under the write lock) frees the object right after
 * unlocking; no unlocker (reader or writer) may touch it once another could take it. */
typedef struct rwshared {
    np_rwmutex rw;
    int refs;
    long data;
} rwshared;

static void rw_drop_ref(void *arg)
{
    rwshared *s = arg;
    CHECK_EQ(np_rwmutex_rlock(&s->rw), 0);
    CHECK_EQ(s->data, 42);
    CHECK_EQ(np_rwmutex_runlock(&s->rw), 0);
    CHECK_EQ(np_rwmutex_lock(&s->rw), 0);
    int last = --s->refs == 0;
    CHECK_EQ(np_rwmutex_unlock(&s->rw), 0);
    if (last) {
        atomic_fetch_add(&nlast, 1);
        memset(s, 0xdd, sizeof *s);
        free(s);
    }
    np_wg_done(&wg);
}

static void rw_refcount_main(void *arg)
{
    long rounds = t_scaled(20000);
    for (long r = 0; r < rounds; r++) {
        rwshared *s = calloc(1, sizeof *s);
        s->refs = 3;
        s->data = 42;
        atomic_store(&nlast, 0);
        np_wg_add(&wg, 3);
        for (int i = 0; i < 3; i++)
            np_go(rw_drop_ref, s);
        np_wg_wait(&wg);
        CHECK_EQ(atomic_load(&nlast), 1);
    }
}

static void t_rwmutex_free_after_last_unlock_2p(void)
{
    t_procs(2);
    T_RUN(rw_refcount_main, NULL);
}

/* ---- once ----------------------------------------------------------------------------------- */

static np_once once = NP_ONCE_INIT;
static atomic_int once_calls, once_early, once_callers;
static atomic_bool once_done;

/* fn: lets the other callers come (they must wait for it), then sets the flag. */
static void once_fn(void *arg)
{
    atomic_fetch_add(&once_calls, 1);
    int want = *(int *)arg;
    t_wait_blocked(WAIT_ONCE, want, true); /* callers park while fn runs */
    np_yield();
    np_sleep(1000000);
    np_yield();
    atomic_store(&once_done, true);
}

static void once_caller(void *arg)
{
    CHECK_EQ(np_once_do(&once, once_fn, arg), 0);
    if (!atomic_load(&once_done))
        atomic_fetch_add(&once_early, 1); /* returned before fn had finished */
    atomic_fetch_add(&once_callers, 1);
    np_wg_done(&wg);
}

static void once_main(void *arg)
{
    int n = (int)t_coroutines(1000);
    int want = n - 1 < 5 ? n - 1 : 5;
    np_wg_add(&wg, n);
    for (int i = 0; i < n; i++)
        np_go(once_caller, &want);
    np_wg_wait(&wg);
    CHECK_EQ(atomic_load(&once_callers), n);
    CHECK_EQ(np_once_do(&once, once_fn, &want), 0); /* done: fn not run again */
    printf("    %d callers\n", n);
}

static void t_once_racing_2p(void)
{
    t_procs(2);
    T_RUN(once_main, NULL);
    CHECK_EQ(atomic_load(&once_calls), 1);
    CHECK_EQ(atomic_load(&once_early), 0);
    /* done: a plain load, from any thread */
    CHECK_EQ(np_once_do(&once, never_called, NULL), 0);
}

/* Many short rounds with fresh onces: claiming, parking and the final exchange race
 * each other across the 2 Ps every time. */
static void count_fn(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    if (atomic_load((atomic_int *)arg) % 2)
        np_yield();
}

typedef struct oncer { np_once *o; atomic_int *calls; } oncer;

static void once_round_caller(void *arg)
{
    oncer *c = arg;
    CHECK_EQ(np_once_do(c->o, count_fn, c->calls), 0);
    CHECK_EQ(atomic_load(c->calls), 1);
    np_wg_done(&wg);
}

static void once_rounds_main(void *arg)
{
    long rounds = t_scaled(20000);
    for (long r = 0; r < rounds; r++) {
        np_once *o = calloc(1, sizeof *o);
        atomic_int calls = 0;
        oncer c = {o, &calls};
        np_wg_add(&wg, 3);
        for (int i = 0; i < 3; i++)
            np_go(once_round_caller, &c);
        if (r % 2)
            np_yield();
        CHECK_EQ(np_once_do(o, count_fn, &calls), 0);
        CHECK_EQ(atomic_load(&calls), 1);
        np_wg_wait(&wg);
        CHECK_EQ(atomic_load(&calls), 1);
        free(o);
    }
}

static void t_once_rounds_2p(void)
{
    t_procs(2);
    T_RUN(once_rounds_main, NULL);
}

/* fn calling np_once_do on its own once: EDEADLK (it would wait for itself), and fn
 * carries on; other callers still wait for it. Misuse and calls outside coroutines. */
static atomic_int rec_result, rec_errno;

static void recursive_fn(void *arg)
{
    atomic_fetch_add(&once_calls, 1);
    T_ERRNO = 0;
    atomic_store(&rec_result, np_once_do(&once, recursive_fn, arg));
    atomic_store(&rec_errno, t_errno());
    atomic_store(&once_done, true);
}

static void once_misuse_main(void *arg)
{
    CHECK_EQ(np_once_do(&once, recursive_fn, NULL), 0);
    CHECK_EQ(atomic_load(&once_calls), 1);
    CHECK_EQ(atomic_load(&rec_result), -1);
    CHECK_EQ(atomic_load(&rec_errno), EDEADLK);
    CHECK_EQ(np_once_do(&once, recursive_fn, NULL), 0);
    CHECK_EQ(atomic_load(&once_calls), 1);
    np_once o = NP_ONCE_INIT;
    CHECK_ERR(np_once_do(NULL, recursive_fn, NULL), EINVAL);
    CHECK_ERR(np_once_do(&o, NULL, NULL), EINVAL);
    CHECK(memcmp(&o, &(np_once)NP_ONCE_INIT, sizeof o) == 0);
}

static void t_once_recursive_and_misuse(void)
{
    t_procs(1);
    np_once o = NP_ONCE_INIT;
    CHECK_ERR(np_once_do(&o, never_called, NULL), EPERM); /* outside: fn not run */
    T_RUN(once_misuse_main, NULL);
    CHECK_EQ(np_once_do(&once, never_called, NULL), 0); /* done: from any thread */
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
    T(t_cond_prodcons_2p),
    T(t_cond_no_lost_signal_2p),
    T(t_cond_signal_one_fifo_1p),
    T(t_cond_signal_one_fifo_2p),
    T(t_cond_broadcast_wakes_all_2p),
    T(t_cond_signal_from_thread),
    T(t_cond_misuse),
    T(t_rwmutex_readers_share_2p),
    T(t_rwmutex_writers_exclusive_2p),
    T(t_rwmutex_writer_not_starved_2p),
    T(t_rwmutex_handoff_order_1p),
    T(t_rwmutex_try_and_misuse),
    T(t_rwmutex_free_after_last_unlock_2p),
    T(t_once_racing_2p),
    T(t_once_rounds_2p),
    T(t_once_recursive_and_misuse),
    {0},
};

T_MAIN(cases)
