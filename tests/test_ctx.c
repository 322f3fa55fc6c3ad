/* Coroutine basics: the runtime's life, ids, np_exit, misuse errors, stack sizes, the
 * floating-point environment of each coroutine. */
#include "t.h"
#include <pthread.h>
#include <stdatomic.h>

/* ---- np_run ------------------------------------------------------------------------ */

static atomic_int ran;
static atomic_int procs_seen;

static void set_ran(void *arg)
{
    atomic_store(&ran, *(int *)arg);
    atomic_store(&procs_seen, np_procs());
}

static void t_run_returns(void)
{
    CHECK_EQ(np_procs(), 0);
    int v = 42;
    t_procs(2);
    T_RUN(set_ran, &v);
    CHECK_EQ(atomic_load(&ran), 42);
    CHECK_EQ(atomic_load(&procs_seen), 2);
    CHECK_EQ(np_procs(), 0);
    CHECK_EQ(np_id(), 0);
}

static void t_run_null(void)
{
    CHECK_ERR(np_run(NULL, NULL), EINVAL);
    /* and the failed call left nothing behind */
    int v = 1;
    T_RUN(set_ran, &v);
    CHECK_EQ(atomic_load(&ran), 1);
}

/* Several runtimes one after the other, with different numbers of Ps, each using
 * coroutines, channels, timers and a mutex. */
static np_mutex again_mu = NP_MUTEX_INIT;
static np_wg again_wg = NP_WG_INIT;
static long again_total;

static void again_worker(void *arg)
{
    np_chan *c = arg;
    long v;
    while (np_chan_recv(c, &v) == 1) {
        np_mutex_lock(&again_mu);
        again_total += v;
        np_mutex_unlock(&again_mu);
    }
    np_wg_done(&again_wg);
}

static void again_main(void *arg)
{
    np_chan *c = np_chan_new(sizeof(long), 3);
    CHECK(c);
    CHECK_EQ(np_procs(), *(int *)arg);
    for (int i = 0; i < 4; i++) {
        np_wg_add(&again_wg, 1);
        CHECK(np_go(again_worker, c) > 0);
    }
    for (long i = 1; i <= 1000; i++)
        CHECK_EQ(np_chan_send(c, &i), 0);
    CHECK_EQ(np_sleep(1000000), 0);
    CHECK_EQ(np_chan_close(c), 0);
    CHECK_EQ(np_wg_wait(&again_wg), 0);
    CHECK_EQ(np_chan_free(c), 0);
}

static void t_run_again(void)
{
    int procs[] = {1, 2, 3, 1, 2};
    for (int i = 0; i < 5; i++) {
        again_total = 0;
        t_procs(procs[i]);
        T_RUN(again_main, &procs[i]);
        CHECK_EQ(again_total, 500500L);
    }
}

static void nested_main(void *arg)
{
    CHECK_ERR(np_run(set_ran, arg), EBUSY);
}

static void *foreign_run(void *arg)
{
    errno = 0;
    int r = np_run(set_ran, arg);
    return (void *)(intptr_t)(r == -1 && errno == EBUSY);
}

static void nested_foreign(void *arg)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, foreign_run, arg), 0);
    void *ok = NULL;
    pthread_join(t, &ok);
    CHECK(ok != NULL);
}

static void t_run_nested_ebusy(void)
{
    int v = 7;
    atomic_store(&ran, 0);
    t_procs(2);
    T_RUN(nested_main, &v);
    T_RUN(nested_foreign, &v);
    CHECK_EQ(atomic_load(&ran), 0); /* neither nested np_run ran anything */
}

/* main returns while other coroutines are blocked, sleeping or yielding forever:
 * np_run still returns, and a new runtime starts cleanly afterwards. */
static np_chan *abandon_chan;
static void abandon_block(void *arg) { np_chan_recv(abandon_chan, NULL); }
static void abandon_sleep(void *arg) { np_sleep(3600LL * 1000000000); }
static void abandon_yield(void *arg)
{
    for (;;)
        np_yield();
}
static void abandon_main(void *arg)
{
    abandon_chan = np_chan_new(1, 0);
    for (int i = 0; i < 100; i++)
        np_go(abandon_block, NULL);
    np_go(abandon_sleep, NULL);
    np_go(abandon_yield, NULL);
    np_go(abandon_yield, NULL);
    for (int i = 0; i < 100; i++)
        np_yield(); /* (no np_sleep: timers have test_sched's fairness cases) */
}

static void t_run_abandons(void)
{
    t_procs(2);
    T_RUN(abandon_main, NULL);
    CHECK_EQ(np_chan_free(abandon_chan), 0); /* its waiters went with the runtime */
    t_procs(1);
    T_RUN(abandon_main, NULL);
    CHECK_EQ(np_chan_free(abandon_chan), 0);
    int v = 3;
    T_RUN(set_ran, &v);
    CHECK_EQ(atomic_load(&ran), 3);
}

/* ---- ids ----------------------------------------------------------------------------- */

#define NIDS 200
static int64_t ids_ret[NIDS], ids_seen[NIDS];
static np_wg ids_wg = NP_WG_INIT;

static void ids_child(void *arg)
{
    int64_t *slot = arg;
    *slot = np_id();
    np_wg_done(&ids_wg);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void ids_main(void *arg)
{
    int64_t self = np_id();
    CHECK(self > 0);
    for (int i = 0; i < NIDS; i++) {
        np_wg_add(&ids_wg, 1);
        ids_ret[i] = np_go(ids_child, &ids_seen[i]);
        CHECK(ids_ret[i] > 0);
        CHECK(ids_ret[i] != self);
    }
    CHECK_EQ(np_wg_wait(&ids_wg), 0);
    CHECK_EQ(np_id(), self);
    CHECK_ERR(np_go(NULL, NULL), EINVAL);
}

static void t_go_ids(void)
{
    t_procs(2);
    T_RUN(ids_main, NULL);
    for (int i = 0; i < NIDS; i++)
        CHECK_EQ(ids_seen[i], ids_ret[i]);
    qsort(ids_ret, NIDS, sizeof ids_ret[0], cmp64);
    for (int i = 1; i < NIDS; i++)
        CHECK(ids_ret[i] != ids_ret[i - 1]);
}

/* ---- np_exit ------------------------------------------------------------------------- */

static atomic_int exit_after;
static np_wg exit_wg = NP_WG_INIT;

static void __attribute__((noinline)) exit_deep(int n)
{
    if (n == 0) {
        np_wg_done(&exit_wg);
        np_exit();
        atomic_fetch_add(&exit_after, 1);
    } else {
        exit_deep(n - 1);
    }
    atomic_fetch_add(&exit_after, 1);
}

static void exit_child(void *arg)
{
    exit_deep(5);
    atomic_fetch_add(&exit_after, 1);
}

static void exit_main(void *arg)
{
    for (int i = 0; i < 50; i++) {
        np_wg_add(&exit_wg, 1);
        np_go(exit_child, NULL);
    }
    np_wg_wait(&exit_wg);
    /* coroutines that exited are reused: spawn more to make sure they are sound */
    for (int i = 0; i < 50; i++) {
        np_wg_add(&exit_wg, 1);
        np_go(exit_child, NULL);
    }
    np_wg_wait(&exit_wg);
    np_yield();
}

static void exit_from_main(void *arg)
{
    atomic_store(&ran, 1);
    np_exit();
    atomic_store(&ran, 2);
}

static void t_exit(void)
{
    t_procs(2);
    T_RUN(exit_main, NULL);
    CHECK_EQ(atomic_load(&exit_after), 0);
    /* np_exit in the main coroutine ends np_run */
    atomic_store(&ran, 0);
    T_RUN(exit_from_main, NULL);
    CHECK_EQ(atomic_load(&ran), 1);
    /* outside a coroutine it returns with EPERM */
    errno = 0;
    np_exit();
    CHECK_EQ(errno, EPERM);
}

/* ---- misuse from outside a coroutine -------------------------------------------------- */

static atomic_int foreign_ran;
static void count_foreign(void *arg) { atomic_fetch_add(&foreign_ran, 1); }

/* Every call that needs a coroutine, made from a thread that is not one (running: a
 * plain thread while a runtime runs, where np_go and the channel try calls work).
 * Returns 1 if every check passed. */
static int outside_checks(bool running)
{
    int ok = 0, n = 0;
#define OUT(call, err)                                                                   \
    do {                                                                                 \
        n++;                                                                             \
        errno = 0;                                                                       \
        long long r_ = (long long)(call);                                                \
        if (r_ == -1 && errno == (err))                                                  \
            ok++;                                                                        \
        else                                                                             \
            fprintf(stderr, "outside a coroutine: %s returned %lld errno %d\n", #call,   \
                    r_, errno);                                                          \
    } while (0)
    np_chan *c = np_chan_new(sizeof(int), 1);
    np_chan *u = np_chan_new(sizeof(int), 0);
    np_mutex mu = NP_MUTEX_INIT;
    np_wg wg = NP_WG_INIT;
    np_wg busy = NP_WG_INIT;
    np_wg_add(&busy, 1);
    int v = 1;
    np_case cs[2] = {{c, NP_RECV, &v, 0}, {u, NP_SEND, &v, 0}};
    OUT(np_sleep(1000), EPERM);
    OUT(np_sleep(0), EPERM);
    OUT(np_yield(), EPERM);
    if (running) {
        n += 3;
        ok += np_go(count_foreign, NULL) > 0;
        ok += np_chan_trysend(c, &v) == 0;
        ok += np_chan_tryrecv(c, &v) == 1 && v == 1;
    } else {
        OUT(np_go(set_ran, NULL), EPERM);
        OUT(np_chan_trysend(c, &v), EPERM);
        OUT(np_chan_tryrecv(c, &v), EPERM);
    }
    OUT(np_chan_send(c, &v), EPERM);
    OUT(np_chan_recv(c, &v), EPERM);
    OUT(np_chan_send(u, &v), EPERM);
    OUT(np_chan_recv(u, &v), EPERM);
    OUT(np_select(cs, 2, -1), EPERM);
    OUT(np_select(cs, 2, 0), EPERM);
    OUT(np_mutex_lock(&mu), EPERM);
    OUT(np_wg_wait(&wg), EPERM);
    OUT(np_wg_wait(&busy), EPERM);
    n++;
    if (np_id() == 0)
        ok++;
    n++;
    errno = 0;
    np_exit();
    if (errno == EPERM)
        ok++;
    /* nothing was changed by the failed calls */
    n++;
    if (np_mutex_trylock(&mu) == 0 && np_mutex_unlock(&mu) == 0)
        ok++;
    np_chan_free(c);
    np_chan_free(u);
#undef OUT
    return ok == n ? 1 : 0;
}

static void t_eperm_outside(void) { CHECK(outside_checks(false)); }

static void *foreign_checks(void *arg) { return (void *)(intptr_t)outside_checks(true); }

static void eperm_foreign_main(void *arg)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, foreign_checks, NULL), 0);
    void *ok = NULL;
    pthread_join(t, &ok);
    CHECK(ok != NULL);
    int64_t t0 = np_now();
    while (atomic_load(&foreign_ran) != 1) { /* the thread's np_go runs */
        if (np_now() - t0 > 10LL * 1000000000)
            FAILF("the coroutine a foreign thread started did not run");
        CHECK_EQ(np_yield(), 0);
    }
}

/* Made from a thread of the process that is not the runtime's, while it runs. */
static void t_eperm_foreign_thread(void)
{
    t_procs(2);
    T_RUN(eperm_foreign_main, NULL);
}

/* ---- stacks ---------------------------------------------------------------------------- */

static int __attribute__((noinline)) deep(int n)
{
    volatile char buf[1024];
    buf[0] = (char)n;
    buf[sizeof buf - 1] = (char)(n >> 1);
    if (n <= 0)
        return buf[0];
    return deep(n - 1) + buf[sizeof buf - 1];
}

static int deep_expect(int n)
{
    int s = 0;
    for (int i = n; i > 0; i--)
        s += (char)(i >> 1);
    return s;
}

static np_wg stk_wg = NP_WG_INIT;
static atomic_int stk_ok;

static void deep_child(void *arg)
{
    int n = (int)(intptr_t)arg;
    if (deep(n) == deep_expect(n))
        atomic_fetch_add(&stk_ok, 1);
    np_yield();
    if (deep(n) == deep_expect(n))
        atomic_fetch_add(&stk_ok, 1);
    np_wg_done(&stk_wg);
}

static void attr_main(void *arg)
{
    /* 4000 frames of > 1 KiB: about 4-5 MiB, far beyond the 256 KiB default */
    np_attr big = {.stack_size = 16u << 20};
    np_attr small = {.stack_size = 32u << 10};
    np_attr zero = {0};
    for (int i = 0; i < 4; i++) {
        np_wg_add(&stk_wg, 1);
        CHECK(np_go_attr(&big, deep_child, (void *)(intptr_t)4000) > 0);
    }
    np_wg_add(&stk_wg, 3);
    CHECK(np_go_attr(&small, deep_child, (void *)(intptr_t)4) > 0);
    CHECK(np_go_attr(&zero, deep_child, (void *)(intptr_t)40) > 0);
    CHECK(np_go_attr(NULL, deep_child, (void *)(intptr_t)40) > 0);
    np_wg_wait(&stk_wg);
    CHECK_EQ(atomic_load(&stk_ok), 14);
}

static void t_go_attr_stack(void)
{
    t_procs(2);
    T_RUN(attr_main, NULL);
}

/* A dead coroutine's G keeps its default-size stack for the next spawn on its P: a
 * spawn that asks for another size must still get that size, and one whose stack was
 * its own must not hand it on. */
static void reuse_main(void *arg)
{
    np_attr big = {.stack_size = 16u << 20};
    for (int round = 0; round < 3; round++) {
        np_wg_add(&stk_wg, 2);
        CHECK(np_go(deep_child, (void *)(intptr_t)40) > 0); /* default stacks, then kept */
        CHECK(np_go(deep_child, (void *)(intptr_t)40) > 0);
        np_wg_wait(&stk_wg);
        np_wg_add(&stk_wg, 1);
        CHECK(np_go_attr(&big, deep_child, (void *)(intptr_t)4000) > 0); /* too deep for 256 KiB */
        np_wg_wait(&stk_wg);
    }
    CHECK_EQ(atomic_load(&stk_ok), 18);
}

static void t_stack_reuse_sizes(void)
{
    for (int procs = 1; procs <= 2; procs++) {
        atomic_store(&stk_ok, 0);
        t_procs(procs);
        T_RUN(reuse_main, NULL);
    }
}

static void env_stack_main(void *arg)
{
    /* 600 frames of > 1 KiB need more than the 256 KiB default */
    np_wg_add(&stk_wg, 2);
    np_go(deep_child, (void *)(intptr_t)600);
    deep_child((void *)(intptr_t)600);
    np_wg_wait(&stk_wg);
    CHECK_EQ(atomic_load(&stk_ok), 4);
}

/* NP_STACK sets the default stack size. */
static void t_env_stack(void)
{
    setenv("NP_STACK", "2m", 1);
    t_procs(1);
    T_RUN(env_stack_main, NULL);
    unsetenv("NP_STACK");
}

/* ---- floating-point environment ------------------------------------------------------------ */

enum { RND_NEAREST, RND_UP, RND_OTHER };

static void fp_set_up(void)
{
#if defined(__x86_64__)
    unsigned mx;
    unsigned short cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    mx = (mx & ~(3u << 13)) | (2u << 13);
    __asm__ volatile("ldmxcsr %0" : : "m"(mx));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    cw = (unsigned short)((cw & ~(3u << 10)) | (2u << 10));
    __asm__ volatile("fldcw %0" : : "m"(cw));
#elif defined(__aarch64__)
    uint64_t r;
    __asm__ volatile("mrs %0, fpcr" : "=r"(r));
    r = (r & ~(3ull << 22)) | (1ull << 22); /* RP: towards plus infinity */
    __asm__ volatile("msr fpcr, %0" : : "r"(r));
#endif
}

static void fp_set_nearest(void)
{
#if defined(__x86_64__)
    unsigned mx;
    unsigned short cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    mx &= ~(3u << 13);
    __asm__ volatile("ldmxcsr %0" : : "m"(mx));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    cw = (unsigned short)(cw & ~(3u << 10));
    __asm__ volatile("fldcw %0" : : "m"(cw));
#elif defined(__aarch64__)
    uint64_t r;
    __asm__ volatile("mrs %0, fpcr" : "=r"(r));
    r &= ~(3ull << 22);
    __asm__ volatile("msr fpcr, %0" : : "r"(r));
#endif
}

/* The rounding mode as the control registers say and as arithmetic shows. */
static int fp_mode(void)
{
    int reg;
#if defined(__x86_64__)
    unsigned mx;
    unsigned short cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    unsigned a = (mx >> 13) & 3, b = (cw >> 10) & 3;
    reg = a != b ? RND_OTHER : a == 0 ? RND_NEAREST : a == 2 ? RND_UP : RND_OTHER;
#elif defined(__aarch64__)
    uint64_t r;
    __asm__ volatile("mrs %0, fpcr" : "=r"(r));
    unsigned a = (unsigned)(r >> 22) & 3;
    reg = a == 0 ? RND_NEAREST : a == 1 ? RND_UP : RND_OTHER;
#else
    reg = RND_NEAREST;
#endif
    volatile double one = 1.0, three = 3.0;
    double q = one / three;
    int arith = q == 0x1.5555555555555p-2 ? RND_NEAREST
                : q == 0x1.5555555555556p-2 ? RND_UP : RND_OTHER;
    return reg == arith ? reg : RND_OTHER;
}

static void fp_err(atomic_int *errors, const char *who, int want)
{
    if (atomic_fetch_add(errors, 1) < 3)
        fprintf(stderr, "%s: rounding mode %d, want %d\n", who, fp_mode(), want);
}

typedef struct fpx {
    np_chan *to_b, *to_a;
    np_wg done;
    atomic_int errors;
} fpx;

static void fp_a(void *arg)
{
    fpx *x = arg;
    int v = 0;
    if (fp_mode() != RND_NEAREST)
        fp_err(&x->errors, "A at start", RND_NEAREST);
    fp_set_up();
    for (int i = 0; i < 200; i++) {
        if (fp_mode() != RND_UP)
            fp_err(&x->errors, "A before a switch", RND_UP);
        np_chan_send(x->to_b, &v);
        np_chan_recv(x->to_a, &v);
        if (fp_mode() != RND_UP)
            fp_err(&x->errors, "A after a switch", RND_UP);
        np_yield();
        if (i % 10 == 0)
            np_sleep(10000);
    }
    fp_set_nearest();
    np_chan_close(x->to_b);
    np_wg_done(&x->done);
}

static void fp_b(void *arg)
{
    fpx *x = arg;
    int v;
    while (np_chan_recv(x->to_b, &v) == 1) {
        if (fp_mode() != RND_NEAREST)
            fp_err(&x->errors, "B after a switch", RND_NEAREST);
        np_yield();
        if (fp_mode() != RND_NEAREST)
            fp_err(&x->errors, "B after a yield", RND_NEAREST);
        np_chan_send(x->to_a, &v);
    }
    np_wg_done(&x->done);
}

static void fp_main(void *arg)
{
    fpx *x = arg;
    x->to_a = np_chan_new(sizeof(int), 0);
    x->to_b = np_chan_new(sizeof(int), 0);
    np_wg_add(&x->done, 2);
    np_go(fp_b, x);
    np_go(fp_a, x);
    np_wg_wait(&x->done);
    if (fp_mode() != RND_NEAREST)
        atomic_fetch_add(&x->errors, 1);
    np_chan_free(x->to_a);
    np_chan_free(x->to_b);
}

/* The rounding mode is part of a coroutine: one that changes it keeps it across
 * switches, and the others keep theirs. */
static void t_fp_env_per_coroutine(void)
{
    CHECK_EQ(fp_mode(), RND_NEAREST);
    for (int procs = 1; procs <= 2; procs++) {
        fpx x = {0};
        t_procs(procs);
        T_RUN(fp_main, &x);
        CHECK_EQ(atomic_load(&x.errors), 0);
        CHECK_EQ(fp_mode(), RND_NEAREST);
    }
}

static atomic_int fpnew_mode = -1;

static void fpnew_child(void *arg)
{
    atomic_store(&fpnew_mode, fp_mode());
    np_chan_send(arg, &(int){0});
}

static void fpnew_main(void *arg)
{
    np_chan *c = np_chan_new(sizeof(int), 0);
    fp_set_up();
    np_go(fpnew_child, c); /* first runs when this coroutine (rounding up) parks */
    np_chan_recv(c, NULL);
    int mine = fp_mode();
    fp_set_nearest();
    np_chan_free(c);
    CHECK_EQ(mine, RND_UP);
}

/* A new coroutine starts with the default floating-point environment, whatever the
 * coroutine that ran before it on the thread had set. */
static void t_fp_env_new_coroutine_default(void)
{
    t_procs(1);
    T_RUN(fpnew_main, NULL);
    CHECK_EQ(atomic_load(&fpnew_mode), RND_NEAREST);
}

/* A coroutine that ends with a changed rounding mode leaves no trace in the thread
 * that ran np_run. */
static void fp_leave_up(void *arg) { fp_set_up(); }
static void fp_leak_main(void *arg)
{
    np_go(fp_leave_up, NULL);
    np_yield();
    np_sleep(1000000);
    fp_set_up();
}

static void t_fp_env_not_leaked(void)
{
    t_procs(1);
    T_RUN(fp_leak_main, NULL);
    CHECK_EQ(fp_mode(), RND_NEAREST);
}

static const t_case cases[] = {
    T(t_run_returns),
    T(t_run_null),
    T(t_run_again),
    T(t_run_nested_ebusy),
    T(t_run_abandons),
    T(t_go_ids),
    T(t_exit),
    T(t_eperm_outside),
    T(t_eperm_foreign_thread),
    T(t_go_attr_stack),
    T(t_stack_reuse_sizes),
    T(t_env_stack),
    T(t_fp_env_per_coroutine),
    T(t_fp_env_new_coroutine_default),
    T(t_fp_env_not_leaked),
    {0},
};

T_MAIN(cases)
