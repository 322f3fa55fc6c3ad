/* The portable half of the netpoller, after Go's runtime/netpoll.go. No system calls:
 * those live in the back ends (netpoll_epoll.c, netpoll_poll.c, netpoll_select.c).
 *
 * A poll descriptor's rg (and wg) moves 0 -> PD_WAIT -> g by CAS on the waiting side
 * and to PD_READY (I/O) or 0 (timeout, close) on the waking side, so a notification
 * that races a park is never lost: whichever side comes second sees the other's mark.
 * Descriptors come from a cache in blocks and are never freed while the runtime runs,
 * so a late kernel event naming a recycled descriptor is harmless; its fdseq tag makes
 * it a no-op, as rseq/wseq do for deadline timers that fire after a change. */
#include "netpoll.h"
#include "../sched/poll.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PD_BLOCK 64

static struct {
    const np_poller *be;
    void (*arm)(np_pd *pd, int mode); /* be->arm, here: the wait path reads only np_ */
    _Atomic int32_t lock;
    np_pd *free;
    np_pd **blocks;
    size_t nblocks;
    /* Coroutines parked in np__pd_wait: waiters + waiters_p. With one P, the thread
     * holding it counts in waiters_p with a plain load and store (see np__on_solo_p), any
     * other (a blocking or sysmon's poll) in waiters, which may go below zero. */
    _Atomic int32_t waiters;
    _Atomic int32_t waiters_p;
    _Atomic uint32_t wakesig; /* a break is pending */
} np_;

/* ---- cache ------------------------------------------------------------------------- */

static np_pd *pd_alloc(void)
{
    np_spin_lock(&np_.lock);
    if (!np_.free) {
        np_pd *b = calloc(PD_BLOCK, sizeof *b);
        np_pd **nb = b ? realloc(np_.blocks, (np_.nblocks + 1) * sizeof *nb) : NULL;
        if (!nb) {
            free(b);
            np_spin_unlock(&np_.lock);
            errno = ENOMEM;
            return NULL;
        }
        np_.blocks = nb;
        nb[np_.nblocks++] = b;
        for (int i = PD_BLOCK - 1; i >= 0; i--) {
            b[i].link = np_.free;
            np_.free = &b[i];
        }
    }
    np_pd *pd = np_.free;
    np_.free = pd->link;
    np_spin_unlock(&np_.lock);
    return pd;
}

static void pd_free(np_pd *pd)
{
    np_spin_lock(&np_.lock);
    pd->link = np_.free;
    np_.free = pd;
    np_spin_unlock(&np_.lock);
}

/* ---- the rg/wg state machine ----------------------------------------------------------- */

static _Atomic uintptr_t *gpp_of(np_pd *pd, int mode) { return mode == PD_R ? &pd->rg : &pd->wg; }

static inline void waiters_add(int32_t d, bool here)
{
    if (here)
        atomic_store_explicit(&np_.waiters_p,
                              atomic_load_explicit(&np_.waiters_p, memory_order_relaxed) + d,
                              memory_order_relaxed);
    else
        atomic_fetch_add(&np_.waiters, d);
}

static NP_HOT bool blockcommit(np_g *g, void *arg)
{
    uintptr_t w = PD_WAIT;
    if (!atomic_compare_exchange_strong((_Atomic uintptr_t *)arg, &w, (uintptr_t)g))
        return false; /* readiness, a deadline or close came first: run again at once */
    waiters_add(1, np__on_solo_p());
    return true;
}

/* Wait for readiness; true if I/O is ready, false on timeout or close. */
static inline __attribute__((always_inline)) bool block(np_pd *pd, int mode)
{
    _Atomic uintptr_t *gpp = gpp_of(pd, mode);
    uintptr_t old = atomic_load_explicit(gpp, memory_order_relaxed);
    for (;;) { /* one CAS, for what is there (a failed one reloads old) */
        if (old == PD_READY) {
            if (atomic_compare_exchange_strong(gpp, &old, 0))
                return true;
        } else if (old == 0) {
            if (atomic_compare_exchange_strong(gpp, &old, PD_WAIT))
                break;
        } else {
            np__fatal("two coroutines wait on one descriptor in the same mode");
        }
    }
    if (np__pd_check(pd, mode) == PD_OK) {
        np_g *g = np__getg();
        g->waitfd = pd->fd;
        g->waitmode = (uint8_t)mode;
        np__park(blockcommit, (void *)gpp, W_IO);
    }
    old = atomic_exchange(gpp, 0);
    if (old > PD_WAIT)
        np__fatal("corrupted poll descriptor");
    return old == PD_READY;
}

/* Take the waiter (if any) off gpp; ioready leaves PD_READY behind for the next wait.
 * here: np__on_solo_p(). */
static inline __attribute__((always_inline)) np_g *unblock_at(np_pd *pd, int mode, bool ioready,
                                                               bool here)
{
    _Atomic uintptr_t *gpp = gpp_of(pd, mode);
    for (;;) {
        uintptr_t old = atomic_load(gpp);
        if (old == PD_READY)
            return NULL;
        if (old == 0 && !ioready)
            return NULL;
        uintptr_t nw = ioready ? PD_READY : 0;
        if (atomic_compare_exchange_strong(gpp, &old, nw)) {
            if (old == PD_WAIT)
                return NULL;
            if (old)
                waiters_add(-1, here);
            return (np_g *)old;
        }
    }
}

static inline __attribute__((always_inline)) np_g *unblock(np_pd *pd, int mode, bool ioready)
{
    return unblock_at(pd, mode, ioready, np__on_solo_p());
}

static void goready(np_g *g)
{
    if (g)
        np__ready(g);
}

/* ---- operations ----------------------------------------------------------------------- */

np_pd *np__pd_open(int fd, int *err)
{
    np_pd *pd = pd_alloc();
    if (!pd) {
        *err = ENOMEM;
        return NULL;
    }
    np_spin_lock(&pd->lock);
    uintptr_t r = atomic_load(&pd->rg), w = atomic_load(&pd->wg);
    if ((r && r != PD_READY) || (w && w != PD_READY))
        np__fatal("a recycled poll descriptor still has a waiter");
    pd->fd = fd;
    atomic_store(&pd->closing, false);
    atomic_store(&pd->everr, false);
    atomic_store(&pd->hup, false);
    atomic_fetch_add(&pd->fdseq, 1);
    pd->rseq++;
    pd->wseq++;
    atomic_store(&pd->rg, 0);
    atomic_store(&pd->wg, 0);
    atomic_store(&pd->rd, 0);
    atomic_store(&pd->wd, 0);
    pd->rt_set = pd->wt_set = false;
    np_spin_unlock(&pd->lock);
    if (np_.be->open(fd, pd) != 0) {
        *err = errno;
        pd_free(pd);
        return NULL;
    }
    return pd;
}

void np__pd_unblock(np_pd *pd)
{
    np_spin_lock(&pd->lock);
    atomic_store(&pd->closing, true);
    pd->rseq++;
    pd->wseq++;
    np_g *r = unblock(pd, PD_R, false), *w = unblock(pd, PD_W, false);
    if (pd->rt_set)
        np__timer_del(&pd->rt);
    if (pd->wt_set)
        np__timer_del(&pd->wt);
    pd->rt_set = pd->wt_set = false;
    np_spin_unlock(&pd->lock);
    goready(r);
    goready(w);
}

void np__pd_close(np_pd *pd)
{
    if (!atomic_load(&pd->closing))
        np__fatal("poll descriptor closed without unblock");
    np_.be->close(pd->fd, pd);
    pd_free(pd);
}

/* Inline in np__pd_wait for each mode, as the checks and the state word depend on it. */
static inline __attribute__((always_inline)) int pd_wait(np_pd *pd, int mode)
{
    int err = np__pd_check(pd, mode);
    if (err)
        return err;
    if (np_.arm)
        np_.arm(pd, mode);
    while (!block(pd, mode)) {
        err = np__pd_check(pd, mode);
        if (err)
            return err;
        /* A deadline fired and was then moved before we ran: wait again. */
    }
    return PD_OK;
}

NP_HOT int np__pd_wait(np_pd *pd, int mode)
{
    return mode == PD_R ? pd_wait(pd, PD_R) : pd_wait(pd, PD_W);
}

/* Deadline timers: arg is the descriptor, seq the rseq/wseq it was armed with. */
static void deadline(np_pd *pd, uintptr_t seq, bool rd, bool wr)
{
    np_spin_lock(&pd->lock);
    if (seq != (rd ? pd->rseq : pd->wseq)) { /* changed or closed since armed */
        np_spin_unlock(&pd->lock);
        return;
    }
    np_g *r = NULL, *w = NULL;
    if (rd) {
        atomic_store(&pd->rd, -1);
        pd->rt_set = false;
        r = unblock(pd, PD_R, false);
    }
    if (wr) {
        atomic_store(&pd->wd, -1);
        if (!rd)
            pd->wt_set = false;
        w = unblock(pd, PD_W, false);
    }
    np_spin_unlock(&pd->lock);
    goready(r);
    goready(w);
}
static void deadline_r(void *pd, uintptr_t seq) { deadline(pd, seq, true, false); }
static void deadline_w(void *pd, uintptr_t seq) { deadline(pd, seq, false, true); }
static void deadline_rw(void *pd, uintptr_t seq) { deadline(pd, seq, true, true); }

static void arm_timer(np_pd *pd, np__timer *t, int64_t when, np__timer_fn f, uintptr_t seq)
{
    np_m *m = np__getm();
    np_p *p = m && m->p ? m->p : np__sched.allp[0];
    if (np__timer_add(p, t, when, f, pd, seq) == 0)
        np__timer_added(when);
}

void np__pd_set_deadline(np_pd *pd, int64_t d, int mode)
{
    np_spin_lock(&pd->lock);
    if (atomic_load(&pd->closing)) {
        np_spin_unlock(&pd->lock);
        return;
    }
    int64_t rd0 = atomic_load(&pd->rd), wd0 = atomic_load(&pd->wd);
    bool combo0 = rd0 > 0 && rd0 == wd0;
    if (d < 0 || (d > 0 && d <= np__nanotime()))
        d = -1; /* already passed */
    if (mode & PD_R)
        atomic_store(&pd->rd, d);
    if (mode & PD_W)
        atomic_store(&pd->wd, d);
    int64_t rd = atomic_load(&pd->rd), wd = atomic_load(&pd->wd);
    bool combo = rd > 0 && rd == wd;
    np__timer_fn rf = combo ? deadline_rw : deadline_r;
    if (!pd->rt_set) {
        if (rd > 0) {
            arm_timer(pd, &pd->rt, rd, rf, pd->rseq);
            pd->rt_set = true;
        }
    } else if (rd != rd0 || combo != combo0) {
        pd->rseq++;
        np__timer_del(&pd->rt);
        pd->rt_set = false;
        if (rd > 0) {
            arm_timer(pd, &pd->rt, rd, rf, pd->rseq);
            pd->rt_set = true;
        }
    }
    if (!pd->wt_set) {
        if (wd > 0 && !combo) {
            arm_timer(pd, &pd->wt, wd, deadline_w, pd->wseq);
            pd->wt_set = true;
        }
    } else if (wd != wd0 || combo != combo0) {
        pd->wseq++;
        np__timer_del(&pd->wt);
        pd->wt_set = false;
        if (wd > 0 && !combo) {
            arm_timer(pd, &pd->wt, wd, deadline_w, pd->wseq);
            pd->wt_set = true;
        }
    }
    /* A deadline in the past fails pending waits now. */
    np_g *r = rd < 0 ? unblock(pd, PD_R, false) : NULL;
    np_g *w = wd < 0 ? unblock(pd, PD_W, false) : NULL;
    np_spin_unlock(&pd->lock);
    goready(r);
    goready(w);
}

/* Put g, taken off rg/wg (so by nobody else), on the list: G_WAITING -> G_RUNNABLE
 * (rd->here: the scheduler's own poll with one P; else a blocking poll or sysmon's). */
static inline void pd_ready_g(np_g *g, np_ready *rd)
{
    np__unwait_at(g, rd->here);
    g->schedlink = rd->list;
    rd->list = g;
    rd->n++;
}

/* Back ends report readiness here, building the list of coroutines to run. */
NP_HOT void np__pd_ready(np_pd *pd, uint32_t tag, int mode, bool hup, np_ready *rd)
{
    if ((uint16_t)atomic_load(&pd->fdseq) != (uint16_t)tag)
        return; /* an event for an earlier life of this descriptor */
    if (hup)
        atomic_store_explicit(&pd->hup, true, memory_order_release);
    np_g *r = mode & PD_R ? unblock_at(pd, PD_R, true, rd->here) : NULL;
    np_g *w = mode & PD_W ? unblock_at(pd, PD_W, true, rd->here) : NULL;
    if (r)
        pd_ready_g(r, rd);
    if (w)
        pd_ready_g(w, rd);
}

void np__pd_seterr(np_pd *pd, uint32_t tag)
{
    if ((uint16_t)atomic_load(&pd->fdseq) == (uint16_t)tag)
        atomic_store(&pd->everr, true);
}

/* ---- the scheduler's side (sched/poll.h) ------------------------------------------------ */

int np__netpoll_init(void)
{
    memset(&np_, 0, sizeof np_);
    const char *s = getenv("NP_POLLER");
    if (!s || !*s || strcmp(s, "epoll") == 0)
        np_.be = &np__poller_epoll;
    else if (strcmp(s, "poll") == 0)
        np_.be = &np__poller_poll;
    else if (strcmp(s, "select") == 0)
        np_.be = &np__poller_select;
    else {
        errno = EINVAL;
        return -1;
    }
    np_.arm = np_.be->arm;
    return np_.be->init();
}

void np__netpoll_fini(void)
{
    if (np_.be)
        np_.be->fini();
    for (size_t i = 0; i < np_.nblocks; i++)
        free(np_.blocks[i]);
    free(np_.blocks);
    memset(&np_, 0, sizeof np_);
}

bool np__netpoll_edge(void) { return np_.be && np_.be->edge; }

const char *np__netpoll_name(void) { return np_.be ? np_.be->name : "none"; }

/* Exact on the thread holding the P; elsewhere it may lag (a heuristic there: whoever
 * holds the P looks again before it sleeps). */
bool np__netpoll_waiters(void)
{
    return atomic_load_explicit(&np_.waiters, memory_order_relaxed) +
           atomic_load_explicit(&np_.waiters_p, memory_order_relaxed) > 0;
}

NP_HOT np_g *np__netpoll(int64_t delay)
{
    np_ready rd = {NULL, 0, np__on_solo_p()};
    atomic_fetch_add_explicit(&np__sched.npolls, 1, memory_order_relaxed);
    if (np__tracing()) {
        np__tev(EV_POLL_BEGIN, 0, (uint64_t)delay, 0, 0);
        np__trace_ctx = WK_NETPOLL;
        np_.be->poll(delay, &rd);
        np__trace_ctx = -1;
        np__tev(EV_POLL_END, 0, (uint64_t)rd.n, 0, 0);
    } else {
        np_.be->poll(delay, &rd);
    }
    if (rd.n) /* one add per poll, not per event */
        atomic_fetch_add_explicit(&np__sched.nevents, (uint64_t)rd.n, memory_order_relaxed);
    return rd.list;
}

void np__netpoll_break(void)
{
    uint32_t z = 0;
    if (np_.be && atomic_compare_exchange_strong(&np_.wakesig, &z, 1))
        np_.be->wake();
}

/* Back ends call this after draining their wake-up descriptor in a blocking poll. */
void np__netpoll_woken(void) { atomic_store(&np_.wakesig, 0); }
