/* Stack overflow is detected: a coroutine recursing without bound dies with a clear
 * message ("coroutine stack overflow") and a signal, instead of silently corrupting
 * memory. Each case forks a child that overflows; the parent reads its stderr. */
#include "t.h"
#include <stdatomic.h>

static volatile int depth_limit = 1 << 30; /* never reached; hides the recursion's end */

static int __attribute__((noinline)) recurse(int n)
{
    volatile char buf[256];
    buf[0] = (char)n;
    buf[255] = (char)(n >> 8);
    if (n >= depth_limit)
        return buf[0];
    return recurse(n + 1) + buf[255];
}

static void overflow_co(void *arg)
{
    recurse(0);
}

static np_wg wg = NP_WG_INIT;

/* The overflowing coroutine runs next to others, which keep running until it dies. */
static void busy_co(void *arg)
{
    for (;;)
        np_sleep(100000);
}

static void overflow_main(void *arg)
{
    const np_attr *attr = arg;
    for (int i = 0; i < 4; i++)
        np_go(busy_co, NULL);
    np_wg_add(&wg, 1);
    np_go_attr(attr, overflow_co, NULL);
    np_wg_wait(&wg); /* never done: the process dies first */
}

typedef struct child_result {
    int status;
    char out[8192];
} child_result;

/* Run np_run(overflow_main, attr) in a child with the given NP_PROCS; collect its
 * stderr and how it ended. */
static void run_child(const char *procs, const np_attr *attr, child_result *res)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        setenv("NP_PROCS", procs, 1);
        np_run(overflow_main, (void *)attr);
        _exit(0); /* not reached */
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], res->out + n, sizeof res->out - 1 - n)) != 0) {
        if (r < 0) {
            if (t_errno() == EINTR)
                continue;
            break;
        }
        n += (size_t)r;
        if (n == sizeof res->out - 1)
            break;
    }
    res->out[n] = 0;
    close(fds[0]);
    while (waitpid(pid, &res->status, 0) < 0)
        CHECK_EQ(t_errno(), EINTR);
}

static void expect_overflow_report(const char *procs, const np_attr *attr)
{
    child_result res;
    run_child(procs, attr, &res);
    if (!WIFSIGNALED(res.status) || !strstr(res.out, "coroutine stack overflow")) {
        fprintf(stderr, "--- child's stderr ---\n%s--- end ---\n", res.out);
        FAILF("child ended with %s %d; want a signal and \"coroutine stack overflow\"",
              WIFSIGNALED(res.status) ? "signal" : "exit status",
              WIFSIGNALED(res.status) ? WTERMSIG(res.status) : WEXITSTATUS(res.status));
    }
}

/* A default-size (pooled) stack. */
static void t_overflow_default_stack_1p(void) { expect_overflow_report("1", NULL); }
static void t_overflow_default_stack_2p(void) { expect_overflow_report("2", NULL); }

/* A stack of its own size (np_go_attr). */
static void t_overflow_custom_stack(void)
{
    np_attr a = {.stack_size = 64 * 1024};
    expect_overflow_report("2", &a);
}

/* Recursing deep but within bounds is fine (same function, bigger stack). */
static void bounded_co(void *arg)
{
    recurse(0);
    np_wg_done(&wg);
}

static void bounded_main(void *arg)
{
    depth_limit = 2000; /* about 600 KiB: needs the bigger stack */
    np_attr a = {.stack_size = 2 << 20};
    np_wg_add(&wg, 1);
    np_go_attr(&a, bounded_co, NULL);
    np_wg_wait(&wg);
}

static void t_deep_but_bounded(void)
{
    t_procs(2);
    T_RUN(bounded_main, NULL);
    depth_limit = 1 << 30;
}

static const t_case cases[] = {
    T(t_overflow_default_stack_1p),
    T(t_overflow_default_stack_2p),
    T(t_overflow_custom_stack),
    T(t_deep_but_bounded),
    {0},
};

T_MAIN(cases)
