/* Inline fast paths of the coroutine mutex for the runtime's own hot users (the fd
 * layer's turn-taking): on one P an uncontended lock or unlock is a load and a store,
 * as in np_mutex_lock/np_mutex_unlock, without the call. Anything else goes to those. */
#ifndef NP_MUTEX_H
#define NP_MUTEX_H
#include "../sched/sched.h"

static inline __attribute__((always_inline)) int np__mutex_lock(np_mutex *mu)
{
    if (np__solo() && np__getg()) { /* every coroutine runs on this thread */
        int32_t s = atomic_load_explicit(&mu->state, memory_order_relaxed);
        if (!(s & 1)) {
            atomic_store_explicit(&mu->state, s | 1, memory_order_relaxed);
            return 0;
        }
    }
    return np_mutex_lock(mu);
}

/* For a holder that locked it as a coroutine (so no getg check: it still is one). */
static inline __attribute__((always_inline)) void np__mutex_unlock_held(np_mutex *mu)
{
    if (np__solo() && atomic_load_explicit(&mu->state, memory_order_relaxed) == 1) {
        atomic_store_explicit(&mu->state, 0, memory_order_relaxed);
        return;
    }
    np_mutex_unlock(mu);
}

#endif
