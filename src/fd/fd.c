/* The fd layer: a table from descriptor numbers to their poll descriptors, reference
 * counts that keep a number from being closed (and reused) under an operation in
 * flight, per-direction turn-taking, and the read/write loops that park on EAGAIN. */
#include "fd.h"
#include "../sync/mutex.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sched.h>
#include <sys/uio.h>
#include <unistd.h>

/* read(2), write(2), readv(2), writev(2) as bare system call instructions: in a process
 * with threads glibc brackets each of these calls with two locked updates of the
 * thread's cancellation state (np's threads are never cancelled), and its syscall(2)
 * costs a call into another code page. The sanitizer builds keep the library calls,
 * whose interceptors check the buffer (ASan) and see the happens-before a descriptor
 * carries (TSan). */
#if defined(NP_ASAN) || defined(NP_TSAN) || !(defined(__x86_64__) || defined(__aarch64__))
#define sys_read read
#define sys_write write
#define sys_readv readv
#define sys_writev writev
#define sys_recv(fd, b, n) recv(fd, b, n, 0)
#define sys_send(fd, b, n) send(fd, b, n, MSG_NOSIGNAL)
#define sys_sendmsg(fd, m) sendmsg(fd, m, MSG_NOSIGNAL)
#else
/* A system call with up to six arguments (the last three zero for three-argument calls):
 * the count, or -1 and errno. */
static inline long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
    long r;
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(r) : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
#else
    register long x8 __asm__("x8") = nr, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c,
                  x3 __asm__("x3") = d, x4 __asm__("x4") = e, x5 __asm__("x5") = f;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    r = x0;
#endif
    if (__builtin_expect(r < 0 && r > -4096, 0)) {
        errno = (int)-r;
        return -1;
    }
    return r;
}
static inline ssize_t sys_read(int fd, void *b, size_t n) { return sys6(SYS_read, fd, (long)b, (long)n, 0, 0, 0); }
static inline ssize_t sys_write(int fd, const void *b, size_t n) { return sys6(SYS_write, fd, (long)b, (long)n, 0, 0, 0); }
static inline ssize_t sys_readv(int fd, const struct iovec *v, int n) { return sys6(SYS_readv, fd, (long)v, n, 0, 0, 0); }
static inline ssize_t sys_writev(int fd, const struct iovec *v, int n) { return sys6(SYS_writev, fd, (long)v, n, 0, 0, 0); }
/* Sockets: recv/send go straight to the socket layer, where read/write first pass
 * through the file layer (position lock checks, fsnotify); and a send never raises
 * SIGPIPE. */
static inline ssize_t sys_recv(int fd, void *b, size_t n) { return sys6(SYS_recvfrom, fd, (long)b, (long)n, 0, 0, 0); }
static inline ssize_t sys_send(int fd, const void *b, size_t n) { return sys6(SYS_sendto, fd, (long)b, (long)n, MSG_NOSIGNAL, 0, 0); }
static inline ssize_t sys_sendmsg(int fd, const struct msghdr *m) { return sys6(SYS_sendmsg, fd, (long)m, MSG_NOSIGNAL, 0, 0, 0); }
#endif

#define CHUNK 1024
#define NCHUNKS 4096 /* descriptors up to 4M */
#define OPEN 0x80000000u
#define REFS 0x7fffffffu

typedef struct np_fdent {
    _Atomic uint32_t state; /* OPEN bit and count of operations in flight */
    np_pd *pd;              /* NULL: not pollable (regular file), operations block */
    bool sock;              /* a socket: recv/send rather than read/write */
    bool stream;            /* a stream socket under an edge-triggered poller: a short
                             * read drains it */
    bool drained;           /* the last read was short: wait for an edge before reading */
    _Atomic bool solo;      /* np__solo() when opened (constant while np_run runs): read
                             * here, in a line the call touches anyway */
    np__mutex rmu, wmu;     /* readers take turns, writers take turns */
    _Atomic int32_t lk;
    np_g *closer;           /* np_close waiting for the operations to leave */
} np_fdent;

/* Entries are never freed while the runtime runs: a lookup racing a close is safe. */
static struct {
    np_fdent first[CHUNK];             /* the first CHUNK descriptors: no pointer to load */
    np_fdent *_Atomic chunks[NCHUNKS]; /* the others (chunks[0] unused) */
    _Atomic int32_t lock;
    _Atomic int64_t count; /* registered */
} tab_;

int64_t np__fd_count(void) { return atomic_load(&tab_.count); }

/* The entry of fd, NULL if its chunk does not exist (yet). */
static inline np_fdent *ent(int fd)
{
    if ((unsigned)fd < CHUNK)
        return &tab_.first[fd];
    if ((unsigned)fd >= (unsigned)CHUNK * NCHUNKS)
        return NULL;
    np_fdent *c = atomic_load_explicit(&tab_.chunks[(unsigned)fd / CHUNK], memory_order_acquire);
    return c ? &c[(unsigned)fd % CHUNK] : NULL;
}

static np_fdent *ent_create(int fd)
{
    if (fd >= 0 && fd < CHUNK)
        return &tab_.first[fd];
    if (fd < 0 || fd / CHUNK >= NCHUNKS)
        return NULL;
    np_fdent *c = atomic_load_explicit(&tab_.chunks[fd / CHUNK], memory_order_acquire);
    if (!c) {
        np_spin_lock(&tab_.lock);
        c = atomic_load(&tab_.chunks[fd / CHUNK]);
        if (!c) {
            c = calloc(CHUNK, sizeof *c);
            atomic_store_explicit(&tab_.chunks[fd / CHUNK], c, memory_order_release);
        }
        np_spin_unlock(&tab_.lock);
    }
    return c ? &c[fd % CHUNK] : NULL;
}

void np__fd_fini(void)
{
    memset(tab_.first, 0, sizeof tab_.first);
    for (int i = 0; i < NCHUNKS; i++) {
        free(atomic_load(&tab_.chunks[i]));
        atomic_store(&tab_.chunks[i], NULL);
    }
    atomic_store(&tab_.count, 0);
}

/* Take a reference for an operation; NULL (errno EBADF) if fd is not open. Only
 * coroutines take references: with one P they all run on the thread holding it, and
 * so does np_close, so the count needs no locked instruction (what is not a coroutine
 * fails before it takes one, see outside()). The load acquires what np_fd_open, which
 * any thread may call, stored before it set OPEN. */
static inline __attribute__((always_inline)) np_fdent *acquire(int fd)
{
    np_fdent *e = ent(fd);
    if (e) {
        uint32_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if ((s & OPEN) && atomic_load_explicit(&e->solo, memory_order_relaxed)) {
            atomic_store_explicit(&e->state, s + 1, memory_order_relaxed);
            return e;
        }
        while (s & OPEN)
            if (atomic_compare_exchange_weak(&e->state, &s, s + 1))
                return e;
    }
    errno = EBADF;
    return NULL;
}

static void release_last(np_fdent *e);

static inline __attribute__((always_inline)) void release(np_fdent *e)
{
    uint32_t s;
    if (atomic_load_explicit(&e->solo, memory_order_relaxed)) {
        s = atomic_load_explicit(&e->state, memory_order_relaxed);
        atomic_store_explicit(&e->state, s - 1, memory_order_relaxed);
    } else {
        s = atomic_fetch_sub(&e->state, 1);
    }
    if (s == 1) /* closed, and we were the last one in */
        release_last(e);
}

/* An fd call made outside a coroutine: -1 with EBADF if fd is not open, else EPERM. It
 * takes no reference (see acquire). */
static __attribute__((noinline)) int outside(int fd)
{
    np_fdent *e = ent(fd);
    errno = e && (atomic_load(&e->state) & OPEN) ? EPERM : EBADF;
    return -1;
}

static __attribute__((noinline)) void release_last(np_fdent *e)
{
    {
        np_spin_lock(&e->lk);
        np_g *g = e->closer;
        e->closer = NULL;
        np_spin_unlock(&e->lk);
        if (g)
            np__ready(g);
    }
}

static inline ssize_t pderr(int err)
{
    return -(err == PD_ECLOSING ? EBADF : err == PD_ETIMEOUT ? ETIMEDOUT : EIO);
}

/* Results inside the layer are counts or -errno; errno is set once, at the end. */
static inline ssize_t ret(ssize_t r)
{
    if (r >= 0)
        return r;
    np__seterrno((int)-r);
    return -1;
}

int np_fd_open(int fd)
{
    if (!atomic_load(&np__sched.running)) {
        errno = EPERM;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    np_fdent *e = ent_create(fd);
    if (!e) {
        errno = fd < 0 ? EBADF : ENOMEM;
        return -1;
    }
    np_spin_lock(&e->lk);
    if (atomic_load(&e->state) != 0) { /* open, or a close still draining */
        np_spin_unlock(&e->lk);
        errno = EEXIST;
        return -1;
    }
    e->pd = NULL;
    e->sock = S_ISSOCK(st.st_mode);
    e->stream = false;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
            np_spin_unlock(&e->lk);
            return -1;
        }
        int err = 0;
        e->pd = np__pd_open(fd, &err);
        if (!e->pd && err != EPERM) { /* EPERM: the poller can't watch it; block instead */
            fcntl(fd, F_SETFL, fl);
            np_spin_unlock(&e->lk);
            errno = err;
            return -1;
        }
        if (!e->pd)
            fcntl(fd, F_SETFL, fl);
        int type = 0;
        socklen_t tl = sizeof type;
        e->stream = e->pd && np__netpoll_edge() && S_ISSOCK(st.st_mode) && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
                    type == SOCK_STREAM;
    }
    e->drained = false;
    atomic_store_explicit(&e->solo, np__solo(), memory_order_relaxed);
    atomic_store(&e->state, OPEN);
    np_spin_unlock(&e->lk);
    atomic_fetch_add(&tab_.count, 1);
    return 0;
}

/* Regular files: the call runs through np_blocking, so the P serves others meanwhile. */
struct offp { ssize_t (*op)(int, void *); int fd; void *arg; ssize_t r; int err; };
static void *offp_run(void *a)
{
    struct offp *x = a;
    x->r = x->op(x->fd, x->arg);
    x->err = x->r < 0 ? errno : 0;
    return NULL;
}

static __attribute__((noinline)) ssize_t io_blocking(int fd, ssize_t (*op)(int, void *), void *arg)
{
    struct offp x = {op, fd, arg, 0, 0};
    do
        np_blocking(offp_run, &x);
    while (x.r < 0 && x.err == EINTR);
    return x.r < 0 ? -x.err : x.r;
}

/* io_loop after a first attempt failed: retry on EINTR, wait on EAGAIN. */
static __attribute__((noinline)) ssize_t io_again(int fd, np_pd *pd, int mode,
                                                  ssize_t (*op)(int, void *), void *arg)
{
    for (;;) {
        int en = np__errno();
        if (en != EINTR) {
            if (en != EAGAIN && en != EWOULDBLOCK)
                return -en;
            int err = np__pd_wait(pd, mode);
            if (err)
                return pderr(err);
        }
        ssize_t r = op(fd, arg);
        if (r >= 0)
            return r;
    }
}

/* The common loop: try, and on EAGAIN wait for the fd in mode. Returns the count or
 * -errno (errno is read out of line: the loop may have moved to another thread).
 * Inline, so that the first attempt calls the system call directly; e->pd is stable
 * while the caller holds its reference (np_close clears it once everyone has left).
 * Writes keep an old readiness mark: under an edge-triggered poller every read edge
 * sets it again (EPOLLOUT comes with EPOLLIN), so a reset would cost a locked store on
 * nearly every write, while a stale mark costs, after an EAGAIN (the wait ahead is
 * dearer), one more attempt (a wait consumes it, the next one waits for real). */
static inline __attribute__((always_inline)) ssize_t io_loop(int fd, np_fdent *e, int mode,
                                                             ssize_t (*op)(int, void *), void *arg)
{
    np_pd *pd = e->pd;
    if (!pd)
        return io_blocking(fd, op, arg);
    int err = mode == PD_W ? np__pd_check(pd, PD_W) : np__pd_reset(pd, mode);
    if (err)
        return pderr(err);
    ssize_t r = op(fd, arg);
    if (r >= 0)
        return r;
    return io_again(fd, pd, mode, op, arg);
}

/* An operation's reference and turn (readers' for PD_R, writers' for PD_W). */
static inline __attribute__((always_inline)) np__mutex *turn(np_fdent *e, int mode)
{
    return mode == PD_R ? &e->rmu : &e->wmu;
}

static __attribute__((noinline)) np_fdent *begin_failed(np_fdent *e)
{
    release(e);
    return NULL;
}

static inline __attribute__((always_inline)) np_fdent *begin(int fd, int mode)
{
    if (!np__getg()) {
        outside(fd);
        return NULL;
    }
    np_fdent *e = acquire(fd);
    if (!e)
        return NULL;
    if (np__mutex_lock(turn(e, mode), atomic_load_explicit(&e->solo, memory_order_relaxed)) != 0)
        return begin_failed(e);
    return e;
}

static inline __attribute__((always_inline)) void end(np_fdent *e, int mode)
{
    np__mutex_unlock_held(turn(e, mode), atomic_load_explicit(&e->solo, memory_order_relaxed));
    release(e);
}

ssize_t np__fd_io(int fd, int mode, ssize_t (*op)(int, void *), void *arg)
{
    np_fdent *e = begin(fd, mode);
    if (!e)
        return -np__errno();
    ssize_t r = io_loop(fd, e, mode, op, arg);
    end(e, mode);
    return r;
}

ssize_t np__ret(ssize_t r) { return ret(r); }

np_pd *np__fd_pd(int fd)
{
    np_fdent *e = ent(fd);
    return e && (atomic_load(&e->state) & OPEN) ? e->pd : NULL;
}

/* After a short read on a stream socket the next edge alone tells that there is more:
 * wait for it rather than ask the kernel (see read_loop). */
static inline bool edge_only(np_fdent *e) { return e->drained && !np__pd_hup(e->pd); }

/* Readiness, waiting if need be: the level now (poll(2) with no timeout), else the next
 * edge after the reset, which the caller's turn keeps anyone else from consuming; or,
 * after a short read, the edge alone (no syscall). A pd error or PD_OK. */
static inline __attribute__((always_inline)) int wait_ready(int fd, np_fdent *e, int mode)
{
    int err = PD_OK;
    if (!e->pd) {
        /* regular file: always ready */
    } else if (mode == PD_R && edge_only(e)) {
        err = np__pd_wait(e->pd, PD_R);
    } else if (!(err = np__pd_reset(e->pd, mode))) {
        struct pollfd pf = {fd, (short)(mode == PD_R ? POLLIN : POLLOUT), 0};
        if (poll(&pf, 1, 0) <= 0)
            err = np__pd_wait(e->pd, mode);
    }
    if (mode == PD_R && !err)
        e->drained = false;
    return err;
}

/* 0 or -errno. */
static inline __attribute__((always_inline)) int fd_wait(int fd, int mode)
{
    np_fdent *e = begin(fd, mode);
    if (!e)
        return -np__errno();
    int err = wait_ready(fd, e, mode);
    end(e, mode);
    return err ? (int)pderr(err) : 0;
}

int np__fd_wait(int fd, int mode) { return fd_wait(fd, mode); }
/* Each with its own copy: one frame less under a parked coroutine, the mode folded. */
NP_HOT int np_wait_readable(int fd) { return (int)ret(fd_wait(fd, PD_R)); }
int np_wait_writable(int fd) { return (int)ret(fd_wait(fd, PD_W)); }

struct rw { void *buf; size_t len; bool sock; };
static inline __attribute__((always_inline)) ssize_t op_read(int fd, void *a)
{
    struct rw *x = a;
    return x->sock ? sys_recv(fd, x->buf, x->len) : sys_read(fd, x->buf, x->len);
}

/* Reads on a stream socket: after a short read the socket was empty, and with an
 * edge-triggered poller any data since has left a readiness mark; so wait for it
 * instead of paying a read() that would return EAGAIN. Not once the peer hung up:
 * end of file is a state, and its one edge may have been consumed already. */
static inline __attribute__((always_inline)) ssize_t read_loop_as(int fd, np_fdent *e, size_t want,
                                                                  ssize_t (*op)(int, void *), void *arg,
                                                                  const bool *drained)
{
    if (edge_only(e)) {
        int err = np__pd_wait(e->pd, PD_R);
        if (err)
            return pderr(err);
    }
    e->drained = false;
    ssize_t r = io_loop(fd, e, PD_R, op, arg);
    e->drained = e->stream && r > 0 && (drained ? *drained : (size_t)r < want);
    return r;
}

/* A short read (fewer bytes than wanted) drained the socket. */
static inline __attribute__((always_inline)) ssize_t read_loop(int fd, np_fdent *e, size_t want,
                                                               ssize_t (*op)(int, void *), void *arg)
{
    return read_loop_as(fd, e, want, op, arg, NULL);
}

ssize_t np__fd_read_io(int fd, ssize_t (*op)(int, void *), void *arg, bool *drained)
{
    np_fdent *e = begin(fd, PD_R);
    if (!e)
        return -np__errno();
    *drained = false;
    ssize_t r = read_loop_as(fd, e, 0, op, arg, drained);
    end(e, PD_R);
    return r;
}

NP_HOT ssize_t np_read(int fd, void *buf, size_t len)
{
    np_fdent *e = begin(fd, PD_R);
    if (!e)
        return -1;
    struct rw x = {buf, len, e->sock};
    ssize_t r = read_loop(fd, e, len, op_read, &x);
    end(e, PD_R);
    return ret(r);
}

struct rv { const struct iovec *iov; int cnt; };
static ssize_t op_readv(int fd, void *a)
{
    struct rv *x = a;
    return sys_readv(fd, x->iov, x->cnt);
}

ssize_t np_readv(int fd, const struct iovec *iov, int iovcnt)
{
    np_fdent *e = begin(fd, PD_R);
    if (!e)
        return -1;
    struct rv x = {iov, iovcnt};
    size_t want = 0;
    for (int i = 0; i < iovcnt; i++)
        want += iov[i].iov_len;
    ssize_t r = read_loop(fd, e, want, op_readv, &x);
    end(e, PD_R);
    return ret(r);
}

static inline __attribute__((always_inline)) ssize_t send_or_write(int fd, const void *b, size_t n,
                                                                   bool sock)
{
    return sock ? sys_send(fd, b, n) : sys_write(fd, b, n);
}

/* Writes go on until everything is out: the iovec array is consumed in place. */
struct wv { struct iovec *iov; int cnt; bool sock; };
static ssize_t op_writev(int fd, void *a)
{
    struct wv *x = a;
    if (x->cnt == 1)
        return send_or_write(fd, x->iov[0].iov_base, x->iov[0].iov_len, x->sock);
    if (x->sock) { /* sendmsg for MSG_NOSIGNAL */
        struct msghdr mh = {.msg_iov = x->iov, .msg_iovlen = (size_t)x->cnt};
        return sys_sendmsg(fd, &mh);
    }
    return sys_writev(fd, x->iov, x->cnt);
}

static __attribute__((noinline)) ssize_t write_all(int fd, np_fdent *e, struct iovec *iov, int cnt)
{
    size_t done = 0;
    struct wv x = {iov, cnt, e->sock};
    while (x.cnt > 0 && x.iov[0].iov_len == 0) {
        x.iov++;
        x.cnt--;
    }
    while (x.cnt > 0) {
        ssize_t w = io_loop(fd, e, PD_W, op_writev, &x);
        if (w < 0)
            return w;
        done += (size_t)w;
        while (x.cnt > 0 && (size_t)w >= x.iov[0].iov_len) {
            w -= (ssize_t)x.iov[0].iov_len;
            x.iov++;
            x.cnt--;
        }
        if (x.cnt > 0) {
            x.iov[0].iov_base = (char *)x.iov[0].iov_base + w;
            x.iov[0].iov_len -= (size_t)w;
        }
    }
    return (ssize_t)done;
}

static inline __attribute__((always_inline)) ssize_t op_write(int fd, void *a)
{
    struct rw *x = a;
    return send_or_write(fd, x->buf, x->len, x->sock);
}

NP_HOT ssize_t np_write(int fd, const void *buf, size_t len)
{
    np_fdent *e = begin(fd, PD_W);
    if (!e)
        return -1;
    ssize_t r = 0;
    if (len) { /* the first attempt inline; what it left over as write_all would */
        struct rw x = {(void *)buf, len, e->sock};
        r = io_loop(fd, e, PD_W, op_write, &x);
        if (r >= 0 && (size_t)r < len) {
            struct iovec v = {(char *)buf + r, len - (size_t)r};
            ssize_t more = write_all(fd, e, &v, 1);
            r = more < 0 ? more : r + more;
        }
    }
    end(e, PD_W);
    return ret(r);
}

ssize_t np_writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX) {
        errno = EINVAL;
        return -1;
    }
    struct iovec *copy = malloc((size_t)(iovcnt ? iovcnt : 1) * sizeof *copy);
    if (!copy)
        return -1;
    memcpy(copy, iov, (size_t)iovcnt * sizeof *copy);
    np_fdent *e = begin(fd, PD_W);
    if (!e) {
        free(copy);
        return -1;
    }
    ssize_t r = write_all(fd, e, copy, iovcnt);
    end(e, PD_W);
    free(copy);
    return ret(r);
}

static bool close_wait(np_g *g, void *lk)
{
    (void)g;
    np_spin_unlock(lk);
    return true;
}

/* Unregister fd: blocked calls wake with EBADF, and once every operation in flight has
 * left, the poll descriptor goes; then the descriptor itself when close_it. A coroutine
 * parks meanwhile, any other thread (np__hook_forget) yields. 0, or -1 and errno. */
static int fd_close(int fd, bool close_it)
{
    np_g *self = np__getg();
    np_fdent *e = ent(fd);
    uint32_t s = e ? atomic_load(&e->state) : 0;
    while (s & OPEN)
        if (atomic_compare_exchange_weak(&e->state, &s, (s & ~OPEN) + 1))
            break; /* closed; and we hold a reference until the end */
    if (!(s & OPEN)) {
        errno = EBADF;
        return -1;
    }
    atomic_fetch_sub(&tab_.count, 1);
    if (e->pd)
        np__pd_unblock(e->pd); /* everyone blocked wakes with EBADF */
    /* Wait until every operation in flight has left. */
    if (self) {
        np_spin_lock(&e->lk);
        e->closer = self;
        if (atomic_fetch_sub(&e->state, 1) - 1 != 0) {
            np__park(close_wait, (void *)&e->lk, W_IO); /* the last one out readies us */
        } else {
            e->closer = NULL;
            np_spin_unlock(&e->lk);
        }
    } else {
        atomic_fetch_sub(&e->state, 1);
        while (atomic_load(&e->state) != 0) /* woken with EBADF, they leave at once */
            sched_yield();
    }
    np_spin_lock(&e->lk);
    np_pd *pd = e->pd;
    e->pd = NULL;
    np_spin_unlock(&e->lk);
    if (pd)
        np__pd_close(pd);
    return close_it ? close(fd) : 0;
}

int np_close(int fd)
{
    if (!np__getg()) /* as every descriptor call: EBADF if fd is not registered, else EPERM */
        return outside(fd);
    return fd_close(fd, true);
}

/* ---- libnp-hook's interface (fd.h) ---------------------------------------------------- */

/* The turn in mode, and a deadline timeout_ns from now when > 0 (NULL: -errno). */
static np_fdent *hook_begin(int fd, int mode, int64_t timeout_ns)
{
    np_fdent *e = begin(fd, mode);
    if (e && timeout_ns > 0 && e->pd)
        np__pd_set_deadline(e->pd, np_now() + timeout_ns, mode);
    return e;
}

static void hook_end(np_fdent *e, int mode, int64_t timeout_ns)
{
    if (timeout_ns > 0 && e->pd)
        np__pd_set_deadline(e->pd, 0, mode);
    end(e, mode);
}

NP_HOOK_ABI ssize_t np__hook_io(int fd, int mode, int64_t timeout_ns, ssize_t (*op)(int, void *),
                                void *arg, size_t want)
{
    np_fdent *e = hook_begin(fd, mode, timeout_ns);
    if (!e)
        return -np__errno();
    ssize_t r = want ? read_loop(fd, e, want, op, arg) : io_loop(fd, e, mode, op, arg);
    hook_end(e, mode, timeout_ns);
    return r;
}

NP_HOOK_ABI int np__hook_wait(int fd, int mode, int64_t timeout_ns)
{
    np_fdent *e = hook_begin(fd, mode, timeout_ns);
    if (!e)
        return -np__errno();
    int err = wait_ready(fd, e, mode);
    hook_end(e, mode, timeout_ns);
    return err ? (int)pderr(err) : 0;
}

NP_HOOK_ABI bool np__hook_registered(int fd)
{
    np_fdent *e = ent(fd);
    return e && (atomic_load(&e->state) & OPEN);
}

struct forget { int fd, r; };
static void forget_run(void *a)
{
    struct forget *f = a;
    f->r = fd_close(f->fd, false) ? -errno : 0;
}

NP_HOOK_ABI int np__hook_forget(int fd)
{
    /* With one P, coroutines count references with plain stores (acquire): from another
     * thread the close runs as a coroutine, on the P's thread. */
    if (!np__getg() && np__solo() && np__hook_registered(fd)) {
        struct forget f = {fd, -EBADF};
        if (np__foreign_call(forget_run, &f) != 0)
            return -EBADF;
        return f.r;
    }
    return fd_close(fd, false) ? -errno : 0;
}

static int set_deadline(int fd, int64_t d, int mode)
{
    if (!np__getg())
        return outside(fd);
    np_fdent *e = acquire(fd);
    if (!e)
        return -1;
    if (!e->pd) {
        release(e);
        errno = ENOTSUP;
        return -1;
    }
    np__pd_set_deadline(e->pd, d, mode);
    release(e);
    return 0;
}

int np_set_deadline(int fd, int64_t abs_ns) { return set_deadline(fd, abs_ns, PD_RW); }
int np_set_read_deadline(int fd, int64_t abs_ns) { return set_deadline(fd, abs_ns, PD_R); }
int np_set_write_deadline(int fd, int64_t abs_ns) { return set_deadline(fd, abs_ns, PD_W); }

const char *np_poller_name(void) { return np__netpoll_name(); }
