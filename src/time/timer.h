/* Per-P timer heaps (4-ary, O(log n) add/delete/modify). A timer belongs to at most one
 * heap at a time; its callback runs without any heap lock held, on a thread holding a P
 * (the heap's own or a stealer's), which need not be the heap's P. */
#ifndef NP_TIMER_H
#define NP_TIMER_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct np_p;
typedef void (*np__timer_fn)(void *arg, uintptr_t seq);

typedef struct np__timer {
    int64_t when;
    np__timer_fn f;
    void *arg;
    uintptr_t seq;
    struct np_p *_Atomic p; /* heap it is in, or NULL */
    int32_t idx;
    /* Callbacks of t under way: raised under the heap lock before t leaves it (so whoever
     * finds t out of its heap also sees this), lowered once f has returned. */
    _Atomic int32_t running;
} np__timer;

typedef struct np__theap_ent { int64_t when; np__timer *t; } np__theap_ent;

typedef struct np__timers {
    _Atomic int32_t lock;
    np__theap_ent *h;
    int32_t n, cap;
    _Atomic int64_t first; /* when of the earliest timer, 0 if none */
} np__timers;

/* Add t (not in any heap) to the heap of P p, firing f(arg, seq) at when. */
int np__timer_add(struct np_p *p, np__timer *t, int64_t when, np__timer_fn f, void *arg,
                  uintptr_t seq);
/* Remove t if pending. Returns true if it was removed before firing. */
bool np__timer_del(np__timer *t);
/* Wait until no callback of t is running (after np__timer_del, before freeing t: with
 * what its callback does arranged so that it cannot add t again). Not from t's own
 * callback. */
void np__timer_wait(np__timer *t);
/* Run every timer of p that is due at now. Returns the number run. */
int np__timers_run(struct np_p *p, int64_t now);
/* Earliest pending timer of p, 0 if none (no lock). */
static inline int64_t np__timers_first(np__timers *ts)
{
    return atomic_load_explicit(&ts->first, memory_order_acquire);
}
/* Free the heap; the timers still in it are left out of any heap (np__timer_del of one
 * returns false). At np_run's end, while the timers are still there. */
void np__timers_free(np__timers *ts);

#endif
