/* Reader/writer mutex (see rwmutex.h for the state word). Uncontended, each call is one
 * CAS. Otherwise waiters queue under lk and whoever releases the lock to them hands it
 * over: it counts them in (readers) or leaves RW_W set for them (a writer) before
 * readying them, so a woken waiter owns the lock and returns at once. Policy (Go's):
 * a queued writer holds back new readers; the last reader out hands the lock to the
 * first queued writer; a writer's unlock hands it to every reader queued during its
 * turn if any, else to the next writer. */
#include "rwmutex.h"
#include <errno.h>

struct np__rwwaiter {
    np_g *g;
    struct np__rwwaiter *next;
};

static inline bool check(np_rwmutex *pub)
{
    if (pub)
        return true;
    errno = EINVAL;
    return false;
}

/* A reader may enter: no writer holds it or waits for it. */
static inline bool reader_ok(uint32_t s) { return !(s & (RW_W | RW_WQ)); }

int np_rwmutex_tryrlock(np_rwmutex *pub)
{
    if (!check(pub))
        return -1;
    np__rwmutex *rw = np__rw(pub);
    uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    while (reader_ok(s))
        if (atomic_compare_exchange_weak_explicit(&rw->state, &s, s + RW_R, memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    errno = EBUSY;
    return -1;
}

int np_rwmutex_trylock(np_rwmutex *pub)
{
    if (!check(pub))
        return -1;
    np__rwmutex *rw = np__rw(pub);
    uint32_t s = 0;
    if (atomic_compare_exchange_strong_explicit(&rw->state, &s, RW_W, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    errno = EBUSY;
    return -1;
}

static inline void enqueue(struct np__rwwaiter **head, struct np__rwwaiter **tail,
                           struct np__rwwaiter *w)
{
    if (*tail)
        (*tail)->next = w;
    else
        *head = w;
    *tail = w;
}

int np_rwmutex_rlock(np_rwmutex *pub)
{
    if (!check(pub))
        return -1;
    np__rwmutex *rw = np__rw(pub);
    np_g *g = np__getg();
    if (!g) {
        errno = EPERM;
        return -1;
    }
    uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    while (reader_ok(s))
        if (atomic_compare_exchange_weak_explicit(&rw->state, &s, s + RW_R, memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    np_spin_lock(&rw->lk);
    s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    for (;;) {
        bool take = reader_ok(s);
        if (atomic_compare_exchange_weak_explicit(&rw->state, &s, take ? s + RW_R : s | RW_RQ,
                                                  memory_order_acquire, memory_order_relaxed)) {
            if (take) {
                np_spin_unlock(&rw->lk);
                return 0;
            }
            break;
        }
    }
    struct np__rwwaiter w = {g, NULL};
    enqueue(&rw->rhead, &rw->rtail, &w);
    np__park(np__unlock_spin, &rw->lk, W_RWMUTEX);
    return 0; /* counted in by the writer that let us in */
}

int np_rwmutex_lock(np_rwmutex *pub)
{
    if (!check(pub))
        return -1;
    np__rwmutex *rw = np__rw(pub);
    np_g *g = np__getg();
    if (!g) {
        errno = EPERM;
        return -1;
    }
    uint32_t s = 0;
    if (atomic_compare_exchange_strong_explicit(&rw->state, &s, RW_W, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    np_spin_lock(&rw->lk);
    s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    for (;;) {
        /* Free means 0: with nobody holding it no queue is left (the releaser hands it
         * to the first waiter), so a queued bit is never set then. */
        bool take = s == 0;
        if (atomic_compare_exchange_weak_explicit(&rw->state, &s, take ? RW_W : s | RW_WQ,
                                                  memory_order_acquire, memory_order_relaxed)) {
            if (take) {
                np_spin_unlock(&rw->lk);
                return 0;
            }
            break;
        }
    }
    struct np__rwwaiter w = {g, NULL};
    enqueue(&rw->whead, &rw->wtail, &w);
    np__park(np__unlock_spin, &rw->lk, W_RWMUTEX);
    return 0; /* RW_W was left set for us */
}

/* Take the first queued writer (under lk). */
static np_g *pop_writer(np__rwmutex *rw)
{
    struct np__rwwaiter *w = rw->whead;
    rw->whead = w->next;
    if (!rw->whead)
        rw->wtail = NULL;
    return w->g;
}

/* The state with the first queued writer gone from the queue: RW_WQ goes with the last. */
static inline uint32_t without_writer(np__rwmutex *rw, uint32_t s)
{
    return rw->whead->next ? s : s & ~(uint32_t)RW_WQ;
}

int np_rwmutex_runlock(np_rwmutex *pub)
{
    if (!check(pub))
        return -1;
    np__rwmutex *rw = np__rw(pub);
    uint32_t s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    for (;;) {
        if (s < RW_R) {
            errno = EPERM; /* no reader holds it */
            return -1;
        }
        if (s / RW_R == 1 && (s & RW_WQ))
            break; /* the last reader, and a writer waits: hand it over */
        if (atomic_compare_exchange_weak_explicit(&rw->state, &s, s - RW_R, memory_order_release,
                                                  memory_order_relaxed))
            return 0;
    }
    np_spin_lock(&rw->lk);
    np_g *g = NULL;
    s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    for (;;) {
        if (s < RW_R) {
            np_spin_unlock(&rw->lk);
            errno = EPERM;
            return -1;
        }
        uint32_t to = s - RW_R;
        bool hand = s / RW_R == 1 && (s & RW_WQ); /* (stable under lk but for misuse) */
        if (hand)
            to = without_writer(rw, to) | RW_W;
        if (atomic_compare_exchange_weak_explicit(&rw->state, &s, to, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            if (hand)
                g = pop_writer(rw);
            break;
        }
    }
    np_spin_unlock(&rw->lk);
    if (g)
        np__ready(g);
    return 0;
}

int np_rwmutex_unlock(np_rwmutex *pub)
{
    if (!check(pub))
        return -1;
    np__rwmutex *rw = np__rw(pub);
    uint32_t s = RW_W;
    if (atomic_compare_exchange_strong_explicit(&rw->state, &s, 0, memory_order_release,
                                                memory_order_relaxed))
        return 0;
    if (!(s & RW_W)) {
        errno = EPERM; /* no writer holds it */
        return -1;
    }
    /* Waiters are queued. While RW_W is set the state changes only under lk (every
     * fast path needs RW_W clear), so what is read here stays true. */
    np_spin_lock(&rw->lk);
    s = atomic_load_explicit(&rw->state, memory_order_relaxed);
    struct np__rwwaiter *readers = NULL;
    np_g *writer = NULL;
    uint32_t to;
    if (!(s & RW_W)) { /* (misuse: another unlock came first) */
        np_spin_unlock(&rw->lk);
        errno = EPERM;
        return -1;
    }
    if (!(s & (RW_RQ | RW_WQ))) {
        to = s & ~(uint32_t)RW_W; /* (misuse again: nobody left to hand it to) */
    } else if (s & RW_RQ) {
        /* Readers that queued during our turn go first, all together; a queued writer
         * keeps RW_WQ set, so readers that come from now on queue behind it. */
        uint32_t n = 0;
        for (struct np__rwwaiter *w = rw->rhead; w; w = w->next)
            n++;
        readers = rw->rhead;
        rw->rhead = rw->rtail = NULL;
        to = (s & ~(uint32_t)(RW_W | RW_RQ)) + n * RW_R;
    } else {
        to = without_writer(rw, s); /* RW_W stays: it is the next writer's */
        writer = pop_writer(rw);
    }
    atomic_store_explicit(&rw->state, to, memory_order_release);
    np_spin_unlock(&rw->lk);
    if (writer)
        np__ready(writer);
    while (readers) {
        struct np__rwwaiter *next = readers->next; /* read before it can run */
        np__ready(readers->g);
        readers = next;
    }
    return 0;
}
