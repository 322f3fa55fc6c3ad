/* Channels: a lock, a ring buffer, queues of waiting senders and receivers. A transfer
 * to a waiting coroutine copies straight into (or out of) its sudog. */
#include "chan.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void np__enqueue(np_waitq *q, np_sudog *sg)
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

void np__unlink(np_waitq *q, np_sudog *sg)
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

np_sudog *np__dequeue(np_waitq *q)
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

np_g *np__send_to(np_chan *c, np_sudog *sg, const void *elem)
{
    if (sg->elem)
        np__ecopy(sg->elem, elem, c->esize);
    sg->success = true;
    sg->g->param = sg;
    return sg->g;
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

int np_chan_free(np_chan *c)
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
    free(c->buf);
    free(c);
    return 0;
}

static bool chan_unlockf(np_g *g, void *c)
{
    np__chan_unlock(c);
    return true;
}

/* The calling coroutine, or NULL with errno set (bad arguments, not a coroutine). */
static inline np_g *chan_caller(bool args_ok)
{
    np_g *self = args_ok ? np__getg() : NULL;
    if (!self)
        errno = args_ok ? EPERM : EINVAL;
    return self;
}

static inline __attribute__((always_inline)) int chan_send(np_chan *c, const void *elem, bool block)
{
    np_g *self = chan_caller(c && elem);
    if (!self)
        return -1;
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
    np_sudog me = {.g = self, .elem = (void *)elem, .c = c};
    np__enqueue(&c->sendq, &me);
    np__park(np__solo() ? NULL : chan_unlockf, c, W_CHAN_SEND);
    if (!me.success) {
        np__seterrno(EPIPE);
        return -1;
    }
    return 0;
}

static inline __attribute__((always_inline)) int chan_recv(np_chan *c, void *elem, bool block)
{
    np_g *self = chan_caller(c != NULL);
    if (!self)
        return -1;
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
    np_sudog me = {.g = self, .elem = elem, .c = c};
    np__enqueue(&c->recvq, &me);
    np__park(np__solo() ? NULL : chan_unlockf, c, W_CHAN_RECV);
    return me.success ? 1 : 0;
}

int np_chan_send(np_chan *c, const void *elem) { return chan_send(c, elem, true); }
int np_chan_trysend(np_chan *c, const void *elem) { return chan_send(c, elem, false); }
int np_chan_recv(np_chan *c, void *elem) { return chan_recv(c, elem, true); }
int np_chan_tryrecv(np_chan *c, void *elem) { return chan_recv(c, elem, false); }

int np_chan_close(np_chan *c)
{
    if (!c) {
        errno = EINVAL;
        return -1;
    }
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
