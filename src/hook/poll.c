/* Waiting on many descriptors: poll, ppoll, select, pselect, and a library's own epoll
 * fd (epoll_wait, epoll_pwait). In a coroutine, a wait that is not over at once parks
 * the coroutine once, on all its descriptors together:
 *   - one descriptor (the common case: a library waiting for its socket): np's own wait
 *     on it, the descriptor registered with np as the I/O hooks do;
 *   - several: a level-triggered epoll set made for the call, itself watched by np;
 *   - an epoll fd: np watches it (it is readable when one of its own is ready).
 * After the park the kernel is asked again with a zero timeout, so that revents, the fd
 * sets and the events are the kernel's own; a timeout is the call's, measured from its
 * start. A ppoll, pselect or epoll_pwait with a signal mask runs the real call (the mask
 * is the thread's, and the coroutine may move): it blocks the thread. */
#undef _FORTIFY_SOURCE /* these define the functions glibc's fortify wrappers inline */
#include "hook.h"
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int sys_ppoll_(struct pollfd *f, nfds_t n, const struct timespec *t, const sigset_t *m)
{
    return (int)syscall(SYS_ppoll, f, n, t, m, 8);
}
static int sys_poll_(struct pollfd *f, nfds_t n, int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000};
    return sys_ppoll_(f, n, ms < 0 ? NULL : &t, NULL);
}
static int sys_pselect_(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *m)
{
    struct { const sigset_t *m; size_t len; } sm = {m, 8};
    struct timespec tc, *tp = NULL;
    if (t) {
        tc = *t;
        tp = &tc;
    }
    return (int)syscall(SYS_pselect6, n, r, w, e, tp, m ? &sm : NULL);
}
static int sys_select_(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    struct timespec t, *tp = NULL;
    if (tv) {
        t.tv_sec = tv->tv_sec;
        t.tv_nsec = tv->tv_usec * 1000;
        tp = &t;
    }
    return (int)syscall(SYS_pselect6, n, r, w, e, tp, NULL);
}
static int sys_epoll_pwait_(int ep, struct epoll_event *ev, int max, int ms, const sigset_t *m)
{
    return (int)syscall(SYS_epoll_pwait, ep, ev, max, ms, m, 8);
}
static int sys_epoll_wait_(int ep, struct epoll_event *ev, int max, int ms)
{
    return sys_epoll_pwait_(ep, ev, max, ms, NULL);
}

#define REAL(name, type) NP_REAL(type, name, sys_##name##_)
#define real_poll REAL(poll, int (*)(struct pollfd *, nfds_t, int))
#define real_ppoll REAL(ppoll, int (*)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *))
#define real_select REAL(select, int (*)(int, fd_set *, fd_set *, fd_set *, struct timeval *))
#define real_pselect                                                                              \
    REAL(pselect, int (*)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *))
#define real_epoll_wait REAL(epoll_wait, int (*)(int, struct epoll_event *, int, int))
#define real_epoll_pwait REAL(epoll_pwait, int (*)(int, struct epoll_event *, int, int, const sigset_t *))

int np__hook_real_poll(struct pollfd *fds, unsigned long n, int ms) { return real_poll(fds, n, ms); }

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A valid timespec in ns; -2 when malformed. */
static int64_t ts_ns(const struct timespec *t)
{
    if (t->tv_sec < 0 || t->tv_nsec < 0 || t->tv_nsec >= 1000000000L)
        return -2;
    if (t->tv_sec >= INT64_MAX / 1000000000 - 1)
        return INT64_MAX / 2;
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

#define EPOLL_POLL_EVENTS (POLLIN | POLLPRI | POLLOUT | POLLRDNORM | POLLRDBAND | POLLWRNORM | POLLWRBAND | POLLRDHUP)

/* Park until one of fds may be ready: an epoll set of them for the call, watched by np.
 * 0, -ETIMEDOUT, or -errno. */
static int wait_many(const struct pollfd *fds, nfds_t n, int64_t left)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -np__hook_errno();
    int added = 0;
    for (nfds_t i = 0; i < n; i++) {
        if (fds[i].fd < 0)
            continue;
        uint32_t ev = (uint32_t)(fds[i].events & EPOLL_POLL_EVENTS);
        for (nfds_t j = 0; j < i; j++) /* the same fd again: one entry, the events merged */
            if (fds[j].fd == fds[i].fd)
                ev |= (uint32_t)(fds[j].events & EPOLL_POLL_EVENTS);
        struct epoll_event e = {.events = ev, .data.fd = fds[i].fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i].fd, &e) == 0 ||
            (errno == EEXIST && epoll_ctl(ep, EPOLL_CTL_MOD, fds[i].fd, &e) == 0))
            added++;
        /* EPERM: a regular file, always ready; the zero-timeout poll before saw it */
    }
    int w;
    if (added == 0) { /* nothing a poller can watch: a sleep */
        np_sleep(left < 0 ? INT64_MAX : left);
        w = -ETIMEDOUT;
    } else if (np__hook_adopt(ep, false)) {
        w = np__hook_wait(ep, PD_R, left < 0 ? 0 : left);
    } else {
        w = -np__hook_errno();
    }
    close(ep); /* (the hook's: np stops watching it) */
    return w;
}

/* poll in a coroutine; timeout in ns, < 0: none. */
static int poll_co(struct pollfd *fds, nfds_t n, int64_t timeout)
{
    int64_t end = timeout > 0 ? mono_ns() + timeout : 0;
    bool many = false;
    for (;;) {
        int r = real_poll(fds, n, 0);
        if (r != 0 || timeout == 0)
            return r;
        int64_t left = end ? end - mono_ns() : -1;
        if (end && left <= 0)
            return 0;
        int fd = -1;
        short ev = 0;
        for (nfds_t i = 0; i < n && !many; i++) {
            if (fds[i].fd < 0)
                continue;
            if (fd >= 0 && fds[i].fd != fd)
                many = true;
            fd = fds[i].fd;
            ev |= fds[i].events;
        }
        bool both = (ev & POLLIN) && (ev & POLLOUT);
        int w;
        if (fd < 0) { /* no descriptor: poll(NULL, 0, t) sleeps */
            np_sleep(left < 0 ? INT64_MAX : left);
            return 0;
        } else if (!many && !both && !(ev & POLLPRI) && np__hook_adopt(fd, false)) {
            w = np__hook_wait(fd, ev & POLLOUT ? PD_W : PD_R, left < 0 ? 0 : left);
            if (w && w != -ETIMEDOUT)
                many = true; /* (closed meanwhile...): the general way next time */
        } else {
            w = wait_many(fds, n, left);
            if (w && w != -ETIMEDOUT) {
                np__hook_seterrno(-w);
                return -1;
            }
        }
    }
}

NP_HOOK int poll(struct pollfd *fds, nfds_t n, int ms)
{
    if (ms == 0 || !np__hook_in_coroutine())
        return real_poll(fds, n, ms);
    return poll_co(fds, n, ms < 0 ? -1 : (int64_t)ms * 1000000);
}

NP_HOOK int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask)
{
    int64_t ns = t ? ts_ns(t) : -1;
    if (mask || ns == 0 || ns == -2 || !np__hook_in_coroutine())
        return real_ppoll(fds, n, t, mask);
    return poll_co(fds, n, ns);
}

/* select as a poll: the sets become pollfds, and after the park the kernel's zero-timeout
 * select fills them in. ns < 0: no timeout. */
static int select_co(int nfds, fd_set *r, fd_set *w, fd_set *e, int64_t ns)
{
    fd_set r0, w0, e0;
    if (r)
        r0 = *r;
    if (w)
        w0 = *w;
    if (e)
        e0 = *e;
    struct timeval zero = {0, 0};
    int64_t end = ns > 0 ? mono_ns() + ns : 0;
    struct pollfd pf[FD_SETSIZE];
    for (;;) {
        int k = real_select(nfds, r, w, e, &zero);
        if (k != 0)
            return k;
        int64_t left = end ? end - mono_ns() : -1;
        if (ns == 0 || (end && left <= 0))
            return 0;
        nfds_t n = 0;
        for (int fd = 0; fd < nfds; fd++) {
            short ev = (short)((r && FD_ISSET(fd, &r0) ? POLLIN : 0) | (w && FD_ISSET(fd, &w0) ? POLLOUT : 0) |
                               (e && FD_ISSET(fd, &e0) ? POLLPRI : 0));
            if (ev)
                pf[n++] = (struct pollfd){fd, ev, 0};
        }
        int pr = poll_co(pf, n, left);
        if (pr < 0)
            return -1;
        if (r)
            *r = r0;
        if (w)
            *w = w0;
        if (e)
            *e = e0;
        if (pr == 0) { /* timed out: the sets come back empty */
            if (r)
                FD_ZERO(r);
            if (w)
                FD_ZERO(w);
            if (e)
                FD_ZERO(e);
            return 0;
        }
    }
}

NP_HOOK int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    if (!np__hook_in_coroutine() || nfds < 0 || nfds > FD_SETSIZE ||
        (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000 || (tv->tv_sec | tv->tv_usec) == 0)))
        return real_select(nfds, r, w, e, tv);
    int64_t ns = tv ? (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000 : -1;
    int64_t t0 = mono_ns();
    int k = select_co(nfds, r, w, e, ns);
    if (tv) { /* Linux tells what is left of the timeout */
        int64_t left = ns - (mono_ns() - t0);
        if (left < 0)
            left = 0;
        tv->tv_sec = (time_t)(left / 1000000000);
        tv->tv_usec = (suseconds_t)(left % 1000000000 / 1000);
    }
    return k;
}

NP_HOOK int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *mask)
{
    int64_t ns = t ? ts_ns(t) : -1;
    if (mask || ns == 0 || ns == -2 || nfds < 0 || nfds > FD_SETSIZE || !np__hook_in_coroutine())
        return real_pselect(nfds, r, w, e, t, mask);
    return select_co(nfds, r, w, e, ns);
}

/* A library's epoll fd: park until it is readable, then its events. */
static int epoll_co(int ep, struct epoll_event *ev, int max, int ms)
{
    int64_t end = ms > 0 ? mono_ns() + (int64_t)ms * 1000000 : 0;
    for (;;) {
        int r = real_epoll_wait(ep, ev, max, 0);
        if (r != 0)
            return r;
        int64_t left = end ? end - mono_ns() : -1;
        if (end && left <= 0)
            return 0;
        if (!np__hook_adopt(ep, false)) { /* not an epoll fd np can watch: the real wait */
            int tms = left < 0 ? -1 : left / 1000000 + 1 > INT_MAX ? INT_MAX : (int)(left / 1000000 + 1);
            return real_epoll_wait(ep, ev, max, tms);
        }
        int w = np__hook_wait(ep, PD_R, left < 0 ? 0 : left);
        if (w && w != -ETIMEDOUT) {
            np__hook_seterrno(-w);
            return -1;
        }
    }
}

NP_HOOK int epoll_wait(int ep, struct epoll_event *ev, int max, int ms)
{
    if (ms == 0 || max <= 0 || !ev || !np__hook_in_coroutine())
        return real_epoll_wait(ep, ev, max, ms);
    return epoll_co(ep, ev, max, ms);
}

NP_HOOK int epoll_pwait(int ep, struct epoll_event *ev, int max, int ms, const sigset_t *mask)
{
    if (mask || ms == 0 || max <= 0 || !ev || !np__hook_in_coroutine())
        return real_epoll_pwait(ep, ev, max, ms, mask);
    return epoll_co(ep, ev, max, ms);
}
