/* The scheduler: parallelism over Ps, ping-pong across Ps, many coroutines, work
 * stealing, fairness (nothing runnable is starved by yielding or by chains of
 * coroutines waking each other, timers included). */
#include "t.h"
#include <pthread.h>
#include <stdatomic.h>

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* ---- parallelism ----------------------------------------------------------------------- */

/* Two coroutines that spin (never yielding) until both have arrived: only two Ps
 * running at the same time let them meet. */
static atomic_int arrived;
static np_wg par_wg = NP_WG_INIT;

static int meet(int n)
{
    atomic_fetch_add(&arrived, 1);
    int64_t deadline = np_now() + 5LL * 1000000000 * (t_scale_v() > 1 ? 3 : 1);
    while (atomic_load(&arrived) < n && np_now() < deadline)
        cpu_relax();
    return atomic_load(&arrived) >= n;
}

static atomic_int met;

static void hog(void *arg)
{
    if (meet(2))
        atomic_fetch_add(&met, 1);
    np_wg_done(&par_wg);
}

static void par_children(void *arg)
{
    np_wg_add(&par_wg, 2);
    np_go(hog, NULL);
    np_go(hog, NULL);
    np_wg_wait(&par_wg);
}

/* main spins itself: the child sits in main's P's next slot, which only sysmon's
 * hand-off to the global queue lets the other P take. */
static void par_main_spins(void *arg)
{
    np_wg_add(&par_wg, 2);
    np_go(hog, NULL);
    hog(NULL);
    np_wg_wait(&par_wg);
}

static void t_two_ps_run_in_parallel(void)
{
    t_procs(2);
    T_RUN(par_children, NULL);
    CHECK_EQ(atomic_load(&met), 2);
    atomic_store(&arrived, 0);
    atomic_store(&met, 0);
    T_RUN(par_main_spins, NULL);
    CHECK_EQ(atomic_load(&met), 2);
}

/* ---- ping-pong --------------------------------------------------------------------------- */

typedef struct pp {
    np_chan *ping, *pong;
    long n;
    atomic_long errors;
    np_wg wg;
} pp;

static void ponger(void *arg)
{
    pp *x = arg;
    long v, expect = 0;
    while (np_chan_recv(x->ping, &v) == 1) {
        if (v != expect)
            atomic_fetch_add(&x->errors, 1);
        expect = v + 2;
        v++;
        if (np_chan_send(x->pong, &v) != 0)
            atomic_fetch_add(&x->errors, 1);
    }
    np_wg_done(&x->wg);
}

static void pinger(void *arg)
{
    pp *x = arg;
    for (long i = 0; i < 2 * x->n; i += 2) {
        long v = i;
        if (np_chan_send(x->ping, &v) != 0 || np_chan_recv(x->pong, &v) != 1 || v != i + 1)
            atomic_fetch_add(&x->errors, 1);
    }
    np_chan_close(x->ping);
    np_wg_done(&x->wg);
}

/* Ping-pong over unbuffered channels, two pairs at once with two Ps, so that partners
 * keep being woken from the other P. */
static void pingpong_main(void *arg)
{
    pp *x = arg;
    for (int k = 0; k < 2; k++) {
        x[k].ping = np_chan_new(sizeof(long), 0);
        x[k].pong = np_chan_new(sizeof(long), 0);
        np_wg_add(&x[k].wg, 2);
        np_go(ponger, &x[k]);
        np_go(pinger, &x[k]);
    }
    for (int k = 0; k < 2; k++) {
        np_wg_wait(&x[k].wg);
        CHECK_EQ(np_chan_free(x[k].ping), 0);
        CHECK_EQ(np_chan_free(x[k].pong), 0);
    }
}

static void t_pingpong_2p(void)
{
    pp x[2] = {0};
    x[0].n = x[1].n = t_scaled(100000);
    t_procs(2);
    T_RUN(pingpong_main, x);
    CHECK_EQ(atomic_load(&x[0].errors), 0);
    CHECK_EQ(atomic_load(&x[1].errors), 0);
}

/* Ping-pong through shared memory between two coroutines that wait by yielding: with
 * two Ps they run at the same time, each on its own P. */
static atomic_long ball;

static void ppy_side(void *arg)
{
    long me = (long)(intptr_t)arg, n = t_scaled(100000);
    for (long i = me; i < 2 * n; i += 2) {
        while (atomic_load_explicit(&ball, memory_order_acquire) != i)
            np_yield();
        atomic_store_explicit(&ball, i + 1, memory_order_release);
    }
    np_wg_done(&par_wg);
}

static void ppy_main(void *arg)
{
    np_wg_add(&par_wg, 2);
    np_go(ppy_side, (void *)(intptr_t)0);
    np_go(ppy_side, (void *)(intptr_t)1);
    np_wg_wait(&par_wg);
}

static void t_pingpong_yield_2p(void)
{
    t_procs(2);
    T_RUN(ppy_main, NULL);
    CHECK_EQ(atomic_load(&ball), 2 * t_scaled(100000));
}

/* ---- many coroutines -------------------------------------------------------------------- */

static np_chan *gate;
static np_wg started = NP_WG_INIT, finished = NP_WG_INIT;
static atomic_long nfinished;

static void parked(void *arg)
{
    volatile char touch[512]; /* use some stack */
    touch[0] = 1;
    touch[511] = touch[0];
    np_wg_done(&started);
    char c;
    if (np_chan_recv(gate, &c) == 0)
        atomic_fetch_add(&nfinished, touch[511]);
    np_wg_done(&finished);
}

static void spawn_main(void *arg)
{
    long n = *(long *)arg;
    gate = np_chan_new(1, 0);
    for (long i = 0; i < n; i++) {
        np_wg_add(&started, 1);
        np_wg_add(&finished, 1);
        if (np_go(parked, NULL) <= 0)
            FAILF("np_go failed at %ld: %s", i, strerror(T_ERRNO));
    }
    np_wg_wait(&started); /* all n alive and (about to be) parked at once */
    CHECK_EQ(atomic_load(&nfinished), 0);
    np_chan_close(gate);
    np_wg_wait(&finished);
    CHECK_EQ(np_chan_free(gate), 0);
}

static void t_spawn_100k_2p(void)
{
    long n = t_coroutines(100000);
    t_procs(2);
    T_RUN(spawn_main, &n);
    CHECK_EQ(atomic_load(&nfinished), n);
}

static void t_spawn_100k_1p(void)
{
    long n = t_coroutines(100000);
    t_procs(1);
    T_RUN(spawn_main, &n);
    CHECK_EQ(atomic_load(&nfinished), n);
}

/* Short-lived coroutines, spawned faster than they run, many rounds (the free lists
 * of coroutines and stacks get reused). */
static atomic_long churn_count;
static void churn_child(void *arg)
{
    atomic_fetch_add(&churn_count, 1);
    if ((intptr_t)arg & 1)
        np_yield();
    np_wg_done(&finished);
}

static void churn_main(void *arg)
{
    long rounds = t_scaled(100), per = t_coroutines(1000);
    for (long r = 0; r < rounds; r++) {
        for (long i = 0; i < per; i++) {
            np_wg_add(&finished, 1);
            np_go(churn_child, (void *)(intptr_t)i);
        }
        np_wg_wait(&finished);
    }
}

static void t_spawn_churn(void)
{
    t_procs(2);
    T_RUN(churn_main, NULL);
    CHECK_EQ(atomic_load(&churn_count), t_scaled(100) * t_coroutines(1000));
}

/* ---- work stealing ------------------------------------------------------------------------ */

static t_threads steal_threads = {.mu = NP_MUTEX_INIT};

static void steal_job(void *arg)
{
    int64_t until = np_now() + 1000000; /* 1 ms of work without yielding */
    while (np_now() < until)
        cpu_relax();
    t_threads_note(&steal_threads);
    np_wg_done(&finished);
}

static void steal_main(void *arg)
{
    for (int i = 0; i < 200; i++) {
        np_wg_add(&finished, 1);
        np_go(steal_job, NULL);
    }
    np_wg_wait(&finished);
}

/* Runnable coroutines queued on one P are taken by the other. */
static void t_work_stealing(void)
{
    t_procs(2);
    T_RUN(steal_main, NULL);
    CHECK_EQ(atomic_load(&steal_threads.n), 2);
}

/* ---- fairness -------------------------------------------------------------------------------- */

static atomic_int flag;
static atomic_long spins;
static atomic_int starved; /* a busy coroutine gave up waiting for the flag */

/* Busy coroutines give up after a while (so that a starving scheduler shows as a
 * failure, not as a hang): 5 s is ages for a coroutine that is runnable. */
static int64_t starve_deadline(void)
{
    return np_now() + 5LL * 1000000000 * (t_scale_v() > 1 ? 3 : 1);
}

static int waited_too_long(int64_t deadline)
{
    if (np_now() < deadline)
        return 0;
    atomic_store(&starved, 1);
    return 1;
}

static void yield_until_flag(void *arg)
{
    int64_t deadline = starve_deadline();
    while (!atomic_load(&flag) && !waited_too_long(deadline)) {
        atomic_fetch_add(&spins, 1);
        np_yield();
    }
    np_wg_done(&finished);
}

static void set_flag(void *arg)
{
    atomic_store(&flag, 1);
    np_wg_done(&finished);
}

static void fair_yield_main(void *arg)
{
    np_wg_add(&finished, 3);
    np_go(yield_until_flag, NULL);
    np_go(yield_until_flag, NULL);
    np_go(set_flag, NULL);
    np_wg_wait(&finished);
    /* main itself yields until a coroutine spawned after it sets the flag */
    atomic_store(&flag, 0);
    np_wg_add(&finished, 1);
    np_go(set_flag, NULL);
    int64_t deadline = starve_deadline();
    while (!atomic_load(&flag) && !waited_too_long(deadline))
        np_yield();
    np_wg_wait(&finished);
}

/* One P: a coroutine yielding in a loop lets the others run. */
static void t_fair_yield_1p(void)
{
    t_procs(1);
    T_RUN(fair_yield_main, NULL);
    CHECK(!atomic_load(&starved));
}

/* A chain: two coroutines handing a value back and forth over unbuffered channels (each
 * wake-up makes the partner the next to run) until a third coroutine, runnable all
 * along, gets to run and tells them to stop. */
static np_chan *ch_a, *ch_b;

static void chain_a(void *arg)
{
    long v = 0;
    int64_t deadline = starve_deadline();
    while (!atomic_load(&flag) && !waited_too_long(deadline)) {
        np_chan_send(ch_a, &v);
        np_chan_recv(ch_b, &v);
        atomic_fetch_add(&spins, 1);
    }
    v = -1;
    np_chan_send(ch_a, &v);
    np_wg_done(&finished);
}

static void chain_b(void *arg)
{
    long v;
    while (np_chan_recv(ch_a, &v) == 1 && v >= 0) {
        v++;
        np_chan_send(ch_b, &v);
    }
    np_wg_done(&finished);
}

/* A ping-pong chain keeps the P busy while a third coroutine (arg: set_flag by
 * default, or *(np_fn *)arg) must still get to run. */
static void chain_main(void *arg)
{
    ch_a = np_chan_new(sizeof(long), 0);
    ch_b = np_chan_new(sizeof(long), 0);
    atomic_store(&flag, 0);
    np_wg_add(&finished, 3);
    np_go(chain_b, NULL);
    np_go(chain_a, NULL);
    np_go(arg ? *(const np_fn *)arg : set_flag, NULL);
    np_wg_wait(&finished);
    np_chan_free(ch_a);
    np_chan_free(ch_b);
}

static void t_fair_chain_1p(void)
{
    t_procs(1);
    T_RUN(chain_main, NULL);
    CHECK(!atomic_load(&starved));
}

static void t_fair_chain_2p(void)
{
    t_procs(2);
    T_RUN(chain_main, NULL);
    CHECK(!atomic_load(&starved));
}

/* A sleeping coroutine is not starved either: its timer fires while others keep
 * yielding (one P, and every P busy). */
static void sleep_then_flag(void *arg)
{
    np_sleep(1000000);
    atomic_store(&flag, 1);
    np_wg_done(&finished);
}

static void fair_timer_main(void *arg)
{
    int yielders = *(int *)arg;
    atomic_store(&flag, 0);
    np_wg_add(&finished, yielders + 1);
    for (int i = 0; i < yielders; i++)
        np_go(yield_until_flag, NULL);
    np_go(sleep_then_flag, NULL);
    np_wg_wait(&finished);
}

static void t_fair_yield_vs_timer_1p(void)
{
    int n = 2; /* with one, its every yield would pass through the scheduler loop */
    t_procs(1);
    T_RUN(fair_timer_main, &n);
    if (atomic_load(&starved))
        FAILF("a 1 ms sleeper did not wake while %d coroutines kept yielding", n);
}

static void t_fair_yield_vs_timer_2p(void)
{
    int n = 4; /* both Ps kept busy */
    t_procs(2);
    T_RUN(fair_timer_main, &n);
    if (atomic_load(&starved))
        FAILF("a 1 ms sleeper did not wake while %d coroutines kept yielding", n);
}

static void t_fair_chain_vs_timer_1p(void)
{
    t_procs(1);
    static const np_fn sleeper = sleep_then_flag;
    T_RUN(chain_main, (void *)&sleeper);
    if (atomic_load(&starved))
        FAILF("a 1 ms sleeper did not wake while two coroutines ping-ponged");
}

/* A coroutine back from np_blocking whose P was handed off meanwhile goes to the global
 * queue: it must still run while two coroutines keep the P's own queue busy (the P
 * looks at the global queue every 61st switch, as Go's schedule() does). */
static int gq_pipe[2];
static atomic_int gq_requeued; /* the blocking call returned: the coroutine is queued */

static void *gq_wait_for_handoff(void *arg)
{
    char c;
    /* the yielders write once they have run while this call holds no P: the P was
     * handed off, so this coroutine comes back without one */
    CHECK_EQ(read(gq_pipe[0], &c, 1), 1);
    atomic_store(&gq_requeued, 1);
    return NULL;
}

static void gq_blocker(void *arg)
{
    np_blocking(gq_wait_for_handoff, NULL);
    atomic_store(&flag, 1);
    np_wg_done(&finished);
}

static void gq_yielder(void *arg)
{
    int64_t deadline = starve_deadline();
    long n = 0;
    while (!atomic_load(&flag) && !waited_too_long(deadline)) {
        if (++n == 1000 && arg)
            CHECK_EQ(write(gq_pipe[1], "x", 1), 1);
        np_yield();
    }
    np_wg_done(&finished);
}

static void global_queue_main(void *arg)
{
    atomic_store(&flag, 0);
    CHECK_EQ(pipe(gq_pipe), 0);
    np_wg_add(&finished, 3);
    np_go(gq_blocker, NULL);
    np_go(gq_yielder, (void *)1);
    np_go(gq_yielder, NULL);
    np_wg_wait(&finished);
    close(gq_pipe[0]);
    close(gq_pipe[1]);
}

static void t_fair_global_queue_vs_yielders_1p(void)
{
    t_procs(1);
    T_RUN(global_queue_main, NULL);
    CHECK(atomic_load(&gq_requeued));
    if (atomic_load(&starved))
        FAILF("a coroutine back from np_blocking starved in the global queue while two "
              "coroutines kept yielding");
}

/* Many coroutines yielding round-robin all make progress. While they fit in the P's
 * ring the order is strict: none runs twice as often as another. Beyond it some wait
 * in the global queue, but none is starved. */
#define NRR 2000
static long rr_count[NRR];
static void rr_child(void *arg)
{
    long *c = arg;
    while (!atomic_load(&flag)) {
        (*c)++;
        np_yield();
    }
    np_wg_done(&finished);
}

static void rr_main(void *arg)
{
    int n = *(int *)arg;
    atomic_store(&flag, 0);
    np_wg_add(&finished, n);
    for (int i = 0; i < n; i++)
        np_go(rr_child, &rr_count[i]);
    for (int k = 0; k < 100; k++)
        np_yield();
    atomic_store(&flag, 1);
    np_wg_wait(&finished);
}

static void rr_range(int n, long *lo, long *hi)
{
    *lo = *hi = rr_count[0];
    for (int i = 1; i < n; i++) {
        *lo = rr_count[i] < *lo ? rr_count[i] : *lo;
        *hi = rr_count[i] > *hi ? rr_count[i] : *hi;
    }
    if (getenv("T_VERBOSE"))
        for (int i = 0; i < n; i++)
            fprintf(stderr, "%ld%c", rr_count[i], i % 20 == 19 ? '\n' : ' ');
}

static void t_fair_round_robin_1p(void)
{
    int n = 200;
    long lo, hi;
    t_procs(1);
    T_RUN(rr_main, &n);
    rr_range(n, &lo, &hi);
    if (lo < 50 || hi > 2 * lo + 2)
        FAILF("yields per coroutine range from %ld to %ld", lo, hi);
}

static void t_fair_many_yielders_1p(void)
{
    int n = (int)t_coroutines(NRR) > 300 ? (int)t_coroutines(NRR) : 300; /* > the ring */
    long lo, hi;
    t_procs(1);
    T_RUN(rr_main, &n);
    rr_range(n, &lo, &hi);
    if (lo < 1)
        FAILF("yields per coroutine range from %ld to %ld", lo, hi);
}

static const t_case cases[] = {
    T(t_two_ps_run_in_parallel),
    T(t_pingpong_2p),
    T(t_pingpong_yield_2p),
    T(t_spawn_100k_2p),
    T(t_spawn_100k_1p),
    T(t_spawn_churn),
    T(t_work_stealing),
    T(t_fair_yield_1p),
    T(t_fair_chain_1p),
    T(t_fair_chain_2p),
    T(t_fair_round_robin_1p),
    T(t_fair_many_yielders_1p),
    T(t_fair_yield_vs_timer_1p),
    T(t_fair_yield_vs_timer_2p),
    T(t_fair_chain_vs_timer_1p),
    T(t_fair_global_queue_vs_yielders_1p),
    {0},
};

T_MAIN(cases)
