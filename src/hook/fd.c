/* Descriptors under the hook: what the hook knows of each fd, the calls that read,
 * write, connect and accept, and the calls that create, duplicate, configure and close
 * descriptors, which keep that knowledge right.
 *
 * In a coroutine, a blocking call on a pollable fd (socket, pipe, FIFO, eventfd...) that
 * the program did not make non-blocking registers the fd with np (np_fd_open: the
 * kernel's O_NONBLOCK is then set, the program's view stays blocking), and runs through
 * np's fd layer: the real call, and on EAGAIN a park on the netpoller, bounded by
 * SO_RCVTIMEO/SO_SNDTIMEO. Elsewhere (another thread, a child of fork, np_blocking's
 * fn) the real call runs; on an fd whose O_NONBLOCK is the hook's, it is made to block
 * as the program expects (a real poll(2) until ready). An fd the program registered with
 * np_fd_open itself is np's: the hooks leave it alone (its calls are np_read...). */
#undef _FORTIFY_SOURCE /* these define the functions glibc's fortify wrappers inline */
#include "hook.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---- the real calls (system calls when linked statically, see NP_REAL) ---------------- */

static long sc(long r) { return r; } /* syscall(2) already returns -1 and sets errno */
static ssize_t sys_read_(int fd, void *b, size_t n) { return sc(syscall(SYS_read, fd, b, n)); }
static ssize_t sys_write_(int fd, const void *b, size_t n) { return sc(syscall(SYS_write, fd, b, n)); }
static ssize_t sys_readv_(int fd, const struct iovec *v, int n) { return sc(syscall(SYS_readv, fd, v, n)); }
static ssize_t sys_writev_(int fd, const struct iovec *v, int n) { return sc(syscall(SYS_writev, fd, v, n)); }
static ssize_t sys_recvfrom_(int fd, void *b, size_t n, int fl, struct sockaddr *a, socklen_t *al)
{
    return sc(syscall(SYS_recvfrom, fd, b, n, fl, a, al));
}
static ssize_t sys_sendto_(int fd, const void *b, size_t n, int fl, const struct sockaddr *a, socklen_t al)
{
    return sc(syscall(SYS_sendto, fd, b, n, fl, a, al));
}
static ssize_t sys_recvmsg_(int fd, struct msghdr *m, int fl) { return sc(syscall(SYS_recvmsg, fd, m, fl)); }
static ssize_t sys_sendmsg_(int fd, const struct msghdr *m, int fl) { return sc(syscall(SYS_sendmsg, fd, m, fl)); }
static int sys_connect_(int fd, const struct sockaddr *a, socklen_t l) { return (int)syscall(SYS_connect, fd, a, l); }
static int sys_accept4_(int fd, struct sockaddr *a, socklen_t *l, int fl) { return (int)syscall(SYS_accept4, fd, a, l, fl); }
static int sys_close_(int fd) { return (int)syscall(SYS_close, fd); }
static int sys_dup_(int fd) { return (int)syscall(SYS_dup, fd); }
static int sys_dup3_(int a, int b, int fl) { return (int)syscall(SYS_dup3, a, b, fl); }
static int sys_dup2_(int a, int b)
{
    if (a == b) /* dup3 refuses that; dup2 checks a and returns it */
        return syscall(SYS_fcntl, a, F_GETFD) < 0 ? -1 : b;
    return sys_dup3_(a, b, 0);
}
static int sys_fcntl_(int fd, int cmd, void *arg) { return (int)syscall(SYS_fcntl, fd, cmd, arg); }
static int sys_ioctl_(int fd, unsigned long req, void *arg) { return (int)syscall(SYS_ioctl, fd, req, arg); }
static int sys_setsockopt_(int fd, int lv, int name, const void *v, socklen_t l)
{
    return (int)syscall(SYS_setsockopt, fd, lv, name, v, l);
}
static int sys_socket_(int d, int t, int p) { return (int)syscall(SYS_socket, d, t, p); }
static int sys_socketpair_(int d, int t, int p, int sv[2]) { return (int)syscall(SYS_socketpair, d, t, p, sv); }
static int sys_pipe2_(int fds[2], int fl) { return (int)syscall(SYS_pipe2, fds, fl); }
static int sys_pipe_(int fds[2]) { return sys_pipe2_(fds, 0); }
static int sys_eventfd_(unsigned int v, int fl) { return (int)syscall(SYS_eventfd2, v, fl); }
static int sys_epoll_create1_(int fl) { return (int)syscall(SYS_epoll_create1, fl); }
static int sys_accept_(int fd, struct sockaddr *a, socklen_t *l) { return sys_accept4_(fd, a, l, 0); }

#define REAL(name, type) NP_REAL(type, name, sys_##name##_)
#define real_read REAL(read, ssize_t(*)(int, void *, size_t))
#define real_write REAL(write, ssize_t(*)(int, const void *, size_t))
#define real_readv REAL(readv, ssize_t(*)(int, const struct iovec *, int))
#define real_writev REAL(writev, ssize_t(*)(int, const struct iovec *, int))
#define real_recvfrom REAL(recvfrom, ssize_t(*)(int, void *, size_t, int, struct sockaddr *, socklen_t *))
#define real_sendto REAL(sendto, ssize_t(*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))
#define real_recvmsg REAL(recvmsg, ssize_t(*)(int, struct msghdr *, int))
#define real_sendmsg REAL(sendmsg, ssize_t(*)(int, const struct msghdr *, int))
#define real_connect REAL(connect, int (*)(int, const struct sockaddr *, socklen_t))
#define real_accept REAL(accept, int (*)(int, struct sockaddr *, socklen_t *))
#define real_accept4 REAL(accept4, int (*)(int, struct sockaddr *, socklen_t *, int))
#define real_close REAL(close, int (*)(int))
#define real_dup REAL(dup, int (*)(int))
#define real_dup2 REAL(dup2, int (*)(int, int))
#define real_dup3 REAL(dup3, int (*)(int, int, int))
#define real_fcntl REAL(fcntl, int (*)(int, int, ...))
#define real_ioctl REAL(ioctl, int (*)(int, unsigned long, ...))
#define real_setsockopt REAL(setsockopt, int (*)(int, int, int, const void *, socklen_t))
#define real_socket REAL(socket, int (*)(int, int, int))
#define real_socketpair REAL(socketpair, int (*)(int, int, int, int *))
#define real_pipe REAL(pipe, int (*)(int *))
#define real_pipe2 REAL(pipe2, int (*)(int *, int))
#define real_eventfd REAL(eventfd, int (*)(unsigned int, int))
#define real_epoll_create1 REAL(epoll_create1, int (*)(int))

/* ---- what the hook knows of each fd --------------------------------------------------- */

typedef struct hfd {
    _Atomic uint32_t st;       /* H_*; 0: nothing known (reset when the number is made) */
    _Atomic int64_t rto, sto;  /* SO_RCVTIMEO, SO_SNDTIMEO in ns; 0: none */
} hfd;

#define HCHUNK 4096
#define HNCHUNKS 1024 /* descriptors up to 4M */
static hfd first_[HCHUNK];
static hfd *_Atomic chunks_[HNCHUNKS];
static atomic_flag lock_ = ATOMIC_FLAG_INIT; /* chunk creation; adoption */
/* Set while this thread registers an fd (np_fd_open, which never parks): its fcntl
 * calls are np's own, not the program's. */
static _Thread_local bool adopting_;

static void lock(void)
{
    while (atomic_flag_test_and_set_explicit(&lock_, memory_order_acquire))
        sched_yield();
}
static void unlock(void) { atomic_flag_clear_explicit(&lock_, memory_order_release); }

/* The entry of fd; NULL for a bad number, or (create false) one never made. */
static hfd *hent(int fd, bool create)
{
    if ((unsigned)fd < HCHUNK)
        return &first_[fd];
    if (fd < 0 || fd / HCHUNK >= HNCHUNKS)
        return NULL;
    hfd *c = atomic_load_explicit(&chunks_[fd / HCHUNK], memory_order_acquire);
    if (!c && create) {
        lock();
        c = atomic_load(&chunks_[fd / HCHUNK]);
        if (!c) {
            c = calloc(HCHUNK, sizeof *c);
            atomic_store_explicit(&chunks_[fd / HCHUNK], c, memory_order_release);
        }
        unlock();
    }
    return c ? &c[fd % HCHUNK] : NULL;
}

static uint32_t peek(int fd)
{
    hfd *h = hent(fd, false);
    return h ? atomic_load_explicit(&h->st, memory_order_acquire) : 0;
}

static void set_bits(int fd, uint32_t set, uint32_t clear)
{
    hfd *h = hent(fd, true);
    if (!h)
        return;
    uint32_t s = atomic_load(&h->st);
    while (!atomic_compare_exchange_weak(&h->st, &s, (s | set) & ~clear))
        ;
}

/* A new descriptor number: whatever was known of an earlier fd of that number goes. */
static void made(int fd)
{
    hfd *h = fd >= 0 ? hent(fd, false) : NULL;
    if (h) {
        atomic_store(&h->st, 0);
        atomic_store(&h->rto, 0);
        atomic_store(&h->sto, 0);
    }
}

static int64_t tv_ns(const struct timeval *tv)
{
    if (tv->tv_sec < 0 || (tv->tv_sec == 0 && tv->tv_usec <= 0))
        return 0;
    if (tv->tv_sec >= INT64_MAX / 1000000000 - 1)
        return INT64_MAX / 2;
    return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
}

uint32_t np__hook_state(int fd)
{
    hfd *h = hent(fd, true);
    if (!h)
        return 0;
    uint32_t s = atomic_load_explicit(&h->st, memory_order_acquire);
    if (s & (H_KNOWN | H_CLOSING))
        return s;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 0;
    int fl = real_fcntl(fd, F_GETFL);
    if (fl < 0)
        return 0;
    uint32_t k = H_KNOWN | (fl & O_NONBLOCK ? H_UNB : 0);
    if (S_ISSOCK(st.st_mode)) {
        k |= H_POLL | H_SOCK;
        struct timeval tv;
        socklen_t l = sizeof tv;
        if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) == 0)
            atomic_store(&h->rto, tv_ns(&tv));
        l = sizeof tv;
        if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &l) == 0)
            atomic_store(&h->sto, tv_ns(&tv));
    } else if (S_ISFIFO(st.st_mode) || (st.st_mode & S_IFMT) == 0) {
        k |= H_POLL; /* pipes, FIFOs; anonymous inodes: eventfd, timerfd, epoll... */
    }
    /* ttys and other devices, regular files, directories: the real call */
    if (atomic_compare_exchange_strong(&h->st, &s, s | k))
        return s | k;
    return s; /* learnt meanwhile by another thread */
}

int64_t np__hook_timeout(int fd, int mode)
{
    hfd *h = hent(fd, false);
    return h ? atomic_load_explicit(mode == PD_R ? &h->rto : &h->sto, memory_order_relaxed) : 0;
}

bool np__hook_adopt(int fd, bool io)
{
    uint32_t s = np__hook_state(fd);
    if (!(s & H_POLL) || (io && (s & H_UNB)) || (s & H_CLOSING))
        return false;
    if (s & H_OWNED) {
        if (np__hook_registered(fd))
            return true;
        set_bits(fd, 0, H_OWNED); /* np ran and stopped since: register it again */
    }
    if (np__hook_registered(fd))
        return !io; /* the program's own: np's calls are its I/O; it can be waited on */
    lock();
    bool ok = np__hook_registered(fd);
    if (!ok) {
        s = peek(fd);
        adopting_ = true;
        ok = np_fd_open(fd) == 0;
        adopting_ = false;
        if (ok)
            set_bits(fd, H_OWNED | (s & H_UNB ? 0 : H_FORCED), 0);
        else if (errno != EEXIST)
            set_bits(fd, 0, H_POLL); /* the poller cannot watch it: the real call */
    }
    unlock();
    return ok && (peek(fd) & H_OWNED);
}

/* ---- blocking calls ------------------------------------------------------------------- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Outside a coroutine, on an fd the hook made non-blocking behind the program's back:
 * the real call, waiting in a real poll(2) until it can go on (or the timeout). */
static ssize_t emulate(int fd, int mode, ssize_t (*op)(int, void *), void *arg)
{
    int64_t to = np__hook_timeout(fd, mode), end = to > 0 ? mono_ns() + to : 0;
    for (;;) {
        ssize_t r = op(fd, arg);
        if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return r;
        int ms = -1;
        if (end) {
            int64_t left = end - mono_ns();
            if (left <= 0) {
                errno = EAGAIN;
                return -1;
            }
            ms = left / 1000000 + 1 > INT_MAX ? INT_MAX : (int)(left / 1000000 + 1);
        }
        struct pollfd p = {fd, (short)(mode == PD_R ? POLLIN : POLLOUT), 0};
        if (np__hook_real_poll(&p, 1, ms) < 0 && errno != EINTR)
            return -1;
    }
}

static bool forced(int fd)
{
    uint32_t s = peek(fd);
    return (s & H_FORCED) && !(s & H_UNB);
}

/* One call that may block in mode (PD_R, PD_W): in a coroutine through np's fd layer,
 * parking on EAGAIN; elsewhere the real call (made to block if the hook made the fd
 * non-blocking). want: as np__hook_io. */
static ssize_t call(int fd, int mode, ssize_t (*op)(int, void *), void *arg, size_t want, bool dontwait)
{
    if (dontwait)
        return op(fd, arg);
    if (peek(fd) & H_CLOSING) { /* a close has begun: as if it were done */
        errno = EBADF;
        return -1;
    }
    if (np__hook_in_coroutine() && np__hook_adopt(fd, true)) {
        ssize_t r = np__hook_io(fd, mode, np__hook_timeout(fd, mode), op, arg, want);
        if (r >= 0)
            return r;
        np__hook_seterrno(r == -ETIMEDOUT ? EAGAIN : (int)-r); /* socket(7): timeout: EAGAIN */
        return -1;
    }
    return forced(fd) ? emulate(fd, mode, op, arg) : op(fd, arg);
}

/* The arguments of one read or write call. */
struct io {
    enum { IO_RW, IO_TO, IO_V, IO_MSG } how;
    void *buf;
    size_t len;
    int flags;
    struct sockaddr *addr;
    socklen_t *alen;       /* recvfrom */
    socklen_t addrlen;     /* sendto */
    struct msghdr *msg;    /* recvmsg, sendmsg; readv, writev: msg_iov, msg_iovlen */
};

static ssize_t op_in(int fd, void *a)
{
    struct io *x = a;
    switch (x->how) {
    case IO_RW: return real_read(fd, x->buf, x->len);
    case IO_TO: return real_recvfrom(fd, x->buf, x->len, x->flags, x->addr, x->alen);
    case IO_V: return real_readv(fd, x->msg->msg_iov, (int)x->msg->msg_iovlen);
    default: return real_recvmsg(fd, x->msg, x->flags);
    }
}

static ssize_t op_out(int fd, void *a)
{
    struct io *x = a;
    switch (x->how) {
    case IO_RW: return real_write(fd, x->buf, x->len);
    case IO_TO: return real_sendto(fd, x->buf, x->len, x->flags, x->addr, x->addrlen);
    case IO_V: return real_writev(fd, x->msg->msg_iov, (int)x->msg->msg_iovlen);
    default: return real_sendmsg(fd, x->msg, x->flags);
    }
}

/* Whether a blocking call on fd goes on after a partial transfer, as the kernel's do on
 * a blocking stream: a write until all is out, a recv with MSG_WAITALL until all is in
 * (or end of file). Not on a datagram socket, whose calls move one message whole. */
static bool is_stream(int fd)
{
    if (!(peek(fd) & H_SOCK))
        return true; /* a pipe */
    int type = 0;
    socklen_t l = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 && type == SOCK_STREAM;
}

/* Advance an iovec array past n bytes; the count left. */
static int iov_skip(struct iovec **v, int cnt, size_t n)
{
    while (cnt > 0 && n >= (*v)[0].iov_len) {
        n -= (*v)[0].iov_len;
        (*v)++;
        cnt--;
    }
    if (cnt > 0) {
        (*v)[0].iov_base = (char *)(*v)[0].iov_base + n;
        (*v)[0].iov_len -= n;
    }
    return cnt;
}

/* A transfer the program expects whole (see is_stream), in as many calls as it takes
 * while the fd blocks for the program; what was moved when an error or a timeout cuts
 * it short (the error itself when nothing was). */
static ssize_t whole(int fd, int mode, struct io *x, bool dontwait)
{
    ssize_t (*op)(int, void *) = mode == PD_R ? op_in : op_out;
    size_t want = mode == PD_R && x->how == IO_RW ? x->len : 0;
    ssize_t r = call(fd, mode, op, x, want, dontwait);
    if (r <= 0 || dontwait)
        return r;
    size_t total;
    struct iovec one, *v = NULL, small[8], *copy = NULL;
    int cnt = 0;
    struct msghdr mh;
    if (x->how == IO_V || x->how == IO_MSG) {
        total = 0;
        for (size_t i = 0; i < x->msg->msg_iovlen; i++)
            total += x->msg->msg_iov[i].iov_len;
    } else {
        total = x->len;
    }
    if ((size_t)r >= total || (peek(fd) & H_UNB) || !is_stream(fd))
        return r;
    size_t done = (size_t)r;
    if (x->how == IO_V || x->how == IO_MSG) { /* the caller's iovecs stay as they were */
        cnt = (int)x->msg->msg_iovlen;
        copy = cnt <= 8 ? small : malloc((size_t)cnt * sizeof *copy);
        if (!copy)
            return r;
        memcpy(copy, x->msg->msg_iov, (size_t)cnt * sizeof *copy);
        v = copy;
        mh = *x->msg;
        x->msg = &mh;
    } else {
        one.iov_base = x->buf;
        one.iov_len = x->len;
        v = &one;
        cnt = 1;
    }
    cnt = iov_skip(&v, cnt, done);
    while (cnt > 0) {
        if (x->how == IO_V || x->how == IO_MSG) {
            mh.msg_iov = v;
            mh.msg_iovlen = (size_t)cnt;
        } else {
            x->buf = v[0].iov_base;
            x->len = v[0].iov_len;
        }
        r = call(fd, mode, op, x, 0, false);
        if (r <= 0) /* an error or end of file: what was moved */
            break;
        done += (size_t)r;
        cnt = iov_skip(&v, cnt, (size_t)r);
    }
    if (copy != small)
        free(copy);
    return (ssize_t)done;
}

NP_HOOK ssize_t read(int fd, void *buf, size_t n)
{
    struct io x = {IO_RW, buf, n, 0, NULL, NULL, 0, NULL};
    return call(fd, PD_R, op_in, &x, n, false);
}

NP_HOOK ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = cnt < 0 ? 0 : (size_t)cnt};
    struct io x = {IO_V, NULL, 0, 0, NULL, NULL, 0, &m};
    if (cnt < 0) /* the kernel's answer */
        return real_readv(fd, iov, cnt);
    return call(fd, PD_R, op_in, &x, 0, false);
}

NP_HOOK ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *alen)
{
    struct io x = {IO_TO, buf, n, flags & ~MSG_WAITALL, addr, alen, 0, NULL};
    if (flags & MSG_WAITALL)
        return whole(fd, PD_R, &x, flags & MSG_DONTWAIT);
    return call(fd, PD_R, op_in, &x, 0, flags & MSG_DONTWAIT);
}

NP_HOOK ssize_t recv(int fd, void *buf, size_t n, int flags) { return recvfrom(fd, buf, n, flags, NULL, NULL); }

NP_HOOK ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    struct io x = {IO_MSG, NULL, 0, flags, NULL, NULL, 0, msg};
    return call(fd, PD_R, op_in, &x, 0, flags & MSG_DONTWAIT);
}

NP_HOOK ssize_t write(int fd, const void *buf, size_t n)
{
    struct io x = {IO_RW, (void *)buf, n, 0, NULL, NULL, 0, NULL};
    return whole(fd, PD_W, &x, false);
}

NP_HOOK ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (cnt < 0 || cnt > IOV_MAX)
        return real_writev(fd, iov, cnt);
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt};
    struct io x = {IO_V, NULL, 0, 0, NULL, NULL, 0, &m};
    return whole(fd, PD_W, &x, false);
}

NP_HOOK ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t alen)
{
    struct io x = {IO_TO, (void *)buf, n, flags, (struct sockaddr *)addr, NULL, alen, NULL};
    return whole(fd, PD_W, &x, flags & MSG_DONTWAIT);
}

NP_HOOK ssize_t send(int fd, const void *buf, size_t n, int flags) { return sendto(fd, buf, n, flags, NULL, 0); }

NP_HOOK ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (msg && (msg->msg_iovlen > IOV_MAX))
        return real_sendmsg(fd, msg, flags);
    struct io x = {IO_MSG, NULL, 0, flags, NULL, NULL, 0, (struct msghdr *)msg};
    if (!msg)
        return real_sendmsg(fd, msg, flags);
    return whole(fd, PD_W, &x, flags & MSG_DONTWAIT);
}

/* ---- connect, accept ------------------------------------------------------------------ */

/* The outcome of a connect in progress (SO_ERROR) once w, its wait, has ended. */
static int connected(int fd, int w)
{
    if (w) {
        np__hook_seterrno(w == -ETIMEDOUT ? EINPROGRESS : -w); /* socket(7): timeout */
        return -1;
    }
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
        return -1;
    if (err) {
        np__hook_seterrno(err);
        return -1;
    }
    return 0;
}

NP_HOOK int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    bool co = np__hook_in_coroutine() && np__hook_adopt(fd, true);
    if (!co && !forced(fd))
        return real_connect(fd, addr, len);
    int64_t to = np__hook_timeout(fd, PD_W), end = to > 0 ? mono_ns() + to : 0;
    for (;;) {
        int r = real_connect(fd, addr, len), en = np__hook_errno(); /* (after a park) */
        if (r == 0 || (en != EINPROGRESS && en != EAGAIN))
            return r;
        bool again = en == EAGAIN; /* a Unix socket's listener is full: try again */
        int64_t left = end ? end - mono_ns() : 0;
        if (end && left <= 0) {
            np__hook_seterrno(again ? EAGAIN : EINPROGRESS);
            return -1;
        }
        int w;
        if (co) {
            w = np__hook_wait(fd, PD_W, left);
        } else {
            struct pollfd p = {fd, POLLOUT, 0};
            int ms = end ? (int)(left / 1000000 + 1) : -1;
            int n = np__hook_real_poll(&p, 1, ms);
            w = n > 0 ? 0 : n == 0 ? -ETIMEDOUT : -np__hook_errno();
            if (w == -EINTR)
                continue;
        }
        if (!again)
            return connected(fd, w);
        if (w) {
            np__hook_seterrno(w == -ETIMEDOUT ? EAGAIN : -w);
            return -1;
        }
    }
}

struct acc { struct sockaddr *addr; socklen_t *len; int flags; };
static ssize_t op_accept(int fd, void *a)
{
    struct acc *x = a;
    return real_accept4(fd, x->addr, x->len, x->flags);
}

NP_HOOK int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    struct acc x = {addr, len, flags};
    int r = (int)call(fd, PD_R, op_accept, &x, 0, false);
    made(r);
    return r;
}

NP_HOOK int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (!np__hook_in_coroutine() && !forced(fd)) {
        int r = real_accept(fd, addr, len);
        made(r);
        return r;
    }
    return accept4(fd, addr, len, 0);
}

/* ---- making, duplicating, configuring and closing descriptors ------------------------- */

NP_HOOK int socket(int domain, int type, int proto)
{
    int r = real_socket(domain, type, proto);
    made(r);
    return r;
}

NP_HOOK int socketpair(int domain, int type, int proto, int sv[2])
{
    int r = real_socketpair(domain, type, proto, sv);
    if (r == 0) {
        made(sv[0]);
        made(sv[1]);
    }
    return r;
}

NP_HOOK int pipe2(int fds[2], int flags)
{
    int r = real_pipe2(fds, flags);
    if (r == 0) {
        made(fds[0]);
        made(fds[1]);
    }
    return r;
}

NP_HOOK int pipe(int fds[2])
{
    int r = real_pipe(fds);
    if (r == 0) {
        made(fds[0]);
        made(fds[1]);
    }
    return r;
}

NP_HOOK int eventfd(unsigned int v, int flags)
{
    int r = real_eventfd(v, flags);
    made(r);
    return r;
}

/* An epoll set (poll's for several descriptors is one) is made fresh like the others. */
NP_HOOK int epoll_create1(int flags)
{
    int r = real_epoll_create1(flags);
    made(r);
    return r;
}

NP_HOOK int epoll_create(int size)
{
    if (size <= 0) {
        errno = EINVAL;
        return -1;
    }
    return epoll_create1(0);
}

/* fd's number is about to go: np stops watching it (coroutines blocked on it wake with
 * EBADF, as np_close's do; calls that come meanwhile fail the same way). The entry is
 * left H_CLOSING; forgotten() clears it once the number has gone, unless the number was
 * made anew meanwhile by another thread (made() reset the entry: it is the new fd's). */
static hfd *unwatch(int fd)
{
    hfd *h = hent(fd, false);
    if (!h)
        return NULL;
    uint32_t s = atomic_exchange(&h->st, H_CLOSING);
    atomic_store(&h->rto, 0);
    atomic_store(&h->sto, 0);
    if ((s & H_OWNED) && !atomic_load(&np__hook_forked))
        np__hook_forget(fd);
    return h;
}

static void forgotten(hfd *h)
{
    uint32_t closing = H_CLOSING;
    if (h)
        atomic_compare_exchange_strong(&h->st, &closing, 0);
}

NP_HOOK int close(int fd)
{
    hfd *h = unwatch(fd);
    int r = real_close(fd);
    forgotten(h);
    return r;
}

/* A duplicate shares the original's open file description, and so its O_NONBLOCK (the
 * program's and the hook's) and its socket options; np registers it when it is used. */
static void copied(int from, int to)
{
    hfd *a = hent(from, false), *b = to >= 0 ? hent(to, true) : NULL;
    if (!b)
        return;
    atomic_store(&b->rto, a ? atomic_load(&a->rto) : 0);
    atomic_store(&b->sto, a ? atomic_load(&a->sto) : 0);
    atomic_store(&b->st, a ? atomic_load(&a->st) & ~H_OWNED : 0);
}

NP_HOOK int dup(int fd)
{
    int r = real_dup(fd);
    copied(fd, r);
    return r;
}

NP_HOOK int dup2(int fd, int to)
{
    if (fd == to)
        return real_dup2(fd, to);
    if (fcntl(fd, F_GETFD) < 0) /* a bad fd: to stays as it is */
        return -1;
    forgotten(unwatch(to));
    int r = real_dup2(fd, to);
    copied(fd, r);
    return r;
}

NP_HOOK int dup3(int fd, int to, int flags)
{
    if (fd == to || real_fcntl(fd, F_GETFD) < 0)
        return real_dup3(fd, to, flags);
    forgotten(unwatch(to));
    int r = real_dup3(fd, to, flags);
    copied(fd, r);
    return r;
}

static int fcntl_hook(int fd, int cmd, void *arg)
{
    if (adopting_)
        return real_fcntl(fd, cmd, arg);
    uint32_t s = peek(fd);
    switch (cmd) {
    case F_GETFL: {
        int r = real_fcntl(fd, cmd, arg);
        if (r >= 0 && (s & H_FORCED) && !(s & H_UNB))
            r &= ~O_NONBLOCK; /* the program's view */
        return r;
    }
    case F_SETFL: {
        int fl = (int)(intptr_t)arg;
        if (s & H_FORCED) { /* the kernel's stays set; the program's is remembered */
            int r = real_fcntl(fd, cmd, (void *)(intptr_t)(fl | O_NONBLOCK));
            if (r == 0)
                set_bits(fd, fl & O_NONBLOCK ? H_UNB : 0, fl & O_NONBLOCK ? 0 : H_UNB);
            return r;
        }
        int r = real_fcntl(fd, cmd, arg);
        if (r == 0 && (s & H_KNOWN))
            set_bits(fd, fl & O_NONBLOCK ? H_UNB : 0, fl & O_NONBLOCK ? 0 : H_UNB);
        return r;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        int r = real_fcntl(fd, cmd, arg);
        copied(fd, r);
        return r;
    }
    default:
        return real_fcntl(fd, cmd, arg);
    }
}

NP_HOOK int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_hook(fd, cmd, arg);
}

/* (what fcntl is named where _FILE_OFFSET_BITS=64 redirects it) */
NP_HOOK int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

NP_HOOK int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (req != FIONBIO || !arg)
        return real_ioctl(fd, req, arg);
    uint32_t s = peek(fd);
    int on = *(int *)arg != 0;
    if (s & H_FORCED) { /* as F_SETFL */
        int one = 1;
        int r = real_ioctl(fd, req, &one);
        if (r == 0)
            set_bits(fd, on ? H_UNB : 0, on ? 0 : H_UNB);
        return r;
    }
    int r = real_ioctl(fd, req, arg);
    if (r == 0 && (s & H_KNOWN))
        set_bits(fd, on ? H_UNB : 0, on ? 0 : H_UNB);
    return r;
}

/* SO_RCVTIMEO/SO_SNDTIMEO: the kernel keeps them (getsockopt reads them there, unhooked),
 * and the hook a copy to time its parks with. */
NP_HOOK int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    int r = real_setsockopt(fd, level, name, val, len);
    if (r != 0 || level != SOL_SOCKET || len < (socklen_t)sizeof(struct timeval) || !val)
        return r;
    bool rcv = name == SO_RCVTIMEO, snd = name == SO_SNDTIMEO;
#if defined(SO_RCVTIMEO_NEW)
    rcv = rcv || name == SO_RCVTIMEO_NEW;
    snd = snd || name == SO_SNDTIMEO_NEW;
#endif
    hfd *h = (rcv || snd) ? hent(fd, true) : NULL;
    if (h)
        atomic_store(rcv ? &h->rto : &h->sto, tv_ns(val));
    return r;
}
