/* Per-P 4-ary timer heap. Entries cache `when` next to the pointer so sifting touches
 * only the heap array. */
#include "timer.h"
#include "../sched/sched.h"
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

static void set(np__timers *ts, int32_t i, np__theap_ent e)
{
    ts->h[i] = e;
    e.t->idx = i;
}

static void siftup(np__timers *ts, int32_t i)
{
    np__theap_ent e = ts->h[i];
    while (i > 0) {
        int32_t p = (i - 1) / 4;
        if (ts->h[p].when <= e.when)
            break;
        set(ts, i, ts->h[p]);
        i = p;
    }
    set(ts, i, e);
}

static void siftdown(np__timers *ts, int32_t i)
{
    np__theap_ent e = ts->h[i];
    for (;;) {
        int32_t c = 4 * i + 1, best = -1;
        int64_t bw = e.when;
        for (int32_t k = c; k < c + 4 && k < ts->n; k++)
            if (ts->h[k].when < bw) {
                bw = ts->h[k].when;
                best = k;
            }
        if (best < 0)
            break;
        set(ts, i, ts->h[best]);
        i = best;
    }
    set(ts, i, e);
}

static void update_first(np__timers *ts)
{
    atomic_store_explicit(&ts->first, ts->n ? ts->h[0].when : 0, memory_order_release);
}

/* Remove entry i (lock held). */
static void remove_at(np__timers *ts, int32_t i)
{
    np__timer *t = ts->h[i].t;
    int32_t last = --ts->n;
    if (i != last) {
        set(ts, i, ts->h[last]);
        if (i > 0 && ts->h[i].when < ts->h[(i - 1) / 4].when)
            siftup(ts, i);
        else
            siftdown(ts, i);
    }
    t->idx = -1;
    /* Last: whoever sees t out of the heap may add it again at once (np__timer_del,
     * then np__timer_add, while its callback is under way): nothing of t is written
     * after this, and running was raised before it. */
    atomic_store_explicit(&t->p, NULL, memory_order_release);
}

int np__timer_add(struct np_p *p, np__timer *t, int64_t when, np__timer_fn f, void *arg,
                  uintptr_t seq)
{
    np__timers *ts = &p->timers;
    if (when <= 0)
        when = 1;
    np_spin_lock(&ts->lock);
    if (ts->n == ts->cap) {
        int32_t nc = ts->cap ? 2 * ts->cap : 64;
        np__theap_ent *nh = realloc(ts->h, (size_t)nc * sizeof *nh);
        if (!nh) {
            np_spin_unlock(&ts->lock);
            errno = ENOMEM;
            return -1;
        }
        ts->h = nh;
        ts->cap = nc;
    }
    t->when = when;
    t->f = f;
    t->arg = arg;
    t->seq = seq;
    ts->h[ts->n] = (np__theap_ent){when, t};
    t->idx = ts->n++;
    siftup(ts, t->idx);
    atomic_store_explicit(&t->p, p, memory_order_relaxed);
    update_first(ts);
    np_spin_unlock(&ts->lock);
    return 0;
}

bool np__timer_del(np__timer *t)
{
    for (;;) {
        struct np_p *p = atomic_load_explicit(&t->p, memory_order_acquire);
        if (!p)
            return false;
        np__timers *ts = &p->timers;
        np_spin_lock(&ts->lock);
        if (atomic_load_explicit(&t->p, memory_order_relaxed) != p) {
            np_spin_unlock(&ts->lock);
            continue;
        }
        remove_at(ts, t->idx);
        update_first(ts);
        np_spin_unlock(&ts->lock);
        return true;
    }
}

int np__timers_run(struct np_p *p, int64_t now)
{
    np__timers *ts = &p->timers;
    int64_t first = np__timers_first(ts);
    if (first == 0 || first > now)
        return 0;
    int ran = 0;
    bool tr = np__tracing();
    signed char ctx = -1;
    if (tr) {
        ctx = np__trace_ctx;
        np__tev(EV_TIMERS_BEGIN, 0, 0, 0, 0);
        np__trace_ctx = WK_TIMER;
    }
    np_spin_lock(&ts->lock);
    while (ts->n > 0 && ts->h[0].when <= now) {
        np__timer *t = ts->h[0].t;
        np__timer_fn f = t->f;
        void *arg = t->arg;
        uintptr_t seq = t->seq;
        atomic_fetch_add_explicit(&t->running, 1, memory_order_relaxed);
        remove_at(ts, 0);
        update_first(ts);
        np_spin_unlock(&ts->lock);
        f(arg, seq);
        /* the last touch of t: np__timer_wait lets its owner free it after this */
        atomic_fetch_sub_explicit(&t->running, 1, memory_order_release);
        ran++;
        np_spin_lock(&ts->lock);
    }
    update_first(ts);
    np_spin_unlock(&ts->lock);
    if (tr) {
        np__trace_ctx = ctx;
        np__tev(EV_TIMERS_END, 0, (uint64_t)ran, 0, 0);
    }
    return ran;
}

void np__timer_wait(np__timer *t)
{
    for (int i = 0; atomic_load_explicit(&t->running, memory_order_acquire) != 0; i++) {
        if (i < 100)
            np_cpu_relax();
        else
            sched_yield(); /* its thread may have been preempted */
    }
}

void np__timers_free(np__timers *ts)
{
    for (int32_t i = 0; i < ts->n; i++) {
        atomic_store_explicit(&ts->h[i].t->p, NULL, memory_order_relaxed);
        ts->h[i].t->idx = -1;
    }
    free(ts->h);
    ts->h = NULL;
    ts->n = ts->cap = 0;
    atomic_store(&ts->first, 0);
}
