/* Per-P timer heaps (4-ary, O(log n) add/delete/modify). A timer belongs to at most one
 * heap at a time; its callback runs without any heap lock held. */
#ifndef NP_TIMER_H
#define NP_TIMER_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct np_p;
typedef void (*np_timer_fn)(void *arg, uintptr_t seq);

typedef struct np_timer {
    int64_t when;
    np_timer_fn f;
    void *arg;
    uintptr_t seq;
    struct np_p *_Atomic p; /* heap it is in, or NULL */
    int32_t idx;
} np_timer;

typedef struct np_theap_ent { int64_t when; np_timer *t; } np_theap_ent;

typedef struct np_timers {
    _Atomic int32_t lock;
    np_theap_ent *h;
    int32_t n, cap;
    _Atomic int64_t first; /* when of the earliest timer, 0 if none */
} np_timers;

/* Add t (not in any heap) to the heap of P p, firing f(arg, seq) at when. */
int np_timer_add(struct np_p *p, np_timer *t, int64_t when, np_timer_fn f, void *arg,
                 uintptr_t seq);
/* Remove t if pending. Returns true if it was removed before firing. */
bool np_timer_del(np_timer *t);
/* Run every timer of p that is due at now. Returns the number run. */
int np_timers_run(struct np_p *p, int64_t now);
/* Earliest pending timer of p, 0 if none (no lock). */
static inline int64_t np_timers_first(np_timers *ts)
{
    return atomic_load_explicit(&ts->first, memory_order_acquire);
}
void np_timers_free(np_timers *ts);

#endif
