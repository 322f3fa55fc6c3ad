/* The network layer end to end, with real processes where it matters: np-echo (a
 * separate process, started by fork+exec) against 10,000 concurrent connections, np-telnet
 * driven through a pty, the hand-off of a P stuck in a blocking call, accept under
 * EMFILE, unix / udp / IPv6 round trips, resets, EPIPE without SIGPIPE, half-close,
 * address parsing, dial errors and dial timeouts.
 *
 * Loopback only. Server processes get a port 20000 + pid % 20000 (another one if it is
 * taken), PR_SET_PDEATHSIG so they never outlive the case, and are stopped by pid.
 * The binaries are found next to this one: build[/VARIANT]/tests/test_net runs
 * build[/VARIANT]/bin/np-echo and np-telnet (falling back to build/bin/ with a note
 * when the variant has no examples built). Run once per poller (NP_POLLER). */
#include "t.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <termios.h>

#define MS 1000000LL
#define SEC 1000000000LL

/* Under TSan every coroutine is a fiber costing most of a MiB and milliseconds to create:
 * the 10,000-connection case runs ten times fewer there (on top of NP_TEST_SCALE). */
#if defined(__SANITIZE_THREAD__)
#define NET_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NET_TSAN 1
#endif
#endif

/* ---- helpers: time, paths, processes ------------------------------------------------- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/* Bounds on waits grow with the per-case timeout of slow builds (NP_TEST_SCALE > 1). */
static long timeout_scale(void) { return t_scale_v() > 1 ? 3 : 1; }

/* A short pause between two looks at an event that has no descriptor to wait on
 * (a process that is starting up, one that should exit): always inside a bounded loop. */
static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool is_exe(const char *p) { return access(p, X_OK) == 0; }

/* Path of an example binary: ../bin/NAME next to this test's directory, else the opt
 * build's (build/bin/NAME, from build/VARIANT/tests). */
static void bin_path(const char *name, char *out, size_t n)
{
    char self[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(l > 0);
    self[l] = 0;
    char *slash = strrchr(self, '/');
    CHECK(slash != NULL);
    *slash = 0; /* .../tests */
    snprintf(out, n, "%s/../bin/%s", self, name);
    if (is_exe(out))
        return;
    char alt[PATH_MAX + 64];
    snprintf(alt, sizeof alt, "%s/../../bin/%s", self, name);
    if (is_exe(alt)) {
        printf("note: %s not built for this variant (make VARIANT=... examples); using %s\n",
               out, alt);
        snprintf(out, n, "%s", alt);
        return;
    }
    FAILF("%s not found (build it: make examples)", out);
}

/* In a child about to exec: close every descriptor from lo up. */
static void close_from(int lo)
{
    if (syscall(SYS_close_range, (unsigned)lo, ~0U, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = lo; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
        close((int)fd);
}

/* fork, the child dying with this process. */
static pid_t fork_child(void)
{
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
    }
    return pid;
}

/* fork+exec argv[0] with NP_PROCS=procs (NULL: as inherited), RLIMIT_NOFILE soft limit
 * nofile (0: as inherited), stdin from /dev/null. The child dies with this process. */
static pid_t spawn(char *const argv[], const char *procs, rlim_t nofile)
{
    pid_t pid = fork_child();
    if (pid == 0) {
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL); /* the server must cope with SIGPIPE itself */
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) {
            dup2(dn, 0);
            dup2(dn, 1);
            if (dn > 2)
                close(dn);
        }
        close_from(3); /* nothing inherited beyond stdio: descriptor counts are exact */
        if (procs)
            setenv("NP_PROCS", procs, 1);
        if (nofile) {
            struct rlimit rl;
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = nofile;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Non-zero if pid has exited (reaped; *st its status). */
static bool exited(pid_t pid, int *st)
{
    int s = 0;
    pid_t r = waitpid(pid, &s, WNOHANG);
    if (r == pid) {
        if (st)
            *st = s;
        return true;
    }
    return false;
}

static void set_fd_timeout(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A plain blocking TCP connection to 127.0.0.1:port (or [::1] when v6), -1 on failure. */
static int plain_connect(int port, bool v6)
{
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    set_fd_timeout(s, 10000);
    int r;
    if (v6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                 .sin6_addr = in6addr_loopback};
        r = connect(s, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        r = connect(s, (struct sockaddr *)&a, sizeof a);
    }
    if (r != 0) {
        int e = errno;
        close(s);
        errno = e;
        return -1;
    }
    return s;
}

/* Plain blocking read of exactly n bytes, bounded by the socket's timeout. */
static bool plain_read_full(int fd, void *buf, size_t n)
{
    size_t have = 0;
    while (have < n) {
        ssize_t r = read(fd, (char *)buf + have, n - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        have += (size_t)r;
    }
    return true;
}

static bool plain_echo(int fd, const char *msg)
{
    size_t n = strlen(msg);
    char got[256];
    if (n > sizeof got || write(fd, msg, n) != (ssize_t)n)
        return false;
    return plain_read_full(fd, got, n) && memcmp(got, msg, n) == 0;
}

/* Is a TCP port free on every address (v4 and v6)? */
static bool port_free(int port)
{
    int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) { /* no IPv6: look at IPv4 only */
        s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        bool ok = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0;
        if (s >= 0)
            close(s);
        return ok;
    }
    int zero = 0;
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                             .sin6_addr = in6addr_any};
    bool ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

/* Read /proc/PID/NAME into b (NUL-terminated). Returns the length, or -1. */
static ssize_t read_proc(pid_t pid, const char *name, char *b, size_t size)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/%s", (int)pid, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, b, size - 1);
    close(fd);
    b[n > 0 ? n : 0] = 0;
    return n;
}

/* A server process misbehaves: show its state, ask it for a coroutine dump (SIGQUIT
 * prints every coroutine to its standard error, which is ours), then end it. */
static void server_diagnose(pid_t pid)
{
    char b[4096];
    if (read_proc(pid, "status", b, sizeof b) >= 0) {
        for (char *line = strtok(b, "\n"); line; line = strtok(NULL, "\n"))
            if (!strncmp(line, "State:", 6) || !strncmp(line, "Threads:", 8))
                fprintf(stderr, "server %d %s\n", (int)pid, line);
    }
    kill(pid, SIGQUIT);
    int64_t until = mono_ns() + 5 * SEC;
    while (!exited(pid, NULL) && mono_ns() < until)
        nap_ms(10);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

typedef struct server {
    pid_t pid;
    int port;
} server;

/* Start np-echo PORT as a process and wait (bounded) until it accepts connections. */
static void echo_start(server *s, const char *procs, rlim_t nofile)
{
    char path[PATH_MAX + 64];
    bin_path("np-echo", path, sizeof path);
    int64_t limit = 30 * SEC * timeout_scale();
    for (int attempt = 0; attempt < 40; attempt++) {
        int port = 20000 + (int)((getpid() + attempt * 7919) % 20000);
        if (!port_free(port))
            continue;
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        char *argv[] = {path, ps, NULL};
        pid_t pid = spawn(argv, procs, nofile);
        int64_t until = mono_ns() + limit;
        int st;
        for (;;) {
            if (exited(pid, &st))
                break; /* could not bind (taken meanwhile): another port */
            int c = plain_connect(port, false);
            if (c >= 0) {
                close(c);
                s->pid = pid;
                s->port = port;
                return;
            }
            if (mono_ns() > until) {
                server_diagnose(pid);
                FAILF("np-echo on port %d did not start listening", port);
            }
            nap_ms(5);
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
            FAILF("cannot exec %.200s", path);
    }
    FAILF("no free port for np-echo");
}

/* The server must still be running (not killed by SIGPIPE or anything else). */
static void server_alive(const server *s)
{
    int st;
    if (exited(s->pid, &st)) {
        if (WIFSIGNALED(st))
            FAILF("np-echo died of signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
        FAILF("np-echo exited, status %d", WIFEXITED(st) ? WEXITSTATUS(st) : st);
    }
}

static void server_stop(server *s)
{
    server_alive(s);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* ---- helpers inside the runtime ------------------------------------------------------- */

/* Read exactly n bytes; returns n, the short count at EOF, or -1. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t have = 0;
    while (have < n) {
        ssize_t r = np_read(fd, (char *)buf + have, n - have);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        have += (size_t)r;
    }
    return (ssize_t)have;
}

struct wjob { int fd; const void *msg; size_t n; np_chan *done; };
static void wjob_run(void *a)
{
    struct wjob *j = a;
    ssize_t w = np_write(j->fd, j->msg, j->n);
    np_chan_send(j->done, &w);
}

/* Write msg and read it back (from an echo server), every byte compared. The write runs
 * in a coroutine of its own, beside the read: with a big message, writing it all before
 * reading can fill every socket buffer on the way and stall both ends. */
static void echo_roundtrip(int fd, const void *msg, size_t n)
{
    char *got = malloc(n ? n : 1);
    CHECK(got != NULL);
    struct wjob j = {fd, msg, n, np_chan_new(sizeof(ssize_t), 1)};
    CHECK(j.done != NULL);
    CHECK(np_go(wjob_run, &j) > 0);
    ssize_t r = read_full(fd, got, n);
    ssize_t w = -1;
    CHECK_EQ(np_chan_recv(j.done, &w), 1);
    np_chan_free(j.done);
    CHECK_EQ(w, n);
    if (r != (ssize_t)n)
        FAILF("echo: read %zd of %zu bytes (errno %d %s)", r, n, t_errno(), strerror(t_errno()));
    CHECK(memcmp(got, msg, n) == 0);
    free(got);
}

/* Dial network/address and check an echo of a few sizes; closes the connection. */
static void dial_echo(const char *network, const char *address)
{
    int fd = np_dial(network, address, 5 * SEC * timeout_scale());
    int e = t_errno();
    if (fd < 0)
        FAILF("np_dial(%s, %s): %s", network, address, strerror(e));
    CHECK_EQ(np_set_deadline(fd, np_now() + 10 * SEC * timeout_scale()), 0);
    char msg[64];
    int n = snprintf(msg, sizeof msg, "hello %s %s\n", network, address);
    echo_roundtrip(fd, msg, (size_t)n);
    static char big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 131 + 7);
    echo_roundtrip(fd, big, sizeof big);
    CHECK_EQ(np_close(fd), 0);
}

static int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&ss, &l), 0);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    CHECK_EQ(ss.ss_family, AF_INET6);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* At least n coroutines parked on descriptors (the test's servers may be too). */
static void wait_io_parked(int64_t n) { t_wait_blocked(NP_WAIT_IO, n, true); }

/* An in-process echo server: accepts conns connections on lfd, echoes each until EOF. */
typedef struct srv {
    int lfd, conns;
    np_wg wg;
    struct sockaddr_storage peer; /* the last peer accepted */
} srv;

typedef struct srv_conn {
    srv *s;
    int fd;
} srv_conn;

static void srv_serve(void *arg)
{
    srv_conn *c = arg;
    char buf[8192];
    ssize_t n;
    while ((n = np_read(c->fd, buf, sizeof buf)) > 0)
        if (np_write(c->fd, buf, (size_t)n) != n)
            break;
    np_close(c->fd);
    np_wg_done(&c->s->wg);
    free(c);
}

static void srv_accept(void *arg)
{
    srv *s = arg;
    for (int i = 0; i < s->conns; i++) {
        socklen_t l = sizeof s->peer;
        int fd = np_accept(s->lfd, (struct sockaddr *)&s->peer, &l);
        int e = t_errno();
        if (fd < 0)
            FAILF("np_accept: %s", strerror(e));
        srv_conn *c = malloc(sizeof *c);
        CHECK(c != NULL);
        c->s = s;
        c->fd = fd;
        np_go(srv_serve, c);
    }
    np_wg_done(&s->wg);
}

static void srv_start(srv *s, int lfd, int conns)
{
    memset(s, 0, sizeof *s);
    s->lfd = lfd;
    s->conns = conns;
    np_wg_add(&s->wg, conns + 1);
    CHECK(np_go(srv_accept, s) > 0);
}

/* ---- 10,000 concurrent connections to np-echo, every byte checked -------------------- */

static struct {
    int port;
    long n;
    int64_t timeout;
    np_wg dialed, done;
    np_chan *inflight; /* bounds the dials in progress: a starved server's accept queue
                        * (somaxconn) must not overflow into SYN retransmits of seconds */
} big;

static size_t big_len(long i) { return 1 + (size_t)((i * 7919) % 9000); }

static void big_fill(unsigned char *b, size_t n, long i)
{
    uint64_t s = (uint64_t)i * 0x9E3779B97F4A7C15ULL + 12345;
    for (size_t k = 0; k < n; k++)
        b[k] = (unsigned char)(t_rand(&s) >> 56);
}

static void big_conn(void *arg)
{
    long i = (long)(intptr_t)arg;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", big.port);
    char token = 0;
    CHECK_EQ(np_chan_send(big.inflight, &token), 0);
    int fd = np_dial("tcp", addr, big.timeout);
    int e = t_errno();
    if (fd < 0)
        FAILF("connection %ld: np_dial: %s", i, strerror(e));
    CHECK_EQ(np_chan_recv(big.inflight, NULL), 1);
    np_wg_done(&big.dialed);
    np_wg_wait(&big.dialed); /* every connection is open at the same time */
    size_t n = big_len(i);
    unsigned char *out = malloc(n), *in = malloc(n);
    CHECK(out && in);
    big_fill(out, n, i);
    CHECK_EQ(np_set_deadline(fd, np_now() + big.timeout), 0);
    ssize_t w = np_write(fd, out, n);
    e = t_errno();
    if (w != (ssize_t)n)
        FAILF("connection %ld: np_write %zd of %zu: %s", i, w, n, strerror(e));
    ssize_t r = read_full(fd, in, n);
    e = t_errno();
    if (r != (ssize_t)n)
        FAILF("connection %ld: read %zd of %zu bytes back: %s", i, r, n,
              r < 0 ? strerror(e) : "EOF");
    for (size_t k = 0; k < n; k++)
        if (in[k] != out[k])
            FAILF("connection %ld: byte %zu is %#x, sent %#x", i, k, in[k], out[k]);
    CHECK_EQ(np_close(fd), 0);
    free(out);
    free(in);
    np_wg_done(&big.done);
}

static void big_main(void *arg)
{
    if (strcmp(np_poller_name(), "select") == 0 && big.n > 400) {
        printf("note: select poller (descriptors < %d): %ld connections instead of %ld\n",
               FD_SETSIZE, 400L, big.n);
        big.n = 400;
    }
    big.inflight = np_chan_new(1, 1000);
    CHECK(big.inflight != NULL);
    int64_t t0 = np_now();
    np_attr a = {.stack_size = 64 * 1024};
    np_wg_add(&big.dialed, big.n);
    np_wg_add(&big.done, big.n);
    for (long i = 0; i < big.n; i++)
        if (np_go_attr(&a, big_conn, (void *)(intptr_t)i) <= 0)
            FAILF("np_go_attr failed at %ld", i);
    np_wg_wait(&big.dialed);
    int64_t t1 = np_now();
    np_wg_wait(&big.done);
    CHECK_EQ(np_chan_free(big.inflight), 0);
    printf("note: %ld connections (%s) dialed in %.2fs, echoed in %.2fs more\n", big.n,
           np_poller_name(), (t1 - t0) / 1e9, (np_now() - t1) / 1e9);
}

static void t_echo_10k_concurrent_connections_every_byte(void)
{
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0); /* the server inherits it too */
    big.n = t_scaled(10000);
#ifdef NET_TSAN
    big.n = big.n / 10 > 0 ? big.n / 10 : 1;
#endif
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < big.n + 100) {
        long n = (long)rl.rlim_cur - 100;
        printf("note: RLIMIT_NOFILE hard limit %ld: %ld connections instead of %ld\n",
               (long)rl.rlim_cur, n, big.n);
        big.n = n;
    }
    CHECK(big.n > 0);
    big.timeout = 30 * SEC * timeout_scale();
    server s;
    echo_start(&s, "2", 0);
    big.port = s.port;
    t_procs(2);
    T_RUN(big_main, NULL);
    server_stop(&s);
}

/* ---- np-telnet driven through a pty ---------------------------------------------------- */

/* Read from the pty master into buf until needle shows (true) or ms pass (false). */
static bool pty_wait_for(int m, char *buf, size_t cap, size_t *have, const char *needle, int ms)
{
    int64_t until = mono_ns() + ms * MS;
    for (;;) {
        buf[*have] = 0;
        if (strstr(buf, needle))
            return true;
        int64_t left = (until - mono_ns()) / MS;
        if (left <= 0)
            return false;
        struct pollfd p = {m, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        ssize_t n = read(m, buf + *have, cap - 1 - *have);
        if (n <= 0)
            return false; /* EIO: the slave side is closed */
        *have += (size_t)n;
    }
}

static void t_telnet_through_pty(void)
{
    server s;
    echo_start(&s, "1", 0);
    char path[PATH_MAX + 64];
    bin_path("np-telnet", path, sizeof path);

    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(m >= 0);
    CHECK_EQ(grantpt(m), 0);
    CHECK_EQ(unlockpt(m), 0);
    char name[128];
    CHECK_EQ(ptsname_r(m, name, sizeof name), 0);
    int sl = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(sl >= 0);
    /* No tty echo: every "hello np" on the master then comes from the server. Canonical
     * mode stays on, so VEOF at the start of a line reads as end of file. */
    struct termios tio;
    CHECK_EQ(tcgetattr(sl, &tio), 0);
    tio.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    tio.c_lflag |= ICANON;
    CHECK_EQ(tcsetattr(sl, TCSANOW, &tio), 0);
    char veof = (char)tio.c_cc[VEOF];

    char ps[16];
    snprintf(ps, sizeof ps, "%d", s.port);
    pid_t pid = fork_child();
    if (pid == 0) {
        setsid();
        ioctl(sl, TIOCSCTTY, 0);
        dup2(sl, 0);
        dup2(sl, 1);
        dup2(sl, 2);
        close_from(3);
        setenv("NP_PROCS", "2", 1);
        signal(SIGPIPE, SIG_DFL);
        execl(path, path, "127.0.0.1", ps, (char *)NULL);
        _exit(127);
    }
    close(sl);

    char buf[4096];
    size_t have = 0;
    const char *line = "hello np\n";
    CHECK_EQ(write(m, line, strlen(line)), (ssize_t)strlen(line));
    if (!pty_wait_for(m, buf, sizeof buf, &have, "hello np", 10000 * (int)timeout_scale()))
        FAILF("no echo through np-telnet; the terminal showed \"%.200s\"", buf);
    /* a second line, after the first was answered */
    CHECK_EQ(write(m, "second line\n", 12), 12);
    if (!pty_wait_for(m, buf, sizeof buf, &have, "second line", 10000 * (int)timeout_scale()))
        FAILF("no echo of the second line; the terminal showed \"%.200s\"", buf);
    /* end of input: np-telnet half-closes, np-echo closes, np-telnet exits 0 */
    CHECK_EQ(write(m, &veof, 1), 1);
    int64_t until = mono_ns() + 10 * SEC * timeout_scale();
    int st = 0;
    bool done = false;
    while (!(done = exited(pid, &st)) && mono_ns() < until) {
        struct pollfd p = {m, POLLIN, 0};
        if (poll(&p, 1, 20) > 0 && read(m, buf, sizeof buf - 1) < 0)
            nap_ms(5); /* slave closed (EIO): only the exit is left to see */
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        FAILF("np-telnet did not exit after end of input");
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        FAILF("np-telnet ended with status %#x", st);
    close(m);
    server_stop(&s);
}

/* ---- hand-off: a blocking call does not stall the only P ------------------------------- */

static struct {
    int lfd, port;
    int ready[2];   /* client thread -> main coroutine: connected, warm-up echo done */
    int started[2]; /* blocking call -> client thread: it has begun */
    _Atomic int blocking_done;
    int64_t block_start, block_end, ping_sent, pong_got;
    bool during;
    const char *err;
    pthread_t th;
} ho;

static void *ho_sleep(void *arg)
{
    ho.block_start = mono_ns();
    if (write(ho.started[1], "s", 1) != 1)
        ho.err = "cannot signal the start of the blocking call";
    struct timespec ts = {1, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    ho.block_end = mono_ns();
    atomic_store(&ho.blocking_done, 1);
    return NULL;
}

static void *ho_client_run(void)
{
    int fd = plain_connect(ho.port, false);
    if (fd < 0) {
        ho.err = "connect failed";
        return NULL;
    }
    if (!plain_echo(fd, "warm")) {
        ho.err = "warm-up echo failed";
        close(fd);
        return NULL;
    }
    if (write(ho.ready[1], "r", 1) != 1)
        ho.err = "cannot signal readiness";
    struct pollfd p = {ho.started[0], POLLIN, 0};
    char c;
    if (poll(&p, 1, 20000) != 1 || read(ho.started[0], &c, 1) != 1) {
        ho.err = "the blocking call never started";
        close(fd);
        return NULL;
    }
    set_fd_timeout(fd, 5000);
    ho.ping_sent = mono_ns();
    bool ok = plain_echo(fd, "ping");
    ho.pong_got = mono_ns();
    ho.during = !atomic_load(&ho.blocking_done);
    if (!ok)
        ho.err = "no echo within 5 s of the blocking call's start";
    close(fd);
    return NULL;
}

/* The client: a plain thread with blocking sockets. Ends by closing ready[1]. */
static void *ho_client(void *arg)
{
    ho_client_run();
    close(ho.ready[1]);
    return NULL;
}

/* One measurement: a fresh listener, client thread and blocking call. Returns the echo
 * round trip in ms (the echo must come back while the call is still on). */
static double ho_attempt(void)
{
    memset(&ho, 0, sizeof ho);
    ho.lfd = np_listen("tcp", "127.0.0.1:0");
    CHECK(ho.lfd >= 0);
    ho.port = local_port(ho.lfd);
    srv s;
    srv_start(&s, ho.lfd, 1);
    CHECK_EQ(pipe2(ho.ready, O_CLOEXEC), 0);
    CHECK_EQ(pipe2(ho.started, O_CLOEXEC), 0);
    CHECK_EQ(np_fd_open(ho.ready[0]), 0);
    CHECK_EQ(pthread_create(&ho.th, NULL, ho_client, NULL), 0);
    char c;
    CHECK_EQ(np_set_read_deadline(ho.ready[0], np_now() + 20 * SEC), 0);
    if (np_read(ho.ready[0], &c, 1) != 1)
        FAILF("client not ready: %s", ho.err ? ho.err : "?");
    /* the only P's thread now sleeps a second in a blocking call */
    np_blocking(ho_sleep, NULL);
    /* the client is done when it closes its end (this coroutine parks meanwhile) */
    ssize_t r = np_read(ho.ready[0], &c, 1);
    int e = t_errno();
    if (r != 0)
        FAILF("waiting for the client: %zd (%s)", r, strerror(e));
    pthread_join(ho.th, NULL); /* it has returned, or is about to */
    if (ho.err)
        FAILF("%s", ho.err);
    double rtt = (ho.pong_got - ho.ping_sent) / 1e6;
    double blocked = (ho.block_end - ho.block_start) / 1e6;
    printf("note: echo round trip %.2f ms during a %.0f ms blocking call\n", rtt, blocked);
    CHECK(blocked >= 1000);
    CHECK(ho.ping_sent >= ho.block_start);
    if (!ho.during || ho.pong_got > ho.block_end)
        FAILF("the echo came back only after the blocking call ended (rtt %.1f ms)", rtt);
    np_wg_wait(&s.wg); /* the client closed: the server coroutines end */
    np_close(ho.ready[0]);
    close(ho.started[0]);
    close(ho.started[1]);
    np_close(ho.lfd);
    return rtt;
}

static void ho_main(void *arg)
{
    CHECK_EQ(np_procs(), 1);
    /* Without a hand-off the echo waits the whole second. A loaded machine can stall any
     * thread for a while: up to three tries, the best must be well under the second. */
    double best = 1e9;
    for (int i = 0; i < 3 && best >= 300; i++) {
        double rtt = ho_attempt();
        best = rtt < best ? rtt : best;
    }
    if (best >= 300)
        FAILF("echo round trip %.1f ms (best of 3) while a blocking call held the only P",
              best);
}

static void t_blocking_call_hands_off_the_only_p(void)
{
    t_procs(1);
    T_RUN(ho_main, NULL);
}

/* ---- accept under EMFILE: backs off, does not spin, recovers -------------------------- */

static int fd_count(pid_t pid)
{
    char d[64];
    snprintf(d, sizeof d, "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(d);
    if (!dir)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir)))
        if (de->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

/* CPU time (user + system) of pid, in seconds. */
static double cpu_secs(pid_t pid)
{
    char b[2048];
    CHECK(read_proc(pid, "stat", b, sizeof b) > 0);
    char *s = strrchr(b, ')');
    CHECK(s != NULL);
    s += 2; /* field 3, the state */
    unsigned long long ut = 0, st = 0;
    for (int field = 3; field < 14; field++) {
        s = strchr(s, ' ');
        CHECK(s != NULL);
        s++;
    }
    CHECK_EQ(sscanf(s, "%llu %llu", &ut, &st), 2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void t_accept_survives_emfile_without_spinning(void)
{
    enum { LIMIT = 64, CONNS = LIMIT + 40 };
    server s;
    echo_start(&s, "2", LIMIT);
    int c[CONNS];
    for (int i = 0; i < CONNS; i++) {
        c[i] = plain_connect(s.port, false); /* the kernel completes them: backlog 4096 */
        if (c[i] < 0)
            FAILF("connect %d: %s", i, strerror(errno));
    }
    /* wait until the server holds every descriptor it may */
    int64_t until = mono_ns() + 10 * SEC * timeout_scale();
    int n;
    while ((n = fd_count(s.pid)) < LIMIT && mono_ns() < until) {
        server_alive(&s);
        nap_ms(5);
    }
    if (n != LIMIT) {
        server_diagnose(s.pid);
        FAILF("np-echo holds %d descriptors, expected to reach its limit %d", n, LIMIT);
    }
    CHECK(plain_echo(c[0], "a")); /* accepted connections are served meanwhile */
    /* CPU over about a second, out of descriptors with connections pending */
    double c0 = cpu_secs(s.pid), w0 = t_secs();
    nap_ms(1000);
    double c1 = cpu_secs(s.pid), w1 = t_secs();
    double share = (c1 - c0) / (w1 - w0);
    printf("note: np-echo used %.1f%% of a core while out of descriptors\n", share * 100);
    server_alive(&s);
    CHECK_EQ(fd_count(s.pid), LIMIT);
    if (share >= 0.30)
        FAILF("np-echo spins on EMFILE: %.0f%% of a core", share * 100);
    /* free descriptors: every pending connection gets served */
    for (int i = 0; i < LIMIT; i++)
        close(c[i]);
    for (int i = LIMIT; i < CONNS; i++) {
        char msg[16];
        snprintf(msg, sizeof msg, "c%d", i);
        if (!plain_echo(c[i], msg)) {
            server_diagnose(s.pid);
            FAILF("pending connection %d not served after descriptors were freed", i);
        }
    }
    for (int i = LIMIT; i < CONNS; i++)
        close(c[i]);
    server_stop(&s);
}

/* ---- unix sockets ---------------------------------------------------------------------- */

static void unix_main(void *arg)
{
    char path[108], abstract[64];
    snprintf(path, sizeof path, "/tmp/np-test-net-%d.sock", (int)getpid());
    snprintf(abstract, sizeof abstract, "@np-test-net-%d", (int)getpid());
    unlink(path);
    const char *addrs[] = {path, abstract};
    for (int k = 0; k < 2; k++) {
        int l = np_listen("unix", addrs[k]);
        int e = t_errno();
        if (l < 0)
            FAILF("np_listen(unix, %s): %s", addrs[k], strerror(e));
        srv s;
        srv_start(&s, l, 2);
        dial_echo("unix", addrs[k]);
        /* half-close over a unix socket too: the echo still comes back, then EOF */
        int fd = np_dial("unix", addrs[k], 5 * SEC);
        CHECK(fd >= 0);
        CHECK_EQ(np_set_deadline(fd, np_now() + 10 * SEC * timeout_scale()), 0);
        CHECK_EQ(np_write(fd, "bye", 3), 3);
        CHECK_EQ(np_shutdown(fd, SHUT_WR), 0);
        char b[8];
        CHECK_EQ(read_full(fd, b, sizeof b), 3);
        CHECK(memcmp(b, "bye", 3) == 0);
        CHECK_EQ(np_close(fd), 0);
        np_wg_wait(&s.wg);
        CHECK_EQ(s.peer.ss_family, AF_UNIX);
        CHECK_EQ(np_close(l), 0);
    }
    CHECK_EQ(unlink(path), 0);
    CHECK_ERR(np_dial("unix", path, SEC), ENOENT); /* the socket file is gone */
}

static void t_unix_round_trip(void)
{
    t_procs(2);
    T_RUN(unix_main, NULL);
}

/* ---- udp --------------------------------------------------------------------------------- */

static void udp_server(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static char b[65536];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = np_recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            return; /* closed: the test is over */
        if (n == 4 && memcmp(b, "quit", 4) == 0)
            return;
        CHECK_EQ(np_sendto(fd, b, (size_t)n, 0, (struct sockaddr *)&from, fl), n);
    }
}

static void udp_pair(const char *network, const char *host, bool v6)
{
    char addr[64];
    snprintf(addr, sizeof addr, "%s:0", host);
    int s = np_listen(network, addr);
    int e = t_errno();
    if (s < 0)
        FAILF("np_listen(%s, %s): %s", network, addr, strerror(e));
    int port = local_port(s);
    np_go(udp_server, (void *)(intptr_t)s);
    snprintf(addr, sizeof addr, "%s:%d", host, port);
    /* a connected socket from np_dial: write / read */
    int c = np_dial(network, addr, SEC);
    e = t_errno();
    if (c < 0)
        FAILF("np_dial(%s, %s): %s", network, addr, strerror(e));
    CHECK_EQ(np_set_read_deadline(c, np_now() + 10 * SEC * timeout_scale()), 0);
    static char out[60000], in[65536];
    const size_t sizes[] = {1, 100, 1400, 9000, sizeof out};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (size_t i = 0; i < sizes[k]; i++)
            out[i] = (char)(i * 7 + k);
        /* one datagram back, whole; UDP may drop one on a loaded machine: send again
         * after a quiet second, and skip a late reply to an earlier datagram */
        bool got = false;
        for (int attempt = 0; !got; attempt++) {
            CHECK(attempt < 10);
            CHECK_EQ(np_write(c, out, sizes[k]), sizes[k]);
            CHECK_EQ(np_set_read_deadline(c, np_now() + SEC * timeout_scale()), 0);
            ssize_t n;
            while (!got && (n = np_read(c, in, sizeof in)) >= 0)
                got = (size_t)n == sizes[k] && memcmp(in, out, sizes[k]) == 0;
            if (!got)
                CHECK_EQ(t_errno(), ETIMEDOUT);
        }
    }
    /* an unconnected socket: np_sendto / np_recvfrom, the reply comes from the server */
    snprintf(addr, sizeof addr, "%s:0", host);
    int u = np_listen(network, addr);
    CHECK(u >= 0);
    CHECK_EQ(np_set_read_deadline(u, np_now() + 10 * SEC * timeout_scale()), 0);
    struct sockaddr_storage to;
    socklen_t tl = sizeof to;
    CHECK_EQ(getsockname(s, (struct sockaddr *)&to, &tl), 0);
    CHECK_EQ(np_sendto(u, "datagram", 8, 0, (struct sockaddr *)&to, tl), 8);
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    memset(in, 0, 16);
    CHECK_EQ(np_recvfrom(u, in, sizeof in, 0, (struct sockaddr *)&from, &fl), 8);
    CHECK(memcmp(in, "datagram", 8) == 0);
    CHECK_EQ(from.ss_family, v6 ? AF_INET6 : AF_INET);
    if (v6)
        CHECK_EQ(ntohs(((struct sockaddr_in6 *)&from)->sin6_port), port);
    else
        CHECK_EQ(ntohs(((struct sockaddr_in *)&from)->sin_port), port);
    CHECK_EQ(np_write(c, "quit", 4), 4);
    CHECK_EQ(np_close(u), 0);
    CHECK_EQ(np_close(c), 0);
    /* the server coroutine may still be in np_recvfrom if "quit" raced: close wakes it */
    CHECK_EQ(np_close(s), 0);
}

static void udp_main(void *arg)
{
    udp_pair("udp", "127.0.0.1", false);
    udp_pair("udp4", "127.0.0.1", false);
    udp_pair("udp", "[::1]", true);
    udp_pair("udp6", "[::1]", true);
}

static void t_udp_round_trip(void)
{
    t_procs(2);
    T_RUN(udp_main, NULL);
}

/* ---- IPv6 loopback --------------------------------------------------------------------- */

static void v6_main(void *arg)
{
    const char *nets[] = {"tcp6", "tcp"};
    for (int k = 0; k < 2; k++) {
        int l = np_listen(nets[k], "[::1]:0");
        int e = t_errno();
        if (l < 0)
            FAILF("np_listen(%s, [::1]:0): %s", nets[k], strerror(e));
        char addr[64];
        snprintf(addr, sizeof addr, "[::1]:%d", local_port(l));
        srv s;
        srv_start(&s, l, 2);
        dial_echo("tcp6", addr);
        dial_echo("tcp", addr);
        np_wg_wait(&s.wg);
        CHECK_EQ(s.peer.ss_family, AF_INET6);
        CHECK(memcmp(&((struct sockaddr_in6 *)&s.peer)->sin6_addr, &in6addr_loopback,
                     sizeof in6addr_loopback) == 0);
        /* the v6 listener is not reachable over v4 */
        snprintf(addr, sizeof addr, "127.0.0.1:%d", local_port(l));
        int fd = np_dial("tcp4", addr, SEC);
        int e2 = t_errno();
        if (fd >= 0)
            FAILF("dialed a [::1] listener through 127.0.0.1");
        CHECK_EQ(e2, ECONNREFUSED);
        CHECK_EQ(np_close(l), 0);
    }
}

static void t_ipv6_loopback(void)
{
    t_procs(2);
    T_RUN(v6_main, NULL);
}

/* ---- ':PORT' listens on every address; 'localhost:PORT' dials ---------------------------- */

static int any_port;

static void any_main(void *arg)
{
    char a4[32], a6[32], ah[32], al[32];
    snprintf(a4, sizeof a4, "127.0.0.1:%d", any_port);
    snprintf(a6, sizeof a6, "[::1]:%d", any_port);
    snprintf(ah, sizeof ah, ":%d", any_port);
    snprintf(al, sizeof al, "localhost:%d", any_port);
    dial_echo("tcp", a4);
    dial_echo("tcp4", a4);
    dial_echo("tcp", a6);
    dial_echo("tcp6", a6);
    dial_echo("tcp", ah); /* dialing ":PORT" means this host */
    dial_echo("tcp", al);
    dial_echo("tcp4", al);
    /* in-process: np_listen("tcp", ":0") takes both families as well */
    int l = np_listen("tcp", ":0");
    CHECK(l >= 0);
    int port = local_port(l);
    snprintf(a4, sizeof a4, "127.0.0.1:%d", port);
    snprintf(a6, sizeof a6, "[::1]:%d", port);
    srv s;
    srv_start(&s, l, 2);
    dial_echo("tcp", a4);
    dial_echo("tcp", a6);
    np_wg_wait(&s.wg);
    CHECK_EQ(np_close(l), 0);
}

static void t_listen_any_port_and_dial_localhost(void)
{
    server s;
    echo_start(&s, "2", 0); /* np-echo listens on ":PORT" */
    any_port = s.port;
    t_procs(2);
    T_RUN(any_main, NULL);
    server_stop(&s);
}

/* ---- ECONNRESET ---------------------------------------------------------------------------- */

static np_chan *rst_ch;

static void rst_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b[16];
    T_ERRNO = 0;
    ssize_t r = np_read(fd, b, sizeof b);
    int res[2] = {(int)r, t_errno()};
    np_chan_send(rst_ch, res);
}

static void reset_by(int a)
{
    struct linger lg = {1, 0};
    CHECK_EQ(setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    CHECK_EQ(np_close(a), 0); /* sends RST */
}

static void rst_main(void *arg)
{
    rst_ch = np_chan_new(sizeof(int[2]), 1);
    const char *hosts[] = {"127.0.0.1", "[::1]"};
    for (int k = 0; k < 2; k++) {
        char addr[64];
        snprintf(addr, sizeof addr, "%s:0", hosts[k]);
        int l = np_listen("tcp", addr);
        CHECK(l >= 0);
        snprintf(addr, sizeof addr, "%s:%d", hosts[k], local_port(l));

        /* the reset is there before the read */
        int c = np_dial("tcp", addr, 5 * SEC);
        CHECK(c >= 0);
        int a = np_accept(l, NULL, NULL);
        CHECK(a >= 0);
        CHECK_EQ(np_set_deadline(c, np_now() + 10 * SEC * timeout_scale()), 0);
        CHECK_EQ(np_write(c, "x", 1), 1); /* both ends established and in use */
        char b;
        CHECK_EQ(np_read(a, &b, 1), 1);
        reset_by(a);
        CHECK_ERR(np_read(c, &b, 1), ECONNRESET);
        CHECK_EQ(np_close(c), 0);

        /* the reset arrives while a reader is parked */
        c = np_dial("tcp", addr, 5 * SEC);
        CHECK(c >= 0);
        a = np_accept(l, NULL, NULL);
        CHECK(a >= 0);
        CHECK_EQ(np_set_deadline(c, np_now() + 10 * SEC * timeout_scale()), 0);
        np_go(rst_reader, (void *)(intptr_t)c);
        wait_io_parked(1);
        reset_by(a);
        int res[2];
        CHECK_EQ(np_chan_recv(rst_ch, res), 1);
        if (res[0] != -1 || res[1] != ECONNRESET)
            FAILF("parked reader got %d, errno %d (%s); want -1, ECONNRESET", res[0], res[1],
                  strerror(res[1]));
        /* writing to a reset connection fails too (EPIPE or ECONNRESET), without a signal */
        static char junk[1 << 16];
        ssize_t w = np_write(c, junk, sizeof junk);
        int e = t_errno();
        CHECK_EQ(w, -1);
        CHECK(e == EPIPE || e == ECONNRESET);
        CHECK_EQ(np_close(c), 0);
        CHECK_EQ(np_close(l), 0);
    }
    np_chan_free(rst_ch);
}

static void t_econnreset_reported(void)
{
    t_procs(2);
    T_RUN(rst_main, NULL);
}

/* ---- SIGPIPE never kills the process --------------------------------------------------- */

static int pipe_port;

static void epipe_main(void *arg)
{
    /* in-process: write to a peer that closed: -1/EPIPE, and we are still here */
    int l = np_listen("tcp", "127.0.0.1:0");
    CHECK(l >= 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", local_port(l));
    for (int round = 0; round < 3; round++) {
        int c = np_dial("tcp", addr, 5 * SEC);
        CHECK(c >= 0);
        int a = np_accept(l, NULL, NULL);
        CHECK(a >= 0);
        CHECK_EQ(np_close(a), 0); /* FIN; our first write then draws a reset */
        CHECK_EQ(np_set_deadline(c, np_now() + 10 * SEC * timeout_scale()), 0);
        char b[4];
        CHECK_EQ(np_read(c, b, sizeof b), 0); /* the FIN is here */
        int64_t until = np_now() + 10 * SEC * timeout_scale();
        ssize_t w;
        int e = 0;
        long writes = 0;
        do {
            if (round == 0)
                w = np_write(c, "data", 4);
            else if (round == 1) {
                struct iovec v[2] = {{"da", 2}, {"ta", 2}};
                w = np_writev(c, v, 2);
            } else
                w = np_sendto(c, "data", 4, 0, NULL, 0);
            e = t_errno();
            writes++;
        } while (w >= 0 && np_now() < until);
        if (w != -1 || e != EPIPE)
            FAILF("round %d: write to a closed peer: %zd, errno %d (%s) after %ld writes; want "
                  "-1, EPIPE", round, w, e, strerror(e), writes);
        CHECK_EQ(np_close(c), 0);
    }
    CHECK_EQ(np_close(l), 0);

    /* np-echo: clients that vanish while it writes back must not kill it */
    snprintf(addr, sizeof addr, "127.0.0.1:%d", pipe_port);
    static char junk[256 * 1024];
    for (int i = 0; i < 20; i++) {
        int c = np_dial("tcp", addr, 5 * SEC);
        CHECK(c >= 0);
        CHECK_EQ(np_set_deadline(c, np_now() + 10 * SEC * timeout_scale()), 0);
        CHECK_EQ(np_write(c, junk, 8192), 8192);
        if (i % 2) {
            char b[16];
            CHECK(np_read(c, b, sizeof b) > 0); /* np-echo is writing back */
        } else {
            CHECK_EQ(np_shutdown(c, SHUT_WR), 0); /* np-echo in CLOSE_WAIT: EPIPE next */
        }
        CHECK_EQ(np_close(c), 0); /* unread data: a reset; or FIN then a reset */
    }
}

static void t_sigpipe_never_kills_write_gives_epipe(void)
{
    signal(SIGPIPE, SIG_DFL); /* as a program starts; np_run must not die of it */
    server s;
    echo_start(&s, "2", 0);
    pipe_port = s.port;
    t_procs(2);
    T_RUN(epipe_main, NULL);
    server_alive(&s);
    /* np-echo still serves */
    int c = plain_connect(s.port, false);
    CHECK(c >= 0);
    CHECK(plain_echo(c, "still alive"));
    close(c);
    server_stop(&s);
}

/* ---- half-close ------------------------------------------------------------------------------ */

static int half_port;

typedef struct half_w {
    int fd;
    const unsigned char *buf;
    size_t n;
    np_wg wg;
} half_w;

static void half_writer(void *arg)
{
    half_w *h = arg;
    CHECK_EQ(np_write(h->fd, h->buf, h->n), h->n);
    CHECK_EQ(np_shutdown(h->fd, SHUT_WR), 0);
    np_wg_done(&h->wg);
}

static void half_main(void *arg)
{
    /* in-process: the peer reads EOF, then replies */
    int l = np_listen("tcp", "127.0.0.1:0");
    CHECK(l >= 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", local_port(l));
    int c = np_dial("tcp", addr, 5 * SEC);
    CHECK(c >= 0);
    int a = np_accept(l, NULL, NULL);
    CHECK(a >= 0);
    CHECK_EQ(np_set_deadline(c, np_now() + 10 * SEC * timeout_scale()), 0);
    CHECK_EQ(np_set_deadline(a, np_now() + 10 * SEC * timeout_scale()), 0);
    CHECK_EQ(np_write(c, "question", 8), 8);
    CHECK_EQ(np_shutdown(c, SHUT_WR), 0);
    char b[32];
    CHECK_EQ(read_full(a, b, sizeof b), 8); /* everything, then EOF */
    CHECK(memcmp(b, "question", 8) == 0);
    CHECK_EQ(np_read(a, b, sizeof b), 0);
    CHECK_EQ(np_write(a, "answer", 6), 6); /* the half-closed side still receives */
    CHECK_EQ(np_close(a), 0);
    CHECK_EQ(read_full(c, b, sizeof b), 6);
    CHECK(memcmp(b, "answer", 6) == 0);
    CHECK_EQ(np_read(c, b, sizeof b), 0);
    CHECK_EQ(np_close(c), 0);
    CHECK_EQ(np_close(l), 0);

    /* np-echo: send a stream, half-close, read the whole echo and then EOF */
    snprintf(addr, sizeof addr, "127.0.0.1:%d", half_port);
    size_t n = 1 << 20;
    unsigned char *out = malloc(n), *in = malloc(n + 1);
    CHECK(out && in);
    big_fill(out, n, 77);
    half_w h = {.fd = np_dial("tcp", addr, 5 * SEC), .buf = out, .n = n};
    CHECK(h.fd >= 0);
    CHECK_EQ(np_set_deadline(h.fd, np_now() + 20 * SEC * timeout_scale()), 0);
    np_wg_add(&h.wg, 1);
    np_go(half_writer, &h);
    CHECK_EQ(read_full(h.fd, in, n + 1), n); /* all of it, then EOF */
    CHECK(memcmp(in, out, n) == 0);
    np_wg_wait(&h.wg);
    CHECK_EQ(np_close(h.fd), 0);
    free(out);
    free(in);
}

static void t_half_close(void)
{
    server s;
    echo_start(&s, "2", 0);
    half_port = s.port;
    t_procs(2);
    T_RUN(half_main, NULL);
    server_stop(&s);
}

/* ---- bad network names and malformed addresses: EINVAL ---------------------------------- */

static void einval_main(void *arg)
{
    const char *bad_nets[] = {"tcpx", "", "TCP", "ip", "tcp7", "udpx", "unixgram", NULL};
    for (size_t i = 0; i < sizeof bad_nets / sizeof bad_nets[0]; i++) {
        CHECK_ERR(np_listen(bad_nets[i], "127.0.0.1:0"), EINVAL);
        CHECK_ERR(np_dial(bad_nets[i], "127.0.0.1:1", SEC), EINVAL);
    }
    const char *bad_addrs[] = {"127.0.0.1", "1.2.3.4:99999", "[::1:80", "::1:80", "host:port:x",
                               "127.0.0.1:", "[::1]80", "[::1]", "", ":", "127.0.0.1:-1",
                               "127.0.0.1:80x", "127.0.0.1:123456", "1.2.3.4:65536", NULL};
    const char *nets[] = {"tcp", "tcp4", "tcp6", "udp"};
    for (size_t k = 0; k < sizeof nets / sizeof nets[0]; k++)
        for (size_t i = 0; i < sizeof bad_addrs / sizeof bad_addrs[0]; i++) {
            const char *a = bad_addrs[i];
            T_ERRNO = 0;
            int r = np_listen(nets[k], a);
            int e = t_errno();
            if (r != -1 || e != EINVAL)
                FAILF("np_listen(%s, \"%s\"): %d, errno %d (%s); want -1, EINVAL", nets[k],
                      a ? a : "(null)", r, e, strerror(e));
            T_ERRNO = 0;
            r = np_dial(nets[k], a, SEC);
            e = t_errno();
            if (r != -1 || e != EINVAL)
                FAILF("np_dial(%s, \"%s\"): %d, errno %d (%s); want -1, EINVAL", nets[k],
                      a ? a : "(null)", r, e, strerror(e));
        }
    char longpath[300];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    CHECK_ERR(np_listen("unix", ""), EINVAL);
    CHECK_ERR(np_dial("unix", "", SEC), EINVAL);
    CHECK_ERR(np_listen("unix", longpath), EINVAL);
    CHECK_ERR(np_dial("unix", longpath, SEC), EINVAL);
}

static void t_bad_names_and_addresses_einval(void)
{
    t_procs(2);
    T_RUN(einval_main, NULL);
}

/* ---- dial errors: refused, timed out ------------------------------------------------------ */

/* A port that is bound but not listening: connections to it are refused. */
static int bound_port(int family, int *keep)
{
    int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    if (family == AF_INET6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
        CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        CHECK_EQ(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    }
    *keep = s;
    return local_port(s);
}

static void refused_main(void *arg)
{
    int k4, k6;
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%d", bound_port(AF_INET, &k4));
    int64_t t0 = np_now();
    CHECK_ERR(np_dial("tcp", a, 5 * SEC), ECONNREFUSED);
    CHECK_ERR(np_dial("tcp4", a, 0), ECONNREFUSED); /* no limit */
    snprintf(a, sizeof a, "[::1]:%d", bound_port(AF_INET6, &k6));
    CHECK_ERR(np_dial("tcp", a, 5 * SEC), ECONNREFUSED);
    CHECK_ERR(np_dial("tcp6", a, 0), ECONNREFUSED);
    CHECK(np_now() - t0 < 2 * SEC * timeout_scale()); /* refused at once, not timed out */
    close(k4);
    close(k6);
}

static void t_dial_closed_port_refused(void)
{
    t_procs(2);
    T_RUN(refused_main, NULL);
}

static int full_port;

static void full_main(void *arg)
{
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%d", full_port);
    const int64_t timeout = 300 * MS;
    for (int i = 0; i < 3; i++) {
        int64_t t0 = np_now();
        T_ERRNO = 0;
        int fd = np_dial("tcp", a, timeout);
        int e = t_errno();
        int64_t dt = np_now() - t0;
        if (fd >= 0) {
            np_close(fd);
            T_SKIP("the kernel accepted a connection past a full backlog");
        }
        if (e != ETIMEDOUT)
            FAILF("np_dial to a full accept queue: errno %d (%s), want ETIMEDOUT", e,
                  strerror(e));
        printf("note: ETIMEDOUT after %.1f ms (timeout %.0f ms)\n", dt / 1e6, timeout / 1e6);
        if (dt < timeout - MS || dt > timeout + 1000 * MS * timeout_scale())
            FAILF("timed out after %.1f ms, the timeout is %.0f ms", dt / 1e6, timeout / 1e6);
    }
}

static void t_dial_timeout_full_accept_queue(void)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    CHECK_EQ(listen(l, 0), 0);
    socklen_t sl = sizeof sa;
    CHECK_EQ(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
    full_port = ntohs(sa.sin_port);
    /* fill the queue: the first connection lands in it (the listener turns readable),
     * the others' SYNs are dropped */
    enum { FILL = 4 };
    int f[FILL];
    for (int i = 0; i < FILL; i++) {
        f[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(f[i] >= 0);
        int r = connect(f[i], (struct sockaddr *)&sa, sizeof sa);
        CHECK(r == 0 || errno == EINPROGRESS);
        if (i == 0) {
            struct pollfd p = {l, POLLIN, 0};
            CHECK_EQ(poll(&p, 1, 10000), 1);
        }
    }
    t_procs(2);
    T_RUN(full_main, NULL);
    for (int i = 0; i < FILL; i++)
        close(f[i]);
    close(l);
}

/* ---- np_readv, np_writev, and deadlines on calls already blocked ------------------------ */

/* A connected pair of registered descriptors: what is written to w is read from r.
 * kind: "tcp" (a loopback connection), "unix" (a socketpair) or "pipe". small: buffers
 * as small as the kernel allows, so that a write of a few hundred KiB fills them. */
typedef struct pair {
    int r, w;
} pair;

static pair pair_new(const char *kind, bool small)
{
    pair p = {-1, -1};
    int v = 4096;
    if (strcmp(kind, "pipe") == 0) {
        int fds[2];
        CHECK_EQ(pipe2(fds, O_CLOEXEC), 0);
        if (small)
            CHECK(fcntl(fds[1], F_SETPIPE_SZ, v) >= v);
        p.r = fds[0];
        p.w = fds[1];
    } else if (strcmp(kind, "unix") == 0) {
        int sv[2];
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        if (small) {
            CHECK_EQ(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &v, sizeof v), 0);
            CHECK_EQ(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
        }
        p.r = sv[0];
        p.w = sv[1];
    } else {
        CHECK(strcmp(kind, "tcp") == 0);
        int l = np_listen("tcp", "127.0.0.1:0");
        CHECK(l >= 0);
        if (small) /* inherited by the accepted socket, before the window is offered */
            CHECK_EQ(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
        char a[64];
        snprintf(a, sizeof a, "127.0.0.1:%d", local_port(l));
        p.w = np_dial("tcp", a, 5 * SEC * timeout_scale());
        CHECK(p.w >= 0);
        p.r = np_accept(l, NULL, NULL);
        CHECK(p.r >= 0);
        CHECK_EQ(np_close(l), 0);
        if (small)
            CHECK_EQ(setsockopt(p.w, SOL_SOCKET, SO_SNDBUF, &v, sizeof v), 0);
        return p;
    }
    CHECK_EQ(np_fd_open(p.r), 0);
    CHECK_EQ(np_fd_open(p.w), 0);
    return p;
}

static const char *const pair_kinds[] = {"tcp", "unix", "pipe"};

/* Wait (bounded) until at least n bytes are there to read on fd. */
static void wait_available(int fd, int n)
{
    int64_t until = np_now() + 10 * SEC * timeout_scale();
    int have = 0;
    while (ioctl(fd, FIONREAD, &have) == 0 && have < n && np_now() < until)
        np_yield();
    if (have < n)
        FAILF("%d bytes to read after 10 s; want %d", have, n);
}

/* A call returned -1 with errno e at time np_now() (read right after it): it must be
 * ETIMEDOUT, not before the deadline x, and not long after it. */
static void check_timed_out(const char *what, long long r, int e, int64_t at, int64_t x)
{
    if (r != -1 || e != ETIMEDOUT)
        FAILF("%s: %lld, errno %d (%s); want -1, ETIMEDOUT", what, r, e, strerror(e));
    if (at < x)
        FAILF("%s: ETIMEDOUT %.3f ms before the deadline", what, (x - at) / 1e6);
    if (at > x + SEC * timeout_scale())
        FAILF("%s: ETIMEDOUT %.0f ms after the deadline", what, (at - x) / 1e6);
}

/* One blocking call in a coroutine of its own: its result, errno, and when it returned. */
typedef struct job {
    int fd;
    const struct iovec *iov;
    int cnt;
    const void *buf;
    size_t n;
    ssize_t r;
    int err;
    int64_t at;
    np_chan *done;
} job;

static void job_finish(job *j, ssize_t r)
{
    j->err = t_errno();
    j->at = np_now();
    j->r = r;
    char token = 1;
    CHECK_EQ(np_chan_send(j->done, &token), 0);
}

static void job_readv(void *a)
{
    job *j = a;
    T_ERRNO = 0;
    job_finish(j, np_readv(j->fd, j->iov, j->cnt));
}

static void job_writev(void *a)
{
    job *j = a;
    T_ERRNO = 0;
    job_finish(j, np_writev(j->fd, j->iov, j->cnt));
}

static void job_write(void *a)
{
    job *j = a;
    T_ERRNO = 0;
    job_finish(j, np_write(j->fd, j->buf, j->n));
}

/* Reads fd to end of file into buf (n bytes at most; more is a FAIL); r is the count. */
static void job_drain(void *a)
{
    job *j = a;
    T_ERRNO = 0;
    job_finish(j, read_full(j->fd, (void *)j->buf, j->n));
}

static void job_start(job *j, np_fn fn)
{
    j->done = np_chan_new(1, 1);
    CHECK(j->done != NULL);
    CHECK(np_go(fn, j) > 0);
}

/* Wait for the job's call to return (bounded: a call that never returns is a FAIL). */
static void job_wait(job *j)
{
    char token;
    np_case c = {j->done, NP_RECV, &token, 0};
    T_ERRNO = 0;
    int r = np_select(&c, 1, 20 * SEC * timeout_scale());
    int e = t_errno();
    if (r != 0)
        FAILF("the call has not returned after 20 s (%s)", strerror(e));
    CHECK_EQ(c.ok, 1);
    CHECK_EQ(np_chan_free(j->done), 0);
    j->done = NULL;
}

static void readv_on(const char *kind)
{
    pair p = pair_new(kind, false);
    CHECK_EQ(np_set_deadline(p.r, np_now() + 20 * SEC * timeout_scale()), 0);
    char a[3], b[1], c[5], d[8], room[100];
#define FILL_DOTS()                                                                      \
    do {                                                                                 \
        memset(a, '.', sizeof a);                                                        \
        memset(b, '.', sizeof b);                                                        \
        memset(c, '.', sizeof c);                                                        \
        memset(d, '.', sizeof d);                                                        \
        memset(room, '.', sizeof room);                                                    \
    } while (0)

    /* scatter: exactly what the buffers hold, in order, an empty one skipped */
    FILL_DOTS();
    CHECK_EQ(np_write(p.w, "0123456789abcdef", 16), 16);
    wait_available(p.r, 16);
    struct iovec v[4] = {{a, 3}, {b, 0}, {c, 5}, {d, 8}};
    CHECK_EQ(np_readv(p.r, v, 4), 16);
    CHECK(memcmp(a, "012", 3) == 0);
    CHECK_EQ(b[0], '.');
    CHECK(memcmp(c, "34567", 5) == 0);
    CHECK(memcmp(d, "89abcdef", 8) == 0);

    /* a short read: 10 bytes there, room for 108: the 10 at once, the rest untouched */
    FILL_DOTS();
    CHECK_EQ(np_write(p.w, "ABCDEFGHIJ", 10), 10);
    wait_available(p.r, 10);
    struct iovec v2[3] = {{a, 3}, {c, 5}, {room, sizeof room}};
    CHECK_EQ(np_readv(p.r, v2, 3), 10);
    CHECK(memcmp(a, "ABC", 3) == 0);
    CHECK(memcmp(c, "DEFGH", 5) == 0);
    CHECK(memcmp(room, "IJ.", 3) == 0);
    for (size_t i = 2; i < sizeof room; i++)
        CHECK_EQ(room[i], '.');

    /* nothing there: the reader parks, and wakes with what comes, scattered */
    FILL_DOTS();
    struct iovec v3[2] = {{a, 2}, {c, 5}};
    job j = {.fd = p.r, .iov = v3, .cnt = 2};
    job_start(&j, job_readv);
    wait_io_parked(1);
    CHECK_EQ(np_write(p.w, "xyz", 3), 3);
    job_wait(&j);
    CHECK_EQ(j.r, 3);
    CHECK(memcmp(a, "xy.", 3) == 0);
    CHECK(memcmp(c, "z....", 5) == 0);

    /* a read deadline: ETIMEDOUT, never before it; it stands until cleared */
    int64_t x = np_now() + 100 * MS;
    CHECK_EQ(np_set_read_deadline(p.r, x), 0);
    T_ERRNO = 0;
    ssize_t r = np_readv(p.r, v, 4);
    int e = t_errno();
    check_timed_out("np_readv", r, e, np_now(), x);
    CHECK_ERR(np_readv(p.r, v, 4), ETIMEDOUT);
    CHECK_EQ(np_set_read_deadline(p.r, 0), 0);
    FILL_DOTS();
    CHECK_EQ(np_write(p.w, "k", 1), 1);
    CHECK_EQ(np_readv(p.r, v, 4), 1);
    CHECK(memcmp(a, "k..", 3) == 0);

    /* a deadline set while a readv is parked wakes it at the deadline */
    j = (job){.fd = p.r, .iov = v, .cnt = 4};
    job_start(&j, job_readv);
    wait_io_parked(1);
    x = np_now() + 100 * MS;
    CHECK_EQ(np_set_read_deadline(p.r, x), 0);
    job_wait(&j);
    check_timed_out("np_readv parked before the deadline was set", j.r, j.err, j.at, x);
    CHECK_EQ(np_set_read_deadline(p.r, 0), 0);

    /* end of file: what was written first, then 0, again and again */
    CHECK_EQ(np_write(p.w, "end", 3), 3);
    CHECK_EQ(np_close(p.w), 0);
    FILL_DOTS();
    size_t got = 0;
    while (got < 3) {
        struct iovec ve[2] = {{room + got, 1}, {room + got + 1, sizeof room - got - 1}};
        r = np_readv(p.r, ve, 2);
        CHECK(r > 0);
        got += (size_t)r;
    }
    CHECK_EQ(got, 3);
    CHECK(memcmp(room, "end.", 4) == 0);
    CHECK_EQ(np_readv(p.r, v, 4), 0);
    CHECK_EQ(np_readv(p.r, v, 4), 0);
    CHECK_EQ(np_close(p.r), 0);
    CHECK_ERR(np_readv(p.r, v, 4), EBADF);

    /* closed while a readv is parked in it: EBADF, and EBADF after */
    p = pair_new(kind, false);
    j = (job){.fd = p.r, .iov = v, .cnt = 4};
    job_start(&j, job_readv);
    wait_io_parked(1);
    CHECK_EQ(np_close(p.r), 0);
    job_wait(&j);
    if (j.r != -1 || j.err != EBADF)
        FAILF("np_readv parked in a descriptor that was closed: %zd, errno %d (%s); want "
              "-1, EBADF", j.r, j.err, strerror(j.err));
    CHECK_ERR(np_readv(p.r, v, 4), EBADF);
    CHECK_EQ(np_close(p.w), 0);
#undef FILL_DOTS
}

static void readv_main(void *arg)
{
    for (size_t k = 0; k < sizeof pair_kinds / sizeof pair_kinds[0]; k++)
        readv_on(pair_kinds[k]);
}

static void t_readv_scatter_short_eof_deadline_ebadf(void)
{
    t_procs(2);
    T_RUN(readv_main, NULL);
}

static void writev_on(const char *kind)
{
    pair p = pair_new(kind, true);
    static const size_t lens[] = {0, 1, 0, 4095, 3, 0, 65536, 200000, 17, 0, 1 << 20, 5, 0};
    enum { N = sizeof lens / sizeof lens[0] };
    size_t total = 0;
    for (int i = 0; i < N; i++)
        total += lens[i];
    unsigned char *out = malloc(total), *in = malloc(total + 1);
    CHECK(out && in);
    big_fill(out, total, 11);
    struct iovec iov[N], copy[N];
    size_t off = 0;
    for (int i = 0; i < N; i++) {
        iov[i].iov_base = lens[i] ? out + off : (i % 2 ? NULL : out);
        iov[i].iov_len = lens[i];
        off += lens[i];
    }
    memcpy(copy, iov, sizeof iov);

    /* nothing to write: 0 at once; a bad count: EINVAL */
    CHECK_EQ(np_writev(p.w, iov, 0), 0);
    struct iovec empties[3] = {{NULL, 0}, {out, 0}, {NULL, 0}};
    CHECK_EQ(np_writev(p.w, empties, 3), 0);
    CHECK_ERR(np_writev(p.w, iov, -1), EINVAL);
    CHECK_ERR(np_writev(p.w, iov, IOV_MAX + 1), EINVAL);

    /* more than the buffers hold: the writer parks, resumes as the peer reads, and
     * every byte arrives once, in order */
    CHECK_EQ(np_set_deadline(p.r, np_now() + 30 * SEC * timeout_scale()), 0);
    CHECK_EQ(np_set_deadline(p.w, np_now() + 30 * SEC * timeout_scale()), 0);
    job j = {.fd = p.w, .iov = iov, .cnt = N};
    job_start(&j, job_writev);
    wait_io_parked(1);
    ssize_t r = read_full(p.r, in, total);
    int e = t_errno();
    if (r != (ssize_t)total)
        FAILF("%s: read %zd of %zu bytes written by np_writev (errno %s)", kind, r, total,
              strerror(e));
    job_wait(&j);
    if (j.r != (ssize_t)total)
        FAILF("%s: np_writev returned %zd, errno %s; want %zu", kind, j.r, strerror(j.err),
              total);
    for (size_t i = 0; i < total; i++)
        if (in[i] != out[i])
            FAILF("%s: byte %zu of %zu is %#x, np_writev wrote %#x", kind, i, total, in[i],
                  out[i]);
    CHECK(memcmp(iov, copy, sizeof iov) == 0); /* the caller's array is left as it was */
    CHECK_EQ(np_close(p.w), 0);
    CHECK_EQ(np_read(p.r, in, total), 0); /* nothing more */
    CHECK_EQ(np_close(p.r), 0);
    free(out);
    free(in);
}

static void writev_main(void *arg)
{
    for (size_t k = 0; k < sizeof pair_kinds / sizeof pair_kinds[0]; k++)
        writev_on(pair_kinds[k]);
}

static void t_writev_parks_resumes_every_byte_arrives(void)
{
    t_procs(2);
    T_RUN(writev_main, NULL);
}

/* np.h: np_write returns len, or -1/errno, "part may have been written". A writer
 * parked on a full descriptor when a write deadline is set: -1/ETIMEDOUT at the
 * deadline (not before); the peer reads a prefix of what it wrote (something: it
 * parked with the buffer full), then what a later write sends once the deadline is
 * cleared, nothing lost, nothing twice. */
static void wdl_on(const char *kind)
{
    pair p = pair_new(kind, true);
    size_t n = 4 << 20;
    unsigned char *out = malloc(n), *in = malloc(n + 8);
    CHECK(out && in);
    big_fill(out, n, 23);
    job w = {.fd = p.w, .buf = out, .n = n};
    job_start(&w, job_write);
    wait_io_parked(1);
    int64_t x = np_now() + 200 * MS;
    CHECK_EQ(np_set_write_deadline(p.w, x), 0);
    job_wait(&w);
    check_timed_out("np_write parked before the write deadline was set", w.r, w.err, w.at, x);
    /* the deadline stands: writes fail at once, writing nothing */
    CHECK_ERR(np_write(p.w, "z", 1), ETIMEDOUT);
    struct iovec one = {"z", 1};
    CHECK_ERR(np_writev(p.w, &one, 1), ETIMEDOUT);
    CHECK_ERR(np_wait_writable(p.w), ETIMEDOUT);
    /* cleared: writing works again */
    CHECK_EQ(np_set_write_deadline(p.w, 0), 0);
    CHECK_EQ(np_set_read_deadline(p.r, np_now() + 30 * SEC * timeout_scale()), 0);
    job d = {.fd = p.r, .buf = in, .n = n + 8};
    job_start(&d, job_drain);
    CHECK_EQ(np_write(p.w, "TAIL", 4), 4);
    CHECK_EQ(np_close(p.w), 0);
    job_wait(&d);
    if (d.r < 4)
        FAILF("%s: the peer read %zd bytes (errno %s)", kind, d.r, strerror(d.err));
    size_t k = (size_t)d.r - 4;
    printf("note: %s: %zu of %zu bytes written when the deadline passed\n", kind, k, n);
    if (k == 0 || k >= n)
        FAILF("%s: %zu bytes of %zu written before the deadline; want a part", kind, k, n);
    for (size_t i = 0; i < k; i++)
        if (in[i] != out[i])
            FAILF("%s: byte %zu of the part written is %#x, np_write wrote %#x", kind, i,
                  in[i], out[i]);
    CHECK(memcmp(in + k, "TAIL", 4) == 0);
    CHECK_EQ(np_close(p.r), 0);
    free(out);
    free(in);
}

static void wdl_main(void *arg)
{
    for (size_t k = 0; k < sizeof pair_kinds / sizeof pair_kinds[0]; k++)
        wdl_on(pair_kinds[k]);
}

static void t_write_deadline_set_on_a_blocked_writer(void)
{
    t_procs(2);
    T_RUN(wdl_main, NULL);
}

/* Fill fd's buffer (and the peer's) until it is not writable. Returns the bytes written. */
static size_t fill_up(int fd)
{
    static char junk[65536];
    size_t filled = 0;
    for (int round = 0;; round++) {
        CHECK(round < 1000);
        for (;;) {
            ssize_t k = write(fd, junk, sizeof junk); /* fd is O_NONBLOCK (registered) */
            if (k < 0) {
                CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
                break;
            }
            filled += (size_t)k;
        }
        struct pollfd pf = {fd, POLLOUT, 0};
        if (poll(&pf, 1, 0) == 0)
            return filled;
    }
}

static void etimedout_main(void *arg)
{
    /* np_accept on a listener nobody dials, with a read deadline */
    int l = np_listen("tcp", "127.0.0.1:0");
    CHECK(l >= 0);
    int64_t x = np_now() + 100 * MS;
    CHECK_EQ(np_set_read_deadline(l, x), 0);
    T_ERRNO = 0;
    int a = np_accept(l, NULL, NULL);
    int e = t_errno();
    check_timed_out("np_accept", a, e, np_now(), x);
    CHECK_ERR(np_accept(l, NULL, NULL), ETIMEDOUT);
    CHECK_EQ(np_set_read_deadline(l, 0), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", local_port(l));
    int c = np_dial("tcp", addr, 5 * SEC * timeout_scale());
    CHECK(c >= 0);
    a = np_accept(l, NULL, NULL);
    CHECK(a >= 0);
    CHECK_EQ(np_set_deadline(a, np_now() + 10 * SEC * timeout_scale()), 0);
    CHECK_EQ(np_write(c, "hi", 2), 2);
    char b[8];
    CHECK_EQ(read_full(a, b, 2), 2);
    CHECK(memcmp(b, "hi", 2) == 0);
    CHECK_EQ(np_close(a), 0);
    CHECK_EQ(np_close(c), 0);
    CHECK_EQ(np_close(l), 0);

    /* np_recvfrom on a UDP socket nobody sends to, with a deadline (both ways) */
    int u = np_listen("udp", "127.0.0.1:0");
    CHECK(u >= 0);
    x = np_now() + 100 * MS;
    CHECK_EQ(np_set_deadline(u, x), 0);
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    T_ERRNO = 0;
    ssize_t r = np_recvfrom(u, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
    e = t_errno();
    check_timed_out("np_recvfrom", r, e, np_now(), x);
    fl = sizeof from;
    CHECK_ERR(np_recvfrom(u, b, sizeof b, 0, (struct sockaddr *)&from, &fl), ETIMEDOUT);
    CHECK_ERR(np_sendto(u, "x", 1, 0, (struct sockaddr *)&from, fl), ETIMEDOUT);
    CHECK_EQ(np_set_deadline(u, 0), 0);
    struct sockaddr_storage self;
    socklen_t sl = sizeof self;
    CHECK_EQ(getsockname(u, (struct sockaddr *)&self, &sl), 0);
    CHECK_EQ(np_sendto(u, "ping", 4, 0, (struct sockaddr *)&self, sl), 4);
    CHECK_EQ(np_set_read_deadline(u, np_now() + 10 * SEC * timeout_scale()), 0);
    fl = sizeof from;
    CHECK_EQ(np_recvfrom(u, b, sizeof b, 0, (struct sockaddr *)&from, &fl), 4);
    CHECK(memcmp(b, "ping", 4) == 0);
    CHECK_EQ(np_close(u), 0);

    /* np_wait_writable on a full descriptor, with a write deadline */
    for (size_t k = 0; k < sizeof pair_kinds / sizeof pair_kinds[0]; k++) {
        pair p = pair_new(pair_kinds[k], true);
        size_t filled = fill_up(p.w);
        x = np_now() + 100 * MS;
        CHECK_EQ(np_set_write_deadline(p.w, x), 0);
        T_ERRNO = 0;
        int w = np_wait_writable(p.w);
        e = t_errno();
        check_timed_out("np_wait_writable", w, e, np_now(), x);
        CHECK_ERR(np_wait_writable(p.w), ETIMEDOUT);
        CHECK_EQ(np_set_write_deadline(p.w, 0), 0);
        unsigned char *in = malloc(filled + 8);
        CHECK(in != NULL);
        CHECK_EQ(np_set_read_deadline(p.r, np_now() + 30 * SEC * timeout_scale()), 0);
        job d = {.fd = p.r, .buf = in, .n = filled + 8};
        job_start(&d, job_drain);
        CHECK_EQ(np_wait_writable(p.w), 0); /* once the peer has read */
        CHECK_EQ(np_write(p.w, "TAIL", 4), 4);
        CHECK_EQ(np_close(p.w), 0);
        job_wait(&d);
        CHECK_EQ(d.r, filled + 4);
        CHECK(memcmp(in + filled, "TAIL", 4) == 0);
        CHECK_EQ(np_close(p.r), 0);
        free(in);
    }
}

static void t_deadline_etimedout_accept_recvfrom_wait_writable(void)
{
    t_procs(2);
    T_RUN(etimedout_main, NULL);
}

static const t_case cases[] = {
    T(t_echo_10k_concurrent_connections_every_byte),
    T(t_telnet_through_pty),
    T(t_blocking_call_hands_off_the_only_p),
    T(t_accept_survives_emfile_without_spinning),
    T(t_unix_round_trip),
    T(t_udp_round_trip),
    T(t_ipv6_loopback),
    T(t_listen_any_port_and_dial_localhost),
    T(t_econnreset_reported),
    T(t_sigpipe_never_kills_write_gives_epipe),
    T(t_half_close),
    T(t_bad_names_and_addresses_einval),
    T(t_dial_closed_port_refused),
    T(t_dial_timeout_full_accept_queue),
    T(t_readv_scatter_short_eof_deadline_ebadf),
    T(t_writev_parks_resumes_every_byte_arrives),
    T(t_write_deadline_set_on_a_blocked_writer),
    T(t_deadline_etimedout_accept_recvfrom_wait_writable),
    {0},
};

T_MAIN(cases)
