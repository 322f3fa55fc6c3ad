/* The netpoller: a portable layer of poll descriptors (Go's pollDesc) over thin
 * OS back ends (epoll, poll, select). Internal to np. */
#ifndef NP_NETPOLL_H
#define NP_NETPOLL_H
#include "../sched/sched.h"

/* rg/wg states besides a waiting coroutine's address. */
#define PD_READY ((uintptr_t)1)
#define PD_WAIT ((uintptr_t)2)

/* Modes. */
enum { PD_R = 1, PD_W = 2, PD_RW = 3 };

/* Results of the portable layer's checks, mapped to errno by the fd layer. */
enum { PD_OK = 0, PD_ECLOSING = 1, PD_ETIMEOUT = 2, PD_ENOTPOLLABLE = 3 };

typedef struct np_pd {
    _Atomic int32_t lock;      /* guards seq, timers, deadlines against each other */
    int fd;
    _Atomic bool closing;
    _Atomic bool everr;        /* the back end reported an error condition */
    _Atomic bool hup;          /* peer hung up (sticky): reads must not skip to waiting */
    _Atomic uint32_t fdseq;    /* bumped at each reuse: tags back-end events */
    uintptr_t user;            /* back end's cookie (array slot) */
    uintptr_t rseq, wseq;      /* bumped to invalidate pending deadline timers */
    _Atomic uintptr_t rg, wg;  /* 0, PD_READY, PD_WAIT or the waiting np_g */
    np__timer rt, wt;          /* read (or combined read+write) and write deadline timers */
    bool rt_set, wt_set;
    _Atomic int64_t rd, wd;    /* deadlines: 0 none, -1 passed, else absolute ns */
    struct np_pd *link;        /* cache free list */
} np_pd;

/* What one poll readied: the coroutines (linked by schedlink) and how many, and whether
 * the poller is the thread holding the only P (np__on_solo_p, asked once per poll). */
typedef struct np_ready { np_g *list; int32_t n; bool here; } np_ready;

/* A back end: a few thin functions over one OS facility. */
typedef struct np_poller {
    const char *name;
    int (*init)(void);
    void (*fini)(void);
    int (*open)(int fd, np_pd *pd);   /* -1 and errno when the fd cannot be polled */
    void (*close)(int fd, np_pd *pd);
    void (*arm)(np_pd *pd, int mode); /* level-triggered back ends: wait for mode again */
    /* Wait up to delay ns (< 0: forever, 0: don't block); report readiness with
     * np__pd_ready. Returns the number of events. */
    int (*poll)(int64_t delay, np_ready *rd);
    void (*wake)(void);               /* interrupt a blocked poll */
    bool edge;                        /* edge-triggered (no arm needed) */
} np_poller;

/* True when the back end reports every new arrival (edge-triggered), so a drained
 * socket is sure to be marked ready again. */
bool np__netpoll_edge(void);

extern const np_poller np__poller_epoll, np__poller_poll, np__poller_select;

/* Portable layer. mode is PD_R, PD_W (waits) or any of PD_R/PD_W/PD_RW (deadlines). */
int np__netpoll_init(void);
void np__netpoll_fini(void);
const char *np__netpoll_name(void);
np_pd *np__pd_open(int fd, int *err);
/* Wake everything blocked on pd with PD_ECLOSING; later operations fail the same way. */
void np__pd_unblock(np_pd *pd);
/* Deregister from the back end and return pd to the cache (after unblock, once no
 * operation is in flight). */
void np__pd_close(np_pd *pd);
/* PD_OK, or why an operation in mode must fail now (closing, deadline passed, error). */
static inline int np__pd_check(np_pd *pd, int mode)
{
    if (atomic_load(&pd->closing))
        return PD_ECLOSING;
    if ((mode & PD_R && atomic_load(&pd->rd) < 0) || (mode & PD_W && atomic_load(&pd->wd) < 0))
        return PD_ETIMEOUT;
    if (mode == PD_R && atomic_load(&pd->everr))
        return PD_ENOTPOLLABLE;
    return PD_OK;
}
/* Before an I/O attempt in mode: forget an old readiness mark (the attempt tells).
 * The store is ordered before the attempt's system call (seq_cst: a locked exchange),
 * lest a mark the poller sets after it be lost; with no mark there is nothing to
 * forget and no store. Under the caller's turn rg (wg) is 0 or PD_READY. */
static inline int np__pd_reset(np_pd *pd, int mode)
{
    int err = np__pd_check(pd, mode);
    if (err)
        return err;
    _Atomic uintptr_t *gpp = mode == PD_R ? &pd->rg : &pd->wg;
    if (atomic_load_explicit(gpp, memory_order_relaxed) != 0)
        atomic_store(gpp, 0);
    return PD_OK;
}
int np__pd_wait(np_pd *pd, int mode);
/* d: absolute ns, 0 clears, <= now fails waits at once. */
void np__pd_set_deadline(np_pd *pd, int64_t d, int mode);
/* Back ends: readiness for mode (PD_R|PD_W) on pd, whose event carried tag; hup when
 * the event says the peer hung up or errored. */
void np__pd_ready(np_pd *pd, uint32_t tag, int mode, bool hup, np_ready *rd);
/* The peer hung up: a drained stream socket will see no further edge for EOF. */
static inline bool np__pd_hup(np_pd *pd) { return atomic_load_explicit(&pd->hup, memory_order_acquire); }
void np__pd_seterr(np_pd *pd, uint32_t tag);

#endif
