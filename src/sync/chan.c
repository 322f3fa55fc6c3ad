/* Channels: a lock, a ring buffer, queues of waiting senders and receivers. A transfer
 * to a waiting coroutine copies straight into (or out of) its sudog. */
#include "chan.h"
#include "../time/tick.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

np_sudog *np__dequeue_slow(np_waitq *q)
{
    for (;;) {
        np_sudog *sg = q->first;
        if (!sg)
            return NULL;
        np__unlink(q, sg);
        if (sg->tok) {
            uintptr_t t = sg->tok;
            if (!atomic_compare_exchange_strong(&sg->g->selecttok, &t, 0))
                continue; /* its select already fired */
        }
        return sg;
    }
}

static inline char *slot(np_chan *c, size_t i) { return c->buf + i * c->esize; }

void np__buf_put(np_chan *c, const void *elem)
{
    np__ecopy(slot(c, c->sendx), elem, c->esize);
    if (++c->sendx == c->cap)
        c->sendx = 0;
    c->count++;
}

void np__buf_take(np_chan *c, void *elem)
{
    if (elem)
        np__ecopy(elem, slot(c, c->recvx), c->esize);
    if (++c->recvx == c->cap)
        c->recvx = 0;
    c->count--;
}

np_g *np__recv_from(np_chan *c, np_sudog *sg, void *elem)
{
    if (c->cap == 0) {
        if (elem)
            np__ecopy(elem, sg->elem, c->esize);
    } else {
        /* Buffer full: take its head, the sender's value goes to the tail. */
        if (elem)
            np__ecopy(elem, slot(c, c->recvx), c->esize);
        np__ecopy(slot(c, c->recvx), sg->elem, c->esize);
        if (++c->recvx == c->cap)
            c->recvx = 0;
        c->sendx = c->recvx;
    }
    sg->success = true;
    sg->g->param = sg;
    return sg->g;
}

np_chan *np_chan_new(size_t elem_size, size_t cap)
{
    if (elem_size == 0 || elem_size > (1u << 20) || cap > ((size_t)1 << 40) / elem_size) {
        errno = EINVAL;
        return NULL;
    }
    np_chan *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->esize = elem_size;
    c->cap = cap;
    if (cap && !(c->buf = malloc(cap * elem_size))) {
        free(c);
        return NULL;
    }
    return c;
}

int np__chan_free(np_chan *c)
{
    if (!c)
        return 0;
    np__chan_lock(c);
    bool busy = c->recvq.first || c->sendq.first;
    np__chan_unlock(c);
    if (busy && atomic_load(&np__sched.running)) { /* after np_run, waiters are gone */
        errno = EBUSY;
        return -1;
    }
    if (c->tsrc) /* its timer first: stopped, and its callback out of c */
        np__tsrc_free(c->tsrc);
    free(c->buf);
    free(c);
    return 0;
}

int np_chan_free(np_chan *c)
{
    if (c && c->tsrc && np__tsrc_ticker(c->tsrc)) { /* np_ticker_free's */
        errno = EINVAL;
        return -1;
    }
    return np__chan_free(c);
}

int np__chan_offer(np_chan *c, const void *elem, np_g **wake)
{
    *wake = NULL;
    if (!np__solo() && !np_spin_trylock(&c->lock))
        return -1;
    int r = 0;
    if (!c->closed) {
        np_sudog *sg = np__dequeue(&c->recvq);
        if (sg) {
            *wake = np__send_to(c, sg, elem);
            r = 1;
        } else if (c->count < c->cap) {
            np__buf_put(c, elem);
            r = 1;
        }
    }
    np__chan_unlock(c);
    return r;
}

static bool chan_unlockf(np_g *g, void *c)
{
    np__chan_unlock(c);
    return true;
}

/* Wait on c (locked) to send *elem / receive into elem. Out of line: with the waiter
 * on the stack, the callers' parks could not be tail calls. */
static __attribute__((noinline)) int chan_park(np_chan *c, np_g *self, void *elem, bool send)
{
    np_sudog me = {.g = self, .elem = elem, .c = c};
    np__enqueue(send ? &c->sendq : &c->recvq, &me);
    np__park(np__solo() ? NULL : chan_unlockf, c, send ? W_CHAN_SEND : W_CHAN_RECV);
    if (!send)
        return me.success ? 1 : 0;
    if (!me.success) {
        np__seterrno(EPIPE);
        return -1;
    }
    return 0;
}

#ifdef NP_PARK_TAIL
_Static_assert(sizeof(np_sudog) <= NP_STACK_SLOT, "a waiter fits in a coroutine's slot");
#endif

/* The calling coroutine, or NULL with errno set (bad arguments, not a coroutine). */
static inline np_g *chan_caller(bool args_ok)
{
    np_g *self = args_ok ? np__getg() : NULL;
    if (!self)
        errno = args_ok ? EPERM : EINVAL;
    return self;
}

/* Send for self (a coroutine; NULL: a foreign thread's try, block false). */
static inline __attribute__((always_inline)) int chan_send_at(np_chan *c, const void *elem,
                                                              np_g *self, bool block)
{
    np__chan_lock(c);
    if (c->closed) {
        np__chan_unlock(c);
        errno = EPIPE;
        return -1;
    }
    np_sudog *sg = np__dequeue(&c->recvq);
    if (sg) {
        np_g *g = np__send_to(c, sg, elem);
        np__chan_unlock(c);
        np__ready(g);
        return 0;
    }
    if (c->count < c->cap) {
        np__buf_put(c, elem);
        np__chan_unlock(c);
        return 0;
    }
    if (!block) {
        np__chan_unlock(c);
        errno = EAGAIN;
        return -1;
    }
    return chan_park(c, self, (void *)elem, true);
}

static inline __attribute__((always_inline)) int chan_send(np_chan *c, const void *elem, bool block)
{
    np_g *self = chan_caller(c && elem);
    if (!self)
        return -1;
    return chan_send_at(c, elem, self, block);
}

/* Receive for self (as chan_send_at). */
static inline __attribute__((always_inline)) int chan_recv_at(np_chan *c, void *elem, np_g *self,
                                                              bool block)
{
    np__chan_lock(c);
    np_sudog *sg = np__dequeue(&c->sendq);
    if (sg) {
        np_g *g = np__recv_from(c, sg, elem);
        np__chan_unlock(c);
        np__ready(g);
        return 1;
    }
    if (c->count > 0) {
        np__buf_take(c, elem);
        np__chan_unlock(c);
        return 1;
    }
    if (c->closed) {
        np__chan_unlock(c);
        if (elem)
            memset(elem, 0, c->esize);
        return 0;
    }
    if (!block) {
        np__chan_unlock(c);
        errno = EAGAIN;
        return -1;
    }
    return chan_park(c, self, elem, false);
}

static inline __attribute__((always_inline)) int chan_recv(np_chan *c, void *elem, bool block)
{
    np_g *self = chan_caller(c != NULL);
    if (!self)
        return -1;
    return chan_recv_at(c, elem, self, block);
}

static __attribute__((noinline)) int chan_send_slow(np_chan *c, const void *elem)
{
    return chan_send(c, elem, true);
}

static __attribute__((noinline)) int chan_recv_slow(np_chan *c, void *elem)
{
    return chan_recv(c, elem, true);
}

/* np_chan_send and np_chan_recv begin with the common cases of one P inline, with no
 * call (but the park's, a tail call) and no lock: handing a value to a waiting receiver,
 * taking one from a waiting sender, waiting on an unbuffered channel. */

/* Copy an element of a size np__ecopy does without a call; false for other sizes. */
static inline bool ecopy_small(void *d, const void *s, size_t n)
{
    switch (n) {
    case 8: memcpy(d, s, 8); return true;
    case 4: memcpy(d, s, 4); return true;
    case 1: memcpy(d, s, 1); return true;
    case 16: memcpy(d, s, 16); return true;
    default: return false;
    }
}

int np_chan_send(np_chan *c, const void *elem)
{
    np_m *m = np__getm();
    if (np__solo() && c && elem && m && m->curg && !c->closed) {
        np_sudog *sg = c->recvq.first;
        if (sg && !sg->tok && np__ready_fast_ok(m->p, sg->g) &&
            (!sg->elem || ecopy_small(sg->elem, elem, c->esize))) {
            np__unlink_first(&c->recvq, sg);
            sg->success = true;
            sg->g->param = sg;
            np__ready_fast(m->p, sg->g);
            return 0;
        }
    }
    return chan_send_slow(c, elem);
}

int np_chan_recv(np_chan *c, void *elem)
{
    np_m *m = np__getm();
    np_g *self;
    if (np__solo() && c && m && (self = m->curg) && c->cap == 0) {
        np_sudog *sg = c->sendq.first;
        if (sg && !sg->tok && np__ready_fast_ok(m->p, sg->g) &&
            (!elem || ecopy_small(elem, sg->elem, c->esize))) {
            np__unlink_first(&c->sendq, sg);
            sg->success = true;
            sg->g->param = sg;
            np__ready_fast(m->p, sg->g);
            return 1;
        }
#ifdef NP_PARK_TAIL
        if (!sg && !c->closed) {
            np_sudog *me = np__g_slot(self);
            me->g = self;
            me->elem = elem;
            me->c = c;
            me->tok = 0;
            me->success = false;
            np__enqueue(&c->recvq, me);
            return np__park_tail(self, W_CHAN_RECV, &me->success); /* 1: got a value, 0: closed */
        }
#endif
    }
    return chan_recv_slow(c, elem);
}

static int chan_close_at(np_chan *c);

/* ---- from foreign threads ----------------------------------------------------------
 * np_chan_trysend, np_chan_tryrecv and np_chan_close from a thread that is not a
 * coroutine, while the runtime runs. With several Ps the channel has its lock: the
 * thread does the operation itself, as a coroutine would (it wakes a coroutine onto the
 * global queue). With one P the channel has none (np__chan_lock), its thread alone
 * touches it: the operation runs as a coroutine there while the caller waits for it
 * (np__foreign_call; ECANCELED if the runtime stops first). */

enum { FOP_SEND, FOP_RECV, FOP_CLOSE };
typedef struct fop { int op; np_chan *c; void *elem; int ret, err; } fop;

static void fop_run(void *arg)
{
    fop *o = arg;
    switch (o->op) {
    case FOP_SEND: o->ret = chan_send_at(o->c, o->elem, NULL, false); break;
    case FOP_RECV: o->ret = chan_recv_at(o->c, o->elem, NULL, false); break;
    default: o->ret = chan_close_at(o->c); break;
    }
    o->err = o->ret < 0 ? errno : 0; /* (no park in between: the same thread's errno) */
}

static __attribute__((noinline)) int chan_foreign(int op, np_chan *c, void *elem)
{
    fop o = {op, c, elem, -1, 0};
    if (!np__foreign_begin()) {
        errno = EPERM;
        return -1;
    }
    if (!np__solo()) {
        fop_run(&o);
        np__foreign_end();
    } else {
        np__foreign_end();
        if (np__foreign_call(fop_run, &o) != 0)
            return -1;
    }
    if (o.ret < 0)
        errno = o.err;
    return o.ret;
}

int np_chan_trysend(np_chan *c, const void *elem)
{
    if (!c || !elem) {
        errno = EINVAL;
        return -1;
    }
    np_g *self = np__getg(); /* looked at once: NULL is a foreign thread */
    return self ? chan_send_at(c, elem, self, false) : chan_foreign(FOP_SEND, c, (void *)elem);
}

int np_chan_tryrecv(np_chan *c, void *elem)
{
    if (!c) {
        errno = EINVAL;
        return -1;
    }
    np_g *self = np__getg();
    return self ? chan_recv_at(c, elem, self, false) : chan_foreign(FOP_RECV, c, elem);
}

int np_chan_close(np_chan *c)
{
    if (!c) {
        errno = EINVAL;
        return -1;
    }
    if (c->tsrc) { /* time's to fill, not to close */
        errno = EINVAL;
        return -1;
    }
    if (!np__getg())
        return chan_foreign(FOP_CLOSE, c, NULL);
    return chan_close_at(c);
}

static int chan_close_at(np_chan *c)
{
    np__chan_lock(c);
    if (c->closed) {
        np__chan_unlock(c);
        errno = EPIPE;
        return -1;
    }
    c->closed = true;
    np_sudog *list = NULL, *sg;
    while ((sg = np__dequeue(&c->recvq))) {
        if (sg->elem)
            memset(sg->elem, 0, c->esize);
        sg->success = false;
        sg->g->param = sg;
        sg->next = list;
        list = sg;
    }
    while ((sg = np__dequeue(&c->sendq))) {
        sg->success = false;
        sg->g->param = sg;
        sg->next = list;
        list = sg;
    }
    np__chan_unlock(c);
    while (list) {
        sg = list;
        list = sg->next;
        np__ready(sg->g); /* sg may be gone once its owner runs */
    }
    return 0;
}

size_t np_chan_len(np_chan *c)
{
    np__chan_lock(c);
    size_t n = c->count;
    np__chan_unlock(c);
    return n;
}

size_t np_chan_cap(np_chan *c) { return c->cap; }
