/* Channel internals shared by chan.c and select.c (Go's hchan and sudog). */
#ifndef NP_CHAN_H
#define NP_CHAN_H
#include "../sched/sched.h"
#include <string.h>

typedef struct np_sudog {
    np_g *g;
    struct np_sudog *next, *prev;
    void *elem;
    np_chan *c;
    uintptr_t tok;   /* select token (0: a plain send/recv) */
    int caseidx;
    bool success;    /* woken by a transfer (false: by close) */
    bool queued;
} np_sudog;

typedef struct np_waitq { np_sudog *first, *last; } np_waitq;

struct np__tsrc;

struct np_chan {
    _Atomic int32_t lock;
    bool closed;
    size_t esize, cap, count, sendx, recvx;
    np_waitq recvq, sendq;
    char *buf;
    /* The timer that fills it (np_after, np_ticker; src/time/tick.c), or NULL. Set at
     * creation, then read-only; freed with the channel. */
    struct np__tsrc *tsrc;
};

/* Channel operations come from coroutines (and, with several Ps, from foreign threads:
 * chan.c); with one P they are serialized by it. */
static inline void np__chan_lock(np_chan *c)
{
    if (!np__solo())
        np_spin_lock(&c->lock);
}
static inline void np__chan_unlock(np_chan *c)
{
    if (!np__solo())
        np_spin_unlock(&c->lock);
}

/* Element copy with the common sizes inlined. */
static inline void np__ecopy(void *d, const void *s, size_t n)
{
    switch (n) {
    case 1: memcpy(d, s, 1); return;
    case 4: memcpy(d, s, 4); return;
    case 8: memcpy(d, s, 8); return;
    case 16: memcpy(d, s, 16); return;
    default: memcpy(d, s, n);
    }
}

static inline void np__enqueue(np_waitq *q, np_sudog *sg)
{
    sg->next = NULL;
    sg->prev = q->last;
    if (q->last)
        q->last->next = sg;
    else
        q->first = sg;
    q->last = sg;
    sg->queued = true;
}

static inline void np__unlink(np_waitq *q, np_sudog *sg)
{
    if (!sg->queued)
        return;
    if (sg->prev)
        sg->prev->next = sg->next;
    else
        q->first = sg->next;
    if (sg->next)
        sg->next->prev = sg->prev;
    else
        q->last = sg->prev;
    sg->next = sg->prev = NULL;
    sg->queued = false;
}

/* np__unlink of q->first (sg); its links are left as they were. */
static inline void np__unlink_first(np_waitq *q, np_sudog *sg)
{
    np_sudog *n = sg->next;
    q->first = n;
    if (n)
        n->prev = NULL;
    else
        q->last = NULL;
    sg->queued = false;
}

np_sudog *np__dequeue_slow(np_waitq *q);
/* First waiter that can still be woken (a select already won elsewhere is skipped). */
static inline np_sudog *np__dequeue(np_waitq *q)
{
    np_sudog *sg = q->first;
    if (sg && !sg->tok) {
        np__unlink(q, sg);
        return sg;
    }
    return sg ? np__dequeue_slow(q) : NULL;
}

/* Hand elem to receiver sg / take the value of sender sg (lock held). Returns the
 * coroutine to ready once the lock is released. */
static inline np_g *np__send_to(np_chan *c, np_sudog *sg, const void *elem)
{
    if (sg->elem)
        np__ecopy(sg->elem, elem, c->esize);
    sg->success = true;
    sg->g->param = sg;
    return sg->g;
}
np_g *np__recv_from(np_chan *c, np_sudog *sg, void *elem);
/* Send *elem to c if that needs no wait, from a timer callback (a thread holding a P,
 * maybe not a coroutine): to a waiting receiver or select, else into the buffer.
 * Returns 1 when sent (*wake: the coroutine to ready once the caller's own locks are
 * released, or NULL), 0 when dropped (buffer full, or closed), -1 when c's lock is held
 * (maybe by a coroutine parking on c on this very thread, which releases it only after
 * its switch, after the timers this thread runs in it): nothing done, try later. */
int np__chan_offer(np_chan *c, const void *elem, np_g **wake);
/* np_chan_free, also of a ticker's channel (np_ticker_free). */
int np__chan_free(np_chan *c);
void np__buf_put(np_chan *c, const void *elem);
void np__buf_take(np_chan *c, void *elem);

#endif
