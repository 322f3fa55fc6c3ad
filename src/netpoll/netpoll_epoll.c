/* epoll back end (Linux default): edge-triggered, registered once per descriptor for
 * both directions; events carry the descriptor's address and a 16-bit fdseq tag. */
#include "netpoll.h"
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define TAGSHIFT 48
#define PTRMASK (((uint64_t)1 << TAGSHIFT) - 1)

void np__netpoll_woken(void);

static struct { int ep, evfd; } ep_ = {-1, -1};

static int ep_init(void)
{
    ep_.ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep_.ep < 0)
        return -1;
    ep_.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    if (ep_.evfd < 0 || epoll_ctl(ep_.ep, EPOLL_CTL_ADD, ep_.evfd, &ev) != 0) {
        int e = errno;
        close(ep_.ep);
        if (ep_.evfd >= 0)
            close(ep_.evfd);
        errno = e;
        return -1;
    }
    return 0;
}

static void ep_fini(void)
{
    close(ep_.evfd);
    close(ep_.ep);
    ep_.ep = ep_.evfd = -1;
}

static int ep_open(int fd, np_pd *pd)
{
    uint64_t tag = (uint16_t)atomic_load(&pd->fdseq);
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.u64 = ((uint64_t)(uintptr_t)pd & PTRMASK) | (tag << TAGSHIFT),
    };
    return epoll_ctl(ep_.ep, EPOLL_CTL_ADD, fd, &ev);
}

static void ep_close(int fd, np_pd *pd)
{
    (void)pd;
    struct epoll_event ev = {0};
    epoll_ctl(ep_.ep, EPOLL_CTL_DEL, fd, &ev);
}

static NP_HOT int ep_poll(int64_t delay, np_ready *rd)
{
    int ms = delay < 0 ? -1 : delay == 0 ? 0 : delay >= 1000000000000LL ? 1000000000 : (int)((delay + 999999) / 1000000);
    struct epoll_event evs[128];
    int n = epoll_wait(ep_.ep, evs, 128, ms);
    if (n < 0)
        return 0; /* EINTR: the caller looks around and polls again */
    for (int i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        uint32_t e = evs[i].events;
        if (d == 0) {
            if (delay != 0) { /* a non-blocking poll leaves the break to the blocked one */
                uint64_t v;
                if (read(ep_.evfd, &v, sizeof v) < 0) {
                }
                np__netpoll_woken();
            }
            continue;
        }
        np_pd *pd = (np_pd *)(uintptr_t)(d & PTRMASK);
        uint32_t tag = (uint32_t)(d >> TAGSHIFT);
        int mode = 0;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            mode |= PD_R;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            mode |= PD_W;
        if (e == EPOLLERR)
            np__pd_seterr(pd, tag);
        if (mode)
            np__pd_ready(pd, tag, mode, (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0, rd);
    }
    return n;
}

static void ep_wake(void)
{
    uint64_t one = 1;
    if (write(ep_.evfd, &one, sizeof one) < 0) {
    }
}

const np_poller np__poller_epoll = {"epoll", ep_init, ep_fini, ep_open, ep_close, NULL, ep_poll, ep_wake, true};
