/* A tiny test harness. A test file defines static void cases and a table, then
 * T_MAIN(table):
 *
 *     static void t_basic(void) { CHECK(1 + 1 == 2); }
 *     static const t_case cases[] = { T(t_basic), {0} };
 *     T_MAIN(cases)
 *
 * Without arguments the binary runs every case in a child process of its own (killed
 * by alarm() after a timeout) and prints "ok   file:case", "FAIL file:case (why)" or
 * "skip file:case (why)", then "N passed, N failed, N skipped"; it exits non-zero if
 * anything failed. A case that cannot run here says so with T_SKIP("why"), which ends
 * it; it counts as skipped, never as passed. With a case name as argument it runs that
 * case alone, in-process (for gdb); "-l" lists the cases; "-r CASE..." runs just the
 * named cases as the full run does (each in a child, with its timeout; make mutate).
 *
 * Environment: NP_TEST_SCALE (default 1) divides the big iteration counts (t_scaled)
 * and, when above 1, triples the per-case timeout (slow builds: TSan, qemu); NP_TEST_TIMEOUT sets
 * the base timeout in seconds (default 60).
 */
#ifndef NP_TEST_T_H
#define NP_TEST_T_H
#include <np.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct t_case {
    const char *name;
    void (*fn)(void);
} t_case;

#define T(fn) {#fn, fn}

static const char *t_file = "?";
static const char *t_name = "?";

static void t_fail(const char *file, int line, const char *what, const char *detail)
{
    fprintf(stderr, "%s:%d: %s: CHECK failed: %s%s%s\n", file, line, t_name, what,
            detail ? "  " : "", detail ? detail : "");
    fflush(stderr);
    fflush(stdout);
    _exit(1); /* from any thread, without running other threads' atexit work */
}

/* errno of the calling thread. A coroutine may resume on another thread after any call
 * that can block, and the compiler may keep the address of errno from before the call
 * (glibc declares __errno_location const): test code reads and clears errno through a
 * volatile function pointer instead, which is called afresh every time. */
static int *(*volatile t_errloc)(void) = __errno_location;
#define T_ERRNO (*t_errloc())
static inline int t_errno(void) { return T_ERRNO; }

/* CHECK(cond): on failure print file:line and the expression, and exit(1). */
#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond))                                                                     \
            t_fail(__FILE__, __LINE__, #cond, NULL);                                     \
    } while (0)

/* CHECK_EQ(a, b): integers; prints both values on failure. */
#define CHECK_EQ(a, b)                                                                   \
    do {                                                                                 \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                          \
        if (t_a_ != t_b_) {                                                              \
            char t_d_[96];                                                               \
            snprintf(t_d_, sizeof t_d_, "(%lld != %lld)", t_a_, t_b_);                   \
            t_fail(__FILE__, __LINE__, #a " == " #b, t_d_);                              \
        }                                                                                \
    } while (0)

/* CHECK_ERR(call, E): the call returns -1 and sets errno to E. */
#define CHECK_ERR(call, err)                                                             \
    do {                                                                                 \
        T_ERRNO = 0;                                                                     \
        long long t_r_ = (long long)(call);                                              \
        int t_e_ = t_errno();                                                            \
        if (t_r_ != -1 || t_e_ != (err)) {                                               \
            char t_d_[128];                                                              \
            snprintf(t_d_, sizeof t_d_, "(returned %lld, errno %d %s; want -1, %s)",      \
                     t_r_, t_e_, strerror(t_e_), #err);                                  \
            t_fail(__FILE__, __LINE__, #call " fails with " #err, t_d_);                 \
        }                                                                                \
    } while (0)

/* The exit status of a case that skipped itself (automake's convention). */
#define T_SKIP_STATUS 77

/* End the case as skipped, with a reason (a printf format): it cannot run here. */
#define T_SKIP(...)                                                                      \
    do {                                                                                 \
        printf("    skipped: ");                                                         \
        printf(__VA_ARGS__);                                                             \
        printf("\n");                                                                    \
        fflush(stdout);                                                                  \
        _exit(T_SKIP_STATUS);                                                            \
    } while (0)

/* Fail with a formatted message. */
#define FAILF(...)                                                                       \
    do {                                                                                 \
        char t_d_[256];                                                                  \
        snprintf(t_d_, sizeof t_d_, __VA_ARGS__);                                        \
        t_fail(__FILE__, __LINE__, "FAILF", t_d_);                                       \
    } while (0)

static long t_scale_v(void)
{
    const char *s = getenv("NP_TEST_SCALE");
    long v = s && *s ? strtol(s, NULL, 10) : 1;
    return v > 0 ? v : 1;
}

/* n divided by NP_TEST_SCALE (at least 1). */
static inline long t_scaled(long n)
{
    long v = n / t_scale_v();
    return v > 0 ? v : 1;
}

#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif

/* How many coroutines a case may have alive at once: t_scaled(n), and ten times fewer
 * under TSan, where each coroutine is a TSan fiber that costs the best part of a MiB
 * and milliseconds to create. */
static inline long t_coroutines(long n)
{
#ifdef T_TSAN
    n /= 10;
#endif
    return t_scaled(n);
}

/* Wait, yielding between looks, until n coroutines are blocked for reason (NP_WAIT_IO,
 * NP_WAIT_CHAN_SEND, ...; np_stats_get's count), exactly n or, with at_least, n or more:
 * what a case waits on instead of sleeping. Bounded: FAILs after 10 s (30 s in slow
 * builds), so a coroutine that never blocks is a failure, not a hang. */
static inline void t_wait_blocked(int reason, int64_t n, bool at_least)
{
    int64_t limit = 10LL * 1000000000 * (t_scale_v() > 1 ? 3 : 1);
    int64_t t0 = np_now();
    for (;;) {
        np_stats s;
        CHECK_EQ(np_stats_get(&s), 0);
        if (s.waiting_by[reason] == n || (at_least && s.waiting_by[reason] > n))
            return;
        if (np_now() - t0 > limit)
            FAILF("%lld coroutines blocked for reason %d after %lld s, want %s%lld",
                  (long long)s.waiting_by[reason], reason, (long long)(limit / 1000000000),
                  at_least ? "at least " : "", (long long)n);
        CHECK_EQ(np_yield(), 0);
    }
}

/* Exactly n coroutines blocked for reason. */
static inline void wait_blocked(int reason, int64_t n) { t_wait_blocked(reason, n, false); }

/* Set NP_PROCS for the next np_run. */
static inline void t_procs(int n)
{
    char b[16];
    snprintf(b, sizeof b, "%d", n);
    setenv("NP_PROCS", b, 1);
}

/* np_run that must succeed. */
#define T_RUN(fn, arg) CHECK_EQ(np_run((fn), (arg)), 0)

/* The test certificates (tests/certs.sh, made on first use into NP_TLS_CERTS or
 * build/test-certs; the working directory is the tree's top): the directory, and the
 * path of one file in it (8 rotating buffers). */
static inline const char *t_cert_dir(void)
{
    static char d[256];
    if (!d[0]) {
        const char *e = getenv("NP_TLS_CERTS");
        snprintf(d, sizeof d, "%.200s", e && *e ? e : "build/test-certs");
        char cmd[512];
        snprintf(cmd, sizeof cmd, "bash tests/certs.sh %.256s >/dev/null 2>&1", d);
        if (system(cmd) != 0)
            FAILF("tests/certs.sh %.100s failed", d);
    }
    return d;
}

static inline const char *t_cert(const char *name)
{
    static char b[8][300];
    static int i;
    char *p = b[i++ % 8];
    snprintf(p, 300, "%.200s/%.90s", t_cert_dir(), name);
    return p;
}

/* Small deterministic random numbers (xorshift64*). */
static inline uint64_t t_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ULL;
}

/* The distinct OS threads (up to 2) that ran some code: a work-sharing check. Zero
 * the struct and set mu to NP_MUTEX_INIT; t_threads_note from a coroutine. */
typedef struct t_threads {
    np_mutex mu;
    pthread_t ids[2];
    atomic_int n;
} t_threads;
/* (pthread_self is declared const: called through this, it is asked each time, also
 * after the coroutine moved to another thread) */
static pthread_t (*volatile t_self_)(void) = pthread_self;

static inline void t_threads_note(t_threads *t)
{
    pthread_t me = t_self_();
    np_mutex_lock(&t->mu);
    int n = atomic_load(&t->n), seen = 0;
    for (int i = 0; i < n; i++)
        seen |= pthread_equal(t->ids[i], me);
    if (!seen && n < 2)
        t->ids[atomic_fetch_add(&t->n, 1)] = me;
    np_mutex_unlock(&t->mu);
}

static inline double t_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Each case runs in a process group of its own, killed whole when the case ends (a
 * timed-out case may have left children behind), and when the runner is killed. */
static volatile pid_t t_child;

static void t_on_kill(int sig)
{
    if (t_child > 0)
        kill(-t_child, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Run one case in a child; 1 passed, 0 failed, -1 skipped. */
static int t_run_one(const t_case *c, unsigned timeout)
{
    fflush(stdout);
    fflush(stderr);
    double t0 = t_secs();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 0;
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        t_name = c->name;
        alarm(timeout);
        c->fn();
        fflush(stdout);
        exit(0); /* through exit: sanitizers report leaks and races in the exit code */
    }
    setpgid(pid, pid); /* (also here: no window before the child has done it) */
    t_child = pid;
    /* wait without reaping (the group id stays ours), kill what the case left running,
     * then reap */
    siginfo_t si;
    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    kill(-pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            break;
        }
    }
    t_child = 0;
    double dt = t_secs() - t0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        printf("ok   %s:%s (%.2fs)\n", t_file, c->name, dt);
        return 1;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == T_SKIP_STATUS) {
        printf("skip %s:%s (%.2fs)\n", t_file, c->name, dt);
        return -1;
    }
    char why[64];
    if (WIFEXITED(st))
        snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
        snprintf(why, sizeof why, "timeout after %us", timeout);
    else if (WIFSIGNALED(st))
        snprintf(why, sizeof why, "signal %d, %s", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(why, sizeof why, "status %#x", st);
    printf("FAIL %s:%s (%s, %.2fs)\n", t_file, c->name, why, dt);
    return 0;
}

static int t_main(int argc, char **argv, const t_case *cases, const char *file)
{
    const char *b = strrchr(file, '/');
    t_file = b ? b + 1 : file;
    char *dot = strdup(t_file);
    if (dot && strrchr(dot, '.'))
        *strrchr(dot, '.') = 0;
    if (dot)
        t_file = dot;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "-l") == 0) {
        for (const t_case *c = cases; c->name; c++)
            printf("%s\n", c->name);
        return 0;
    }
    bool some = argc > 1 && strcmp(argv[1], "-r") == 0;
    if (some) {
        for (int i = 2; i < argc; i++) {
            const t_case *c = cases;
            while (c->name && strcmp(c->name, argv[i]) != 0)
                c++;
            if (!c->name) {
                fprintf(stderr, "%s: no case %s (-l lists them)\n", argv[0], argv[i]);
                return 2;
            }
        }
    } else if (argc > 1) {
        for (const t_case *c = cases; c->name; c++)
            if (strcmp(c->name, argv[1]) == 0) {
                t_name = c->name;
                c->fn();
                printf("ok   %s:%s\n", t_file, c->name);
                return 0;
            }
        fprintf(stderr, "%s: no case %s (-l lists them)\n", argv[0], argv[1]);
        return 2;
    }
    long scale = t_scale_v();
    const char *ts = getenv("NP_TEST_TIMEOUT");
    unsigned timeout = ts && *ts ? (unsigned)strtoul(ts, NULL, 10) : 60;
    if (timeout == 0)
        timeout = 60;
    if (scale > 1)
        timeout *= 3; /* slow builds: still bounded, a hang costs minutes not hours */
    signal(SIGTERM, t_on_kill);
    signal(SIGINT, t_on_kill);
    signal(SIGHUP, t_on_kill);
    int passed = 0, failed = 0, skipped = 0;
    for (const t_case *c = cases; c->name; c++) {
        if (some) {
            int i = 2;
            while (i < argc && strcmp(argv[i], c->name) != 0)
                i++;
            if (i == argc)
                continue;
        }
        int r = t_run_one(c, timeout);
        if (r > 0)
            passed++;
        else if (r < 0)
            skipped++;
        else
            failed++;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

#define T_MAIN(cases)                                                                    \
    int main(int argc, char **argv) { return t_main(argc, argv, (cases), __FILE__); }

#endif
