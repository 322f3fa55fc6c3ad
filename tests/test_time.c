/* Channels that time fills: np_after (one value, at least ns later, cancelled when its
 * channel is freed first) and np_ticker (a fixed schedule, ticks dropped for a slow
 * reader, stop that leaves a waiting select waiting, reset, free), alone, in np_select,
 * and created and freed by the thousand on two Ps while they fire. */
#include "t.h"
#include <pthread.h>
#include <stdatomic.h>

#define MS 1000000LL
#define US 1000LL
#define SEC 1000000000LL

/* Slow builds (TSan, qemu): longer periods, so that wake-up latency stays well inside
 * the tolerances. */
static int64_t slow(int64_t fast, int64_t slower)
{
#ifdef T_TSAN
    return slower;
#else
    return t_scale_v() > 1 ? slower : fast;
#endif
}

/* Cases that judge how late timers fire make a few attempts: a busy machine can delay
 * one measurement beyond any tolerance, while the bug each looks for fails them all. */
#define ATTEMPTS 3
static char why[256];

/* Timers pending now (only this test's: stack trimming, which arms one, is off). */
static int64_t timers_pending(void)
{
    np_stats s;
    CHECK_EQ(np_stats_get(&s), 0);
    return s.timers;
}

static void no_trim(void) { setenv("NP_STACK_TRIM", "0", 1); }

/* Receive from c within limit ns (a select timeout: a value that never comes fails). */
static int64_t recv_within(np_chan *c, int64_t limit)
{
    int64_t v = -1;
    np_case cs[1] = {{c, NP_RECV, &v, 0}};
    int r = np_select(cs, 1, limit);
    if (r != 0)
        FAILF("no value within %lld ms (select: %d, errno %d)", (long long)(limit / MS), r,
              t_errno());
    CHECK_EQ(cs[0].ok, 1);
    return v;
}

/* c receives nothing for d ns. */
static void nothing_for(np_chan *c, int64_t d)
{
    int64_t v = -1;
    np_case cs[1] = {{c, NP_RECV, &v, 0}};
    CHECK_ERR(np_select(cs, 1, d), ETIMEDOUT);
    CHECK_EQ(v, -1);
}

/* Wait (bounded, polling) until c holds n values: a timer fired with nobody reading. */
static void wait_len(np_chan *c, size_t n)
{
    int64_t t0 = np_now();
    while (np_chan_len(c) != n) {
        if (np_now() - t0 > 10 * SEC)
            FAILF("channel length %zu after 10 s, want %zu", np_chan_len(c), n);
        CHECK_EQ(np_sleep(100 * US), 0);
    }
}

/* Wait until a coroutine is blocked for reason (true), or *done says it ended first
 * (false: it was not held up where the case wanted it; the attempt proves nothing). */
static bool blocked_or_done(int reason, atomic_int *done)
{
    int64_t t0 = np_now();
    for (;;) {
        np_stats st;
        CHECK_EQ(np_stats_get(&st), 0);
        if (st.waiting_by[reason] == 1)
            return true;
        if (atomic_load(done))
            return false;
        if (np_now() - t0 > 10 * SEC)
            FAILF("no coroutine blocked for reason %d after 10 s", reason);
        CHECK_EQ(np_yield(), 0);
    }
}

/* ---- np_after ----------------------------------------------------------------------- */

static void after_once_main(void *arg)
{
    static const int64_t ds[] = {1, 50 * US, 1 * MS, 5 * MS, 20 * MS};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        int64_t t0 = np_now();
        np_chan *c = np_after(ds[i]);
        CHECK(c != NULL);
        CHECK_EQ(np_chan_cap(c), 1);
        int64_t v = 0;
        CHECK_EQ(np_chan_recv(c, &v), 1);
        int64_t t1 = np_now();
        if (v < t0 + ds[i] || v > t1)
            FAILF("after(%lld ns): value %lld ns after the call, received %lld ns after",
                  (long long)ds[i], (long long)(v - t0), (long long)(t1 - t0));
        /* once: a second receive waits (here, until the select's timeout) */
        nothing_for(c, ds[i] + 2 * MS);
        CHECK_EQ(np_chan_tryrecv(c, &v), -1);
        CHECK_EQ(np_chan_free(c), 0);
    }
    /* ns <= 0: at once */
    for (int64_t d = 0; d >= -1; d--) {
        int64_t t0 = np_now();
        np_chan *c = np_after(d);
        CHECK(c != NULL);
        int64_t v = recv_within(c, 5 * SEC);
        CHECK(v >= t0);
        CHECK_EQ(np_chan_free(c), 0);
    }
    /* a receive that discards the value */
    np_chan *c = np_after(1 * MS);
    CHECK_EQ(np_chan_recv(c, NULL), 1);
    CHECK_EQ(np_chan_free(c), 0);
}

static void t_after_fires_once(void)
{
    t_procs(1);
    T_RUN(after_once_main, NULL);
    t_procs(2);
    T_RUN(after_once_main, NULL);
}

/* Freed before it fires: its timer leaves the heap at once, and nothing fires into the
 * freed memory later (an np_after due after all of them has fired by then; ASan would
 * see the write). Also from a plain thread while the runtime runs. */
#define NFREE 100
static np_chan *thread_frees;

static void *free_from_thread(void *arg)
{
    CHECK_EQ(np_chan_free(thread_frees), 0);
    return NULL;
}

static void *join(void *arg)
{
    CHECK_EQ(pthread_join(*(pthread_t *)arg, NULL), 0);
    return NULL;
}

static void after_cancel_main(void *arg)
{
    int64_t base = timers_pending();
    np_chan *cs[NFREE];
    for (int i = 0; i < NFREE; i++) {
        cs[i] = np_after(i % 2 ? 20 * MS : 2 * SEC);
        CHECK(cs[i] != NULL);
    }
    CHECK_EQ(timers_pending(), base + NFREE);
    for (int i = 0; i < NFREE; i++) {
        CHECK_EQ(np_chan_free(cs[i]), 0);
        CHECK_EQ(timers_pending(), base + NFREE - i - 1);
    }
    thread_frees = np_after(20 * MS);
    CHECK(thread_frees != NULL);
    CHECK_EQ(timers_pending(), base + 1);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, free_from_thread, NULL), 0);
    np_blocking(join, &th);
    CHECK_EQ(timers_pending(), base);
    /* past the freed ones' deadlines */
    np_chan *w = np_after(30 * MS);
    CHECK(recv_within(w, 10 * SEC) > 0);
    CHECK_EQ(np_chan_free(w), 0);
    CHECK_EQ(timers_pending(), base);
}

static void t_after_freed_before_firing_cancels(void)
{
    no_trim();
    t_procs(1);
    T_RUN(after_cancel_main, NULL);
    t_procs(2);
    T_RUN(after_cancel_main, NULL);
}

/* Fired, never read, freed: the value in the buffer and the timer go with the channel
 * (ASan's leak check at exit). */
static void after_unread_main(void *arg)
{
    int64_t base = timers_pending();
    np_chan *c[8];
    for (int i = 0; i < 8; i++)
        c[i] = np_after(i * 100 * US);
    for (int i = 0; i < 8; i++)
        wait_len(c[i], 1);
    CHECK_EQ(timers_pending(), base);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(np_chan_free(c[i]), 0);
}

static void t_after_fired_unread_freed(void)
{
    no_trim();
    t_procs(1);
    T_RUN(after_unread_main, NULL);
    t_procs(2);
    T_RUN(after_unread_main, NULL);
}

/* In np_select with other cases: the after's case wins when nothing else comes; another
 * ready case wins over an after not yet due (then freed unfired); a select timeout
 * shorter than the after ends first and the value still comes later. */
static np_chan *quick;

static void send_quick(void *arg)
{
    int x = 42;
    CHECK_EQ(np_chan_send(quick, &x), 0);
}

static void after_select_main(void *arg)
{
    np_chan *never = np_chan_new(sizeof(int), 0);
    quick = np_chan_new(sizeof(int), 0);
    CHECK(never && quick);
    for (int round = 0; round < 20; round++) {
        /* the after wins */
        int64_t t0 = np_now(), v = 0;
        int x = 0;
        np_chan *a = np_after(2 * MS);
        np_case cs[3] = {{never, NP_RECV, &x, 0}, {a, NP_RECV, &v, 0}, {never, NP_SEND, &x, 0}};
        CHECK_EQ(np_select(cs, 3, -1), 1);
        CHECK_EQ(cs[1].ok, 1);
        CHECK(v >= t0 + 2 * MS);
        CHECK(v <= np_now());
        CHECK_EQ(np_chan_free(a), 0);

        /* another case wins; the after is freed before it fires */
        a = np_after(10 * SEC);
        CHECK(np_go(send_quick, NULL) > 0);
        np_case cq[2] = {{a, NP_RECV, &v, 0}, {quick, NP_RECV, &x, 0}};
        CHECK_EQ(np_select(cq, 2, 5 * SEC), 1);
        CHECK_EQ(x, 42);
        CHECK_EQ(np_chan_len(a), 0);
        CHECK_EQ(np_chan_free(a), 0);

        /* the select's own timeout ends it first */
        t0 = np_now();
        a = np_after(20 * MS);
        np_case ct[2] = {{a, NP_RECV, &v, 0}, {never, NP_RECV, &x, 0}};
        CHECK_ERR(np_select(ct, 2, 1 * MS), ETIMEDOUT);
        v = recv_within(a, 10 * SEC);
        CHECK(v >= t0 + 20 * MS);
        CHECK_EQ(np_chan_free(a), 0);
    }
    CHECK_EQ(np_chan_free(never), 0);
    CHECK_EQ(np_chan_free(quick), 0);
}

/* Many coroutines, each selecting on an after of its own and a channel shared by all
 * that nobody sends on: every one ends by its after, none early. */
static np_wg wg = NP_WG_INIT;
static np_chan *shared;
static atomic_int nearly, nafter;

static void select_after_one(void *arg)
{
    int64_t d = (int64_t)(intptr_t)arg, v = 0;
    int x;
    int64_t t0 = np_now();
    np_chan *a = np_after(d);
    CHECK(a != NULL);
    np_case cs[2] = {{shared, NP_RECV, &x, 0}, {a, NP_RECV, &v, 0}};
    CHECK_EQ(np_select(cs, 2, -1), 1);
    if (v < t0 + d)
        atomic_fetch_add(&nearly, 1);
    atomic_fetch_add(&nafter, 1);
    CHECK_EQ(np_chan_free(a), 0);
    np_wg_done(&wg);
}

static void many_select_main(void *arg)
{
    after_select_main(NULL);
    long n = t_coroutines(2000);
    shared = np_chan_new(sizeof(int), 0);
    uint64_t r = 7;
    np_wg_add(&wg, n);
    for (long i = 0; i < n; i++)
        CHECK(np_go(select_after_one, (void *)(intptr_t)(t_rand(&r) % (10 * MS))) > 0);
    np_wg_wait(&wg);
    CHECK_EQ(atomic_load(&nafter), n);
    CHECK_EQ(atomic_load(&nearly), 0);
    CHECK_EQ(np_chan_free(shared), 0);
}

static void t_after_in_select(void)
{
    t_procs(1);
    T_RUN(many_select_main, NULL);
    atomic_store(&nafter, 0);
    t_procs(2);
    T_RUN(many_select_main, NULL);
}

/* A coroutine blocked on an after's channel: np_chan_free fails with EBUSY and leaves
 * the timer armed (the value still comes). */
static np_chan *busy_c;
static atomic_int busy_done;

static void recv_busy(void *arg)
{
    int64_t v = 0;
    CHECK_EQ(np_chan_recv(busy_c, &v), 1);
    CHECK(v > 0);
    atomic_store(&busy_done, 1);
    np_wg_done(&wg);
}

static void after_busy_main(void *arg)
{
    for (int attempt = 0;; attempt++) {
        busy_c = np_after(slow(100 * MS, SEC) << attempt);
        atomic_store(&busy_done, 0);
        np_wg_add(&wg, 1);
        CHECK(np_go(recv_busy, NULL) > 0);
        bool blocked = blocked_or_done(NP_WAIT_CHAN_RECV, &busy_done);
        if (blocked)
            CHECK_ERR(np_chan_free(busy_c), EBUSY);
        np_wg_wait(&wg);
        CHECK_EQ(np_chan_free(busy_c), 0);
        if (blocked)
            break;
        if (attempt == ATTEMPTS - 1)
            FAILF("the receiver never blocked before its after fired");
    }
}

static void t_after_free_busy(void)
{
    t_procs(2);
    T_RUN(after_busy_main, NULL);
}

/* ---- np_ticker ---------------------------------------------------------------------- */

/* Over a window of N periods a ticker delivers about N ticks (a reader always waiting),
 * each value on or after its point of the schedule and before it was received. */
static bool ticker_period_once(int64_t p, int64_t n)
{
    int64_t t0 = np_now();
    np_ticker *tk = np_ticker_new(p);
    CHECK(tk != NULL);
    np_chan *c = np_ticker_chan(tk);
    CHECK(c != NULL);
    CHECK_EQ(np_chan_cap(c), 1);
    int64_t got = 0, prev = 0;
    while (np_now() < t0 + n * p) {
        int64_t v = recv_within(c, 10 * SEC);
        got++;
        if (v < t0 + got * p) /* never early: whatever the load */
            FAILF("tick %lld at %lld us, before its point %lld us", (long long)got,
                  (long long)((v - t0) / US), (long long)(got * p / US));
        CHECK(v > prev);
        CHECK(v <= np_now());
        prev = v;
    }
    CHECK(got <= n);
    CHECK_EQ(np_ticker_free(tk), 0);
    /* ticks are dropped only when late: a reader that keeps up loses few */
    snprintf(why, sizeof why, "%lld ticks of %lld us in %lld periods", (long long)got,
             (long long)(p / US), (long long)n);
    return got >= n * 3 / 4;
}

static void ticker_period_main(void *arg)
{
    for (int attempt = 0; !ticker_period_once(slow(5 * MS, 20 * MS), 40); attempt++)
        if (attempt == ATTEMPTS - 1)
            FAILF("%s", why);
}

static void t_ticker_delivers_at_period(void)
{
    t_procs(1);
    T_RUN(ticker_period_main, NULL);
    t_procs(2);
    T_RUN(ticker_period_main, NULL);
}

/* A reader slower than the ticker finds one tick, the oldest unread, not a backlog:
 * the ticks due while the slot was full were dropped, and the next one is fresh. */
static bool slow_reader_once(np_chan *c, int64_t p)
{
    int64_t v1 = recv_within(c, 10 * SEC);
    CHECK_EQ(np_sleep(p * 7 / 2), 0); /* 3 ticks due meanwhile */
    int64_t v2 = recv_within(c, 10 * SEC), v3 = 0;
    CHECK(v2 > v1);
    if (np_chan_tryrecv(c, &v3) != -1) { /* the slot held one: nothing else queued */
        snprintf(why, sizeof why, "a second tick was waiting (%lld us after the first)",
                 (long long)((v3 - v2) / US));
        return false;
    }
    v3 = recv_within(c, 10 * SEC);
    snprintf(why, sizeof why, "after a pause of 3.5 periods (%lld us): ticks at +%lld us, "
             "+%lld us, +%lld us", (long long)(p * 7 / 2 / US), 0LL,
             (long long)((v2 - v1) / US), (long long)((v3 - v1) / US));
    /* v2 the first tick after v1 (kept), v3 fresh: the two between were dropped */
    return v2 - v1 < 2 * p && v3 - v2 > p * 3 / 2;
}

static void ticker_slow_reader_main(void *arg)
{
    int64_t p = slow(10 * MS, 40 * MS);
    np_ticker *tk = np_ticker_new(p);
    np_chan *c = np_ticker_chan(tk);
    for (int attempt = 0; !slow_reader_once(c, p); attempt++)
        if (attempt == ATTEMPTS - 1)
            FAILF("%s", why);
    CHECK_EQ(np_ticker_free(tk), 0);
}

static void t_ticker_slow_reader_drops(void)
{
    t_procs(1);
    T_RUN(ticker_slow_reader_main, NULL);
    t_procs(2);
    T_RUN(ticker_slow_reader_main, NULL);
}

/* The only P busy for 4.5 periods (no switch, no timer runs): the late tick comes once,
 * nothing is queued behind it, and the next tick keeps the original schedule (half a
 * period later, not a whole one: no drift). */
static bool ticker_late_once(int64_t p)
{
    int64_t t0 = np_now();
    np_ticker *tk = np_ticker_new(p);
    np_chan *c = np_ticker_chan(tk);
    while (np_now() < t0 + p * 9 / 2) {
        /* busy, without a switch */
    }
    int64_t v2 = recv_within(c, 10 * SEC), v3 = 0;
    CHECK(v2 >= t0 + p * 9 / 2);
    if (np_chan_tryrecv(c, &v3) != -1)
        FAILF("another tick queued behind the late one (%lld us later)",
              (long long)((v3 - v2) / US));
    v3 = recv_within(c, 10 * SEC);
    CHECK(v3 >= t0 + 5 * p);
    CHECK_EQ(np_ticker_free(tk), 0);
    snprintf(why, sizeof why, "the tick after a late one came %lld us later (period %lld "
             "us): drift", (long long)((v3 - v2) / US), (long long)(p / US));
    return v3 - v2 < p * 4 / 5;
}

static void ticker_late_main(void *arg)
{
    for (int attempt = 0; !ticker_late_once(slow(20 * MS, 50 * MS)); attempt++)
        if (attempt == ATTEMPTS - 1)
            FAILF("%s", why);
}

static void t_ticker_late_keeps_schedule_1p(void)
{
    t_procs(1);
    T_RUN(ticker_late_main, NULL);
}

/* Stop while another coroutine's select waits on the ticker's channel (before the
 * first tick): the select ends by its timeout, with no tick; the channel is not closed
 * and stays empty; the timer is gone. */
static np_ticker *stop_tk;
static int64_t stop_p;
static atomic_int stop_result, stop_done;

static void select_on_ticker(void *arg)
{
    int64_t v = -1;
    int x;
    np_chan *never = arg;
    np_case cs[2] = {{np_ticker_chan(stop_tk), NP_RECV, &v, 0}, {never, NP_RECV, &x, 0}};
    int r = np_select(cs, 2, 3 * stop_p);
    atomic_store(&stop_result, r == -1 && t_errno() == ETIMEDOUT && v == -1 ? 1 : -1 - r);
    atomic_store(&stop_done, 1);
    np_wg_done(&wg);
}

static void ticker_stop_main(void *arg)
{
    np_chan *never = np_chan_new(sizeof(int), 0);
    int64_t base = timers_pending();
    for (int attempt = 0;; attempt++) {
        stop_p = slow(50 * MS, 200 * MS) << attempt;
        int64_t t0 = np_now();
        stop_tk = np_ticker_new(stop_p);
        CHECK_EQ(timers_pending(), base + 1);
        atomic_store(&stop_result, 0);
        atomic_store(&stop_done, 0);
        np_wg_add(&wg, 1);
        CHECK(np_go(select_on_ticker, never) > 0);
        bool blocked = blocked_or_done(NP_WAIT_SELECT, &stop_done);
        CHECK_EQ(np_ticker_stop(stop_tk), 0);
        /* stopped while the select waited, before the first tick */
        bool in_time = blocked && np_now() < t0 + stop_p;
        CHECK_EQ(np_ticker_stop(stop_tk), 0);  /* twice: nothing more */
        np_wg_wait(&wg);
        if (!in_time) {
            CHECK_EQ(np_ticker_free(stop_tk), 0);
            if (attempt == ATTEMPTS - 1)
                FAILF("could not stop a ticker of %lld ms before its first tick",
                      (long long)(stop_p / MS));
            continue;
        }
        if (atomic_load(&stop_result) != 1)
            FAILF("the select on a stopped ticker returned %d (want timeout, no tick)",
                  -1 - atomic_load(&stop_result));
        np_chan *c = np_ticker_chan(stop_tk);
        int64_t v;
        CHECK_ERR(np_chan_tryrecv(c, &v), EAGAIN); /* empty, not closed */
        CHECK_EQ(np_chan_len(c), 0);
        /* base, plus maybe the select's own timer still on its way out: wait for it */
        for (int64_t w0 = np_now(); timers_pending() != base;) {
            CHECK(np_now() - w0 < 10 * SEC);
            np_yield();
        }
        CHECK_EQ(np_ticker_free(stop_tk), 0);
        break;
    }
    CHECK_EQ(np_chan_free(never), 0);
}

static void t_ticker_stop_leaves_select_waiting(void)
{
    no_trim();
    t_procs(1);
    T_RUN(ticker_stop_main, NULL);
    t_procs(2);
    T_RUN(ticker_stop_main, NULL);
}

/* Reset changes the period, and restarts a stopped ticker. */
static void check_ticks(np_chan *c, int64_t t0, int64_t p, int n)
{
    for (int k = 1; k <= n; k++) {
        int64_t v = recv_within(c, 10 * SEC);
        if (v < t0 + k * p)
            FAILF("tick %d at %lld us, before its point %lld us (period %lld us)", k,
                  (long long)((v - t0) / US), (long long)(k * p / US), (long long)(p / US));
    }
    /* and not slower than the new period (a bound far above latency, far below the
     * old period) */
    int64_t took = np_now() - t0;
    if (took > n * p + slow(200, 1000) * MS)
        FAILF("%d ticks of %lld us took %lld us", n, (long long)(p / US),
              (long long)(took / US));
}

static void ticker_reset_main(void *arg)
{
    np_ticker *tk = np_ticker_new(10 * SEC);
    np_chan *c = np_ticker_chan(tk);
    int64_t t0 = np_now();
    CHECK_EQ(np_ticker_reset(tk, 2 * MS), 0); /* shorter */
    check_ticks(c, t0, 2 * MS, 10);
    t0 = np_now();
    CHECK_EQ(np_ticker_reset(tk, 15 * MS), 0); /* longer */
    int64_t v;
    while (np_chan_tryrecv(c, &v) == 1) { /* a tick of the old period may be waiting */
    }
    check_ticks(c, t0, 15 * MS, 4);
    CHECK_EQ(np_ticker_stop(tk), 0);
    while (np_chan_tryrecv(c, &v) == 1) {
    }
    nothing_for(c, 40 * MS);
    t0 = np_now();
    CHECK_EQ(np_ticker_reset(tk, 3 * MS), 0); /* after stop */
    check_ticks(c, t0, 3 * MS, 5);
    CHECK_EQ(np_ticker_free(tk), 0);
}

static void t_ticker_reset(void)
{
    t_procs(1);
    T_RUN(ticker_reset_main, NULL);
    t_procs(2);
    T_RUN(ticker_reset_main, NULL);
}

/* np_ticker_free while a coroutine is blocked on the channel: EBUSY, nothing stopped. */
static np_ticker *busy_tk;

static void recv_tick(void *arg)
{
    int64_t v = 0;
    CHECK_EQ(np_chan_recv(np_ticker_chan(busy_tk), &v), 1);
    atomic_store(&busy_done, 1);
    np_wg_done(&wg);
}

static void ticker_busy_main(void *arg)
{
    for (int attempt = 0;; attempt++) {
        busy_tk = np_ticker_new(slow(100 * MS, SEC) << attempt);
        atomic_store(&busy_done, 0);
        np_wg_add(&wg, 1);
        CHECK(np_go(recv_tick, NULL) > 0);
        bool blocked = blocked_or_done(NP_WAIT_CHAN_RECV, &busy_done);
        if (blocked)
            CHECK_ERR(np_ticker_free(busy_tk), EBUSY);
        np_wg_wait(&wg); /* the ticker still ticks */
        CHECK_EQ(np_ticker_free(busy_tk), 0);
        if (blocked)
            break;
        if (attempt == ATTEMPTS - 1)
            FAILF("the receiver never blocked before the first tick");
    }
}

static void t_ticker_free_busy(void)
{
    t_procs(2);
    T_RUN(ticker_busy_main, NULL);
}

/* ---- errors, threads, after np_run -------------------------------------------------- */

static np_ticker *thread_tk;

static void *thread_calls(void *arg)
{
    T_ERRNO = 0;
    CHECK(np_after(MS) == NULL);
    CHECK_EQ(t_errno(), EPERM);
    T_ERRNO = 0;
    CHECK(np_ticker_new(MS) == NULL);
    CHECK_EQ(t_errno(), EPERM);
    CHECK_ERR(np_ticker_reset(thread_tk, MS), EPERM);
    CHECK(np_ticker_chan(thread_tk) != NULL);
    CHECK_EQ(np_ticker_stop(thread_tk), 0); /* from any thread */
    return NULL;
}

static np_chan *left_after;
static np_ticker *left_tk;

static void errors_main(void *arg)
{
    T_ERRNO = 0;
    CHECK(np_ticker_new(0) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    T_ERRNO = 0;
    CHECK(np_ticker_new(-MS) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    T_ERRNO = 0;
    CHECK(np_ticker_chan(NULL) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    CHECK_ERR(np_ticker_stop(NULL), EINVAL);
    CHECK_ERR(np_ticker_reset(NULL, MS), EINVAL);
    CHECK_EQ(np_ticker_free(NULL), 0);
    np_ticker *tk = np_ticker_new(10 * SEC);
    CHECK(tk != NULL);
    CHECK_ERR(np_ticker_reset(tk, 0), EINVAL);
    CHECK_ERR(np_ticker_reset(tk, -1), EINVAL);
    /* the ticker's channel is the ticker's to free; neither closes */
    CHECK_ERR(np_chan_free(np_ticker_chan(tk)), EINVAL);
    CHECK_ERR(np_chan_close(np_ticker_chan(tk)), EINVAL);
    np_chan *a = np_after(10 * SEC);
    CHECK_ERR(np_chan_close(a), EINVAL);
    /* from a plain thread: creating and resetting need a coroutine, stopping does not */
    thread_tk = tk;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_calls, NULL), 0);
    np_blocking(join, &th);
    CHECK_EQ(np_ticker_reset(tk, MS), 0);
    CHECK(recv_within(np_ticker_chan(tk), 10 * SEC) > 0);
    CHECK_EQ(np_ticker_free(tk), 0);
    CHECK_EQ(np_chan_free(a), 0);
    /* left pending when np_run returns: freed after it */
    left_after = np_after(3600 * SEC);
    left_tk = np_ticker_new(3600 * SEC);
    CHECK(left_after && left_tk);
}

static void outside(void)
{
    T_ERRNO = 0;
    CHECK(np_after(MS) == NULL);
    CHECK_EQ(t_errno(), EPERM);
    T_ERRNO = 0;
    CHECK(np_ticker_new(MS) == NULL);
    CHECK_EQ(t_errno(), EPERM);
    T_ERRNO = 0;
    CHECK(np_ticker_new(0) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
}

static void t_time_errors(void)
{
    outside();
    t_procs(2);
    T_RUN(errors_main, NULL);
    outside();
    CHECK_EQ(np_ticker_stop(left_tk), 0);
    CHECK_EQ(np_chan_free(left_after), 0);
    CHECK_EQ(np_ticker_free(left_tk), 0);
}

/* ---- stress ------------------------------------------------------------------------- */

/* Coroutines on two Ps create afters and tickers with periods of microseconds, so that
 * timers fire on one P (or a stealer) while the other frees, stops or resets them:
 * nothing lost, nothing freed twice or touched after its free (ASan, TSan), no timer
 * left behind. */
static atomic_long nvalues;

static void stress_one(void *arg)
{
    uint64_t r = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    long n = t_scaled(3000);
    np_chan *mine = np_chan_new(sizeof(int), 1);
    for (long i = 0; i < n; i++) {
        int64_t d = (int64_t)(t_rand(&r) % (50 * US));
        int64_t v = 0;
        switch (t_rand(&r) % 6) {
        case 0: { /* freed at once: maybe firing right then */
            np_chan *a = np_after(d);
            CHECK(a != NULL);
            CHECK_EQ(np_chan_free(a), 0);
            break;
        }
        case 1: { /* received */
            np_chan *a = np_after(d);
            CHECK_EQ(np_chan_recv(a, &v), 1);
            CHECK(v > 0);
            atomic_fetch_add(&nvalues, 1);
            CHECK_EQ(np_chan_free(a), 0);
            break;
        }
        case 2: { /* in a select with another channel, freed whatever won */
            np_chan *a = np_after(d);
            int x = 1;
            np_case cs[2] = {{a, NP_RECV, &v, 0}, {mine, NP_SEND, &x, 0}};
            int k = np_select(cs, 2, -1);
            CHECK(k == 0 || k == 1);
            if (k == 1)
                CHECK_EQ(np_chan_tryrecv(mine, &x), 1);
            CHECK_EQ(np_chan_free(a), 0);
            break;
        }
        case 3: { /* yields, then freed: fired and unread, or not yet */
            np_chan *a = np_after(d);
            np_yield();
            CHECK_EQ(np_chan_free(a), 0);
            break;
        }
        case 4: { /* a ticker: a few ticks, reset, stop, free */
            np_ticker *tk = np_ticker_new(d + 1);
            CHECK(tk != NULL);
            np_chan *c = np_ticker_chan(tk);
            CHECK_EQ(np_chan_recv(c, &v), 1);
            CHECK_EQ(np_ticker_reset(tk, (int64_t)(t_rand(&r) % (20 * US)) + US), 0);
            CHECK_EQ(np_chan_recv(c, &v), 1);
            atomic_fetch_add(&nvalues, 2);
            if (t_rand(&r) & 1)
                CHECK_EQ(np_ticker_stop(tk), 0);
            np_yield();
            CHECK_EQ(np_ticker_free(tk), 0);
            break;
        }
        default: { /* a ticker freed while ticking */
            np_ticker *tk = np_ticker_new(d + 1);
            np_yield();
            CHECK_EQ(np_ticker_free(tk), 0);
            break;
        }
        }
    }
    CHECK_EQ(np_chan_free(mine), 0);
    np_wg_done(&wg);
}

static void stress_main(void *arg)
{
    int64_t base = timers_pending();
    int n = 8;
    np_wg_add(&wg, n);
    for (int i = 0; i < n; i++)
        CHECK(np_go(stress_one, (void *)(intptr_t)(i + 1)) > 0);
    np_wg_wait(&wg);
    CHECK(atomic_load(&nvalues) > 0);
    CHECK_EQ(timers_pending(), base);
    np_stats s;
    CHECK_EQ(np_stats_get(&s), 0);
    printf("note: %lld values received, %lld steals\n", (long long)atomic_load(&nvalues),
           (long long)s.steals);
}

static void t_stress_2p(void)
{
    no_trim();
    t_procs(2);
    T_RUN(stress_main, NULL);
}

static const t_case cases[] = {
    T(t_after_fires_once),
    T(t_after_freed_before_firing_cancels),
    T(t_after_fired_unread_freed),
    T(t_after_in_select),
    T(t_after_free_busy),
    T(t_ticker_delivers_at_period),
    T(t_ticker_slow_reader_drops),
    T(t_ticker_late_keeps_schedule_1p),
    T(t_ticker_stop_leaves_select_waiting),
    T(t_ticker_reset),
    T(t_ticker_free_busy),
    T(t_time_errors),
    T(t_stress_2p),
    {0},
};

T_MAIN(cases)
