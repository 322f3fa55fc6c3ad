/* poll(2) back end: portable, level-triggered, O(n) per poll. */
#include "netpoll_lt.h"
#include <poll.h>
#include <stdlib.h>

static int pl_poll(int64_t delay, np_ready *rd)
{
    np_lt_ent *e;
    bool blocking = delay != 0;
    int n = np__lt_snapshot(&e, blocking);
    if (n < 0)
        return 0;
    struct pollfd *pf = malloc((size_t)(n ? n : 1) * sizeof *pf);
    if (!pf) {
        np__lt_done(blocking);
        free(e);
        return 0;
    }
    for (int i = 0; i < n; i++)
        pf[i] = (struct pollfd){e[i].fd, (short)((e[i].mode & PD_R ? POLLIN : 0) | (e[i].mode & PD_W ? POLLOUT : 0)), 0};
    int ms = delay < 0 ? -1 : delay == 0 ? 0 : delay >= 1000000000000LL ? 1000000000 : (int)((delay + 999999) / 1000000);
    int r = poll(pf, (nfds_t)n, ms);
    np__lt_done(blocking);
    int fired = 0;
    for (int i = 0; r > 0 && i < n; i++) {
        short re = pf[i].revents;
        if (!re)
            continue;
        fired++;
        if (!e[i].pd) {
            if (blocking)
                np__lt_drain();
            continue;
        }
        int mode = 0;
        if (re & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
            mode |= PD_R;
        if (re & (POLLOUT | POLLHUP | POLLERR | POLLNVAL))
            mode |= PD_W;
        np__lt_fired(&e[i], mode, (re & (POLLERR | POLLIN | POLLOUT)) == POLLERR, rd);
    }
    free(pf);
    free(e);
    return fired;
}

const np_poller np__poller_poll = {"poll", np__lt_init, np__lt_fini, np__lt_open, np__lt_close,
                                   np__lt_arm, pl_poll, np__lt_wake, false};
