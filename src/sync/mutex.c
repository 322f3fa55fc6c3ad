/* Coroutine mutex. state: bit 0 locked, the rest counts parked waiters (2 per waiter);
 * the FIFO of waiters is under lk. Unlock with no waiter is one CAS and never touches
 * the mutex again (a coroutine may lock, unlock and free it right after); with waiters
 * it hands ownership to the first, whose presence keeps the mutex alive meanwhile. */
#include "mutex.h"
#include <errno.h>

typedef struct waiter { np_g *g; struct waiter *next; } waiter;

static int trylock_cas(np__mutex *mu)
{
    int32_t s = atomic_load_explicit(&mu->state, memory_order_relaxed);
    while (!(s & 1))
        if (atomic_compare_exchange_weak_explicit(&mu->state, &s, s | 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    errno = EBUSY;
    return -1;
}

typedef struct trylock_call { np__mutex *mu; int r, err; } trylock_call;

static void trylock_run(void *arg)
{
    trylock_call *t = arg;
    t->r = trylock_cas(t->mu);
    t->err = errno;
}

/* np_mutex_trylock from a thread that is not a coroutine. With one P the coroutines
 * take the mutex with a plain load and store (np__mutex_take_solo), which a CAS from
 * here could fall between (both would own it): the CAS runs on the P, as a coroutine
 * (np__foreign_call). With several Ps, or no runtime, every taker uses a CAS. */
static __attribute__((noinline)) int trylock_foreign(np__mutex *mu)
{
    if (np__foreign_begin()) {
        bool solo = np__solo();
        np__foreign_end();
        if (!solo)
            return trylock_cas(mu);
        trylock_call t = {mu, -1, EBUSY};
        if (np__foreign_call(trylock_run, &t) != 0)
            return -1; /* EPERM: stopping; ECANCELED */
        if (t.r != 0)
            errno = t.err;
        return t.r;
    }
    if (atomic_load(&np__sched.up)) { /* stopping: a coroutine may still take it */
        errno = EPERM;
        return -1;
    }
    return trylock_cas(mu);
}

int np_mutex_trylock(np_mutex *pub)
{
    np__mutex *mu = np__mu(pub);
    if (__builtin_expect(!np__getg(), 0))
        return trylock_foreign(mu);
    return trylock_cas(mu);
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
    /* (from another thread: the slow path's CAS and hand-over are safe with one P too,
     * a coroutine's plain store gives it only when it is 1, held by that coroutine) */
    if (np__getg() && np__mutex_give_solo(mu, np__solo()))
        return 0;
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
