/* Seeing inside: the coroutine dump on SIGQUIT, fatal-signal reports reaching a real
 * np-netlog collector, a dump while every P spins, netlog ordering under loss, the
 * "dump" request honoured only from the collector, np_stats_get. */
#include "t.h"
#include <dlfcn.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>

/* The frame every parked coroutine's backtrace goes through: np__park by name when np is
 * linked statically (-rdynamic exports it); in libnp.so, where only the API is exported,
 * an unnamed frame of the library shown as "(libnp.so.0+OFFSET)". */
static const char *park_frame(void)
{
    Dl_info di;
    if (dladdr((void *)np_run, &di) && di.dli_fname && strstr(di.dli_fname, "libnp.so"))
        return "(libnp.so.0+0x";
    return "np__park";
}

#define MS 1000000LL

/* fork() for a child that must not outlive the test case (a timed-out case is killed). */
static pid_t child(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(97);
    }
    return pid;
}

/* In a child: standard error to /dev/null, netlog to the collector on port. */
static void child_netlog_to(int port)
{
    int dn = open("/dev/null", O_WRONLY);
    dup2(dn, 2);
    char url[64];
    snprintf(url, sizeof url, "udp://127.0.0.1:%d", port);
    setenv("NP_NETLOG", url, 1);
}

/* Read everything from fd until EOF or the deadline (seconds); returns malloc'd text. */
static char *slurp(int fd, double secs)
{
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    double end = t_secs() + secs;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int ms = (int)((end - t_secs()) * 1000);
        if (ms <= 0 || poll(&p, 1, ms) <= 0)
            break;
        if (n + 4096 > cap)
            b = realloc(b, cap *= 2);
        ssize_t r = read(fd, b + n, cap - n - 1);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    b[n] = 0;
    return b;
}

/* Directory of this test binary's build, for ../bin/np-netlog. */
static void bindir(char *out, size_t n)
{
    char exe[512];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(l > 0);
    exe[l] = 0;
    *strrchr(exe, '/') = 0;
    snprintf(out, n, "%s/../bin", exe);
}

/* ---- SIGQUIT dump of a dozen coroutines in different waits -------------------------------- */

static np_chan *unbuf, *unbuf2, *full;
static np_mutex mu = NP_MUTEX_INIT;
static np_wg wg = NP_WG_INIT;
static int sv[2], pw[2], ready_fd;

static void w_sleep(void *a) { np_sleep(3600 * 1000 * MS); }
static void w_recv(void *a) { np_chan_recv(unbuf, NULL); }
static void w_send(void *a) { int v = 1; np_chan_send(unbuf2, &v); }
static void w_select(void *a)
{
    np_case c[2] = {{unbuf, NP_RECV, NULL, 0}, {full, NP_SEND, &(int){1}, 0}};
    np_select(c, 2, -1);
}
static void w_mutex(void *a) { np_mutex_lock(&mu); }
static void w_wg(void *a) { np_wg_wait(&wg); }
static void w_read(void *a) { char b; np_read(sv[0], &b, 1); }
static void w_write(void *a)
{
    static char big[1 << 20];
    np_write(pw[1], big, sizeof big);
}
static void *slow(void *a)
{
    char b;
    if (read(*(int *)a, &b, 1) < 0) { /* blocks: nobody writes */
    }
    return NULL;
}
static int block_fd[2];
static void w_blocking(void *a) { np_blocking(slow, &block_fd[0]); }
static np_mutex cmu = NP_MUTEX_INIT;
static np_cond cv = NP_COND_INIT;
static np_rwmutex rw = NP_RWMUTEX_INIT;
static np_once once = NP_ONCE_INIT;
static void w_cond(void *a)
{
    np_mutex_lock(&cmu);
    np_cond_wait(&cv, &cmu);
}
static void w_rwmutex(void *a) { np_rwmutex_rlock(&rw); }
static void sleep_fn(void *a) { np_sleep(3600 * 1000 * MS); }
static void w_once(void *a) { np_once_do(&once, sleep_fn, NULL); } /* one runs fn, one waits */

static void dozen_main(void *arg)
{
    unbuf = np_chan_new(sizeof(int), 0);
    unbuf2 = np_chan_new(sizeof(int), 0);
    full = np_chan_new(sizeof(int), 1);
    int one = 1;
    np_chan_send(full, &one);
    np_mutex_lock(&mu);
    np_wg_add(&wg, 1);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ(pipe(pw), 0);
    CHECK_EQ(pipe(block_fd), 0);
    CHECK_EQ(np_fd_open(sv[0]), 0);
    CHECK_EQ(np_fd_open(pw[1]), 0);
    np_rwmutex_lock(&rw);
    np_fn fns[] = {w_sleep, w_recv, w_recv, w_send, w_select, w_mutex, w_wg, w_read, w_write,
                   w_blocking, w_sleep, w_cond, w_rwmutex, w_once, w_once};
    size_t n = sizeof fns / sizeof fns[0];
    for (size_t i = 0; i < n; i++)
        np_go(fns[i], NULL);
    /* wait until all of them wait (the event itself, via the runtime's own stats) */
    for (;;) {
        np_stats s;
        CHECK_EQ(np_stats_get(&s), 0);
        if (s.waiting >= (int64_t)n)
            break;
        np_sleep(MS);
    }
    CHECK_EQ(write(ready_fd, "r", 1), 1);
    np_sleep(3600 * 1000 * MS);
}

#ifdef T_TSAN
/* A thread of process pid blocked in read(2), or 0. */
static pid_t thread_in_read(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    pid_t tid = 0;
    for (struct dirent *e; !tid && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char f[384], b[64] = "";
        snprintf(f, sizeof f, "%s/%s/syscall", path, e->d_name);
        int fd = open(f, O_RDONLY);
        if (fd < 0)
            continue;
        /* "NR args...", or "running", or "-1 ..." (blocked, not in a syscall) */
        if (read(fd, b, sizeof b - 1) > 0 && b[0] >= '0' && b[0] <= '9' && atol(b) == SYS_read)
            tid = (pid_t)atol(e->d_name);
        close(fd);
    }
    closedir(d);
    return tid;
}
#endif

/* SIGQUIT to the child. Under TSan, an asynchronous signal's handler runs only once
 * the thread the kernel gave it to enters or sits in a call TSan intercepts; np's
 * idle threads sleep in raw futex syscalls, which it does not see, so a SIGQUIT that
 * lands on one of them (the main thread, its M parked for the hour main_fn sleeps)
 * waits for ever: seen as a hang, the main thread in futex(2), the signal taken from
 * the kernel's pending set and never handled. Aim it at the thread blocked in read(2)
 * (np_blocking's, which TSan intercepts as blocking) when there is one. */
static void sigquit_to(pid_t pid)
{
    pid_t tid = 0;
#ifdef T_TSAN
    /* (np_blocking counts the coroutine waiting a moment before its thread is in read) */
    for (double end = t_secs() + 20; !tid && t_secs() < end; poll(NULL, 0, 1))
        tid = thread_in_read(pid);
#endif
    if (tid > 0)
        CHECK_EQ(syscall(SYS_tgkill, pid, tid, SIGQUIT), 0);
    else
        CHECK_EQ(kill(pid, SIGQUIT), 0);
}

/* Run main_fn in a child process with NP_PROCS=2; once it writes to ready_fd, send it
 * SIGQUIT. Returns what it printed on stderr; *status gets its wait status. */
static char *sigquit_child(np_fn main_fn, int *status)
{
    int ready[2], err[2];
    CHECK_EQ(pipe(ready), 0);
    CHECK_EQ(pipe(err), 0);
    pid_t pid = child();
    if (pid == 0) {
        dup2(err[1], 2);
        close(ready[0]);
        ready_fd = ready[1];
        t_procs(2);
        unsetenv("NP_DUMP");
        np_run(main_fn, NULL);
        _exit(99);
    }
    close(ready[1]);
    close(err[1]);
    char c;
    struct pollfd p = {ready[0], POLLIN, 0};
    if (poll(&p, 1, 60000) != 1) {
        char *early = slurp(err[0], 0.5);
        FAILF("the child did not get ready in 60 s; its output:\n%.150s", early);
    }
    CHECK_EQ(read(ready[0], &c, 1), 1);
    sigquit_to(pid);
    char *out = slurp(err[0], 20);
    double end = t_secs() + 20;
    pid_t w;
    while ((w = waitpid(pid, status, WNOHANG)) == 0 && t_secs() < end)
        poll(NULL, 0, 10); /* (bounded: a hang becomes a FAIL that says where) */
    if (w != pid)
        FAILF("no exit 20 s after SIGQUIT; output:\n%.150s", out);
    close(ready[0]);
    close(err[0]);
    return out;
}

static void t_sigquit_dump_names_every_wait(void)
{
    int st;
    char *out = sigquit_child(dozen_main, &st);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 2)
        FAILF("child status %#x, want exit 2; output:\n%s", st, out);
    const char *want[] = {"SIGQUIT: quit", "[sleep, ", "(main)", "[chan receive, ", "[chan send, ",
                          "[select, ", "[mutex, ", "[waitgroup, ", "[IO wait fd ", " read, ",
                          " write, ", "[blocking call]", "[cond wait, ", "[rwmutex, ", "[once, ",
                          park_frame(), "coroutines\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i]))
            FAILF("dump lacks \"%s\":\n%s", want[i], out);
    /* two receivers and two sleepers (+ main): count the headers */
    int recv = 0;
    for (char *p = out; (p = strstr(p, "[chan receive")); p++)
        recv++;
    CHECK_EQ(recv, 2);
    free(out);
}

/* ---- a fatal signal in a coroutine reaches np-netlog ---------------------------------------- */

static int crash_idfd;
/* A real fault, not a sanitizer's report of one. */
#if defined(__clang__) || __GNUC__ >= 8
__attribute__((no_sanitize("undefined", "address")))
#endif
static void crasher(void *a)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%lld\n", (long long)np_id());
    CHECK_EQ(write(crash_idfd, b, (size_t)n), n);
    volatile int *p = NULL;
    *p = 42;
}
static void crash_main(void *a)
{
    np_go(crasher, NULL);
    np_sleep(3600 * 1000 * MS);
}

static pid_t start_collector(int *port, const char *file)
{
    char dir[600], exe[700], ps[16];
    bindir(dir, sizeof dir);
    snprintf(exe, sizeof exe, "%s/np-netlog", dir);
    for (int attempt = 0; attempt < 20; attempt++) {
        *port = 30000 + (int)((getpid() * 7 + attempt * 131) % 20000);
        snprintf(ps, sizeof ps, "%d", *port);
        int err[2];
        CHECK_EQ(pipe(err), 0);
        pid_t pid = child();
        if (pid == 0) {
            dup2(err[1], 2);
            int dn = open("/dev/null", O_RDONLY);
            dup2(dn, 0); /* no console */
            execl(exe, exe, "-o", file, ps, (char *)NULL);
            _exit(127);
        }
        close(err[1]);
        char *msg = slurp(err[0], 0.0); /* nothing yet, maybe */
        free(msg);
        /* wait for "listening" or exit */
        char b[256] = {0};
        size_t n = 0;
        double end = t_secs() + 10;
        while (n < sizeof b - 1 && t_secs() < end && !strstr(b, "listening") && !strstr(b, "np-netlog:")) {
            struct pollfd p = {err[0], POLLIN, 0};
            if (poll(&p, 1, 100) > 0) {
                ssize_t r = read(err[0], b + n, sizeof b - 1 - n);
                if (r <= 0)
                    break;
                n += (size_t)r;
            }
        }
        close(err[0]);
        if (strstr(b, "listening"))
            return pid;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    FAILF("np-netlog did not start");
    return -1;
}

static void t_crash_report_reaches_collector(void)
{
    char file[] = "/tmp/np-netlog-XXXXXX";
    int f = mkstemp(file);
    CHECK(f >= 0);
    close(f);
    int port;
    pid_t col = start_collector(&port, file);
    int idp[2];
    CHECK_EQ(pipe(idp), 0);
    pid_t pid = child();
    if (pid == 0) {
        child_netlog_to(port);
        crash_idfd = idp[1];
        t_procs(2);
        np_run(crash_main, NULL);
        _exit(99);
    }
    close(idp[1]);
    char *ids = slurp(idp[0], 20);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    char want[64];
    snprintf(want, sizeof want, "in coroutine %lld", atoll(ids));
    /* the report arrives at the collector: wait for it in the file */
    char *log = NULL;
    double end = t_secs() + 20;
    while (t_secs() < end) {
        int fd = open(file, O_RDONLY);
        free(log);
        log = slurp(fd, 0.05);
        close(fd);
        if (strstr(log, "np: fatal signal SIGSEGV") && strstr(log, want) && strstr(log, " coroutines"))
            break;
    }
    kill(col, SIGTERM);
    waitpid(col, NULL, 0);
    unlink(file);
    if (!strstr(log, "np: fatal signal SIGSEGV") || !strstr(log, want))
        FAILF("collector got:\n%s", log);
    free(log);
    free(ids);
}

/* ---- dump while every P spins -------------------------------------------------------------- */

static atomic_int spinning;
static void spinner(void *a)
{
    if (atomic_fetch_add(&spinning, 1) == 1) /* both Ps spin now */
        CHECK_EQ(write(ready_fd, "r", 1), 1);
    for (;;)
        __asm__ volatile("" ::: "memory");
}
static void spin_main(void *a)
{
    np_go(spinner, NULL);
    spinner(NULL); /* main spins too: every P busy, nobody ever yields */
}

static void t_dump_while_every_p_spins(void)
{
#if defined(__SANITIZE_THREAD__)
    /* TSan holds an asynchronous signal back until the thread reaches a call it
     * intercepts; threads spinning in pure loops never do. Nothing to test here. */
    T_SKIP("under ThreadSanitizer, which defers signals to spinning threads");
#endif
    int st;
    char *out = sigquit_child(spin_main, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    if (!strstr(out, "[running]") || !strstr(out, " coroutines\n"))
        FAILF("incomplete dump:\n%s", out);
    free(out);
}

/* ---- ordering under loss ------------------------------------------------------------------- */

static int udp_bound(const char *ip, int *port)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    CHECK_EQ(getsockname(s, (struct sockaddr *)&a, &l), 0);
    *port = ntohs(a.sin_port);
    return s;
}

static long nlog_count;
static np_wg log_wg = NP_WG_INIT;
static int ack_fd;
static long end_markers;
static void logger(void *a)
{
    int k = (int)(intptr_t)a;
    for (long i = 0; i < nlog_count; i++)
        np_log("message %d %ld", k, i);
    np_wg_done(&log_wg);
}
static void log_main(void *a)
{
    np_wg_add(&log_wg, 2);
    np_go(logger, (void *)(intptr_t)0);
    np_go(logger, (void *)(intptr_t)1); /* two at once: each one's order must hold */
    np_wg_wait(&log_wg);
    /* "end of test" until the collector says it got one: then everything before it on
     * the wire has been sent, and the collector has caught up */
    CHECK_EQ(np_fd_open(ack_fd), 0);
    for (;;) {
        np_log("end of test");
        end_markers++;
        CHECK_EQ(np_set_read_deadline(ack_fd, np_now() + 20 * MS), 0);
        char c;
        ssize_t r = np_read(ack_fd, &c, 1);
        if (r == 1)
            break;
        CHECK(r < 0 && t_errno() == ETIMEDOUT);
    }
}

static void t_order_kept_with_paused_collector(void)
{
    int port;
    int s = udp_bound("127.0.0.1", &port);
    int small = 64 * 1024;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    nlog_count = t_scaled(50000); /* two loggers: 100k messages */
    int ack[2], res[2];
    CHECK_EQ(pipe(ack), 0);
    CHECK_EQ(pipe(res), 0);
    pid_t pid = child();
    if (pid == 0) {
        int dn = open("/dev/null", O_WRONLY);
        dup2(dn, 2);
        close(ack[1]);
        close(res[0]);
        ack_fd = ack[0];
        char url[64];
        snprintf(url, sizeof url, "udp://127.0.0.1:%d", port);
        if (np_netlog_open(url) != 0)
            _exit(98);
        t_procs(2);
        if (np_run(log_main, NULL) != 0)
            _exit(97);
        np_netlog_close(); /* ends with "np: netlog closed (...)" */
        CHECK_EQ(write(res[1], &end_markers, sizeof end_markers), (ssize_t)sizeof end_markers);
        _exit(0);
    }
    close(ack[0]);
    close(res[1]);
    /* read a little, then stop reading for a while (what is tested), then drain */
    unsigned long long last = 0, got = 0, dups = 0, reports = 0, total = 0;
    unsigned long long closed_total = 0, closed_reports = 0, closed_at = 0;
    long next[2] = {0, 0}, got_msgs = 0;
    bool paused = false, acked = false;
    char b[2048];
    double end = t_secs() + 60;
    while (!closed_at && t_secs() < end) {
        struct pollfd p = {s, POLLIN, 0};
        if (poll(&p, 1, 500) <= 0) {
            if (waitpid(pid, NULL, WNOHANG) == pid)
                FAILF("the sender exited before its \"netlog closed\" line arrived "
                      "(last datagram %llu)", last);
            continue;
        }
        ssize_t n = recv(s, b, sizeof b - 1, 0);
        if (n <= 0)
            continue;
        b[n] = 0;
        unsigned long long id;
        int off = 0;
        if (sscanf(b, "np %llu 1/1 %n", &id, &off) != 1 || off == 0)
            FAILF("not one whole message: %.180s", b);
        const char *text = b + off;
        if (id < last)
            FAILF("reordered: %llu after %llu", id, last);
        if (id == last) {
            dups++; /* a retry after a presumed-dead flusher: the same datagram again */
            continue;
        }
        last = id;
        got++;
        int k;
        long i;
        unsigned long long d, t, r;
        if (sscanf(text, "message %d %ld", &k, &i) == 2) {
            if (k < 0 || k > 1 || i < next[k] || i >= nlog_count)
                FAILF("logger %d: message %ld after %ld", k, i, next[k] - 1);
            next[k] = i + 1; /* each logger's messages in the order it logged them */
            got_msgs++;
        } else if (sscanf(text, "np: netlog dropped %llu messages (ring full; %llu in all)", &d,
                          &t) == 2) {
            if (t < total + d)
                FAILF("drop report: %.160s after a total of %llu", text, total);
            total = t;
            reports++;
        } else if (strcmp(text, "end of test") == 0) {
            if (!acked)
                CHECK_EQ(write(ack[1], "a", 1), 1);
            acked = true;
        } else if (sscanf(text, "np: netlog closed (%llu dropped in all, %llu drop reports)", &t,
                          &r) == 2) {
            closed_total = t;
            closed_reports = r;
            closed_at = id;
        } else {
            FAILF("unexpected datagram: %.180s", b);
        }
        if (got == 1000 && !paused) {
            paused = true;
            usleep(300 * 1000);
        }
    }
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        FAILF("sender status %#x (last datagram %llu)", st, last);
    if (!closed_at)
        FAILF("no \"netlog closed\" line (last datagram %llu)", last);
    long e = 0;
    CHECK_EQ(read(res[0], &e, sizeof e), (ssize_t)sizeof e);
    CHECK(acked && e >= 1);
    CHECK(got > 1000);
    CHECK(closed_total >= total && closed_reports >= reports);
    /* Every message is accounted for: it took a number (the closing line's is the last;
     * each number below it either arrived or is a loss on the way the numbering shows)
     * or it was dropped, and counted, by the sender. The messages: the loggers', the
     * end markers, the drop reports, the closing line. */
    unsigned long long sent = 2 * (unsigned long long)nlog_count + (unsigned long long)e +
                              closed_reports + 1;
    if (closed_at + closed_total != sent)
        FAILF("%llu numbered + %llu dropped != %llu messages sent", closed_at, closed_total, sent);
    printf("    netlog: %llu datagrams, %llu received (%ld messages), %llu lost on the way, "
           "%llu dropped by the sender (%llu reports, %llu received), %llu repeated; never "
           "reordered\n",
           closed_at, got, got_msgs, closed_at - got, closed_total, closed_reports, reports, dups);
    close(s);
    close(ack[1]);
    close(res[0]);
}

/* ---- "dump" only from the collector's address ------------------------------------------------- */

static void idle_main(void *a)
{
    np_log("hello from the target");
    np_sleep(3600 * 1000 * MS);
}

/* Read datagrams from s until a dump's last line (" coroutines") or the deadline; the
 * requester lines ("np: dump requested by ...") are appended to who. Returns whether a
 * dump ended. */
static bool read_one_dump(int s, char *who, size_t whon, double secs)
{
    char b[2048];
    double end = t_secs() + secs;
    while (t_secs() < end) {
        struct pollfd p = {s, POLLIN, 0};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        ssize_t n = recv(s, b, sizeof b - 1, 0);
        if (n <= 0)
            continue;
        b[n] = 0;
        char *r = strstr(b, "np: dump requested by ");
        if (r && strlen(who) + strlen(r) + 2 < whon) {
            strcat(who, r);
            strcat(who, "\n");
        }
        if (strstr(b, "np: ") && strstr(b, " coroutines"))
            return true;
    }
    return false;
}

static void t_dump_request_only_from_collector(void)
{
    int port;
    int s = udp_bound("127.0.0.1", &port);
    pid_t pid = child();
    if (pid == 0) {
        child_netlog_to(port);
        t_procs(1);
        np_run(idle_main, NULL);
        _exit(0);
    }
    char b[2048];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    struct pollfd p = {s, POLLIN, 0};
    CHECK(poll(&p, 1, 20000) == 1);
    ssize_t n = recvfrom(s, b, sizeof b - 1, 0, (struct sockaddr *)&from, &fl);
    CHECK(n > 0);
    b[n] = 0;
    CHECK(strstr(b, "hello from the target") != NULL);
    /* a stranger (127.0.0.2) asks first, then the collector */
    int rport;
    int rogue = udp_bound("127.0.0.2", &rport);
    CHECK_EQ(sendto(rogue, "dump", 4, 0, (struct sockaddr *)&from, fl), 4);
    CHECK_EQ(sendto(s, "dump", 4, 0, (struct sockaddr *)&from, fl), 4);
    char who[4096] = "", me[128];
    snprintf(me, sizeof me, "np: dump requested by 127.0.0.1:%d\n", port);
    if (!read_one_dump(s, who, sizeof who, 20))
        FAILF("no dump came; requests seen:\n%.160s", who);
    /* the first dump to arrive is the collector's: the stranger's, asked for first, was
     * never received */
    if (strncmp(who, me, strlen(me)) != 0)
        FAILF("first dump requested by: %.80s want: %.60s", who, me);
    /* the collector asks again: whatever the stranger's request made would have come
     * before the end of this second dump */
    CHECK_EQ(sendto(s, "dump", 4, 0, (struct sockaddr *)&from, fl), 4);
    if (!read_one_dump(s, who, sizeof who, 20))
        FAILF("no second dump; requests seen:\n%.160s", who);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    char twice[2 * sizeof me];
    snprintf(twice, sizeof twice, "%s%s", me, me);
    if (strcmp(who, twice) != 0)
        FAILF("requests answered:\n%.160swant the collector's two only", who);
    close(rogue);
    close(s);
}

/* ---- stats ------------------------------------------------------------------------------------ */

static atomic_bool spin_stop;
static void yielder(void *a)
{
    while (!atomic_load(&spin_stop))
        np_yield();
}

static void stats_main(void *a)
{
    np_stats s0, s;
    CHECK_EQ(np_stats_get(&s0), 0);
    unbuf = np_chan_new(sizeof(int), 0);
    for (int i = 0; i < 3; i++)
        np_go(w_recv, NULL);
    np_go(w_sleep, NULL);
    int p[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
    sv[0] = p[0];
    CHECK_EQ(np_fd_open(p[0]), 0);
    np_go(w_read, NULL);
    for (;;) {
        CHECK_EQ(np_stats_get(&s), 0);
        /* (with 2 Ps the sleeper is counted waiting just before its timer is added) */
        if (s.waiting >= 5 && s.timers >= 1)
            break;
        np_yield();
    }
    CHECK_EQ(s.waiting_by[NP_WAIT_CHAN_RECV], 3);
    CHECK_EQ(s.waiting_by[NP_WAIT_SLEEP], 1);
    CHECK_EQ(s.waiting_by[NP_WAIT_IO], 1);
    CHECK_EQ(s.running, 1);
    CHECK_EQ(s.coroutines, 6);
    CHECK_EQ(s.procs, 2);
    CHECK_EQ(s.fds, 1);
    CHECK(s.switches > s0.switches);
    CHECK(s.timers >= 1);
    /* The reader is counted waiting from just before its park commits (np__park sets the
     * state, then blockcommit's CAS): readiness that comes in between cancels the park
     * and the reader runs on with no event counted. So a reader, a byte, and the reader
     * done; until the poller is seen to wake one (the count is added once its poll
     * returns: allow it a second). */
    double end;
    for (int try = 0;; try++) {
        if (try == 20)
            FAILF("20 readers woken, none by the poller (events %lld)", (long long)s.events);
        if (try > 0) {
            np_go(w_read, NULL);
            end = t_secs() + 20;
            do {
                CHECK(t_secs() < end);
                np_yield();
                CHECK_EQ(np_stats_get(&s), 0);
            } while (s.waiting_by[NP_WAIT_IO] != 1);
        }
        np_stats s1 = s;
        CHECK_EQ(write(p[1], "x", 1), 1);
        end = t_secs() + 20;
        do {
            if (t_secs() > end)
                FAILF("reader still waiting");
            np_yield();
            CHECK_EQ(np_stats_get(&s), 0);
        } while (s.waiting_by[NP_WAIT_IO] != 0);
        end = t_secs() + 1;
        while (s.events <= s1.events && t_secs() < end) {
            np_yield();
            CHECK_EQ(np_stats_get(&s), 0);
        }
        if (s.events > s1.events) {
            if (try > 0)
                printf("    %d reader(s) ran on without a poll event first\n", try);
            break;
        }
    }
    /* ... by a poll counted since s0. (Not necessarily since s1: a poll is counted when
     * it starts, and another thread may have been waiting in it when s1 was taken. At s0
     * no thread but this one and sysmon existed, and sysmon's polls do not wait.) */
    CHECK(s.polls > s0.polls);
    np_close(p[0]);
    close(p[1]);
    CHECK_EQ(np_stats_get(&s), 0);
    CHECK_EQ(s.fds, 0);
    /* Two coroutines seen running at once: two threads at least. (Not exactly two: a
     * thread that just gave its P back may not yet be idle when another is started for
     * that P.) */
    atomic_store(&spin_stop, false);
    np_go(yielder, NULL);
    end = t_secs() + 20;
    do {
        CHECK(t_secs() < end);
        CHECK_EQ(np_stats_get(&s), 0);
        np_yield();
    } while (s.running != 2);
    CHECK(s.threads >= 2);
    atomic_store(&spin_stop, true);
}

/* With one P and no blocking call nothing starts a second thread. */
static void stats_1p_main(void *a)
{
    np_stats s;
    unbuf = np_chan_new(sizeof(int), 0);
    np_go(w_recv, NULL);
    np_sleep(MS); /* (a timer, a poll) */
    CHECK_EQ(np_stats_get(&s), 0);
    CHECK_EQ(s.procs, 1);
    CHECK_EQ(s.threads, 1);
    CHECK_EQ(s.coroutines, 2);
    CHECK_EQ(s.running, 1);
    CHECK_EQ(s.waiting_by[NP_WAIT_CHAN_RECV], 1);
    CHECK_EQ(s.steals, 0);
}

static void t_stats_count_what_runs_and_waits(void)
{
    t_procs(2);
    T_RUN(stats_main, NULL);
    CHECK_EQ(np_chan_free(unbuf), 0); /* (its receivers were abandoned) */
    t_procs(1);
    T_RUN(stats_1p_main, NULL);
    CHECK_EQ(np_chan_free(unbuf), 0);
    np_stats s;
    CHECK_ERR(np_stats_get(&s), EPERM);
    CHECK_ERR(np_dump(2), EPERM);
}

/* ---- np_dump to a given fd ------------------------------------------------------------------ */

static int64_t dump_ids[3];
static char *dump_text;
static void dump_main(void *a)
{
    unbuf = np_chan_new(sizeof(int), 0);
    dump_ids[0] = np_go(w_recv, NULL);
    dump_ids[1] = np_go(w_recv, NULL);
    dump_ids[2] = np_go(w_sleep, NULL);
    np_stats s;
    do { /* all three wait (and the sleeper's timer is in) */
        CHECK_EQ(np_stats_get(&s), 0);
        np_yield();
    } while (s.waiting < 3 || s.timers < 1);
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(np_dump(p[1]), 0);
    close(p[1]);
    dump_text = slurp(p[0], 10);
    close(p[0]);
    /* a dump that cannot be written says so */
    CHECK_EQ(pipe(p), 0);
    close(p[0]);
    CHECK_ERR(np_dump(p[1]), EPIPE); /* (SIGPIPE is ignored inside np_run) */
    close(p[1]);
    CHECK_ERR(np_dump(p[1]), EBADF);
}

static void t_dump_to_fd_names_coroutines_and_waits(void)
{
    t_procs(2);
    T_RUN(dump_main, NULL);
    CHECK_EQ(np_chan_free(unbuf), 0);
    char *out = dump_text, want[96];
    if (!strstr(out, "np: coroutine dump (2 procs)\n") || !strstr(out, "np: 4 coroutines\n"))
        FAILF("dump header or count missing:\n%.200s", out);
    if (!strstr(out, " [running] (main):\n"))
        FAILF("main not shown running:\n%.200s", out);
    for (int i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "coroutine %lld [%s, ", (long long)dump_ids[i],
                 i < 2 ? "chan receive" : "sleep");
        if (!strstr(out, want))
            FAILF("dump lacks \"%s\":\n%.120s", want, out);
    }
    if (!strstr(out, park_frame()))
        FAILF("no backtrace through %s:\n%.200s", park_frame(), out);
    free(out);
}

/* ---- np_netlog_open's errors ------------------------------------------------------------------ */

static void t_netlog_open_errors(void)
{
    CHECK_ERR(np_netlog_open(NULL), EINVAL);
    CHECK_ERR(np_netlog_open("tcp://127.0.0.1:9"), EINVAL);
    CHECK_ERR(np_netlog_open("127.0.0.1:9"), EINVAL);
    CHECK_ERR(np_netlog_open("udp://127.0.0.1"), EINVAL);      /* no port */
    CHECK_ERR(np_netlog_open("udp://127.0.0.1:"), EINVAL);
    CHECK_ERR(np_netlog_open("udp://127.0.0.1:65536"), EINVAL);
    CHECK_ERR(np_netlog_open("udp://127.0.0.1:9x"), EINVAL);
    CHECK_ERR(np_netlog_open("udp://bad host!:9"), EINVAL);
    CHECK_ERR(np_netlog_open("udp://::1:9"), EINVAL);          /* IPv6 without brackets */
    CHECK_ERR(np_netlog_open("udp://no-such-host.invalid:9"), EHOSTUNREACH);
    int port;
    int s = udp_bound("127.0.0.1", &port);
    char url[64], b[2048];
    snprintf(url, sizeof url, "udp://127.0.0.1:%d", port);
    for (int round = 0; round < 2; round++) { /* open, busy, close; and again */
        CHECK_EQ(np_netlog_open(url), 0);
        CHECK_ERR(np_netlog_open(url), EBUSY);
        CHECK_ERR(np_netlog_open("udp://127.0.0.1:9"), EBUSY);
        int dn = open("/dev/null", O_WRONLY), e = dup(2);
        dup2(dn, 2);
        np_log("round %d", round);
        dup2(e, 2);
        close(e);
        close(dn);
        np_netlog_close();
        const char *want[] = {"np 1 1/1 round ", "np 2 1/1 np: netlog closed (0 dropped in all, 0 drop reports)"};
        for (int i = 0; i < 2; i++) {
            struct pollfd p = {s, POLLIN, 0};
            CHECK(poll(&p, 1, 20000) == 1);
            ssize_t n = recv(s, b, sizeof b - 1, 0);
            CHECK(n > 0);
            b[n] = 0;
            if (strncmp(b, want[i], strlen(want[i])) != 0)
                FAILF("got \"%.100s\", want \"%s...\"", b, want[i]);
        }
    }
    close(s);
}

/* ---- looks from another thread while runtimes start and stop ------------------------------ */

/* np_stats_get and np_dump may be called from any thread at any time: while np_run is
 * still building its scheduler or already tearing it down they fail with EPERM, never
 * look at half-built or freed state. A thread keeps looking while the main thread runs
 * short runtimes one after another. */
static atomic_bool lk_stop;
static atomic_long lk_seen, lk_refused;

static void *lk_looker(void *arg)
{
    int dn = open("/dev/null", O_WRONLY);
    CHECK(dn >= 0);
    while (!atomic_load(&lk_stop)) {
        np_stats s;
        if (np_stats_get(&s) == 0) {
            CHECK(s.procs == 1 || s.procs == 2);
            CHECK(s.threads >= 1);
            atomic_fetch_add(&lk_seen, 1);
        } else {
            CHECK_EQ(T_ERRNO, EPERM);
            atomic_fetch_add(&lk_refused, 1);
        }
        if (np_dump(dn) != 0)
            CHECK_EQ(T_ERRNO, EPERM);
    }
    close(dn);
    return NULL;
}

static void lk_main(void *arg)
{
    np_yield();
}

static void t_stats_and_dump_from_another_thread_across_runs(void)
{
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, lk_looker, NULL), 0);
    long runs = t_scaled(1000);
    for (long i = 0; i < runs; i++) {
        t_procs(1 + (int)(i % 2));
        T_RUN(lk_main, NULL);
    }
    atomic_store(&lk_stop, true);
    CHECK_EQ(pthread_join(th, NULL), 0);
    printf("    %ld runs: %ld looks answered, %ld refused (no runtime up)\n", runs,
           atomic_load(&lk_seen), atomic_load(&lk_refused));
    CHECK(atomic_load(&lk_refused) > 0);
}

/* ---- dumps from another thread while stacks come and go ------------------------------------
 * A dump reads other coroutines' stacks without stopping them: they run meanwhile (their
 * frames change, with sanitizer redzones in them), end, and give their stacks back (one
 * of its own size is unmapped). A thread dumps again and again while coroutines with such
 * stacks recurse, park and end: no fault, no sanitizer report, every dump whole. */
static atomic_bool dd_stop;
static atomic_long dd_dumps;

static void *dd_dumper(void *arg)
{
    (void)arg;
    int dn = open("/dev/null", O_WRONLY);
    CHECK(dn >= 0);
    while (!atomic_load(&dd_stop)) {
        CHECK_EQ(np_dump(dn), 0);
        atomic_fetch_add(&dd_dumps, 1);
    }
    close(dn);
    return NULL;
}

static int dd_deep(int depth)
{
    volatile char buf[200]; /* (a frame with redzones around it under ASan) */
    buf[0] = (char)depth;
    if (depth % 4 == 0)
        np_yield();
    int r = depth ? dd_deep(depth - 1) : 0;
    return r + buf[0];
}

static void dd_worker(void *arg)
{
    np_wg *dwg = arg;
    dd_deep(24);
    np_wg_done(dwg);
}

static void dd_main(void *arg)
{
    (void)arg;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, dd_dumper, NULL), 0);
    np_attr own = {.stack_size = 96 * 1024}; /* not the default: unmapped at its end */
    long ended = 0, want = t_scaled(4000);
    while (ended < want || atomic_load(&dd_dumps) < 200) {
        np_wg dwg = {0};
        np_wg_add(&dwg, 16);
        for (int i = 0; i < 16; i++)
            CHECK(np_go_attr(i % 2 ? &own : NULL, dd_worker, &dwg) > 0);
        np_wg_wait(&dwg);
        ended += 16;
    }
    atomic_store(&dd_stop, true);
    CHECK_EQ(pthread_join(th, NULL), 0);
    printf("    %ld coroutines ended under %ld dumps\n", ended, atomic_load(&dd_dumps));
}

static void t_dump_from_another_thread_while_stacks_come_and_go(void)
{
    t_procs(2);
    T_RUN(dd_main, NULL);
}

static const t_case cases[] = {
    T(t_sigquit_dump_names_every_wait),
    T(t_crash_report_reaches_collector),
    T(t_dump_while_every_p_spins),
    T(t_order_kept_with_paused_collector),
    T(t_dump_request_only_from_collector),
    T(t_stats_count_what_runs_and_waits),
    T(t_dump_to_fd_names_coroutines_and_waits),
    T(t_netlog_open_errors),
    T(t_stats_and_dump_from_another_thread_across_runs),
    T(t_dump_from_another_thread_while_stacks_come_and_go),
    {0},
};
T_MAIN(cases)
