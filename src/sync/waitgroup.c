/* Wait group: an atomic counter; waiters park on a list taken whole at zero. */
#include "../sched/sched.h"
#include <errno.h>

typedef struct waiter { np_g *g; struct waiter *next; } waiter;

int np_wg_add(np_wg *wg, int64_t delta)
{
    int64_t v = atomic_fetch_add_explicit(&wg->count, delta, memory_order_acq_rel) + delta;
    if (v < 0) {
        atomic_fetch_sub_explicit(&wg->count, delta, memory_order_acq_rel);
        errno = EINVAL;
        return -1;
    }
    if (v > 0 || delta == 0)
        return 0;
    np_spin_lock(&wg->lk);
    waiter *w = wg->head;
    wg->head = NULL;
    np_spin_unlock(&wg->lk);
    while (w) {
        waiter *next = w->next;
        np__ready(w->g);
        w = next;
    }
    return 0;
}

int np_wg_done(np_wg *wg) { return np_wg_add(wg, -1); }

int np_wg_wait(np_wg *wg)
{
    np_g *g = np__getg();
    if (!g) {
        errno = EPERM;
        return -1;
    }
    if (atomic_load_explicit(&wg->count, memory_order_acquire) == 0)
        return 0;
    np_spin_lock(&wg->lk);
    if (atomic_load_explicit(&wg->count, memory_order_acquire) == 0) {
        np_spin_unlock(&wg->lk);
        return 0;
    }
    waiter w = {g, wg->head};
    wg->head = &w;
    np__park(np__unlock_spin, &wg->lk, W_WAITGROUP);
    return 0;
}
