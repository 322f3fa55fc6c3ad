/* np.h's contract for calls made where no coroutine runs. np.h: "Calls that may block
 * must be made from inside a coroutine; made from any other thread they fail with
 * EPERM", and for descriptors: "EBADF when the descriptor is not registered ... EPERM
 * for a registered descriptor outside a coroutine (np_fd_open excepted)", which fails
 * with EPERM itself only when no runtime is running.
 *
 * Every call of np.h that may block is made
 *   - from main() before any np_run, and again after one returned: no runtime, so no
 *     descriptor can be registered: the descriptor calls see real open descriptors
 *     that are not registered (EBADF), everything else fails with EPERM;
 *   - from a plain thread while the runtime runs, on registered descriptors: EPERM for
 *     every one of them; but np_go and the channel's try calls and close, which any
 *     thread may make while the runtime runs (np.h at np_go; test_foreign.c), work
 *     there.
 * And each time nothing was changed: the descriptors still work (in the runtime, a
 * connection left pending is still accepted, np_close does not wait for a reference
 * the failed calls took), no descriptor was left open or registered (np_dial). */
#include "t.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define MS 1000000LL
#define SEC 1000000000LL

/* Descriptors of every kind the calls take. */
typedef struct fds {
    int sv[2];    /* a unix socketpair: sv[0] the one used */
    int pp[2];    /* a pipe */
    int udp;      /* a bound UDP socket */
    int lst;      /* a TCP listener with one connection pending */
    int conn;     /* the pending connection's client end */
    char addr[64]; /* the listener's address */
} fds;

static int open_fds_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

static int port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    CHECK_EQ(a.sin_family, AF_INET);
    return ntohs(a.sin_port);
}

/* Plain descriptors (no runtime needed): the listener has one connection pending. */
static void fds_plain(fds *f)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->sv), 0);
    CHECK_EQ(pipe2(f->pp, O_CLOEXEC), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    f->udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(f->udp >= 0);
    CHECK_EQ(bind(f->udp, (struct sockaddr *)&a, sizeof a), 0);
    f->lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(f->lst >= 0);
    CHECK_EQ(bind(f->lst, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(f->lst, 16), 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", port_of(f->lst));
    f->conn = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(f->conn >= 0);
    socklen_t l = sizeof a;
    CHECK_EQ(getsockname(f->lst, (struct sockaddr *)&a, &l), 0);
    CHECK_EQ(connect(f->conn, (struct sockaddr *)&a, sizeof a), 0);
}

static void fds_close_plain(fds *f)
{
    int all[] = {f->sv[0], f->sv[1], f->pp[0], f->pp[1], f->udp, f->lst, f->conn};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        CHECK_EQ(close(all[i]), 0);
}

static void *ret_arg(void *arg) { return arg; }
static void never_run(void *arg) { FAILF("a coroutine ran from a call made outside one"); }
static np_wg spawned = NP_WG_INIT; /* coroutines a plain thread started, to run */
static void spawned_run(void *arg) { np_wg_done(&spawned); }

static const char *where = "?";
static int checked;

#define EXPECT(call, err)                                                                \
    do {                                                                                 \
        T_ERRNO = 0;                                                                     \
        long long r_ = (long long)(call);                                                \
        int e_ = t_errno();                                                              \
        if (r_ != -1 || e_ != (err))                                                     \
            FAILF("%s: %s: %lld, errno %d (%s); want -1, %s", where, #call, r_, e_,      \
                  strerror(e_), #err);                                                   \
        checked++;                                                                       \
    } while (0)

/* A call returning a pointer: NULL with errno err. */
#define EXPECT_NULL(call, err)                                                           \
    do {                                                                                 \
        T_ERRNO = 0;                                                                     \
        const void *p_ = (call);                                                         \
        int e_ = t_errno();                                                              \
        if (p_ != NULL || e_ != (err))                                                   \
            FAILF("%s: %s: %p, errno %d (%s); want NULL, %s", where, #call, p_, e_,      \
                  strerror(e_), #err);                                                   \
        checked++;                                                                       \
    } while (0)

/* Every call of np.h that may block, except those on descriptors (running: a runtime
 * runs, the caller is a plain thread). */
static void calls_without_descriptors(bool running)
{
    np_chan *c = np_chan_new(sizeof(int), 1);
    np_chan *u = np_chan_new(sizeof(int), 0);
    CHECK(c && u);
    np_mutex mu = NP_MUTEX_INIT, held = NP_MUTEX_INIT;
    np_wg zero = NP_WG_INIT, one = NP_WG_INIT;
    CHECK_EQ(np_wg_add(&one, 1), 0);
    np_cond cv = NP_COND_INIT;
    np_rwmutex rw = NP_RWMUTEX_INIT;
    np_once once = NP_ONCE_INIT;
    CHECK_EQ(np_mutex_trylock(&held), 0); /* np_cond_wait's mutex, held as it must be */
    int v = 7;
    np_case cs[2] = {{c, NP_RECV, &v, 0}, {u, NP_SEND, &v, 0}};
    np_attr at = {0};
    EXPECT(np_sleep(MS), EPERM);
    EXPECT(np_sleep(0), EPERM);
    EXPECT(np_yield(), EPERM);
    if (running) {
        CHECK(np_go(spawned_run, NULL) > 0);
        CHECK(np_go_attr(&at, spawned_run, NULL) > 0);
        CHECK_EQ(np_chan_trysend(c, &v), 0);
        EXPECT(np_chan_trysend(c, &v), EAGAIN);
        v = 0;
        CHECK_EQ(np_chan_tryrecv(c, &v), 1);
        CHECK_EQ(v, 7);
        EXPECT(np_chan_tryrecv(c, &v), EAGAIN);
        EXPECT(np_chan_trysend(u, &v), EAGAIN);
        EXPECT(np_chan_tryrecv(u, &v), EAGAIN);
    } else {
        EXPECT(np_go(never_run, NULL), EPERM);
        EXPECT(np_go_attr(&at, never_run, NULL), EPERM);
        EXPECT(np_chan_trysend(c, &v), EPERM);
        EXPECT(np_chan_tryrecv(c, &v), EPERM);
        EXPECT(np_chan_close(c), EPERM);
    }
    EXPECT(np_chan_send(c, &v), EPERM);
    EXPECT(np_chan_recv(c, &v), EPERM);
    EXPECT(np_chan_send(u, &v), EPERM);
    EXPECT(np_chan_recv(u, &v), EPERM);
    EXPECT(np_select(cs, 2, -1), EPERM);
    EXPECT(np_select(cs, 2, 0), EPERM);
    EXPECT(np_select(cs, 2, MS), EPERM);
    EXPECT(np_mutex_lock(&mu), EPERM);
    EXPECT(np_wg_wait(&zero), EPERM);
    EXPECT(np_wg_wait(&one), EPERM);
    EXPECT(np_cond_wait(&cv, &held), EPERM);
    EXPECT(np_rwmutex_rlock(&rw), EPERM);
    EXPECT(np_rwmutex_lock(&rw), EPERM);
    EXPECT(np_once_do(&once, never_run, NULL), EPERM); /* fn not run */
    /* time's channels put a timer on a P: from a coroutine only (bad arguments first) */
    EXPECT_NULL(np_after(MS), EPERM);
    EXPECT_NULL(np_after(0), EPERM);
    EXPECT_NULL(np_ticker_new(MS), EPERM);
    EXPECT_NULL(np_ticker_new(0), EINVAL);
    EXPECT(np_ticker_reset(NULL, MS), EINVAL);
    EXPECT(np_ticker_stop(NULL), EINVAL);
    EXPECT_NULL(np_ticker_chan(NULL), EINVAL);
    CHECK_EQ(np_ticker_free(NULL), 0);
    T_ERRNO = 0;
    np_exit(); /* returns */
    if (t_errno() != EPERM)
        FAILF("%s: np_exit: errno %d, want EPERM", where, t_errno());
    CHECK_EQ(np_id(), 0);
    /* np_blocking outside a coroutine just calls fn */
    CHECK(np_blocking(ret_arg, &v) == &v);
    CHECK(np_blocking(NULL, &v) == NULL);
    /* nothing changed: the buffer is empty, the mutex free */
    CHECK_EQ(np_chan_len(c), 0);
    CHECK_EQ(np_mutex_trylock(&mu), 0);
    CHECK_EQ(np_mutex_unlock(&mu), 0);
    if (running) {
        CHECK_EQ(np_chan_close(u), 0);
        EXPECT(np_chan_close(u), EPIPE); /* closed already */
    }
    /* the cond's mutex still held (not unlocked by the failed wait), no wait registered
     * (a signal finds nobody), the rwmutex free, the once not done */
    CHECK_ERR(np_mutex_trylock(&held), EBUSY);
    CHECK_EQ(np_mutex_unlock(&held), 0);
    CHECK_EQ(np_cond_signal(&cv), 0);
    CHECK_EQ(np_cond_broadcast(&cv), 0);
    CHECK(memcmp(&cv, &(np_cond)NP_COND_INIT, sizeof cv) == 0);
    CHECK_EQ(np_rwmutex_trylock(&rw), 0);
    CHECK_EQ(np_rwmutex_unlock(&rw), 0);
    CHECK_EQ(np_rwmutex_tryrlock(&rw), 0);
    CHECK_EQ(np_rwmutex_runlock(&rw), 0);
    EXPECT(np_once_do(&once, never_run, NULL), EPERM); /* still not done */
    CHECK_EQ(np_chan_free(c), 0);
    CHECK_EQ(np_chan_free(u), 0);
}

/* Every call of np.h that takes a descriptor (and np_dial), each of them failing with
 * err: EBADF for descriptors that are not registered, EPERM for registered ones. */
static void calls_on_descriptors(const fds *f, int err)
{
    char b[8];
    struct iovec iov[2] = {{b, 4}, {b + 4, 4}};
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rw[] = {f->sv[0], f->pp[0], f->pp[1], f->udp};
    for (size_t i = 0; i < sizeof rw / sizeof rw[0]; i++) {
        int fd = rw[i];
        if (fd != f->pp[1]) {
            EXPECT(np_read(fd, b, sizeof b), err);
            EXPECT(np_readv(fd, iov, 2), err);
            EXPECT(np_wait_readable(fd), err);
        }
        if (fd != f->pp[0]) {
            EXPECT(np_write(fd, "x", 1), err);
            EXPECT(np_writev(fd, iov, 2), err);
            EXPECT(np_wait_writable(fd), err);
        }
        EXPECT(np_set_deadline(fd, np_now() + MS), err);
        EXPECT(np_set_read_deadline(fd, np_now() + MS), err);
        EXPECT(np_set_write_deadline(fd, np_now() + MS), err);
        EXPECT(np_set_deadline(fd, 0), err);
        EXPECT(np_close(fd), err);
    }
    EXPECT(np_recvfrom(f->udp, b, sizeof b, 0, (struct sockaddr *)&ss, &sl), err);
    EXPECT(np_sendto(f->udp, "x", 1, 0, (struct sockaddr *)&to, sizeof to), err);
    EXPECT(np_recvfrom(f->sv[0], b, sizeof b, 0, NULL, NULL), err);
    EXPECT(np_sendto(f->sv[0], "x", 1, 0, NULL, 0), err);
    sl = sizeof ss;
    EXPECT(np_accept(f->lst, (struct sockaddr *)&ss, &sl), err);
    EXPECT(np_accept(f->lst, NULL, NULL), err);
    EXPECT(np_wait_readable(f->lst), err);
    EXPECT(np_set_read_deadline(f->lst, np_now() + MS), err);
    EXPECT(np_close(f->lst), err);
    /* np_dial takes no descriptor: EPERM in every case, leaving none open */
    int before = open_fds_count();
    EXPECT(np_dial("tcp", f->addr, SEC), EPERM);
    EXPECT(np_dial("tcp", f->addr, 0), EPERM);
    CHECK_EQ(open_fds_count(), before);
}

/* ---- from main(), no runtime --------------------------------------------------------- */

static void outside_the_runtime(const char *phase)
{
    where = phase;
    CHECK_EQ(np_procs(), 0);
    CHECK(strcmp(np_poller_name(), "none") == 0);
    calls_without_descriptors(false);
    int before = open_fds_count();
    fds f;
    fds_plain(&f);
    int flags[3] = {fcntl(f.sv[0], F_GETFL), fcntl(f.pp[0], F_GETFL), fcntl(f.lst, F_GETFL)};
    /* np_fd_open fails with EPERM when no runtime is running; so do the calls that
     * would register a descriptor */
    EXPECT(np_fd_open(f.sv[0]), EPERM);
    EXPECT(np_listen("tcp", "127.0.0.1:0"), EPERM);
    EXPECT(np_listen("udp", "127.0.0.1:0"), EPERM);
    calls_on_descriptors(&f, EBADF);
    /* untouched: blocking as they were, open, working; the connection still pending */
    CHECK_EQ(fcntl(f.sv[0], F_GETFL), flags[0]);
    CHECK_EQ(fcntl(f.pp[0], F_GETFL), flags[1]);
    CHECK_EQ(fcntl(f.lst, F_GETFL), flags[2]);
    char b[4];
    CHECK_EQ(write(f.sv[1], "ok", 2), 2);
    CHECK_EQ(read(f.sv[0], b, sizeof b), 2);
    CHECK_EQ(write(f.pp[1], "ok", 2), 2);
    CHECK_EQ(read(f.pp[0], b, sizeof b), 2);
    int a = accept(f.lst, NULL, NULL);
    CHECK(a >= 0);
    CHECK_EQ(close(a), 0);
    fds_close_plain(&f);
    CHECK_EQ(open_fds_count(), before);
    printf("note: %s: %d calls checked\n", phase, checked);
    checked = 0;
}

/* ---- from a plain thread while the runtime runs, on registered descriptors ---------- */

static fds tf;

static np_ticker *ttk; /* made by the coroutine, a reset attempted by the thread */

static void *thread_calls(void *arg)
{
    CHECK_EQ(np_id(), 0);
    calls_without_descriptors(true);
    calls_on_descriptors(&tf, EPERM);
    EXPECT(np_ticker_reset(ttk, MS), EPERM);
    return NULL;
}

static void *join(void *arg)
{
    CHECK_EQ(pthread_join(*(pthread_t *)arg, NULL), 0);
    return NULL;
}

static void in_runtime(void *arg)
{
    where = "a plain thread while np_run runs";
    fds *f = &tf;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->sv), 0);
    CHECK_EQ(pipe2(f->pp, O_CLOEXEC), 0);
    CHECK_EQ(np_fd_open(f->sv[0]), 0);
    CHECK_EQ(np_fd_open(f->pp[0]), 0);
    CHECK_EQ(np_fd_open(f->pp[1]), 0);
    f->udp = np_listen("udp", "127.0.0.1:0");
    CHECK(f->udp >= 0);
    f->lst = np_listen("tcp", "127.0.0.1:0");
    CHECK(f->lst >= 0);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", port_of(f->lst));
    f->conn = np_dial("tcp", f->addr, 5 * SEC);
    CHECK(f->conn >= 0);
    np_stats st;
    CHECK_EQ(np_stats_get(&st), 0);
    int64_t registered = st.fds;
    int before = open_fds_count();

    ttk = np_ticker_new(3600 * SEC);
    CHECK(ttk != NULL);
    pthread_t th;
    CHECK_EQ(np_wg_add(&spawned, 2), 0);
    CHECK_EQ(pthread_create(&th, NULL, thread_calls, NULL), 0);
    np_blocking(join, &th);
    CHECK_EQ(np_wg_wait(&spawned), 0); /* the thread's two np_go ran */
    printf("note: %s: %d calls checked\n", where, checked);
    checked = 0;
    /* the ticker is as it was: not ticking before an hour */
    int64_t tick;
    CHECK_EQ(np_chan_tryrecv(np_ticker_chan(ttk), &tick), -1);
    CHECK_EQ(np_ticker_free(ttk), 0);

    /* nothing registered or opened, nothing closed */
    CHECK_EQ(np_stats_get(&st), 0);
    CHECK_EQ(st.fds, registered);
    CHECK_EQ(open_fds_count(), before);
    /* every descriptor still works, from a coroutine */
    int64_t dl = np_now() + 10 * SEC;
    char b[8];
    CHECK_EQ(np_set_deadline(f->sv[0], dl), 0);
    CHECK_EQ(write(f->sv[1], "ok", 2), 2);
    CHECK_EQ(np_read(f->sv[0], b, sizeof b), 2);
    CHECK_EQ(np_write(f->sv[0], "back", 4), 4);
    CHECK_EQ(read(f->sv[1], b, sizeof b), 4);
    CHECK_EQ(np_set_deadline(f->pp[0], dl), 0);
    CHECK_EQ(np_write(f->pp[1], "pipe", 4), 4);
    CHECK_EQ(np_read(f->pp[0], b, sizeof b), 4);
    CHECK(memcmp(b, "pipe", 4) == 0);
    CHECK_EQ(np_set_read_deadline(f->lst, dl), 0);
    int a = np_accept(f->lst, NULL, NULL); /* the connection left pending */
    CHECK(a >= 0);
    CHECK_EQ(np_set_deadline(a, dl), 0);
    CHECK_EQ(np_write(f->conn, "tcp", 3), 3);
    CHECK_EQ(np_read(a, b, sizeof b), 3);
    struct sockaddr_storage self;
    socklen_t sl = sizeof self;
    CHECK_EQ(getsockname(f->udp, (struct sockaddr *)&self, &sl), 0);
    CHECK_EQ(np_set_deadline(f->udp, dl), 0);
    CHECK_EQ(np_sendto(f->udp, "dgram", 5, 0, (struct sockaddr *)&self, sl), 5);
    CHECK_EQ(np_recvfrom(f->udp, b, sizeof b, 0, NULL, NULL), 5);
    /* the closes do not wait for references the failed calls might have kept */
    int all[] = {a, f->conn, f->lst, f->udp, f->pp[1], f->pp[0], f->sv[0]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        CHECK_EQ(np_close(all[i]), 0);
    CHECK_EQ(close(f->sv[1]), 0);
    CHECK_EQ(np_stats_get(&st), 0);
    CHECK_EQ(st.fds, 0);
}

static void t_blocking_calls_outside_a_coroutine(void)
{
    outside_the_runtime("main() before np_run");
    t_procs(2);
    T_RUN(in_runtime, NULL);
    outside_the_runtime("main() after np_run returned");
}

static const t_case cases[] = {
    T(t_blocking_calls_outside_a_coroutine),
    {0},
};

T_MAIN(cases)
