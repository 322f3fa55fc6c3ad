/* Channel internals shared by chan.c and select.c (Go's hchan and sudog). */
#ifndef NP_CHAN_H
#define NP_CHAN_H
#include "../sched/sched.h"

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

struct np_chan {
    _Atomic int32_t lock;
    bool closed;
    size_t esize, cap, count, sendx, recvx;
    np_waitq recvq, sendq;
    char *buf;
};

void np__enqueue(np_waitq *q, np_sudog *sg);
void np__unlink(np_waitq *q, np_sudog *sg);
/* First waiter that can still be woken (a select already won elsewhere is skipped). */
np_sudog *np__dequeue(np_waitq *q);
/* Hand elem to receiver sg / take the value of sender sg (lock held). Returns the
 * coroutine to ready once the lock is released. */
np_g *np__send_to(np_chan *c, np_sudog *sg, const void *elem);
np_g *np__recv_from(np_chan *c, np_sudog *sg, void *elem);
void np__buf_put(np_chan *c, const void *elem);
void np__buf_take(np_chan *c, void *elem);

#endif
