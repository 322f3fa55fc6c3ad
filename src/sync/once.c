/* Once (see once.h). The first caller claims the once with one CAS and runs fn; callers
 * that come meanwhile push themselves on the state's stack from their park's unlock
 * function (off their stacks: the runner may ready them at once) unless they find it
 * done by then; the runner's final exchange publishes fn's effects (release; the fast
 * path's load acquires them) and takes every waiter. */
#include "once.h"
#include <errno.h>

struct np__oncew {
    np_g *g;
    struct np__oncew *next;
    np__once *o;
};

/* Park's unlock function: queue w, or (false) resume at once if fn has returned. */
static bool push(np_g *g, void *arg)
{
    (void)g;
    struct np__oncew *w = arg;
    np__once *o = w->o;
    uintptr_t s = atomic_load_explicit(&o->state, memory_order_acquire);
    for (;;) {
        if (s == ONCE_DONE)
            return false;
        w->next = (struct np__oncew *)(s & ~(uintptr_t)ONCE_RUN);
        /* after this CAS w is the runner's to wake: not touched again here */
        if (atomic_compare_exchange_weak_explicit(&o->state, &s, (uintptr_t)w | ONCE_RUN,
                                                  memory_order_release, memory_order_acquire))
            return true;
    }
}

static int once_slow(np_once *pub, void (*fn)(void *), void *arg)
{
    if (!pub || !fn) {
        errno = EINVAL;
        return -1;
    }
    np__once *o = np__on(pub);
    np_g *g = np__getg();
    if (!g) {
        errno = EPERM; /* fn is not run: it could not wait for another runner */
        return -1;
    }
    uintptr_t s = atomic_load_explicit(&o->state, memory_order_acquire);
    for (;;) {
        if (s == ONCE_DONE)
            return 0;
        if (s != ONCE_IDLE)
            break;
        if (atomic_compare_exchange_weak_explicit(&o->state, &s, ONCE_RUN, memory_order_acquire,
                                                  memory_order_acquire)) {
            atomic_store_explicit(&o->owner, g->id, memory_order_relaxed);
            fn(arg); /* may park, and return on another thread */
            atomic_store_explicit(&o->owner, 0, memory_order_relaxed);
            s = atomic_exchange_explicit(&o->state, ONCE_DONE, memory_order_acq_rel);
            /* o is not touched from here: a caller that sees ONCE_DONE may free it */
            struct np__oncew *w = (struct np__oncew *)(s & ~(uintptr_t)ONCE_RUN);
            while (w) {
                struct np__oncew *next = w->next; /* read before it can run */
                np__ready(w->g);
                w = next;
            }
            return 0;
        }
    }
    /* fn is running. In the coroutine running it (called from fn), waiting would never
     * end. Nobody else can see our own id there. */
    if (atomic_load_explicit(&o->owner, memory_order_relaxed) == g->id) {
        errno = EDEADLK;
        return -1;
    }
    struct np__oncew w = {g, NULL, o};
    np__park(push, &w, W_ONCE);
    return 0; /* woken after the exchange to ONCE_DONE, or found it done */
}

int np_once_do(np_once *pub, void (*fn)(void *), void *arg)
{
    if (__builtin_expect(pub && fn, 1) &&
        atomic_load_explicit(&np__on(pub)->state, memory_order_acquire) == ONCE_DONE)
        return 0;
    return once_slow(pub, fn, arg);
}
