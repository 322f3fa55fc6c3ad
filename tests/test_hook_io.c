/* libnp-hook (src/hook): libc's descriptor calls in coroutines. Each case shows a call
 * that parks the coroutine where the kernel would have blocked the thread (another
 * coroutine on the same P runs meanwhile), and gives what the kernel gives: results,
 * errno, O_NONBLOCK as the program set it, timeouts, revents. */
#include "t.h"
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS 1000000LL

/* The kernel's O_NONBLOCK, past the hook. */
static bool kernel_nonblock(int fd) { return syscall(SYS_fcntl, fd, F_GETFL) & O_NONBLOCK; }

static int sp[2];
static np_wg wg = NP_WG_INIT;

/* ---- read and write park ---- */

static void late_writer(void *arg)
{
    wait_blocked(NP_WAIT_IO, 1); /* the reader is parked: this coroutine ran meanwhile */
    CHECK_EQ(write(sp[1], "hello", 5), 5);
    np_wg_done(&wg);
}

static void rw_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0);
    char buf[16];
    CHECK_EQ(read(sp[0], buf, sizeof buf), 5); /* parks: one P, the writer must run */
    CHECK(memcmp(buf, "hello", 5) == 0);
    /* the kernel's fd is non-blocking now; the program still sees it blocking */
    CHECK(kernel_nonblock(sp[0]));
    CHECK_EQ(fcntl(sp[0], F_GETFL) & O_NONBLOCK, 0);
    np_wg_wait(&wg);
    /* readv, recv, recvmsg, writev, send, sendmsg park the same way */
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0);
    char a[2], b[8];
    struct iovec v[2] = {{a, 2}, {b, 8}};
    CHECK_EQ(readv(sp[0], v, 2), 5);
    CHECK(memcmp(a, "he", 2) == 0 && memcmp(b, "llo", 3) == 0);
    np_wg_wait(&wg);
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0);
    CHECK_EQ(recv(sp[0], buf, sizeof buf, 0), 5);
    np_wg_wait(&wg);
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0);
    struct iovec one = {buf, sizeof buf};
    struct msghdr mh = {.msg_iov = &one, .msg_iovlen = 1};
    CHECK_EQ(recvmsg(sp[0], &mh, 0), 5);
    np_wg_wait(&wg);
    struct iovec w[2] = {{"ab", 2}, {"cd", 2}};
    CHECK_EQ(writev(sp[1], w, 2), 4);
    CHECK_EQ(send(sp[1], "e", 1, 0), 1);
    struct iovec w1 = {"f", 1};
    struct msghdr wm = {.msg_iov = &w1, .msg_iovlen = 1};
    CHECK_EQ(sendmsg(sp[1], &wm, 0), 1);
    CHECK_EQ(recv(sp[0], buf, 6, MSG_WAITALL), 6);
    CHECK(memcmp(buf, "abcdef", 6) == 0);
    CHECK_EQ(close(sp[0]), 0);
    CHECK_EQ(close(sp[1]), 0);
}

static void t_read_write_park(void)
{
    t_procs(1);
    T_RUN(rw_main, NULL);
}

/* A blocking write of more than the socket holds: all of it goes, in as many parks as it
 * takes, while a reader on the same P drains it. */
#define BIG (4 << 20)
static void big_reader(void *arg)
{
    char *buf = malloc(65536);
    size_t got = 0;
    unsigned sum = 0;
    while (got < BIG) {
        ssize_t r = read(sp[0], buf, 65536);
        CHECK(r > 0);
        for (ssize_t i = 0; i < r; i++)
            sum += (unsigned char)buf[i] * (unsigned)((got + (size_t)i) % 251 + 1);
        got += (size_t)r;
    }
    *(unsigned *)arg = sum;
    free(buf);
    np_wg_done(&wg);
}

static void big_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    char *buf = malloc(BIG);
    unsigned want = 0, got = 0;
    for (size_t i = 0; i < BIG; i++) {
        buf[i] = (char)(i * 7 + 3);
        want += (unsigned char)buf[i] * (unsigned)(i % 251 + 1);
    }
    np_wg_add(&wg, 1);
    CHECK(np_go(big_reader, &got) > 0);
    CHECK_EQ(write(sp[1], buf, BIG), BIG);
    np_wg_wait(&wg);
    CHECK_EQ(got, want);
    free(buf);
    close(sp[0]);
    close(sp[1]);
}

static void t_blocking_write_is_whole(void)
{
    t_procs(1);
    T_RUN(big_main, NULL);
}

/* ---- what the program asked for is kept ---- */

static void nonblock_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    char c;
    /* per call: MSG_DONTWAIT */
    CHECK_ERR(recv(sp[0], &c, 1, MSG_DONTWAIT), EAGAIN);
    /* the program's O_NONBLOCK: EAGAIN, before and after np registered the fd */
    CHECK_EQ(fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK), 0);
    CHECK_ERR(read(sp[0], &c, 1), EAGAIN);
    CHECK(fcntl(sp[0], F_GETFL) & O_NONBLOCK);
    CHECK_EQ(fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) & ~O_NONBLOCK), 0);
    CHECK_EQ(fcntl(sp[0], F_GETFL) & O_NONBLOCK, 0);
    CHECK_EQ(write(sp[1], "x", 1), 1);
    CHECK_EQ(read(sp[0], &c, 1), 1); /* registered now: the kernel's is set */
    CHECK(kernel_nonblock(sp[0]));
    int on = 1;
    CHECK_EQ(ioctl(sp[0], FIONBIO, &on), 0);
    CHECK(fcntl(sp[0], F_GETFL) & O_NONBLOCK);
    CHECK_ERR(read(sp[0], &c, 1), EAGAIN);
    on = 0;
    CHECK_EQ(ioctl(sp[0], FIONBIO, &on), 0);
    CHECK_EQ(fcntl(sp[0], F_GETFL) & O_NONBLOCK, 0);
    CHECK(kernel_nonblock(sp[0])); /* still the hook's */
    /* a duplicate shares the description: blocking for the program, parks */
    int d = dup(sp[0]);
    CHECK(d >= 0);
    CHECK_EQ(fcntl(d, F_GETFL) & O_NONBLOCK, 0);
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0);
    char buf[8];
    CHECK_EQ(read(d, buf, sizeof buf), 5);
    np_wg_wait(&wg);
    int d2 = dup2(sp[0], 100);
    CHECK_EQ(d2, 100);
    CHECK_EQ(fcntl(100, F_GETFL) & O_NONBLOCK, 0);
    CHECK_ERR(dup2(-1, 100), EBADF);
    CHECK_EQ(close(100), 0);
    CHECK_EQ(close(d), 0);
    CHECK_EQ(close(sp[0]), 0);
    CHECK_EQ(close(sp[1]), 0);
    CHECK_ERR(read(sp[0], &c, 1), EBADF);
    CHECK_ERR(close(sp[0]), EBADF);
}

static void t_nonblocking_as_the_program_set_it(void)
{
    t_procs(1);
    T_RUN(nonblock_main, NULL);
}

/* ---- SO_RCVTIMEO, SO_SNDTIMEO ---- */

static void timeo_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    struct timeval tv = {0, 50000};
    CHECK_EQ(setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    char c;
    int64_t t0 = np_now();
    T_ERRNO = 0;
    CHECK_EQ(read(sp[0], &c, 1), -1);
    CHECK_EQ(t_errno(), EAGAIN); /* socket(7) */
    int64_t took = np_now() - t0;
    CHECK(took >= 50 * MS);
    CHECK(took < 2000 * MS);
    /* 0 means forever again */
    tv.tv_usec = 0;
    CHECK_EQ(setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0);
    char buf[8];
    CHECK_EQ(read(sp[0], buf, sizeof buf), 5);
    np_wg_wait(&wg);
    /* a write into a full socket: what went before the timeout */
    tv.tv_usec = 30000;
    CHECK_EQ(setsockopt(sp[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    size_t n = 8 << 20;
    char *big = calloc(1, n);
    ssize_t w = write(sp[1], big, n);
    CHECK(w > 0 && (size_t)w < n);
    T_ERRNO = 0;
    CHECK_EQ(write(sp[1], big, n), -1);
    CHECK_EQ(t_errno(), EAGAIN);
    free(big);
    close(sp[0]);
    close(sp[1]);
}

static void t_socket_timeouts(void)
{
    t_procs(1);
    T_RUN(timeo_main, NULL);
}

/* ---- connect, accept ---- */

static int lfd;
static struct sockaddr_in laddr;

static int listener(int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(fd, backlog), 0);
    socklen_t l = sizeof laddr;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&laddr, &l), 0);
    return fd;
}

static void dialer(void *arg)
{
    wait_blocked(NP_WAIT_IO, 1); /* accept parked */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(connect(fd, (struct sockaddr *)&laddr, sizeof laddr), 0);
    CHECK_EQ(write(fd, "hi", 2), 2);
    char c;
    CHECK_EQ(read(fd, &c, 1), 0); /* the acceptor closes */
    close(fd);
    np_wg_done(&wg);
}

static void connect_main(void *arg)
{
    lfd = listener(16);
    np_wg_add(&wg, 1);
    CHECK(np_go(dialer, NULL) > 0);
    int c = accept(lfd, NULL, NULL);
    CHECK(c >= 0);
    CHECK_EQ(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
    char buf[4];
    CHECK_EQ(read(c, buf, sizeof buf), 2);
    close(c);
    np_wg_wait(&wg);
    close(lfd);
    /* refused: the error of the connection */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_ERR(connect(fd, (struct sockaddr *)&laddr, sizeof laddr), ECONNREFUSED);
    close(fd);
    /* a listener whose queue is full drops the SYN: SO_SNDTIMEO ends the wait with
     * EINPROGRESS (socket(7)) */
    lfd = listener(0);
    int first = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(connect(first, (struct sockaddr *)&laddr, sizeof laddr), 0);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {0, 100000};
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    int64_t t0 = np_now();
    CHECK_ERR(connect(fd, (struct sockaddr *)&laddr, sizeof laddr), EINPROGRESS);
    CHECK(np_now() - t0 >= 100 * MS);
    close(fd);
    close(first);
    close(lfd);
}

static void t_connect_accept(void)
{
    t_procs(1);
    T_RUN(connect_main, NULL);
}

/* ---- close wakes the blocked ---- */

static void blocked_reader(void *arg)
{
    char c;
    CHECK_ERR(read(sp[0], &c, 1), EBADF);
    np_wg_done(&wg);
}

static void close_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    np_wg_add(&wg, 2);
    CHECK(np_go(blocked_reader, NULL) > 0);
    CHECK(np_go(blocked_reader, NULL) > 0);
    /* one waits in its read, the other for its turn (np's readers take turns) */
    for (;;) {
        np_stats st;
        np_stats_get(&st);
        if (st.waiting_by[NP_WAIT_IO] + st.waiting_by[NP_WAIT_MUTEX] >= 2)
            break;
        np_sleep(MS);
    }
    CHECK_EQ(close(sp[0]), 0);
    np_wg_wait(&wg);
    close(sp[1]);
}

static void t_close_wakes_readers(void)
{
    t_procs(2);
    T_RUN(close_main, NULL);
}

/* ---- poll, select, epoll ---- */

static void poll_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    int p2[2];
    CHECK_EQ(pipe(p2), 0);
    int file = open("/proc/self/status", O_RDONLY);
    CHECK(file >= 0);
    /* nothing ready, a timeout: 0, after it */
    struct pollfd f[5] = {{sp[0], POLLIN, 7}, {p2[0], POLLIN, 7}, {-1, POLLIN, 7}, {sp[0], POLLPRI, 7}, {p2[1], 0, 7}};
    int64_t t0 = np_now();
    CHECK_EQ(poll(f, 5, 40), 0);
    CHECK(np_now() - t0 >= 40 * MS);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(f[i].revents, 0);
    /* one becomes ready while the poller is parked: revents as the kernel's */
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0);
    CHECK_EQ(poll(f, 5, -1), 1);
    CHECK_EQ(f[0].revents, POLLIN);
    CHECK_EQ(f[1].revents + f[2].revents + f[3].revents + f[4].revents, 0);
    np_wg_wait(&wg);
    /* a regular file is always ready; a bad fd gives POLLNVAL */
    struct pollfd g[3] = {{file, POLLIN, 0}, {p2[0], POLLIN, 0}, {999, POLLIN, 0}};
    CHECK_EQ(poll(g, 3, -1), 2);
    CHECK_EQ(g[0].revents, POLLIN);
    CHECK_EQ(g[2].revents, POLLNVAL);
    /* the same fd twice, for reading and for writing */
    char buf[8];
    CHECK_EQ(read(sp[0], buf, 5), 5);
    struct pollfd h[2] = {{p2[0], POLLIN, 0}, {p2[0], POLLOUT, 0}};
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0); /* writes to sp[1]: not polled here */
    CHECK_EQ(poll(h, 2, 60), 0);
    np_wg_wait(&wg);
    CHECK_EQ(read(sp[0], buf, 5), 5);
    CHECK_EQ(write(p2[1], "z", 1), 1);
    CHECK_EQ(poll(h, 2, -1), 1);
    CHECK_EQ(h[0].revents, POLLIN);
    /* no fds: a sleep */
    t0 = np_now();
    CHECK_EQ(poll(NULL, 0, 20), 0);
    CHECK(np_now() - t0 >= 20 * MS);
    /* the peer hangs up */
    CHECK_EQ(close(sp[1]), 0);
    struct pollfd one = {sp[0], POLLIN, 0};
    CHECK_EQ(poll(&one, 1, -1), 1);
    CHECK(one.revents & POLLHUP);
    struct timespec ts = {0, 10 * MS};
    CHECK_EQ(ppoll(&one, 1, &ts, NULL), 1);
    close(sp[0]);
    close(p2[0]);
    close(p2[1]);
    close(file);
}

static void t_poll(void)
{
    t_procs(1);
    T_RUN(poll_main, NULL);
}

static void select_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    fd_set r, w;
    FD_ZERO(&r);
    FD_SET(sp[0], &r);
    struct timeval tv = {0, 30000};
    int64_t t0 = np_now();
    CHECK_EQ(select(sp[0] + 1, &r, NULL, NULL, &tv), 0);
    CHECK(np_now() - t0 >= 30 * MS);
    CHECK(!FD_ISSET(sp[0], &r));
    CHECK_EQ(tv.tv_sec + tv.tv_usec, 0); /* Linux: what was left */
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0);
    FD_ZERO(&r);
    FD_SET(sp[0], &r);
    FD_ZERO(&w);
    tv = (struct timeval){5, 0};
    CHECK_EQ(select(sp[0] + 1, &r, &w, NULL, &tv), 1);
    CHECK(FD_ISSET(sp[0], &r));
    CHECK(tv.tv_sec < 5 || tv.tv_usec < 1000000);
    np_wg_wait(&wg);
    /* pselect, no mask */
    FD_ZERO(&r);
    FD_SET(sp[0], &r);
    struct timespec ts = {1, 0};
    CHECK_EQ(pselect(sp[0] + 1, &r, NULL, NULL, &ts, NULL), 1);
    char buf[8];
    CHECK_EQ(read(sp[0], buf, 5), 5);
    /* a closed fd in a set: EBADF (one within the fd table: the kernel ignores bits past
     * its end) */
    int bad = dup(sp[1]);
    CHECK_EQ(close(bad), 0);
    FD_ZERO(&r);
    FD_SET(sp[0], &r);
    FD_SET(bad, &r);
    tv = (struct timeval){1, 0};
    CHECK_ERR(select((bad > sp[0] ? bad : sp[0]) + 1, &r, NULL, NULL, &tv), EBADF);
    close(sp[0]);
    close(sp[1]);
}

static void t_select(void)
{
    t_procs(1);
    T_RUN(select_main, NULL);
}

static void epoll_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = 42}, out[4];
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, sp[0], &e), 0);
    CHECK_EQ(epoll_wait(ep, out, 4, 20), 0);
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0);
    CHECK_EQ(epoll_wait(ep, out, 4, -1), 1); /* parks: the writer runs */
    CHECK_EQ(out[0].data.u32, 42u);
    np_wg_wait(&wg);
    close(ep);
    close(sp[0]);
    close(sp[1]);
}

static void t_epoll_wait(void)
{
    t_procs(1);
    T_RUN(epoll_main, NULL);
}

/* ---- the other ways to make descriptors ---- */

static int evfd, pp[2];
static void late_posts(void *arg)
{
    wait_blocked(NP_WAIT_IO, 1);
    uint64_t one = 1;
    CHECK_EQ(write(evfd, &one, sizeof one), (ssize_t)sizeof one);
    wait_blocked(NP_WAIT_IO, 1);
    CHECK_EQ(write(pp[1], "p", 1), 1);
    np_wg_done(&wg);
}

static void kinds_main(void *arg)
{
    /* an eventfd and a pipe2 pipe: their reads park */
    evfd = eventfd(0, EFD_CLOEXEC);
    CHECK(evfd >= 0);
    CHECK_EQ(pipe2(pp, O_CLOEXEC), 0);
    np_wg_add(&wg, 1);
    CHECK(np_go(late_posts, NULL) > 0);
    uint64_t v = 0;
    CHECK_EQ(read(evfd, &v, sizeof v), (ssize_t)sizeof v);
    CHECK_EQ(v, 1u);
    int d = fcntl(pp[0], F_DUPFD_CLOEXEC, 50); /* a duplicate of the pipe: parks too */
    CHECK(d >= 50);
    char c;
    CHECK_EQ(read(d, &c, 1), 1);
    np_wg_wait(&wg);
    CHECK_EQ(fcntl(d, F_GETFL) & O_NONBLOCK, 0);
    /* dup3 over a registered fd: np lets go of the old one, the new one works */
    CHECK_EQ(dup3(pp[0], d, O_CLOEXEC), d);
    CHECK_EQ(write(pp[1], "q", 1), 1);
    CHECK_EQ(read(d, &c, 1), 1);
    CHECK_EQ(c, 'q');
    /* a pipe2 asked non-blocking stays so */
    int nb[2];
    CHECK_EQ(pipe2(nb, O_NONBLOCK), 0);
    CHECK_ERR(read(nb[0], &c, 1), EAGAIN);
    /* UDP: one datagram per call; epoll_pwait without a mask parks */
    int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(u1, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    CHECK_EQ(getsockname(u1, (struct sockaddr *)&a, &al), 0);
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = u1}, out[2];
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, u1, &e), 0);
    CHECK_EQ(epoll_pwait(ep, out, 2, 10, NULL), 0);
    CHECK_EQ(sendto(u2, "dgram1", 6, 0, (struct sockaddr *)&a, sizeof a), 6);
    CHECK_EQ(sendto(u2, "dg2", 3, 0, (struct sockaddr *)&a, sizeof a), 3);
    CHECK_EQ(epoll_pwait(ep, out, 2, -1, NULL), 1);
    char buf[16];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    CHECK_EQ(recvfrom(u1, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl), 6);
    CHECK_EQ(recv(u1, buf, sizeof buf, MSG_WAITALL), 3); /* a datagram is whole as it is */
    close(ep);
    close(u1);
    close(u2);
    close(nb[0]);
    close(nb[1]);
    close(d);
    close(evfd);
    close(pp[0]);
    close(pp[1]);
}

static void t_eventfd_pipe2_dup3_udp(void)
{
    t_procs(1);
    T_RUN(kinds_main, NULL);
}

/* ---- elsewhere than in a coroutine ---- */

/* A thread that is not a coroutine reads an fd the hook made non-blocking: it blocks, as
 * the program expects (the hook waits in a real poll). */
static void *thread_reader(void *arg)
{
    char buf[8];
    ssize_t r = read(sp[0], buf, sizeof buf);
    return (void *)(intptr_t)r;
}

static void forced_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    np_wg_add(&wg, 1);
    CHECK(np_go(late_writer, NULL) > 0);
    char buf[8];
    CHECK_EQ(read(sp[0], buf, sizeof buf), 5);
    np_wg_wait(&wg);
    CHECK(kernel_nonblock(sp[0]));
}

static void t_outside_blocks_as_expected(void)
{
    t_procs(1);
    T_RUN(forced_main, NULL);
    /* np has stopped; the fd is still the hook's non-blocking one */
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, thread_reader, NULL), 0);
    CHECK_EQ(write(sp[1], "later", 5), 5);
    void *r;
    CHECK_EQ(pthread_join(th, &r), 0);
    CHECK_EQ((intptr_t)r, 5);
    /* the runtime again: the fd is registered anew */
    T_RUN(forced_main, NULL);
    close(sp[0]);
    close(sp[1]);
}

/* A child forked by a coroutine has no runtime: its reads block the plain way. */
static void fork_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    char c;
    CHECK_EQ(write(sp[1], "a", 1), 1);
    CHECK_EQ(read(sp[0], &c, 1), 1); /* registered, non-blocking in the kernel */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char buf[8];
        ssize_t r = read(sp[0], buf, sizeof buf); /* blocks until the parent writes */
        _exit(r == 4 && memcmp(buf, "kid!", 4) == 0 ? 0 : 3);
    }
    CHECK_EQ(write(sp[1], "kid!", 4), 4);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    close(sp[0]);
    close(sp[1]);
}

static void t_fork_child_has_no_runtime(void)
{
    t_procs(1);
    T_RUN(fork_main, NULL);
}

/* ---- name lookups ---- */

static void dns_main(void *arg)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    CHECK_EQ(getaddrinfo("127.0.0.1", "80", &hints, &res), 0);
    CHECK(res != NULL);
    CHECK_EQ(((struct sockaddr_in *)res->ai_addr)->sin_port, htons(80));
    char host[64], serv[16];
    CHECK_EQ(getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof host, serv, sizeof serv,
                         NI_NUMERICHOST | NI_NUMERICSERV),
             0);
    CHECK(strcmp(host, "127.0.0.1") == 0 && strcmp(serv, "80") == 0);
    freeaddrinfo(res);
    CHECK_EQ(getaddrinfo("localhost", NULL, &hints, &res), 0);
    freeaddrinfo(res);
    struct hostent *h = gethostbyname("127.0.0.1");
    CHECK(h && h->h_addrtype == AF_INET);
    struct hostent he, *hr = NULL;
    char buf[1024];
    int herr = 0;
    CHECK_EQ(gethostbyname_r("127.0.0.1", &he, buf, sizeof buf, &hr, &herr), 0);
    CHECK(hr == &he);
}

static void t_name_lookups(void)
{
    t_procs(1);
    T_RUN(dns_main, NULL);
}

/* ---- errno after a park on another thread ---- */

/* Parks after which the coroutine ran on another thread than before: a library's
 * thread-local state (errno included) is then another thread's; np sets errno on the
 * thread it resumes on. */
static _Atomic int moved;

static void errno_worker(void *arg)
{
    int s[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    struct timeval tv = {0, 2000};
    CHECK_EQ(setsockopt(s[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    char c;
    /* (a worker moves when its timer fires on the busy P: usually within 0.2 s, now and
     * then after seconds, when the workers happen to sit on the idle P) */
    int64_t end = np_now() + 20000 * MS;
    for (int i = 0; i < 50 || (atomic_load(&moved) == 0 && np_now() < end); i++) {
        pthread_t before = t_self_();
        T_ERRNO = 0;
        CHECK_EQ(read(s[0], &c, 1), -1);
        CHECK_EQ(t_errno(), EAGAIN); /* set on the thread it resumed on */
        if (!pthread_equal(before, t_self_()))
            atomic_fetch_add(&moved, 1);
    }
    close(s[0]);
    close(s[1]);
    np_wg_done(&wg);
}

/* Keeps its P busy, so that the idle one steals the coroutines woken there. */
static _Atomic bool stop_busy;
static np_wg busy_wg = NP_WG_INIT;
static void busy(void *arg)
{
    while (!atomic_load(&stop_busy))
        np_yield();
    np_wg_done(&busy_wg);
}

static void errno_main(void *arg)
{
    np_wg_add(&busy_wg, 1);
    CHECK(np_go(busy, NULL) > 0);
    np_wg_add(&wg, 8);
    for (int i = 0; i < 8; i++)
        CHECK(np_go(errno_worker, NULL) > 0);
    np_wg_wait(&wg);
    atomic_store(&stop_busy, true);
    np_wg_wait(&busy_wg);
    CHECK(atomic_load(&moved) > 0); /* the case is only worth something if they moved */
}

/* A coroutine that parks while it holds a pthread mutex holds it for its whole thread:
 * another coroutine on the same P that called pthread_mutex_lock would block that
 * thread, and so the holder, for good. pthread_mutex_trylock sees it; np_mutex parks. */
static pthread_mutex_t pmu = PTHREAD_MUTEX_INITIALIZER;
static np_mutex nmu = NP_MUTEX_INIT;

static void holder(void *arg)
{
    CHECK_EQ(pthread_mutex_lock(&pmu), 0);
    np_mutex_lock(&nmu);
    char c;
    CHECK_EQ(read(sp[0], &c, 1), 1); /* parks holding both */
    np_mutex_unlock(&nmu);
    CHECK_EQ(pthread_mutex_unlock(&pmu), 0);
    np_wg_done(&wg);
}

static void mutex_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    np_wg_add(&wg, 1);
    CHECK(np_go(holder, NULL) > 0);
    wait_blocked(NP_WAIT_IO, 1);
    CHECK_EQ(pthread_mutex_trylock(&pmu), EBUSY); /* lock() here: the thread would hang */
    CHECK_EQ(write(sp[1], "x", 1), 1);
    np_mutex_lock(&nmu); /* parks until the holder, woken by the write, unlocks */
    np_mutex_unlock(&nmu);
    np_wg_wait(&wg);
    CHECK_EQ(pthread_mutex_trylock(&pmu), 0);
    CHECK_EQ(pthread_mutex_unlock(&pmu), 0);
    close(sp[0]);
    close(sp[1]);
}

static void t_pthread_mutex_across_a_park(void)
{
    t_procs(1);
    T_RUN(mutex_main, NULL);
}

static void t_errno_after_park(void)
{
    t_procs(2);
    T_RUN(errno_main, NULL);
}

static const t_case cases[] = {
    T(t_read_write_park),
    T(t_blocking_write_is_whole),
    T(t_nonblocking_as_the_program_set_it),
    T(t_socket_timeouts),
    T(t_connect_accept),
    T(t_close_wakes_readers),
    T(t_poll),
    T(t_select),
    T(t_epoll_wait),
    T(t_eventfd_pipe2_dup3_udp),
    T(t_outside_blocks_as_expected),
    T(t_fork_child_has_no_runtime),
    T(t_name_lookups),
    T(t_errno_after_park),
    T(t_pthread_mutex_across_a_park),
    {0},
};
T_MAIN(cases)
