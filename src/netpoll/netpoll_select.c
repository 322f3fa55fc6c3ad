/* select(2) back end: legacy, level-triggered; descriptors >= FD_SETSIZE are refused. */
#include "netpoll_lt.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/select.h>

static int sl_open(int fd, np_pd *pd)
{
    if (fd < 0 || fd >= FD_SETSIZE) {
        errno = EMFILE; /* select cannot watch descriptors at or past FD_SETSIZE */
        return -1;
    }
    return np__lt_open(fd, pd);
}

static int sl_poll(int64_t delay, np_ready *rd)
{
    np_lt_ent *e;
    bool blocking = delay != 0;
    int n = np__lt_snapshot(&e, blocking);
    if (n < 0)
        return 0;
    fd_set rs, ws, xs;
    FD_ZERO(&rs);
    FD_ZERO(&ws);
    FD_ZERO(&xs);
    int maxfd = -1;
    for (int i = 0; i < n; i++) {
        if (e[i].mode & PD_R)
            FD_SET(e[i].fd, &rs);
        if (e[i].mode & PD_W)
            FD_SET(e[i].fd, &ws);
        FD_SET(e[i].fd, &xs);
        if (e[i].fd > maxfd)
            maxfd = e[i].fd;
    }
    struct timeval tv, *tvp = NULL;
    if (delay >= 0) {
        int64_t us = (delay + 999) / 1000;
        if (us > 1000000000000LL)
            us = 1000000000000LL;
        tv.tv_sec = us / 1000000;
        tv.tv_usec = us % 1000000;
        tvp = &tv;
    }
    int r = select(maxfd + 1, &rs, &ws, &xs, tvp);
    np__lt_done(blocking);
    int fired = 0;
    if (r < 0 && errno == EBADF) {
        /* a descriptor was closed under us: report every waiter, they retry */
        for (int i = 1; i < n; i++)
            np__lt_fired(&e[i], e[i].mode, false, rd);
        free(e);
        return n - 1;
    }
    for (int i = 0; r > 0 && i < n; i++) {
        int mode = (FD_ISSET(e[i].fd, &rs) ? PD_R : 0) | (FD_ISSET(e[i].fd, &ws) ? PD_W : 0);
        bool x = FD_ISSET(e[i].fd, &xs);
        if (!mode && !x)
            continue;
        fired++;
        if (!e[i].pd) {
            if (blocking)
                np__lt_drain();
            continue;
        }
        np__lt_fired(&e[i], mode ? mode : e[i].mode, false, rd);
    }
    free(e);
    return fired;
}

const np_poller np__poller_select = {"select", np__lt_init, np__lt_fini, sl_open, np__lt_close,
                                     np__lt_arm, sl_poll, np__lt_wake, false};
