/* The scheduler: switching between coroutines, park/ready, finding work, idle Ps and
 * Ms, spinning. After Go's proc.go, with one difference: a coroutine that parks
 * switches straight to the next runnable one when its P has one, and goes through the
 * M's scheduler context (g0) only to look further or to sleep. Whatever must happen
 * once the old coroutine is off its stack (releasing the lock it parked under, freeing
 * it) is left in m->after and done by whoever runs next (np__after_switch). */
#include "sched.h"
#include "poll.h"
#include "runq.h"
#include "../debug/debug.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef NP_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef NP_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

np_sched np__sched;
_Thread_local np_m *np__tls_m __attribute__((tls_model(NP_TLS_MODEL)));

#if !defined(__x86_64__)
__attribute__((noinline)) np_m *np__getm(void) { return np__tls_m; }
#endif
void np__setm(np_m *m) { np__tls_m = m; }

int64_t np__nanotime(void)
{
    int64_t now = np__clock();
    atomic_store_explicit(&np__sched.nowcache, now, memory_order_relaxed);
    return now;
}

_Noreturn void np__fatal(const char *msg)
{
    np_out o = {.fd = 2, .netlog = np__netlog_on()};
    np__out_str(&o, "np: fatal: ");
    np__out_str(&o, msg);
    np__out_str(&o, "\n");
    np__out_flush(&o);
    abort(); /* the SIGABRT report follows, with the dump */
}

/* ---- switching ---------------------------------------------------------------------- */

static void g_entry(void *arg);

/* Bytes below the slot where a stack's first frame begins: 0 to 31 cache lines, by its
 * address. Stacks are a power of two apart, so the hot top frames of coroutines taking
 * turns (switch save areas, the frames of a wait) would all fall in the same few L1/L2
 * cache sets and evict each other; under 2 KiB, so an idle coroutine's frames still
 * fit in its top page. */
static inline size_t stack_color(const np_stack *s)
{
    return (size_t)((((uintptr_t)s->lo >> 12) * 0x9E3779B97F4A7C15ULL) >> 59) * 64;
}

/* g's first context: g_entry on its stack, below the slot (np__g_slot), colored. */
static inline void g_make_ctx(np_g *g)
{
    size_t guard = np_stack_guard();
    np_ctx_make(&g->ctx, g->stack.lo + guard,
                g->stack.size - guard - NP_STACK_SLOT - stack_color(&g->stack), g_entry, g);
}

static inline void gswitch(np_m *m, np_g *from, np_g *to, bool dying)
{
#ifdef NP_ASAN
    const void *bottom = to == &m->g0 ? m->g0_bottom : np_stack_base(&to->stack);
    size_t size = to == &m->g0 ? m->g0_size : np_stack_usable(&to->stack);
    __sanitizer_start_switch_fiber(dying ? NULL : &from->asan_fake, bottom, size);
#endif
#ifdef NP_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    (void)m;
    if (dying)
        np_ctx_jump(&to->ctx);
    np_ctx_switch(&from->ctx, &to->ctx);
#ifdef NP_ASAN
    const void *ob;
    size_t os;
    __sanitizer_finish_switch_fiber(from->asan_fake, &ob, &os);
    np_m *cm = from->m;
    if (cm && !cm->g0_bottom) {
        cm->g0_bottom = ob;
        cm->g0_size = os;
    }
#endif
}

/* Make g the one running on m, giving it a stack on its first run. */
static inline void prepare(np_m *m, np_g *g)
{
    if (__builtin_expect(g->stack.kind == NP_STK_NONE, 0)) {
        if (np_stack_alloc(&m->p->stacks, g->want_stack, &g->stack) != 0)
            np__fatal("out of memory for a coroutine stack");
        g_make_ctx(g);
    }
    g->m = m;
    m->curg = g;
    atomic_store_explicit(&g->stk, 0, memory_order_relaxed);
    atomic_store_explicit(&g->status, G_RUNNING, memory_order_relaxed);
    np__count(&m->p->nswitch);
    if (np__tracing())
        np__tev(EV_GO_START, 0, (uint64_t)g->id, 0, 0);
}

static void gfput(np_p *p, np_g *g);

static void after_switch_slow(np_m *m)
{
    int a = m->after;
    np_g *g = m->after_g;
    m->after = AFTER_NONE;
    switch (a) {
    case AFTER_PARK:
        /* g is off its stack now; before anyone can find it and ready it */
        atomic_store_explicit(&g->stk, STK_SAVED, memory_order_release);
        if (m->after_f && !m->after_f(g, m->after_arg)) {
            np__unwait(g);
            np__runqput(m->p, g, true);
        }
        break;
    case AFTER_YIELD:
    case AFTER_SPAWN:
        atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
        np__runqput(m->p, g, a == AFTER_SPAWN);
        break;
    case AFTER_REQUEUE: /* back from np_blocking with no P to run on */
        atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
        pthread_mutex_lock(&np__sched.lock);
        np__globrunqput(g);
        pthread_mutex_unlock(&np__sched.lock);
        np__wakep();
        break;
    case AFTER_EXIT:
        gfput(m->p, g);
        break;
    }
}

/* The next coroutine of p without looking beyond p (and, for fairness, the global
 * queue every 61st time). */
static inline void after_switch(np_m *m)
{
    if (m->after != AFTER_NONE)
        after_switch_slow(m);
}

void np__after_switch(np_m *m) { after_switch(m); }

#ifdef NP_CTX_PARK
void np_ctx_resumed(void) { after_switch(np__getm()); }
#endif

static inline __attribute__((always_inline)) np_g *runq_local(np_p *p)
{
    uint32_t tick = atomic_load_explicit(&p->schedtick, memory_order_relaxed) + 1;
    atomic_store_explicit(&p->schedtick, tick, memory_order_relaxed);
    if (__builtin_expect(tick % 61 == 0, 0)) {
        /* Coroutines that keep switching among themselves never reach the scheduler
         * loop: look at due timers and the global queue here too. */
        int64_t first = np__timers_first(&p->timers);
        if (first && first <= np__nanotime())
            np__timers_run(p, np__nanotime());
        if (atomic_load_explicit(&np__sched.runqsize, memory_order_relaxed) > 0) {
            pthread_mutex_lock(&np__sched.lock);
            np_g *g = np__globrunqget(p, 1);
            pthread_mutex_unlock(&np__sched.lock);
            if (g)
                return g;
        }
    }
    return np__runqget(p);
}

/* The context to switch to from g (which is leaving): the next coroutine of this P,
 * made the running one, or the scheduler loop. */
static __attribute__((noinline)) np_g *pick_next_slow(np_m *m, np_g *g)
{
    if (__builtin_expect(g->stack.canary, 0) && !np_stack_canary_ok(&g->stack))
        np__fatal("coroutine stack overflow");
    np_g *next = NULL;
    if (!atomic_load_explicit(&np__sched.stopping, memory_order_relaxed))
        next = runq_local(m->p);
    if (next) {
        prepare(m, next);
    } else {
        next = &m->g0;
        m->curg = NULL;
    }
    return next;
}

/* The common case inline: one P, and runnext (typically the coroutine that g just
 * readied) or else the head of the ring may run now. Same choice as pick_next_slow
 * (runqget_solo); NULL when that must decide. */
static inline __attribute__((always_inline)) np_g *pick_next_fast(np_m *m, np_g *g)
{
    np_p *p = m->p;
    uint32_t tick = atomic_load_explicit(&p->schedtick, memory_order_relaxed) + 1;
    if (!np__solo() || tick % 61 == 0 || g->stack.canary ||
        atomic_load_explicit(&np__sched.stopping, memory_order_relaxed))
        return NULL;
    np_g *next = atomic_load_explicit(&p->runnext, memory_order_relaxed);
    if (next && p->inherit < 64) {
        if (next->stack.kind == NP_STK_NONE)
            return NULL;
        atomic_store_explicit(&p->runnext, NULL, memory_order_relaxed);
        p->inherit++;
    } else {
        uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_relaxed);
        if (h == atomic_load_explicit(&p->runqtail, memory_order_relaxed))
            return NULL;
        next = atomic_load_explicit(&p->runq[h % NP_RUNQ], memory_order_relaxed);
        if (next->stack.kind == NP_STK_NONE)
            return NULL;
        atomic_store_explicit(&p->runqhead, h + 1, memory_order_relaxed);
        p->inherit = 0;
    }
    atomic_store_explicit(&p->schedtick, tick, memory_order_relaxed);
    next->m = m;
    m->curg = next;
    atomic_store_explicit(&next->stk, 0, memory_order_relaxed);
    atomic_store_explicit(&next->status, G_RUNNING, memory_order_relaxed);
    np__count(&p->nswitch);
    if (np__tracing())
        np__tev(EV_GO_START, 0, (uint64_t)next->id, 0, 0);
    return next;
}

static inline __attribute__((always_inline)) np_g *pick_next(np_m *m, np_g *g)
{
    np_g *next = pick_next_fast(m, g);
    return next ? next : pick_next_slow(m, g);
}

/* Leave g (whose fate is in m->after) for the next coroutine of this P, or for the
 * scheduler loop. Returns when g is resumed. */
static inline __attribute__((always_inline)) void switch_out(np_m *m, np_g *g)
{
    np_g *next = pick_next(m, g);
    gswitch(m, g, next, false);
    after_switch(g->m);
}

static inline void park_state(np_g *g, int reason)
{
    g->waitreason = (uint8_t)reason;
    g->waitsince = atomic_load_explicit(&np__sched.nowcache, memory_order_relaxed);
    /* release: a stack trimmer that sees G_WAITING also sees stk cleared when g ran */
    atomic_store_explicit(&g->status, G_WAITING, memory_order_release);
}

/* The object a coroutine parks on, for the tracer: its descriptor, or the channel,
 * mutex, wait group or cond (arg is it or its lock), or none. */
static __attribute__((noinline)) void trace_park(np_g *g, int reason, void *arg)
{
    uint64_t obj = 0;
    if (reason == W_IO)
        obj = (uint64_t)g->waitfd;
    else if (reason == W_CHAN_SEND || reason == W_CHAN_RECV || reason == W_MUTEX ||
             reason == W_WAITGROUP || reason == W_RWMUTEX || reason == W_COND)
        obj = (uint64_t)(uintptr_t)arg;
    np__tev(EV_GO_STOP, ST_PARK, (uint64_t)g->id, (uint64_t)reason, obj);
}

static inline __attribute__((always_inline)) void park(np_m *m, np_g *g, np_unlockf f, void *arg,
                                                        int reason)
{
    park_state(g, reason);
    if (f && np__solo()) {
        /* One P: only this thread runs coroutines, and it runs none before it has left
         * g, so g may be published (and readied by any thread) before the switch. */
        if (!f(g, arg)) {
            atomic_store_explicit(&g->status, G_RUNNING, memory_order_relaxed);
            g->waitreason = W_NONE;
            if (np__tracing())
                np__tev(EV_GO_START, 0, (uint64_t)g->id, 0, 0);
            return;
        }
    } else if (f) {
        m->after = AFTER_PARK;
        m->after_g = g;
        m->after_f = f;
        m->after_arg = arg;
    }
    switch_out(m, g);
}

/* np__park while tracing: out of line, so that the check costs the untraced path no
 * saved register (np__park leaves for it with a tail call). */
static __attribute__((noinline)) void park_traced(np_unlockf f, void *arg, int reason)
{
    np_m *m = np__getm();
    np_g *g = m->curg;
    trace_park(g, reason, arg);
    park(m, g, f, arg, reason);
}

NP_HOT void np__park(np_unlockf f, void *arg, int reason)
{
    if (np__tracing()) {
        park_traced(f, arg, reason);
        return;
    }
    np_m *m = np__getm();
    park(m, m->curg, f, arg, reason);
}

#ifdef NP_PARK_TAIL
static __attribute__((noinline)) int park_tail_slow(np_m *m, np_g *g, const bool *ret)
{
    return np_ctx_park(&g->ctx, &pick_next_slow(m, g)->ctx, ret);
}

int np__park_tail(np_g *g, int reason, const bool *ret)
{
    np_m *m = g->m;
    if (np__tracing())
        trace_park(g, reason, NULL);
    park_state(g, reason);
    np_g *next = pick_next_fast(m, g);
    if (!next) /* out of line: this path makes no call but the tail one */
        return park_tail_slow(m, g, ret);
    return np_ctx_park(&g->ctx, &next->ctx, ret);
}
#endif

/* G_WAITING -> G_RUNNABLE, waiting out a stack trim in progress. */
void np__unwait(np_g *g)
{
    for (;;) {
        uint32_t st = G_WAITING;
        if (atomic_compare_exchange_weak_explicit(&g->status, &st, G_RUNNABLE, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            if (np__tracing())
                np__tev_ready((uint64_t)g->id);
            return;
        }
        if (st != G_WAITING && st != G_TRIM)
            np__fatal("ready of a coroutine that is not waiting");
        np_cpu_relax();
    }
}

/* np__ready from a thread holding no P (a foreign one, np_blocking's fn: a signal of a
 * cond, an unlock...): onto the global queue, a P woken for it. Only while the runtime
 * runs and is not stopping (np__foreign_begin): it might start an M, and np_run waits
 * for such calls before it waits for the Ms. Once stopping, g stays parked: no
 * coroutine is started any more. */
static __attribute__((noinline)) void ready_foreign(np_g *g)
{
    if (!np__foreign_begin())
        return;
    np__unwait(g);
    g->waitreason = W_NONE;
    pthread_mutex_lock(&np__sched.lock);
    np__globrunqput(g);
    pthread_mutex_unlock(&np__sched.lock);
    np__wake_global();
    np__foreign_end();
}

/* next: run it next (a hand-off: its waker is about to block, as in a channel
 * exchange); else it queues behind the others (timers that fire together run in
 * deadline order). */
void np__ready_q(np_g *g, bool next)
{
    np_m *m = np__getm();
    if (!m || !m->p) {
        ready_foreign(g);
        return;
    }
    bool solo = np__on_solo_p();
    np__unwait_at(g, solo);
    np__runqput(m->p, g, next);
    if (!solo)
        np__wakep();
}

bool np__unlock_spin(np_g *g, void *lock)
{
    (void)g;
    np_spin_unlock((_Atomic int32_t *)lock);
    return true;
}

int np_yield(void)
{
    np_m *m = np__getm();
    np_g *g = m ? m->curg : NULL;
    if (!g) {
        errno = EPERM;
        return -1;
    }
    m->after = AFTER_YIELD;
    m->after_g = g;
    if (np__tracing())
        np__tev(EV_GO_STOP, ST_YIELD, (uint64_t)g->id, 0, 0);
    switch_out(m, g);
    return 0;
}

/* ---- coroutines: creation, exit ----------------------------------------------------- */

/* G structs live as long as the runtime, carved from 2 MiB chunks that may be backed
 * by transparent huge pages (spawning a million coroutines then costs a few hundred
 * page faults instead of a hundred thousand). */
static np_g *galloc(void)
{
    np_spin_lock(&np__sched.glock);
    size_t n = atomic_load_explicit(&np__sched.ngchunks, memory_order_relaxed);
    size_t used = atomic_load_explicit(&np__sched.gused, memory_order_relaxed);
    if (n == 0 || used + NP_GSIZE > NP_GCHUNK) {
        if (n == NP_GCHUNKS) {
            np_spin_unlock(&np__sched.glock);
            return NULL;
        }
        char *c = mmap(NULL, 2 * NP_GCHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c == MAP_FAILED) {
            np_spin_unlock(&np__sched.glock);
            return NULL;
        }
        char *a = (char *)(((uintptr_t)c + NP_GCHUNK - 1) & ~(uintptr_t)(NP_GCHUNK - 1));
        if (a > c)
            munmap(c, (size_t)(a - c));
        if (a + NP_GCHUNK < c + 2 * NP_GCHUNK)
            munmap(a + NP_GCHUNK, (size_t)(c + 2 * NP_GCHUNK - (a + NP_GCHUNK)));
        madvise(a, NP_GCHUNK, MADV_HUGEPAGE);
        np__sched.gchunks[n] = a;
        used = 0;
        atomic_store_explicit(&np__sched.gused, 0, memory_order_release);
        atomic_store_explicit(&np__sched.ngchunks, n + 1, memory_order_release);
        n++;
    }
    np_g *g = (np_g *)(np__sched.gchunks[n - 1] + used);
    atomic_store_explicit(&np__sched.gused, used + NP_GSIZE, memory_order_release);
    np_spin_unlock(&np__sched.glock);
    return g;
}

/* A G never used before (galloc), with its TSan fiber. NULL when out of memory. */
static np_g *gnew(void)
{
    np_g *g = galloc();
#ifdef NP_TSAN
    if (g)
        g->tsan_fiber = __tsan_create_fiber(0);
#endif
    return g;
}

static np_g *gfget(np_p *p)
{
    if (!p->gfree && atomic_load_explicit(&np__sched.gfree, memory_order_relaxed)) {
        np_spin_lock(&np__sched.gfreelock);
        np_g *g;
        while (p->ngfree < 32 && (g = atomic_load_explicit(&np__sched.gfree, memory_order_relaxed))) {
            atomic_store_explicit(&np__sched.gfree, g->schedlink, memory_order_relaxed);
            g->schedlink = p->gfree;
            p->gfree = g;
            p->ngfree++;
        }
        np_spin_unlock(&np__sched.gfreelock);
    }
    np_g *g = p->gfree;
    if (g) {
        p->gfree = g->schedlink;
        p->ngfree--;
        return g;
    }
    return gnew();
}

/* A dead G keeps a stack of the default size while it is on its P's free list (as in
 * Go's gfput): the next spawn reuses both without going through the stack cache. The
 * ASan build gives it back, which unpoisons the dead frames. */
#ifdef NP_ASAN
#define KEEP_STACK(g) false
#else
#define KEEP_STACK(g) ((g)->stack.kind == NP_STK_POOLED)
#endif

static inline void gfree_push(np_p *p, np_g *g)
{
    atomic_store_explicit(&g->status, G_DEAD, memory_order_relaxed);
    g->fn = NULL;
    g->arg = NULL;
    g->schedlink = p->gfree;
    p->gfree = g;
    p->ngfree++;
}

static void gfput(np_p *p, np_g *g)
{
    if (!KEEP_STACK(g))
        np_stack_free(&p->stacks, &g->stack);
    gfree_push(p, g);
    if (p->ngfree > 64) {
        np_g *list = NULL; /* half goes to the shared list, without stacks */
        while (p->ngfree > 32) {
            np_g *x = p->gfree;
            p->gfree = x->schedlink;
            p->ngfree--;
            if (x->stack.kind != NP_STK_NONE)
                np_stack_free(&p->stacks, &x->stack);
            x->schedlink = list;
            list = x;
        }
        np_spin_lock(&np__sched.gfreelock);
        while (list) {
            np_g *x = list;
            list = x->schedlink;
            x->schedlink = atomic_load_explicit(&np__sched.gfree, memory_order_relaxed);
            atomic_store_explicit(&np__sched.gfree, x, memory_order_relaxed);
        }
        np_spin_unlock(&np__sched.gfreelock);
    }
}

static inline np_g *newg(np_p *p, np_fn fn, void *arg, size_t stack)
{
    np_g *g = gfget(p);
    if (!g) {
        errno = ENOMEM;
        return NULL;
    }
    if (p->idcache == p->idend) {
        p->idcache = atomic_fetch_add_explicit(&np__sched.goidgen, 16, memory_order_relaxed) + 1;
        p->idend = p->idcache + 16;
    }
    g->id = p->idcache++;
    g->fn = fn;
    g->arg = arg;
    g->want_stack = stack;
    g->ismain = false;
    g->waitreason = W_NONE;
    if (g->stack.kind != NP_STK_NONE) { /* kept by gfput: the default size */
        if (stack)
            np_stack_free(&p->stacks, &g->stack); /* prepare allocates the one asked for */
        else
            g_make_ctx(g);
    }
    atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
    return g;
}

np_g *np__newg(np_p *p, np_fn fn, void *arg, size_t stack) { return newg(p, fn, arg, stack); }

/* A G for a thread holding no P: from the shared free list, or a new one. It has no
 * stack: prepare gives it one from the cache of the P that first runs it. */
static np_g *gget_shared(void)
{
    np_g *g = NULL;
    if (atomic_load_explicit(&np__sched.gfree, memory_order_relaxed)) {
        np_spin_lock(&np__sched.gfreelock);
        g = atomic_load_explicit(&np__sched.gfree, memory_order_relaxed);
        if (g)
            atomic_store_explicit(&np__sched.gfree, g->schedlink, memory_order_relaxed);
        np_spin_unlock(&np__sched.gfreelock);
    }
    if (!g && !(g = gnew()))
        return NULL;
    if (g->stack.kind != NP_STK_NONE)
        np__fatal("a shared free coroutine has a stack");
    return g;
}

/* np_go from a thread holding no P, between np__foreign_begin and np__foreign_end:
 * the coroutine goes on the global queue (locked: with one P too, the P's own queues
 * are its thread's alone) and a P is woken for it. */
static int64_t go_foreign(np_fn fn, void *arg, size_t stack)
{
    np_g *g = gget_shared();
    if (!g) {
        errno = ENOMEM;
        return -1;
    }
    int64_t id = atomic_fetch_add_explicit(&np__sched.goidgen, 1, memory_order_relaxed) + 1;
    g->id = id;
    g->fn = fn;
    g->arg = arg;
    g->want_stack = stack;
    g->ismain = false;
    g->waitreason = W_NONE;
    atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
    if (np__tracing())
        np__tev(EV_GO_CREATE, 0, (uint64_t)id, 0, (uint64_t)(uintptr_t)fn);
    pthread_mutex_lock(&np__sched.lock); /* publishes g to whoever takes it */
    np__globrunqput(g);
    pthread_mutex_unlock(&np__sched.lock);
    np__wake_global();
    return id; /* (not g->id: g may have run and ended already) */
}

int64_t np_go_attr(const np_attr *attr, np_fn fn, void *arg)
{
    if (!fn) {
        errno = EINVAL;
        return -1;
    }
    np_m *m = np__getm();
    if (!m || !m->curg) { /* a foreign thread, or np_blocking's fn */
        if (!np__foreign_begin()) {
            errno = EPERM;
            return -1;
        }
        int64_t id = go_foreign(fn, arg, attr ? attr->stack_size : 0);
        int e = errno;
        np__foreign_end();
        errno = e;
        return id;
    }
    np_g *g = newg(m->p, fn, arg, attr ? attr->stack_size : 0);
    if (!g)
        return -1;
    int64_t id = g->id;
    if (np__tracing())
        np__tev(EV_GO_CREATE, 0, (uint64_t)id, (uint64_t)m->curg->id, (uint64_t)(uintptr_t)fn);
    if (np__solo()) {
        /* One P: run the child at once, the parent next. A spawning loop then never
         * piles up coroutines that wait for a first run (and their memory). */
        np_g *parent = m->curg;
        np_p *p = m->p;
        if (!atomic_load_explicit(&p->runnext, memory_order_relaxed)) {
            /* next in line now: nobody can run it before this thread has left it */
            atomic_store_explicit(&parent->status, G_RUNNABLE, memory_order_relaxed);
            atomic_store_explicit(&p->runnext, parent, memory_order_relaxed);
        } else {
            m->after = AFTER_SPAWN;
            m->after_g = parent;
        }
        if (np__tracing())
            np__tev(EV_GO_STOP, ST_YIELD, (uint64_t)parent->id, 0, 0);
        prepare(m, g);
        gswitch(m, parent, g, false);
        after_switch(parent->m);
        return id;
    }
    np__runqput(m->p, g, true);
    np__wakep();
    return id;
}

int64_t np_go(np_fn fn, void *arg) { return np_go_attr(NULL, fn, arg); }

/* ---- calls from foreign threads that need a coroutine --------------------------------- */

/* A foreign call: its caller waits on done for the coroutine that runs fn (the runner).
 * It lives on the heap with two references, the caller's and the runner's, dropped
 * under fclock; the last one frees it. A runner that never runs (queued when the
 * runtime stopped) is dropped by np_run once no coroutine can run any more. The caller
 * may be np_blocking's fn, whose M np_run waits for: so the calls still waiting when
 * the runtime starts to stop end there and then (np__foreign_stop, at stopping), with
 * ECANCELED. One already running (FC_RUNNING) is not cancelled: it ends soon, fn does
 * not block, and its M lives until it has. */
enum { FC_WAIT, FC_RUNNING, FC_RAN, FC_CANCELLED };
typedef struct np_fcall {
    void (*fn)(void *);
    void *arg;
    int state;          /* FC_*, under fclock */
    int refs;           /* under fclock */
    bool runner_gone;   /* the runner dropped its reference (under fclock) */
    np_note done;       /* FC_RAN or FC_CANCELLED */
    struct np_fcall *next, *prev; /* np__sched.fcalls, under fclock */
} np_fcall;

/* fclock held */
static void fcall_put(np_fcall *f)
{
    if (--f->refs > 0)
        return;
    if (f->prev)
        f->prev->next = f->next;
    else
        np__sched.fcalls = f->next;
    if (f->next)
        f->next->prev = f->prev;
    free(f);
}

static void fcall_entry(void *arg)
{
    np_fcall *f = arg;
    np_spin_lock(&np__sched.fclock);
    bool run = f->state == FC_WAIT;
    if (run) {
        f->state = FC_RUNNING; /* the caller waits for FC_RAN now */
    } else {              /* cancelled: the caller has gone */
        f->runner_gone = true;
        fcall_put(f);
    }
    np_spin_unlock(&np__sched.fclock);
    if (!run)
        return;
    f->fn(f->arg);
    np_spin_lock(&np__sched.fclock);
    f->state = FC_RAN;
    np_note_wakeup(&f->done);
    f->runner_gone = true;
    fcall_put(f);
    np_spin_unlock(&np__sched.fclock);
}

int np__foreign_call(void (*fn)(void *), void *arg)
{
    np_fcall *f = calloc(1, sizeof *f);
    if (!f) {
        errno = ENOMEM;
        return -1;
    }
    f->fn = fn;
    f->arg = arg;
    f->state = FC_WAIT;
    f->refs = 2;
    np_note_clear(&f->done);
    if (!np__foreign_begin()) {
        free(f);
        errno = EPERM;
        return -1;
    }
    /* Listed unless stopping, which np__foreign_stop sets before it takes fclock: it
     * sees every call listed before, a call listed after sees stopping. */
    np_spin_lock(&np__sched.fclock);
    bool stop = atomic_load(&np__sched.stopping);
    if (!stop) {
        f->next = np__sched.fcalls;
        if (f->next)
            f->next->prev = f;
        np__sched.fcalls = f;
    }
    np_spin_unlock(&np__sched.fclock);
    if (stop) {
        np__foreign_end();
        free(f);
        errno = EPERM;
        return -1;
    }
    if (go_foreign(fcall_entry, f, 0) < 0) {
        np_spin_lock(&np__sched.fclock);
        f->runner_gone = true; /* no runner: both references go */
        f->refs--;
        fcall_put(f);
        np_spin_unlock(&np__sched.fclock);
        np__foreign_end();
        errno = ENOMEM;
        return -1;
    }
    np__foreign_end();
    np_note_sleep(&f->done);
    np_spin_lock(&np__sched.fclock);
    int st = f->state;
    fcall_put(f);
    np_spin_unlock(&np__sched.fclock);
    if (st != FC_RAN) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}

/* At stopping (set just before): the calls whose fn has not begun end with ECANCELED;
 * the coroutines queued for them will not run it. */
void np__foreign_stop(void)
{
    np_spin_lock(&np__sched.fclock);
    for (np_fcall *f = np__sched.fcalls; f; f = f->next)
        if (f->state == FC_WAIT) {
            f->state = FC_CANCELLED;
            np_note_wakeup(&f->done);
        }
    np_spin_unlock(&np__sched.fclock);
}

/* np_run, once no coroutine can run any more: the references of the runners that never
 * ran. (A caller still on its way out frees its call itself.) */
void np__foreign_release(void)
{
    np_spin_lock(&np__sched.fclock);
    for (np_fcall *f = np__sched.fcalls, *next; f; f = next) {
        next = f->next;
        if (!f->runner_gone) {
            f->runner_gone = true;
            fcall_put(f);
        }
    }
    np_spin_unlock(&np__sched.fclock);
}

void np__begin_stop(void);

static _Noreturn void g_exit(np_g *g)
{
    np_m *m = g->m;
    if (np__tracing())
        np__tev(EV_GO_STOP, ST_EXIT, (uint64_t)g->id, 0, 0);
    if (g->ismain)
        np__begin_stop();
    np_p *p = m->p;
    if (KEEP_STACK(g) && p->ngfree < 64) {
        /* Straight onto the P's free list: only this M takes from it, and not before
         * it has left this stack. */
        gfree_push(p, g);
    } else {
        m->after = AFTER_EXIT;
        m->after_g = g;
    }
    gswitch(m, g, pick_next(m, g), true);
    np__fatal("dead coroutine resumed");
}

static void g_entry(void *arg)
{
    np_g *g = arg;
#ifdef NP_ASAN
    const void *ob;
    size_t os;
    __sanitizer_finish_switch_fiber(NULL, &ob, &os);
    if (!g->m->g0_bottom) {
        g->m->g0_bottom = ob;
        g->m->g0_size = os;
    }
#endif
    after_switch(g->m);
    g->fn(g->arg);
    g_exit(g);
}

void np_exit(void)
{
    np_m *m = np__getm();
    if (!m || !m->curg) {
        errno = EPERM;
        return;
    }
    g_exit(m->curg);
}

int64_t np_id(void)
{
    np_g *g = np__getg();
    return g ? g->id : 0;
}

/* ---- Ps and Ms ------------------------------------------------------------------------ */

static void acquirep(np_m *m, np_p *p)
{
    m->p = p;
    p->m = m;
    atomic_store(&p->status, P_RUNNING);
    if (np__tracing())
        np__tev(EV_P_START, 0, (uint64_t)p->id, 0, 0);
}

static void releasep(np_m *m)
{
    if (np__tracing())
        np__tev(EV_P_STOP, 0, (uint64_t)m->p->id, 0, 0);
    atomic_store(&m->p->status, P_IDLE);
    m->p->m = NULL;
    m->p = NULL;
}

/* Lock held. */
static void pidleput(np_p *p)
{
    p->link = np__sched.pidle;
    np__sched.pidle = p;
    atomic_fetch_add_explicit(&np__sched.npidle, 1, memory_order_release);
}

/* Lock held. */
static np_p *pidleget(void)
{
    np_p *p = np__sched.pidle;
    if (p) {
        np__sched.pidle = p->link;
        atomic_fetch_sub_explicit(&np__sched.npidle, 1, memory_order_release);
        if (atomic_load_explicit(&np__sched.sysmonwait, memory_order_relaxed)) {
            atomic_store_explicit(&np__sched.sysmonwait, 0, memory_order_relaxed);
            np_note_wakeup(&np__sched.sysmonnote);
        }
    }
    return p;
}

/* pidleget for a caller not holding the lock. */
static np_p *pidle_take(void)
{
    pthread_mutex_lock(&np__sched.lock);
    np_p *p = pidleget();
    pthread_mutex_unlock(&np__sched.lock);
    return p;
}

void *np__mstart(void *arg);
int np__newm(np_p *p, bool spinning);

/* Run p (or an idle P) on an idle or new M. */
static void startm(np_p *p, bool spinning)
{
    pthread_mutex_lock(&np__sched.lock);
    if (!p) {
        p = pidleget();
        if (!p) {
            pthread_mutex_unlock(&np__sched.lock);
            if (spinning)
                atomic_fetch_sub_explicit(&np__sched.nmspinning, 1, memory_order_relaxed);
            return;
        }
    }
    np_m *nm = np__sched.midle;
    if (nm) {
        np__sched.midle = nm->link;
        np__sched.nmidle--;
    }
    pthread_mutex_unlock(&np__sched.lock);
    if (!nm) {
        if (np__newm(p, spinning) != 0) {
            pthread_mutex_lock(&np__sched.lock);
            pidleput(p);
            pthread_mutex_unlock(&np__sched.lock);
            if (spinning)
                atomic_fetch_sub_explicit(&np__sched.nmspinning, 1, memory_order_relaxed);
        }
        return;
    }
    nm->spinning = spinning;
    nm->nextp = p;
    np_note_wakeup(&nm->park);
}

void np__wakep(void)
{
    if (atomic_load_explicit(&np__sched.npidle, memory_order_acquire) == 0)
        return;
    int32_t z = 0;
    if (atomic_load_explicit(&np__sched.nmspinning, memory_order_relaxed) != 0 ||
        !atomic_compare_exchange_strong_explicit(&np__sched.nmspinning, &z, 1,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return;
    startm(NULL, true);
}

/* Sleep until handed a P (or the runtime stops). */
static void stopm(np_m *m)
{
    pthread_mutex_lock(&np__sched.lock);
    if (atomic_load(&np__sched.stopping)) {
        pthread_mutex_unlock(&np__sched.lock);
        return;
    }
    m->link = np__sched.midle;
    np__sched.midle = m;
    np__sched.nmidle++;
    pthread_mutex_unlock(&np__sched.lock);
    if (np__tracing())
        np__tev(EV_IDLE_BEGIN, 0, 0, 0, 0);
    np_note_sleep(&m->park);
    np_note_clear(&m->park);
    if (np__tracing())
        np__tev(EV_IDLE_END, 0, 0, 0, 0);
    if (m->nextp) {
        acquirep(m, m->nextp);
        m->nextp = NULL;
        if (m->spinning && np__tracing())
            np__tev(EV_SPIN_BEGIN, 0, 0, 0, 0);
    }
}

static void resetspinning(np_m *m)
{
    m->spinning = false;
    if (np__tracing())
        np__tev(EV_SPIN_END, 0, 0, 0, 0);
    if (atomic_fetch_sub_explicit(&np__sched.nmspinning, 1, memory_order_acq_rel) == 1)
        np__wakep(); /* we were the last to look: let another look for more work */
}

void np__wake_global(void)
{
    /* An M blocked in the poller holds no P: with one idle, it takes it when broken out
     * of its wait (no other M needed; with one P, the usual case of an idle runtime
     * waiting for I/O). Else an idle P gets an M (np__wakep); when none is idle the
     * busy ones look at the global queue every 61 switches and before they go idle
     * (under the lock that put g there). */
    if (atomic_load(&np__sched.npidle) > 0 && atomic_load(&np__sched.lastpoll) == 0)
        np__netpoll_break();
    else
        np__wakep();
}

void np__timer_added(int64_t when)
{
    if (atomic_load_explicit(&np__sched.lastpoll, memory_order_acquire) == 0) {
        int64_t pu = atomic_load_explicit(&np__sched.polluntil, memory_order_acquire);
        if (pu == 0 || when < pu)
            np__netpoll_break();
    } else {
        np__wakep();
    }
}

/* Steal from other Ps, running their due timers on the way. */
static np_g *steal_work(np_m *m, int64_t now)
{
    np_p *p = m->p;
    int n = np__sched.nprocs;
    for (int i = 0; i < 4; i++) {
        m->rnd = m->rnd * 6364136223846793005ULL + 1442695040888963407ULL;
        int off = (int)((m->rnd >> 33) % (uint64_t)n);
        for (int k = 0; k < n; k++) {
            if (atomic_load_explicit(&np__sched.stopping, memory_order_relaxed))
                return NULL;
            np_p *v = np__sched.allp[(off + k) % n];
            if (v == p)
                continue;
            int64_t first = np__timers_first(&v->timers);
            if (first && first <= now && np__timers_run(v, now)) {
                np_g *g = np__runqget(p);
                if (g)
                    return g;
            }
            if (!np__runqempty(v)) {
                np_g *g = np__runqsteal(p, v);
                if (g) {
                    np__count(&p->nsteal);
                    if (np__tracing())
                        np__tev(EV_STEAL, 0, (uint64_t)v->id, (uint64_t)g->id, 0);
                    return g;
                }
            }
        }
    }
    return NULL;
}

/* The rest of what the poller found, when m runs one of them on p. One P: on p's ring,
 * where they would go anyway (by way of the global queue) and nobody else could run
 * them; else for everyone. */
static void inject_here(np_p *p, np_g *list)
{
    if (np__solo())
        list = np__runqputlist_solo(p, list);
    np__inject(list);
}

/* Find a coroutine to run; blocks when there is none. Returns NULL once stopping.
 * Runs on g0 with m->p held; returns with m->p held. */
static np_g *findrunnable(np_m *m)
{
    np_g *g;
top:
    if (atomic_load_explicit(&np__sched.stopping, memory_order_relaxed))
        return NULL;
    np_p *p = m->p;
    int64_t now = 0;
    int64_t first = np__timers_first(&p->timers);
    if (first) {
        now = np__nanotime();
        if (first <= now)
            np__timers_run(p, now);
    }
    if ((g = runq_local(p)))
        goto found;
    if (atomic_load_explicit(&np__sched.runqsize, memory_order_relaxed) > 0) {
        pthread_mutex_lock(&np__sched.lock);
        g = np__globrunqget(p, 0);
        pthread_mutex_unlock(&np__sched.lock);
        if (g)
            goto found;
    }
    if (np__netpoll_waiters() && atomic_load_explicit(&np__sched.lastpoll, memory_order_relaxed)) {
        np_g *list = np__netpoll(0);
        if (list) {
            g = list;
            inject_here(p, list->schedlink);
            goto found;
        }
    }
    int32_t busy = np__sched.nprocs - atomic_load(&np__sched.npidle);
    if (m->spinning || 2 * atomic_load(&np__sched.nmspinning) < busy) {
        if (!m->spinning) {
            m->spinning = true;
            atomic_fetch_add(&np__sched.nmspinning, 1);
            if (np__tracing())
                np__tev(EV_SPIN_BEGIN, 0, 0, 0, 0);
        }
        if (!now)
            now = np__nanotime();
        if ((g = steal_work(m, now)))
            goto found;
    }

    /* Nothing to do: give up the P. */
    pthread_mutex_lock(&np__sched.lock);
    if (atomic_load(&np__sched.stopping)) {
        pthread_mutex_unlock(&np__sched.lock);
        return NULL;
    }
    if (atomic_load(&np__sched.runqsize) > 0) {
        g = np__globrunqget(p, 0);
        pthread_mutex_unlock(&np__sched.lock);
        goto found;
    }
    releasep(m);
    pidleput(p);
    pthread_mutex_unlock(&np__sched.lock);

    if (m->spinning) {
        m->spinning = false;
        atomic_fetch_sub(&np__sched.nmspinning, 1);
        if (np__tracing())
            np__tev(EV_SPIN_END, 0, 0, 0, 0);
        /* Work may have been readied after we looked and before our P went idle, by
         * someone who saw us spinning and so woke nobody: look once more, at the
         * global queue and at every P's. */
        bool work = atomic_load(&np__sched.runqsize) > 0;
        for (int i = 0; !work && i < np__sched.nprocs; i++)
            work = !np__runqempty(np__sched.allp[i]);
        if (work) {
            np_p *q = pidle_take();
            if (q) {
                acquirep(m, q);
                m->spinning = true;
                atomic_fetch_add(&np__sched.nmspinning, 1);
                if (np__tracing())
                    np__tev(EV_SPIN_BEGIN, 0, 0, 0, 0);
                goto top;
            }
        }
    }

    /* Earliest timer of any P: somebody must wake for it. */
    int64_t pu = 0;
    for (int i = 0; i < np__sched.nprocs; i++) {
        int64_t w = np__timers_first(&np__sched.allp[i]->timers);
        if (w && (pu == 0 || w < pu))
            pu = w;
    }
    int64_t lp = atomic_load(&np__sched.lastpoll);
    /* Claim the poller by exchange, not compare-and-swap: sysmon moves lastpoll on
     * while nobody polls, and a CAS that lost to it would leave this M asleep with
     * nobody polling (a deadline, a timer or readiness then never seen). A 0 back
     * means another M does poll: writing 0 changed nothing. */
    if ((np__netpoll_waiters() || pu) && lp != 0 && atomic_exchange(&np__sched.lastpoll, 0) != 0) {
        atomic_store(&np__sched.polluntil, pu);
        int64_t delay = -1;
        if (pu) {
            delay = pu - np__nanotime();
            if (delay < 0)
                delay = 0;
        }
        np_g *list = np__netpoll(delay);
        atomic_store(&np__sched.polluntil, 0);
        atomic_store(&np__sched.lastpoll, np__nanotime());
        np_p *q = pidle_take();
        if (q) {
            acquirep(m, q);
            if (list) {
                g = list;
                inject_here(q, list->schedlink);
                goto found;
            }
            m->spinning = true;
            atomic_fetch_add(&np__sched.nmspinning, 1);
            if (np__tracing())
                np__tev(EV_SPIN_BEGIN, 0, 0, 0, 0);
            goto top;
        }
        np__inject(list);
    } else if (pu) {
        int64_t cur = atomic_load(&np__sched.polluntil);
        if (atomic_load(&np__sched.lastpoll) == 0 && (cur == 0 || pu < cur))
            np__netpoll_break();
    }
    stopm(m);
    if (!m->p)
        return NULL;
    goto top;

found:
    if (m->spinning)
        resetspinning(m);
    return g;
}

/* Make a list of runnable coroutines (linked by schedlink) known to the scheduler. */
NP_HOT void np__inject(np_g *list)
{
    if (!list)
        return;
    int32_t n = 0;
    np_g *tail = list;
    for (np_g *g = list; g; g = g->schedlink) {
        n++;
        tail = g;
    }
    pthread_mutex_lock(&np__sched.lock);
    np__globrunqputbatch(list, tail, n);
    pthread_mutex_unlock(&np__sched.lock);
    for (int32_t i = 0; i < n && atomic_load(&np__sched.npidle) > 0; i++)
        startm(NULL, false);
}

/* The scheduler loop of an M, on its own thread stack (g0). */
NP_HOT void np__schedule(np_m *m)
{
    for (;;) {
        np__after_switch(m);
        if (!m->p) { /* came back from np_blocking without a P */
            stopm(m);
            if (!m->p)
                break;
        }
        np_g *g = findrunnable(m);
        if (!g)
            break;
        prepare(m, g);
        gswitch(m, &m->g0, g, false);
    }
    np__after_switch(m);
    if (m->p) {
        pthread_mutex_lock(&np__sched.lock);
        np_p *p = m->p;
        releasep(m);
        pidleput(p);
        pthread_mutex_unlock(&np__sched.lock);
    }
}

void np__m_init_fiber(np_m *m)
{
    m->g0.m = m;
#ifdef NP_TSAN
    m->g0.tsan_fiber = __tsan_get_current_fiber();
#endif
}

#ifdef NP_TSAN
static void g_free_fiber(np_g *g, void *arg)
{
    (void)arg;
    __tsan_destroy_fiber(g->tsan_fiber);
}
#endif

void np__g_free_all(void)
{
#ifdef NP_TSAN
    np__each_g(g_free_fiber, NULL);
#endif
    size_t n = atomic_load(&np__sched.ngchunks);
    for (size_t i = 0; i < n; i++)
        munmap(np__sched.gchunks[i], NP_GCHUNK);
    atomic_store(&np__sched.ngchunks, 0);
}

/* ---- blocking calls (Go's entersyscall/exitsyscall) ---------------------------------- */

void *np_blocking(void *(*fn)(void *), void *arg)
{
    np_m *m = np__getm();
    np_g *g = m ? m->curg : NULL;
    if (!g || !fn)
        return fn ? fn(arg) : NULL;
    np_p *p = m->p;
    if (np__tracing())
        np__tev(EV_BLOCK_BEGIN, 0, (uint64_t)g->id, 0, 0);
    g->waitreason = W_BLOCKING;
    m->curg = NULL; /* fn runs outside the scheduler: np calls in it see no coroutine */
    m->blockedg = g;
    /* nor a P: sysmon may hand it to another M meanwhile (np calls in fn are those of
     * a foreign thread: np_go, np_wg_done, ... queue on the global queue) */
    m->p = NULL;
    atomic_fetch_add_explicit(&p->syscalltick, 1, memory_order_relaxed);
    atomic_store_explicit(&p->status, P_SYSCALL, memory_order_release);
    if (atomic_load_explicit(&np__sched.sysmonslow, memory_order_relaxed))
        np_note_wakeup(&np__sched.sysmonnote);
    void *r = fn(arg);
    int32_t st = P_SYSCALL;
    bool kept = atomic_compare_exchange_strong(&p->status, &st, P_RUNNING);
    m->blockedg = NULL;
    g->waitreason = W_NONE;
    if (kept) { /* fast path: nobody took the P meanwhile */
        m->p = p;
        m->curg = g;
        if (np__tracing())
            np__tev(EV_BLOCK_END, BE_KEPT, (uint64_t)g->id, 0, 0);
        return r;
    }
    /* sysmon handed the P to another M: find another, or queue and stop. */
    np_p *q = pidle_take();
    if (q) {
        acquirep(m, q);
        m->curg = g;
        if (np__tracing())
            np__tev(EV_BLOCK_END, BE_OTHER_P, (uint64_t)g->id, 0, 0);
        return r;
    }
    if (np__tracing())
        np__tev(EV_BLOCK_END, BE_REQUEUED, (uint64_t)g->id, 0, 0);
    m->curg = NULL;
    m->after = AFTER_REQUEUE;
    m->after_g = g;
    gswitch(m, g, &m->g0, false);
    after_switch(g->m);
    return r;
}

/* Hand the P of an M stuck in a blocking call to another M. */
static void handoffp(np_p *p)
{
    if (!np__runqempty(p) || atomic_load(&np__sched.runqsize) > 0 || np__timers_first(&p->timers) ||
        np__netpoll_waiters()) {
        startm(p, false);
        return;
    }
    pthread_mutex_lock(&np__sched.lock);
    if (atomic_load(&np__sched.runqsize) > 0) {
        /* queued since the look above (np_blocking's requeue, a foreign np_go): its
         * wakep found no idle P, so nobody else would run it */
        pthread_mutex_unlock(&np__sched.lock);
        startm(p, false);
        return;
    }
    if (np__tracing())
        np__tev(EV_P_STOP, 0, (uint64_t)p->id, 0, 0);
    pidleput(p);
    pthread_mutex_unlock(&np__sched.lock);
}

/* Sysmon: retake a P whose M has been in np_blocking for 20 us (sooner gives it back
 * to nobody useful; later stalls the coroutines queued on it). Returns true if taken. */
bool np__retake_syscall(np_p *p, int64_t now)
{
    if (atomic_load(&p->status) != P_SYSCALL)
        return false;
    uint32_t t = atomic_load_explicit(&p->syscalltick, memory_order_relaxed);
    if (t != p->sysmonsctick) {
        p->sysmonsctick = t;
        p->sysmonscwhen = now;
        return false;
    }
    if (now - p->sysmonscwhen < 20000)
        return false;
    if (np__runqempty(p) && atomic_load(&np__sched.nmspinning) + atomic_load(&np__sched.npidle) > 0 &&
        now - p->sysmonscwhen < 10000000 && !np__netpoll_waiters())
        return false; /* nothing waits for this P and others are free */
    int32_t st = P_SYSCALL;
    if (!atomic_compare_exchange_strong(&p->status, &st, P_IDLE))
        return false;
    if (np__tracing())
        np__tev(EV_HANDOFF, 0, (uint64_t)p->id, 0, 0);
    p->m = NULL;
    handoffp(p);
    return true;
}

/* Sysmon's per-period look at one P: a runnext stuck behind a coroutine that has run
 * for 10 ms moves to the global queue where another P can take it. Returns true if it
 * moved one. */
bool np__retake(np_p *p, int64_t now, int64_t *since)
{
    if (np__solo())
        return false; /* nobody else could run it anyway */
    uint32_t t = atomic_load_explicit(&p->schedtick, memory_order_relaxed);
    if (t != p->sysmontick) {
        p->sysmontick = t;
        *since = now;
        return false;
    }
    if (now - *since < 10000000)
        return false;
    np_g *n = atomic_load_explicit(&p->runnext, memory_order_relaxed);
    if (!n || !atomic_compare_exchange_strong(&p->runnext, &n, NULL))
        return false;
    pthread_mutex_lock(&np__sched.lock);
    np__globrunqput(n);
    pthread_mutex_unlock(&np__sched.lock);
    return true;
}
