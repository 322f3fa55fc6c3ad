/* Stack trimming: give back the dead pages of long-parked coroutines' stacks.
 *
 * A coroutine that once ran deep (a 4 KiB buffer in a frame, a parser's recursion)
 * keeps those pages resident for as long as it lives, though everything below its
 * saved stack pointer is dead while it is parked. Go shrinks such stacks at GC time;
 * np releases the pages below the stack pointer (MADV_DONTNEED) of every coroutine
 * that has been parked for NP_STACK_TRIM milliseconds (default 250; 0 = never). They
 * fault back in as zero pages if it runs deep again.
 *
 * Who: a timer callback, so the pass runs on a thread holding a P. Sysmon arms the
 * timer when coroutines have switched since the last pass; the pass re-arms it while
 * parked coroutines are still too young or there were too many to do at once, and an
 * idle runtime ends with it disarmed (no CPU).
 *
 * Safety: the stack must not run while it is trimmed. The pass takes each candidate
 * from G_WAITING to G_TRIM by CAS; every waker moves G_WAITING to G_RUNNABLE by CAS
 * (np__unwait) and so waits. The one exception is readying with one P, which runs
 * on the thread holding that P, the one running the pass. And the coroutine's context
 * must really be saved: park sets G_WAITING before it switches away, so the pass also
 * wants STK_SAVED, set by the next context after the switch (np_g.stk); with one P,
 * it is enough that the coroutine is not the pass's own thread's current one.
 */
#include "sched.h"
#include <stdlib.h>
#include <string.h>

#define TRIM_BATCH 1024 /* stacks per pass; the rest 1 ms later */

typedef struct trimpass { int64_t now; int budget; int young; int64_t n; np_g *self; } trimpass;

/* Is g, seen G_WAITING, off its stack and not trimmed since it last ran? With one P
 * the pass runs on the only thread that runs coroutines: any G_WAITING one but the
 * current is off its stack (some parks there set no STK_SAVED). */
static bool saved(const trimpass *t, np_g *g, memory_order mo)
{
    uint8_t stk = atomic_load_explicit(&g->stk, mo);
    return np__solo() ? g != t->self && !(stk & STK_TRIMMED) : stk == STK_SAVED;
}

static void trim_g(np_g *g, void *arg)
{
    trimpass *t = arg;
    if (atomic_load_explicit(&g->status, memory_order_relaxed) != G_WAITING ||
        !saved(t, g, memory_order_relaxed))
        return;
    uint32_t st = G_WAITING;
    if (!atomic_compare_exchange_strong_explicit(&g->status, &st, G_TRIM, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return;
    /* Ours until we put G_WAITING back; stk is re-read now that it cannot change. */
    if (saved(t, g, memory_order_acquire)) {
        if (t->now - g->waitsince < np__sched.trimage || t->budget == 0) {
            t->young++;
        } else {
            np_stack_trim(&g->stack, np_ctx_sp(&g->ctx));
            atomic_store_explicit(&g->stk, STK_SAVED | STK_TRIMMED, memory_order_relaxed);
            t->budget--;
            t->n++;
        }
    }
    atomic_store_explicit(&g->status, G_WAITING, memory_order_release);
}

static uint64_t switches(void)
{
    uint64_t n = 0;
    for (int i = 0; i < np__sched.nprocs; i++)
        n += atomic_load_explicit(&np__sched.allp[i]->nswitch, memory_order_relaxed);
    return n;
}

static void trim_fire(void *arg, uintptr_t seq)
{
    (void)arg;
    (void)seq;
    atomic_store(&np__sched.trimseen, switches());
    trimpass t = {np__nanotime(), TRIM_BATCH, 0, 0, np__getm()->curg};
    np__each_g(trim_g, &t);
    atomic_fetch_add_explicit(&np__sched.ntrims, t.n, memory_order_relaxed);
    if (atomic_load(&np__sched.stopping) || t.young == 0) {
        atomic_store(&np__sched.trimarmed, false);
        return;
    }
    /* more to do: the rest of a big batch soon, young ones when they come of age */
    int64_t next = t.budget == 0 ? 1000000 : np__sched.trimage / 2;
    np__timer_add(np__getm()->p, &np__sched.trimt, t.now + next, trim_fire, NULL, 0);
}

/* Sysmon, each period: arm the pass if coroutines have switched since the last one. */
void np__trim_arm(void)
{
    if (np__sched.trimage <= 0 || atomic_load(&np__sched.stopping) ||
        atomic_load(&np__sched.trimarmed) ||
        switches() == atomic_load(&np__sched.trimseen))
        return;
    bool f = false;
    if (!atomic_compare_exchange_strong(&np__sched.trimarmed, &f, true))
        return;
    int64_t when = np__nanotime() + np__sched.trimage;
    if (np__timer_add(np__sched.allp[0], &np__sched.trimt, when, trim_fire, NULL, 0) != 0) {
        atomic_store(&np__sched.trimarmed, false);
        return;
    }
    np__timer_added(when);
}

/* NP_STACK_TRIM: milliseconds parked before a stack is trimmed; 0 turns it off. */
void np__trim_init(void)
{
    const char *s = getenv("NP_STACK_TRIM");
    int64_t ms = 250;
    if (s && *s) {
        char *e;
        long v = strtol(s, &e, 10);
        if (*e == 0 && v >= 0 && v <= 86400000)
            ms = v;
    }
    np__sched.trimage = ms * 1000000;
    memset(&np__sched.trimt, 0, sizeof np__sched.trimt);
    atomic_store(&np__sched.trimarmed, false);
    atomic_store(&np__sched.trimseen, 0);
    atomic_store(&np__sched.ntrims, 0);
}
