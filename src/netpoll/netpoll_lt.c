/* Registry shared by the poll and select back ends (see netpoll_lt.h). */
#include "netpoll_lt.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

void np__netpoll_woken(void);

static struct {
    _Atomic int32_t lock;
    np_lt_ent *e;   /* e[0] is the wake-up descriptor */
    int n, cap;
    int rfd, wfd;   /* eventfd twice, or a pipe where there is none */
    int blocked;    /* polls blocked now: arming must interrupt them */
} lt_;

int np__lt_init(void)
{
    memset(&lt_, 0, sizeof lt_);
#if defined(__linux__)
    lt_.rfd = lt_.wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (lt_.rfd < 0)
        return -1;
#else
    int p[2];
    if (pipe(p) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    lt_.rfd = p[0];
    lt_.wfd = p[1];
#endif
    lt_.cap = 64;
    lt_.e = calloc((size_t)lt_.cap, sizeof *lt_.e);
    if (!lt_.e)
        return -1;
    lt_.e[0] = (np_lt_ent){lt_.rfd, PD_R, NULL, 0};
    lt_.n = 1;
    return 0;
}

void np__lt_fini(void)
{
    close(lt_.rfd);
    if (lt_.wfd != lt_.rfd)
        close(lt_.wfd);
    free(lt_.e);
    memset(&lt_, 0, sizeof lt_);
}

int np__lt_open(int fd, np_pd *pd)
{
    np_spin_lock(&lt_.lock);
    if (lt_.n == lt_.cap) {
        np_lt_ent *ne = realloc(lt_.e, 2 * (size_t)lt_.cap * sizeof *ne);
        if (!ne) {
            np_spin_unlock(&lt_.lock);
            errno = ENOMEM;
            return -1;
        }
        lt_.e = ne;
        lt_.cap *= 2;
    }
    pd->user = (uintptr_t)lt_.n;
    lt_.e[lt_.n++] = (np_lt_ent){fd, 0, pd, (uint16_t)atomic_load(&pd->fdseq)};
    np_spin_unlock(&lt_.lock);
    return 0;
}

void np__lt_close(int fd, np_pd *pd)
{
    (void)fd;
    np_spin_lock(&lt_.lock);
    int i = (int)pd->user;
    if (i > 0 && i < lt_.n && lt_.e[i].pd == pd) {
        lt_.e[i] = lt_.e[--lt_.n];
        if (i < lt_.n)
            lt_.e[i].pd->user = (uintptr_t)i;
    }
    np_spin_unlock(&lt_.lock);
}

void np__lt_arm(np_pd *pd, int mode)
{
    np_spin_lock(&lt_.lock);
    int i = (int)pd->user;
    if (i > 0 && i < lt_.n && lt_.e[i].pd == pd)
        lt_.e[i].mode |= mode;
    bool wake = lt_.blocked > 0;
    np_spin_unlock(&lt_.lock);
    if (wake)
        np__netpoll_break();
}

int np__lt_snapshot(np_lt_ent **out, bool blocking)
{
    np_spin_lock(&lt_.lock);
    np_lt_ent *c = malloc((size_t)lt_.n * sizeof *c);
    int k = 0;
    if (c) {
        for (int i = 0; i < lt_.n; i++)
            if (lt_.e[i].mode)
                c[k++] = lt_.e[i];
        if (blocking)
            lt_.blocked++;
    }
    np_spin_unlock(&lt_.lock);
    *out = c;
    return c ? k : -1;
}

void np__lt_done(bool blocking)
{
    if (!blocking)
        return;
    np_spin_lock(&lt_.lock);
    lt_.blocked--;
    np_spin_unlock(&lt_.lock);
}

void np__lt_fired(const np_lt_ent *e, int mode, bool err, np_ready *rd)
{
    np_spin_lock(&lt_.lock);
    int i = (int)e->pd->user;
    /* the tag too: pd may have been closed and reused for another descriptor since the
     * snapshot, whose waiter's interest this late report must leave armed */
    if (i > 0 && i < lt_.n && lt_.e[i].pd == e->pd && lt_.e[i].tag == e->tag)
        lt_.e[i].mode &= ~mode;
    np_spin_unlock(&lt_.lock);
    if (err)
        np__pd_seterr(e->pd, e->tag);
    np__pd_ready(e->pd, e->tag, mode, err, rd);
}

void np__lt_drain(void)
{
    uint64_t v[8];
    while (read(lt_.rfd, v, sizeof v) > 0 && lt_.rfd != lt_.wfd) {
    }
    np__netpoll_woken();
}

void np__lt_wake(void)
{
    uint64_t one = 1;
    if (write(lt_.wfd, &one, lt_.rfd == lt_.wfd ? sizeof one : 1) < 0) {
    }
}
