/* Coroutine mutex: an atomic word for the uncontended path, a FIFO of parked waiters
 * with direct hand-off of ownership for the contended one.
 * state: 0 unlocked, 1 locked, 2 locked and maybe waiters. */
#include "../sched/sched.h"
#include <errno.h>

typedef struct waiter { np_g *g; struct waiter *next; } waiter;

int np_mutex_trylock(np_mutex *mu)
{
    int32_t z = 0;
    if (atomic_compare_exchange_strong_explicit(&mu->state, &z, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    errno = EBUSY;
    return -1;
}

int np_mutex_lock(np_mutex *mu)
{
    np_g *g = np__getg();
    if (!g) {
        errno = EPERM;
        return -1;
    }
    int32_t z = 0;
    if (atomic_compare_exchange_strong_explicit(&mu->state, &z, 1, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    for (int i = 0; i < 32; i++) { /* brief spin: the holder may be on another P */
        np_cpu_relax();
        z = 0;
        if (atomic_load_explicit(&mu->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&mu->state, &z, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    }
    np_spin_lock(&mu->lk);
    if (atomic_exchange_explicit(&mu->state, 2, memory_order_acquire) == 0) {
        np_spin_unlock(&mu->lk);
        return 0;
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

int np_mutex_unlock(np_mutex *mu)
{
    int32_t one = 1;
    if (atomic_compare_exchange_strong_explicit(&mu->state, &one, 0, memory_order_release,
                                                memory_order_relaxed))
        return 0;
    if (one == 0) {
        errno = EPERM;
        return -1;
    }
    np_spin_lock(&mu->lk);
    waiter *w = mu->head;
    if (!w) {
        atomic_store_explicit(&mu->state, 0, memory_order_release);
        np_spin_unlock(&mu->lk);
        return 0;
    }
    mu->head = w->next;
    if (!mu->head)
        mu->tail = NULL;
    atomic_store_explicit(&mu->state, mu->head ? 2 : 1, memory_order_release);
    np_g *g = w->g;
    np_spin_unlock(&mu->lk);
    np__ready(g);
    return 0;
}
