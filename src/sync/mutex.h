/* The coroutine mutex's one-P fast paths, used by np_mutex_lock/np_mutex_unlock and
 * inlined into the runtime's hot users (the fd layer's turn-taking) so that they make
 * no call when the mutex is free. Anything else goes to those two. */
#ifndef NP_MUTEX_H
#define NP_MUTEX_H
#include "../sched/sched.h"

/* np_mutex's fields: the public type is opaque storage (include/np.h) that the runtime
 * reads through this view (may_alias: the storage's declared type is np_mutex). */
typedef struct __attribute__((may_alias)) np__mutex {
    _Atomic int32_t state; /* bit 0: locked; the rest counts parked waiters, 2 per waiter */
    _Atomic int32_t lk;    /* spin lock over head and tail */
    void *head, *tail;     /* FIFO of parked waiters (under lk) */
} np__mutex;
_Static_assert(sizeof(np__mutex) <= sizeof(np_mutex) && _Alignof(np__mutex) <= _Alignof(np_mutex),
               "np_mutex's storage holds np__mutex");
static inline np__mutex *np__mu(np_mutex *mu) { return (np__mutex *)(void *)mu; }
int np__mutex_lock_slow(np__mutex *mu);
int np__mutex_unlock_slow(np__mutex *mu);

/* One P (solo: np__solo(), which a caller may have at hand): every coroutine runs on
 * the thread holding it, so for a coroutine an uncontended lock or unlock is a load and
 * a store. False: take the general path. */
static inline __attribute__((always_inline)) bool np__mutex_take_solo(np__mutex *mu, bool solo)
{
    if (!solo)
        return false;
    int32_t s = atomic_load_explicit(&mu->state, memory_order_relaxed);
    if (s & 1)
        return false;
    atomic_store_explicit(&mu->state, s | 1, memory_order_relaxed);
    return true;
}

static inline __attribute__((always_inline)) bool np__mutex_give_solo(np__mutex *mu, bool solo)
{
    if (!solo || atomic_load_explicit(&mu->state, memory_order_relaxed) != 1)
        return false;
    atomic_store_explicit(&mu->state, 0, memory_order_relaxed);
    return true;
}

/* For a caller that is a coroutine (so no getg check). */
static inline __attribute__((always_inline)) int np__mutex_lock(np__mutex *mu, bool solo)
{
    return np__mutex_take_solo(mu, solo) ? 0 : np__mutex_lock_slow(mu);
}

/* For a holder that locked it as a coroutine (so no getg check: it still is one). */
static inline __attribute__((always_inline)) void np__mutex_unlock_held(np__mutex *mu, bool solo)
{
    if (!np__mutex_give_solo(mu, solo))
        np__mutex_unlock_slow(mu);
}

#endif
