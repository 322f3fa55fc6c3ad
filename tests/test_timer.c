/* Timers: np_sleep is never early, sleepers wake in deadline order, many concurrent
 * sleepers all wake; the per-P timer heap (internal API) keeps order and stays
 * O(log n) per operation with a million timers pending. */
#include "t.h"
#include "sched/sched.h"
#include "time/timer.h"
#include <stdatomic.h>

#define MS 1000000LL

static np_wg wg = NP_WG_INIT;
static atomic_int early;
static atomic_llong worst_early;

static void note_early(int64_t want, int64_t got)
{
    if (got < want) {
        atomic_fetch_add(&early, 1);
        int64_t d = want - got;
        if (d > atomic_load(&worst_early))
            atomic_store(&worst_early, d);
    }
}

/* ---- np_sleep ----------------------------------------------------------------------------- */

static void sleep_not_early_main(void *arg)
{
    static const int64_t ds[] = {1, 1000, 50000, 1 * MS, 3 * MS, 10 * MS, 25 * MS};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        int64_t t0 = np_now();
        CHECK_EQ(np_sleep(ds[i]), 0);
        note_early(ds[i], np_now() - t0);
    }
    /* <= 0 just yields */
    int64_t t0 = np_now();
    CHECK_EQ(np_sleep(0), 0);
    CHECK_EQ(np_sleep(-5), 0);
    CHECK(np_now() - t0 < 1000 * MS);
}

static void t_sleep_not_early(void)
{
    t_procs(1);
    T_RUN(sleep_not_early_main, NULL);
    t_procs(2);
    T_RUN(sleep_not_early_main, NULL);
    if (atomic_load(&early))
        FAILF("%d sleeps woke early, by up to %lld ns", atomic_load(&early),
              (long long)atomic_load(&worst_early));
}

static void t_now_monotonic(void)
{
    int64_t prev = np_now();
    CHECK(prev > 0);
    for (int i = 0; i < 100000; i++) {
        int64_t t = np_now();
        CHECK(t >= prev);
        prev = t;
    }
}

/* Sleepers with distinct deadlines (spawned in shuffled order, then all started at
 * once) wake in deadline order and none early: no sleeper wakes after one whose deadline
 * is later, beyond a small tolerance. (Wake-up latency itself is the machine's: timers
 * are allowed to be late together, as when several fall due in one batch.) */
#define NSLEEP 40
static int64_t woke_at[NSLEEP];
static int64_t base, gap;
static np_chan *start_gate;

static void ordered_sleeper(void *arg)
{
    int k = (int)(intptr_t)arg;
    np_chan_recv(start_gate, NULL); /* all spawned first: base is set after that */
    int64_t deadline = base + (k + 1) * gap;
    np_sleep(deadline - np_now());
    int64_t now = np_now();
    note_early(deadline, now);
    woke_at[k] = now;
    np_wg_done(&wg);
}

static void order_main(void *arg)
{
    int idx[NSLEEP];
    for (int i = 0; i < NSLEEP; i++)
        idx[i] = i;
    uint64_t r = 12345;
    for (int i = NSLEEP - 1; i > 0; i--) {
        int j = (int)(t_rand(&r) % (uint64_t)(i + 1));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    start_gate = np_chan_new(1, 0);
    np_wg_add(&wg, NSLEEP);
    for (int i = 0; i < NSLEEP; i++)
        np_go(ordered_sleeper, (void *)(intptr_t)idx[i]);
    base = np_now() + 5 * MS;
    np_chan_close(start_gate);
    np_wg_wait(&wg);
    np_chan_free(start_gate);
}

static void check_order(void)
{
    int64_t tol = (t_scale_v() > 1 ? 20 : 2) * MS;
    for (int i = 0; i < NSLEEP; i++)
        for (int j = i + 1; j < NSLEEP; j++)
            if (woke_at[i] > woke_at[j] + tol)
                FAILF("sleeper %d (deadline +%lld ms) woke %lld us after sleeper %d "
                      "(deadline +%lld ms)", i, (long long)((i + 1) * gap / MS),
                      (long long)(woke_at[i] - woke_at[j]) / 1000, j,
                      (long long)((j + 1) * gap / MS));
    CHECK_EQ(atomic_load(&early), 0);
}

static void t_sleepers_wake_in_order_1p(void)
{
    gap = 2 * MS * (t_scale_v() > 1 ? 5 : 1);
    t_procs(1);
    T_RUN(order_main, NULL);
    check_order();
}

static void t_sleepers_wake_in_order_2p(void)
{
    gap = 3 * MS * (t_scale_v() > 1 ? 5 : 1);
    t_procs(2);
    T_RUN(order_main, NULL);
    check_order();
}

/* Sleepers whose deadlines have all passed by the time the P looks at its timers (it
 * was kept busy) fire in one batch: they still resume in deadline order. */
static int due_order[3], ndue, nasleep;

static void due_sleeper(void *arg)
{
    int k = (int)(intptr_t)arg;
    np_chan_recv(start_gate, NULL);
    int64_t d = base + (k + 1) * MS - np_now();
    CHECK(d > 0); /* (base leaves room for slow builds) */
    nasleep++;
    np_sleep(d);
    due_order[ndue++] = k;
    np_wg_done(&wg);
}

static void due_main(void *arg)
{
    start_gate = np_chan_new(1, 0);
    np_wg_add(&wg, 3);
    for (int k = 0; k < 3; k++)
        np_go(due_sleeper, (void *)(intptr_t)k);
    base = np_now() + 10 * MS * (t_scale_v() > 1 ? 10 : 1);
    np_chan_close(start_gate);
    while (nasleep < 3)
        np_yield();
    while (np_now() < base + 10 * MS) {
        /* keep the only P busy past every deadline, without a switch */
    }
    np_wg_wait(&wg);
    np_chan_free(start_gate);
}

static void t_due_sleepers_resume_in_deadline_order_1p(void)
{
    t_procs(1);
    T_RUN(due_main, NULL);
    CHECK_EQ(ndue, 3);
    if (due_order[0] != 0 || due_order[1] != 1 || due_order[2] != 2)
        FAILF("deadlines 1, 2, 3 ms resumed as %d %d %d", due_order[0] + 1,
              due_order[1] + 1, due_order[2] + 1);
}

/* Thousands of concurrent sleepers with random durations, on two Ps: all wake, none
 * early (timers land in both Ps' heaps and fire from either). */
static atomic_long woke;

static void random_sleeper(void *arg)
{
    int64_t d = (int64_t)(intptr_t)arg;
    int64_t t0 = np_now();
    np_sleep(d);
    note_early(d, np_now() - t0);
    if (d % 3 == 0) { /* and again, from wherever it resumed */
        t0 = np_now();
        np_sleep(d / 2);
        note_early(d / 2, np_now() - t0);
    }
    atomic_fetch_add(&woke, 1);
    np_wg_done(&wg);
}

static void many_main(void *arg)
{
    long n = *(long *)arg;
    uint64_t r = 99;
    np_wg_add(&wg, n);
    for (long i = 0; i < n; i++)
        np_go(random_sleeper, (void *)(intptr_t)(int64_t)(t_rand(&r) % (20 * MS)));
    np_wg_wait(&wg);
}

static void t_many_sleepers_2p(void)
{
    long n = t_coroutines(20000);
    t_procs(2);
    T_RUN(many_main, &n);
    CHECK_EQ(atomic_load(&woke), n);
    if (atomic_load(&early))
        FAILF("%d sleeps woke early, by up to %lld ns", atomic_load(&early),
              (long long)atomic_load(&worst_early));
}

/* A long sleep does not hold up a short one started after it, and an idle runtime
 * (everything asleep) wakes for the earliest timer. */
static void long_sleeper(void *arg)
{
    int64_t t0 = np_now();
    np_sleep(200 * MS);
    note_early(200 * MS, np_now() - t0);
    np_wg_done(&wg);
}

static void idle_main(void *arg)
{
    np_wg_add(&wg, 1);
    np_go(long_sleeper, NULL);
    np_yield();
    int64_t t0 = np_now();
    np_sleep(5 * MS);
    int64_t dt = np_now() - t0;
    CHECK(dt >= 5 * MS);
    CHECK(dt < 150 * MS);
    np_wg_wait(&wg);
    CHECK_EQ(atomic_load(&early), 0);
}

static void t_short_sleep_not_behind_long(void)
{
    t_procs(1);
    T_RUN(idle_main, NULL);
    t_procs(2);
    T_RUN(idle_main, NULL);
}

/* ---- the timer heap ---------------------------------------------------------------------- */

typedef struct rec {
    np__timer t;
    int64_t when;
    bool deleted, fired;
} rec;

static rec *recs;
static int64_t last_fired, run_upto;
static long nfired, nbad_order, nearly, nbad;

static void heap_fire(void *arg, uintptr_t seq)
{
    rec *x = arg;
    if (x != &recs[seq] || x->deleted || x->fired)
        nbad++;
    x->fired = true;
    if (x->when < last_fired)
        nbad_order++;
    if (x->when > run_upto)
        nearly++;
    last_fired = x->when;
    nfired++;
}

/* 10^6 timers at random times, a random half deleted, the rest run in steps: every
 * live timer fires exactly once, in order of when, never before its time. */
static void t_timer_heap_million(void)
{
    long n = t_scaled(1000000);
    np_p *p = calloc(1, sizeof *p);
    recs = calloc((size_t)n, sizeof *recs);
    CHECK(p && recs);
    uint64_t r = 2026;
    double t0 = t_secs();
    for (long i = 0; i < n; i++) {
        recs[i].when = 1 + (int64_t)(t_rand(&r) % 1000000000000ULL);
        CHECK_EQ(np__timer_add(p, &recs[i].t, recs[i].when, heap_fire, &recs[i], (uintptr_t)i), 0);
    }
    CHECK_EQ(p->timers.n, n);
    double t_add = t_secs() - t0;
    /* the earliest is at the top */
    int64_t min = INT64_MAX;
    for (long i = 0; i < n; i++)
        min = recs[i].when < min ? recs[i].when : min;
    CHECK_EQ(np__timers_first(&p->timers), min);

    t0 = t_secs();
    long ndel = 0;
    for (long i = 0; i < n; i++) {
        if (t_rand(&r) & 1) {
            CHECK(np__timer_del(&recs[i].t));
            recs[i].deleted = true;
            ndel++;
        }
    }
    double t_del = t_secs() - t0;
    CHECK_EQ(p->timers.n, n - ndel);
    for (long i = 0; i < n; i += 97) /* deleting twice: nothing to remove */
        if (recs[i].deleted)
            CHECK(!np__timer_del(&recs[i].t));
    min = INT64_MAX;
    for (long i = 0; i < n; i++)
        if (!recs[i].deleted && recs[i].when < min)
            min = recs[i].when;
    CHECK_EQ(np__timers_first(&p->timers), min);

    /* nothing is due before the earliest */
    run_upto = min - 1;
    CHECK_EQ(np__timers_run(p, run_upto), 0);

    t0 = t_secs();
    long total = 0;
    for (int step = 1; step <= 10; step++) {
        run_upto = step == 10 ? INT64_MAX : step * 100000000000LL;
        int ran = np__timers_run(p, run_upto);
        total += ran;
        if (p->timers.n > 0)
            CHECK(np__timers_first(&p->timers) > run_upto);
    }
    double t_run = t_secs() - t0;
    CHECK_EQ(total, n - ndel);
    CHECK_EQ(nfired, n - ndel);
    CHECK_EQ(nbad, 0);
    CHECK_EQ(nbad_order, 0);
    CHECK_EQ(nearly, 0);
    CHECK_EQ(p->timers.n, 0);
    CHECK_EQ(np__timers_first(&p->timers), 0);
    for (long i = 0; i < n; i++)
        CHECK(recs[i].fired != recs[i].deleted);
    for (long i = 0; i < n; i += 1000) /* fired timers are out of the heap */
        CHECK(!np__timer_del(&recs[i].t));
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "n=%ld add %.0f ns/op, del %.0f ns/op, run %.0f ns/op\n", n,
                t_add * 1e9 / n, t_del * 1e9 / ndel, t_run * 1e9 / (n - ndel));
    /* O(log n): a 4-ary heap of 10^6 does about 10 levels per operation; a linear
     * cost would be 10^5 times that. Generous bound: 20 us per operation. */
    double per_op = (t_add + t_del + t_run) * 1e9 / (double)(n + ndel + (n - ndel));
    if (per_op > 20000.0 * (double)t_scale_v())
        FAILF("%.0f ns per timer operation with %ld timers", per_op, n);
    np__timers_free(&p->timers);
    free(recs);
    free(p);
}

/* Same heap, interleaved operations at a steady size (add, delete, re-add at another
 * time, run what is due), checked against the records. */
static void t_timer_heap_churn(void)
{
    long n = t_scaled(200000);
    np_p *p = calloc(1, sizeof *p);
    recs = calloc((size_t)n, sizeof *recs);
    uint64_t r = 7;
    int64_t now = 0;
    long pending = 0;
    last_fired = 0;
    for (long round = 0; round < 20; round++) {
        for (long i = 0; i < n; i++) {
            rec *x = &recs[i];
            if (atomic_load(&x->t.p) == NULL && (t_rand(&r) & 3) == 0) {
                x->when = now + 1 + (int64_t)(t_rand(&r) % 1000000);
                x->fired = x->deleted = false;
                CHECK_EQ(np__timer_add(p, &x->t, x->when, heap_fire, x, (uintptr_t)i), 0);
                pending++;
            } else if (atomic_load(&x->t.p) != NULL && (t_rand(&r) & 7) == 0) {
                CHECK(np__timer_del(&x->t));
                x->deleted = true;
                pending--;
            }
        }
        CHECK_EQ(p->timers.n, pending);
        now += 300000;
        run_upto = now;
        last_fired = 0;
        long before = nfired;
        np__timers_run(p, now);
        pending -= nfired - before;
        CHECK_EQ(p->timers.n, pending);
        CHECK(p->timers.n == 0 || np__timers_first(&p->timers) > now);
    }
    CHECK_EQ(nbad, 0);
    CHECK_EQ(nbad_order, 0);
    CHECK_EQ(nearly, 0);
    np__timers_free(&p->timers);
    free(recs);
    free(p);
}

static const t_case cases[] = {
    T(t_now_monotonic),
    T(t_sleep_not_early),
    T(t_sleepers_wake_in_order_1p),
    T(t_sleepers_wake_in_order_2p),
    T(t_due_sleepers_resume_in_deadline_order_1p),
    T(t_many_sleepers_2p),
    T(t_short_sleep_not_behind_long),
    T(t_timer_heap_million),
    T(t_timer_heap_churn),
    {0},
};

T_MAIN(cases)
