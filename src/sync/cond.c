/* Condition variable: Go's notifyList (see cond.h). The waiter's ticket is taken while
 * it holds the mutex, so a signal that follows in the mutex's order counts it even if
 * the waiter has not queued yet. A signaller touches the cond only under lk (or with
 * the fast path's loads) and readies the waiter after unlocking it: the waiter is still
 * parked then, so the cond cannot have been freed under it. */
#include "cond.h"
#include "mutex.h"
#include <errno.h>

struct np__condw {
    np_g *g;
    uint32_t ticket;
    struct np__condw *next;
};

/* a was handed out before b (tickets wrap) */
static inline bool before(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }

int np_cond_wait(np_cond *pub, np_mutex *pmu)
{
    if (!pub || !pmu) {
        errno = EINVAL;
        return -1;
    }
    np__cond *c = np__cv(pub);
    np__mutex *mu = np__mu(pmu);
    np_g *g = np__getg();
    if (!g || !(atomic_load_explicit(&mu->state, memory_order_relaxed) & 1)) {
        errno = EPERM; /* not a coroutine, or mu is not locked (so not by the caller) */
        return -1;
    }
    bool solo = np__solo();
    /* Registered while mu is held: a signal made after our unlock counts this ticket. */
    uint32_t t = atomic_fetch_add_explicit(&c->wait, 1, memory_order_relaxed);
    np__mutex_unlock_held(mu, solo);
    np_spin_lock(&c->lk);
    if (before(t, atomic_load_explicit(&c->notify, memory_order_relaxed))) {
        np_spin_unlock(&c->lk); /* signalled between the unlock and here */
    } else {
        struct np__condw w = {g, t, NULL};
        if (c->tail)
            c->tail->next = &w;
        else
            c->head = &w;
        c->tail = &w;
        np__park(np__unlock_spin, &c->lk, W_COND);
    }
    return np__mutex_lock(mu, np__solo());
}

/* No waiter since the last wake-up: every ticket handed out was notified. The ticket
 * of a wait that happened before this call (through the mutex, or any other ordering
 * the caller relies on) is visible to the acquire load. */
static inline bool none_waiting(np__cond *c)
{
    return atomic_load_explicit(&c->wait, memory_order_acquire) ==
           atomic_load_explicit(&c->notify, memory_order_relaxed);
}

/* foreign_gone: a signal or broadcast from a thread that is not a coroutine (any thread
 * may) wakes waiters only while the runtime runs (np__foreign_begin): when it is
 * stopping, or after np_run returned, the waiters are abandoned coroutines, their
 * records on stacks that may be gone; the call leaves the cond as it is and returns 0. */

/* The start of a signal or broadcast: c's lock taken, or false when there is nothing
 * to do (no waiter, or a foreign caller once the runtime stops: see foreign_gone; then
 * *ret is the call's result). *foreign: the caller is no coroutine (end with wake_end). */
static bool wake_begin(np_cond *pub, np__cond **c, bool *foreign, int *ret)
{
    *ret = 0;
    if (!pub) {
        errno = EINVAL;
        *ret = -1;
        return false;
    }
    *c = np__cv(pub);
    if (none_waiting(*c))
        return false;
    *foreign = !np__getg();
    if (*foreign && !np__foreign_begin())
        return false;
    np_spin_lock(&(*c)->lk);
    return true;
}

static int wake_end(bool foreign)
{
    if (foreign)
        np__foreign_end();
    return 0;
}

int np_cond_signal(np_cond *pub)
{
    np__cond *c;
    bool foreign;
    int ret;
    if (!wake_begin(pub, &c, &foreign, &ret))
        return ret;
    uint32_t t = atomic_load_explicit(&c->notify, memory_order_relaxed);
    if (t == atomic_load_explicit(&c->wait, memory_order_relaxed)) {
        np_spin_unlock(&c->lk);
        return wake_end(foreign);
    }
    atomic_store_explicit(&c->notify, t + 1, memory_order_relaxed);
    /* Ticket t's holder is queued, or will find t notified when it comes to queue. */
    struct np__condw *prev = NULL, *w = c->head;
    while (w && w->ticket != t) {
        prev = w;
        w = w->next;
    }
    if (w) {
        if (prev)
            prev->next = w->next;
        else
            c->head = w->next;
        if (c->tail == w)
            c->tail = prev;
    }
    np_g *g = w ? w->g : NULL;
    np_spin_unlock(&c->lk);
    if (g)
        np__ready(g);
    return wake_end(foreign);
}

int np_cond_broadcast(np_cond *pub)
{
    np__cond *c;
    bool foreign;
    int ret;
    if (!wake_begin(pub, &c, &foreign, &ret))
        return ret;
    /* Every ticket handed out so far is notified; tickets taken from now on are not,
     * and their holders cannot have queued yet (they need lk). */
    atomic_store_explicit(&c->notify, atomic_load_explicit(&c->wait, memory_order_relaxed),
                          memory_order_relaxed);
    struct np__condw *w = c->head;
    c->head = c->tail = NULL;
    np_spin_unlock(&c->lk);
    while (w) {
        struct np__condw *next = w->next; /* read before w's owner can run */
        np__ready(w->g);
        w = next;
    }
    return wake_end(foreign);
}
