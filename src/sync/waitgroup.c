/* Wait group. The counter and the number of waiters share one atomic word, as in Go:
 * the add that takes the counter to zero touches the group again only if someone
 * waits (and so cannot have freed it); a waiter that sees zero returns at once. */
#include "../sched/sched.h"
#include <errno.h>

typedef struct waiter { np_g *g; struct waiter *next; } waiter;

/* np_wg's fields, in its opaque storage (include/np.h; may_alias as np__mutex). */
typedef struct __attribute__((may_alias)) np__wg {
    _Atomic int64_t count; /* counter << 32 | parked waiters */
    _Atomic int32_t lk;    /* spin lock over head and the wake-up at zero */
    waiter *head;          /* parked waiters (under lk) */
} np__wg;
_Static_assert(sizeof(np__wg) <= sizeof(np_wg) && _Alignof(np__wg) <= _Alignof(np_wg),
               "np_wg's storage holds np__wg");

#define ONE ((int64_t)1 << 32) /* counter in the high half, waiters in the low */

int np_wg_add(np_wg *pub, int64_t delta)
{
    np__wg *wg = (np__wg *)(void *)pub;
    if (delta > INT32_MAX || delta < -INT32_MAX) {
        errno = EINVAL;
        return -1;
    }
    int64_t s = atomic_fetch_add_explicit(&wg->count, delta * ONE, memory_order_acq_rel) + delta * ONE;
    int64_t counter = s >> 32, waiters = s & 0xffffffff;
    if (counter < 0) {
        atomic_fetch_sub_explicit(&wg->count, delta * ONE, memory_order_acq_rel);
        errno = EINVAL;
        return -1;
    }
    if (counter > 0 || waiters == 0 || delta == 0)
        return 0;
    /* Zero with waiters: they are parked, so the group is alive. Wake them all. From a
     * foreign thread (no coroutine), only while the runtime runs: once it stops (or
     * after np_run returned) the waiters are abandoned, their stacks maybe gone. */
    bool foreign = !np__getg();
    bool wake = !foreign || np__foreign_begin();
    np_spin_lock(&wg->lk);
    atomic_store_explicit(&wg->count, 0, memory_order_release);
    waiter *w = wake ? wg->head : NULL;
    wg->head = NULL;
    np_spin_unlock(&wg->lk);
    while (w) {
        waiter *next = w->next;
        np__ready(w->g);
        w = next;
    }
    if (foreign && wake)
        np__foreign_end();
    return 0;
}

int np_wg_done(np_wg *wg) { return np_wg_add(wg, -1); }

int np_wg_wait(np_wg *pub)
{
    np__wg *wg = (np__wg *)(void *)pub;
    np_g *g = np__getg();
    if (!g) {
        errno = EPERM;
        return -1;
    }
    if ((atomic_load_explicit(&wg->count, memory_order_acquire) >> 32) == 0)
        return 0;
    np_spin_lock(&wg->lk);
    int64_t s = atomic_load_explicit(&wg->count, memory_order_acquire);
    for (;;) {
        if ((s >> 32) == 0) {
            np_spin_unlock(&wg->lk);
            return 0;
        }
        if (atomic_compare_exchange_weak_explicit(&wg->count, &s, s + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    waiter w = {g, wg->head};
    wg->head = &w;
    np__park(np__unlock_spin, &wg->lk, W_WAITGROUP);
    return 0;
}
