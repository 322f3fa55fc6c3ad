/* Coroutine mutex. state: bit 0 locked, the rest counts parked waiters (2 per waiter);
 * the FIFO of waiters is under lk. Unlock with no waiter is one CAS and never touches
 * the mutex again (a coroutine may lock, unlock and free it right after); with waiters
 * it hands ownership to the first, whose presence keeps the mutex alive meanwhile. */
#include "mutex.h"
#include <errno.h>

typedef struct waiter { np_g *g; struct waiter *next; } waiter;

/* A mutex call from a thread that is not a coroutine while a runtime runs: with one
 * P a coroutine takes and gives the mutex with a plain load and store, which a CAS
 * from another thread would race with (both would own it). EPERM for them all. */
static bool foreign_while_running(void)
{
    return !np__getg() && atomic_load_explicit(&np__sched.up, memory_order_relaxed);
}

int np_mutex_trylock(np_mutex *pub)
{
    np__mutex *mu = np__mu(pub);
    if (foreign_while_running()) {
        errno = EPERM;
        return -1;
    }
    int32_t s = atomic_load_explicit(&mu->state, memory_order_relaxed);
    while (!(s & 1))
        if (atomic_compare_exchange_weak_explicit(&mu->state, &s, s | 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    errno = EBUSY;
    return -1;
}

int np_mutex_lock(np_mutex *pub)
{
    np__mutex *mu = np__mu(pub);
    if (!np__getg()) {
        errno = EPERM;
        return -1;
    }
    if (np__mutex_take_solo(mu, np__solo()))
        return 0;
    return np__mutex_lock_slow(mu);
}

/* For a coroutine: spin a little (the holder may be running on another P), then park. */
int np__mutex_lock_slow(np__mutex *mu)
{
    np_g *g = np__getg();
    for (int i = 0; i < 32; i++) {
        int32_t s = atomic_load_explicit(&mu->state, memory_order_relaxed);
        if (!(s & 1) && atomic_compare_exchange_weak_explicit(&mu->state, &s, s | 1,
                                                              memory_order_acquire, memory_order_relaxed))
            return 0;
        np_cpu_relax();
    }
    np_spin_lock(&mu->lk);
    int32_t s = atomic_load_explicit(&mu->state, memory_order_relaxed);
    for (;;) {
        int32_t to = (s & 1) ? s + 2 : (s | 1); /* wait, or take it */
        if (atomic_compare_exchange_weak_explicit(&mu->state, &s, to, memory_order_acquire,
                                                  memory_order_relaxed)) {
            if (!(s & 1)) {
                np_spin_unlock(&mu->lk);
                return 0;
            }
            break;
        }
    }
    waiter w = {g, NULL};
    if (mu->tail)
        ((waiter *)mu->tail)->next = &w;
    else
        mu->head = &w;
    mu->tail = &w;
    np__park(np__unlock_spin, &mu->lk, W_MUTEX);
    return 0; /* ownership was handed to us */
}

int np_mutex_unlock(np_mutex *pub)
{
    np__mutex *mu = np__mu(pub);
    if (np__getg()) {
        if (np__mutex_give_solo(mu, np__solo()))
            return 0;
    } else if (atomic_load_explicit(&np__sched.up, memory_order_relaxed)) {
        errno = EPERM; /* as np_mutex_trylock */
        return -1;
    }
    return np__mutex_unlock_slow(mu);
}

int np__mutex_unlock_slow(np__mutex *mu)
{
    int32_t one = 1;
    if (atomic_compare_exchange_strong_explicit(&mu->state, &one, 0, memory_order_release,
                                                memory_order_relaxed))
        return 0;
    if (!(one & 1)) {
        errno = EPERM;
        return -1;
    }
    /* Waiters: hand over (the locked bit stays set), one waiter less. */
    np_spin_lock(&mu->lk);
    waiter *w = mu->head;
    mu->head = w->next;
    if (!mu->head)
        mu->tail = NULL;
    atomic_fetch_sub_explicit(&mu->state, 2, memory_order_release);
    np_g *g = w->g;
    np_spin_unlock(&mu->lk);
    np__ready(g);
    return 0;
}
