/* The scheduler's structures: G (coroutine), M (OS thread), P (processor), and the one
 * scheduler instance. Internal to np. */
#ifndef NP_SCHED_H
#define NP_SCHED_H
#include "../../include/np.h"
#include "../ctx/ctx.h"
#include "../mem/stack.h"
#include "../os/hot.h"
#include "../os/lock.h"
#include "../time/timer.h"
#include "../trace/trace.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define NP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NP_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define NP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NP_TSAN 1
#endif
#endif

/* G_TRIM: waiting, and its stack is being trimmed (sched/trim.c); whoever readies it
 * waits for G_WAITING again. */
enum np_gstatus { G_IDLE, G_RUNNABLE, G_RUNNING, G_WAITING, G_DEAD, G_TRIM };
/* np_g.stk: its context is saved (it has switched out since it last ran); its stack
 * was trimmed since it last ran. Cleared when it runs. */
enum { STK_SAVED = 1, STK_TRIMMED = 2 };

/* Why a coroutine waits (shown by dumps and counted by stats). */
enum np_waitreason {
    W_NONE, W_SLEEP, W_CHAN_SEND, W_CHAN_RECV, W_SELECT, W_SELECT_NOCASES, W_MUTEX,
    W_WAITGROUP, W_COND, W_RWMUTEX, W_ONCE, W_IO, W_BLOCKING
};

typedef struct np_g np_g;
typedef struct np_m np_m;
typedef struct np_p np_p;

struct np_g {
    np_ctx ctx;
    np_stack stack;
    _Atomic uint32_t status;
    uint8_t waitreason;
    uint8_t waitmode;    /* IO wait: PD_R / PD_W */
    bool ismain;
    _Atomic uint8_t stk; /* STK_* */
    int32_t waitfd;      /* IO wait: the descriptor */
    int64_t waitsince;   /* when it parked (coarse clock) */
    size_t want_stack;   /* requested stack size, 0 = default */
    int64_t id;
    np_fn fn;
    void *arg;
    np_g *schedlink;     /* run queue, free list */
    np_m *m;             /* the M running it (valid while running) */
    void *param;         /* wake-up payload (which select case fired) */
    _Atomic uintptr_t selecttok; /* != 0 while a select/timed wait may be won */
    uintptr_t seltokgen;
    np__timer timer;     /* sleep and select timeout */
#ifdef NP_ASAN
    void *asan_fake;
#endif
#ifdef NP_TSAN
    void *tsan_fiber;
#endif
};

#define NP_RUNQ 256
#define NP_GCHUNK ((size_t)2 << 20)
#define NP_GCHUNKS 16384
#define NP_GSIZE ((sizeof(np_g) + 63) & ~(size_t)63)

enum { P_IDLE, P_RUNNING, P_SYSCALL };

struct np_p {
    int id;
    _Atomic int32_t status;      /* P_*: P_SYSCALL while its M is in np_blocking */
    _Atomic uint32_t syscalltick; /* bumped at each np_blocking */
    uint32_t sysmonsctick;       /* sysmon's last observation of syscalltick */
    int64_t sysmonscwhen;        /* ... and when it made it */
    _Atomic uint32_t runqhead;
    _Atomic uint32_t runqtail;
    np_g *_Atomic runq[NP_RUNQ];
    np_g *_Atomic runnext;
    _Atomic uint32_t schedtick;  /* incremented on every schedule */
    uint32_t inherit;            /* consecutive runs from runnext */
    uint32_t sysmontick;         /* sysmon's last observation of schedtick */
    np_m *m;
    np_p *link;
    np_g *gfree;                 /* cache of dead Gs */
    int ngfree;
    np_stack_cache stacks;
    int64_t idcache, idend;      /* ids handed out in batches */
    _Atomic uint64_t nswitch, nsteal; /* counters, written by the owner only */
    np__timers timers;
};

enum { AFTER_NONE, AFTER_PARK, AFTER_YIELD, AFTER_SPAWN, AFTER_REQUEUE, AFTER_EXIT };

typedef bool (*np_unlockf)(np_g *g, void *arg);

struct np_m {
    np_g g0;             /* the scheduler loop, on the thread's own stack */
    np_g *curg;
    np_g *blockedg;      /* the coroutine in np_blocking on this M (curg is NULL then) */
    np_p *p;
    np_p *nextp;
    bool spinning;
    bool ism0;
    int id;
    np_note park;
    pthread_t thread;
    np_m *link;          /* idle list */
    np_m *alllink;
    /* what the context switched to must finish for the one switched from */
    int after;
    np_g *after_g;
    np_unlockf after_f;
    void *after_arg;
    uint64_t rnd;
    stack_t altstack;
#ifdef NP_ASAN
    const void *g0_bottom;
    size_t g0_size;
#endif
};

typedef struct np_sched {
    pthread_mutex_t lock;
    /* global run queue */
    np_g *runqhead, *runqtail;
    _Atomic int32_t runqsize;
    /* idle P and M */
    np_p *pidle;
    _Atomic int32_t npidle;
    np_m *midle;
    int nmidle;
    _Atomic int32_t nmspinning;
    int mcount;           /* Ms alive besides m0 */
    pthread_cond_t mexit; /* signalled when an M thread leaves */
    np_m *allm;
    int nprocs;
    np_p **allp;
    /* Gs */
    _Atomic int64_t goidgen;
    _Atomic int32_t gfreelock;
    /* dead Gs beyond the Ps' caches, without stacks (a thread holding no P takes one for
     * np_go: the stack comes at its first run, from the cache of the P running it);
     * peeked without the lock */
    np_g *_Atomic gfree;
    /* Every G ever made lives in gchunks[0..ngchunks), carved in order: the last chunk
     * up to gused bytes. Never moved or freed while running, so a dump can walk them. */
    _Atomic int32_t glock;
    char *gchunks[NP_GCHUNKS];
    _Atomic size_t ngchunks;
    _Atomic size_t gused;
    _Atomic int64_t nowcache;  /* the last clock reading (coarse "now" for wait times) */
    _Atomic uint64_t npolls, nevents; /* poller calls, coroutines it woke */
    np_g *maing;
    size_t stack_size;
    /* the netpoller: one M at a time blocks in it */
    _Atomic int64_t lastpoll;  /* when last polled; 0 while an M is blocked polling */
    _Atomic int64_t polluntil; /* when that M will wake, 0 = not before woken */
    /* sysmon */
    pthread_t sysmon;
    _Atomic uint32_t sysmonwait;
    _Atomic uint32_t sysmonslow; /* sysmon sleeps long: np_blocking wakes it */
    np_note sysmonnote;
    /* stack trimming (trim.c) */
    int64_t trimage;           /* parked this long (ns) before trimmed; 0 = never */
    np__timer trimt;
    _Atomic bool trimarmed;
    _Atomic uint64_t trimseen; /* switch count at the last pass */
    _Atomic int64_t ntrims;
    /* lifecycle */
    _Atomic bool stopping;
    _Atomic bool running; /* np_run claimed the runtime (set first, cleared last) */
    /* The scheduler is built and not yet torn down: what another thread (a stats call,
     * np_dump, the netlog's dump request) may look at, between np__look_begin and
     * np__look_end; np_run clears it, then waits until no look is in progress. Not
     * cleared by np_run's memset: set and cleared by np_run alone. */
    _Atomic bool up;
    _Atomic int32_t lookers;
    /* Foreign threads (holding no P: not the runtime's, or in np_blocking) inside
     * np__foreign_begin/np__foreign_end: they may queue coroutines and start Ms. np_run
     * waits until there are none right after stopping is set (and before it waits for
     * the Ms), so none is left to start an M or touch what teardown frees. */
    _Atomic int32_t foreigners;
    /* Foreign calls in progress (np__foreign_call), under fclock: cancelled at
     * stopping, the last freed by np_run when no coroutine runs any more. */
    _Atomic int32_t fclock;
    struct np_fcall *fcalls;
    struct sigaction oldpipe;
    bool dumpcontinue;
} np_sched;

extern np_sched np__sched;

/* A look at the scheduler's state from any thread (or a signal handler): false when
 * there is none to look at (np__look_end is then not called). Dekker-style with np_run's
 * teardown: both sides store, then load, sequentially consistent. */
static inline bool np__look_begin(void)
{
    atomic_fetch_add(&np__sched.lookers, 1);
    if (atomic_load(&np__sched.up))
        return true;
    atomic_fetch_sub(&np__sched.lookers, 1);
    return false;
}
static inline void np__look_end(void) { atomic_fetch_sub(&np__sched.lookers, 1); }

/* A foreign thread (one holding no P) about to queue coroutines or ready them: false
 * (EPERM for the caller) when no runtime runs or it is stopping. Dekker-style with
 * np_run, which sets stopping, then waits for foreigners to reach zero. */
static inline bool np__foreign_begin(void)
{
    atomic_fetch_add(&np__sched.foreigners, 1);
    if (atomic_load(&np__sched.up) && !atomic_load(&np__sched.stopping))
        return true;
    atomic_fetch_sub(&np__sched.foreigners, 1);
    return false;
}
static inline void np__foreign_end(void) { atomic_fetch_sub(&np__sched.foreigners, 1); }
/* Run fn(arg) in a coroutine for a foreign thread, which waits for it to end (with one
 * P, how such a thread does what only the P's thread may do). fn must not block.
 * Returns 0 when fn has run, or -1: EPERM (no runtime, or it is stopping), ENOMEM,
 * ECANCELED (the runtime began to stop before fn ran: it never will). */
int np__foreign_call(void (*fn)(void *), void *arg);

/* One P: only the thread holding it runs coroutines, so run queues, coroutine states
 * and channel locks need no atomic read-modify-write (nprocs is fixed while running). */
static inline bool np__solo(void) { return np__sched.nprocs == 1; }

/* Call f on every G ever created (dead ones too). Lock-free: fine in a signal handler. */
static inline void np__each_g(void (*f)(np_g *g, void *arg), void *arg)
{
    size_t n = atomic_load_explicit(&np__sched.ngchunks, memory_order_acquire);
    size_t used = atomic_load_explicit(&np__sched.gused, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        size_t lim = i + 1 == n ? used : NP_GCHUNK / NP_GSIZE * NP_GSIZE;
        for (size_t off = 0; off + NP_GSIZE <= lim; off += NP_GSIZE)
            f((np_g *)(np__sched.gchunks[i] + off), arg);
    }
}

/* Owner-only counter bump: no locked instruction. */
static inline void np__count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
}

/* The M of the calling thread, NULL outside the runtime's threads. A coroutine may
 * resume on another thread: after a park, code uses g->m, never a TLS value read
 * before it. On x86_64 the TLS slot is addressed through %fs on every access, so an
 * inline read is safe; elsewhere the read stays behind a call. */
/* libnp.a is linked into programs: the slot is at a fixed offset from the thread
 * pointer (local-exec, no GOT load on every fd call). Build with -DNP_SHARED_OBJECT to
 * put it in a shared object instead (initial-exec). */
#ifdef NP_SHARED_OBJECT
#define NP_TLS_MODEL "initial-exec"
#else
#define NP_TLS_MODEL "local-exec"
#endif
#if defined(__x86_64__)
extern _Thread_local np_m *np__tls_m __attribute__((tls_model(NP_TLS_MODEL)));
static inline np_m *np__getm(void) { return np__tls_m; }
#else
np_m *np__getm(void);
#endif
/* One P, and the caller is the thread holding it (a coroutine, a timer, the scheduler's
 * own poll): one thread at a time, each hand-off of the P under the scheduler's lock. */
static inline bool np__on_solo_p(void)
{
    np_m *m = np__getm();
    return np__solo() && m && m->p;
}
/* The calling coroutine, or NULL (EPERM is the caller's to report). */
static inline np_g *np__getg(void)
{
    np_m *m = np__getm();
    return m ? m->curg : NULL;
}

/* Park the calling coroutine. After it is off its stack, f(g, arg) runs; if f returns
 * false the coroutine is made runnable again at once. Someone must np__ready it later. */
void np__park(np_unlockf f, void *arg, int reason);

/* Bytes at the top of every coroutine stack kept for np__g_slot (below them, the
 * context's first frame). */
#define NP_STACK_SLOT 64
/* Scratch memory of a running coroutine that lasts while it parks, where a blocking
 * call that leaves with np__park_tail keeps what its wakers need (its frame is gone). */
static inline void *np__g_slot(np_g *g) { return g->stack.lo + g->stack.size - NP_STACK_SLOT; }

/* np__park without an unlock function, for one P (np__solo()) and the assembly context
 * switch: the blocking call ends with return np__park_tail(g, reason, ret), and when the
 * coroutine is readied its caller gets *ret (as an int; set by the waker) straight from
 * the switch. g is the calling coroutine. */
#if defined(NP_CTX_PARK) && !defined(NP_ASAN) && !defined(NP_TSAN)
#define NP_PARK_TAIL 1
int np__park_tail(np_g *g, int reason, const bool *ret);
#endif
void np__ready_q(np_g *g, bool next);
void np__unwait(np_g *g);          /* G_WAITING -> G_RUNNABLE (no queueing) */
void np__trim_init(void);          /* trim.c: at np_run */
void np__trim_arm(void);           /* trim.c: sysmon, each period */
/* np__ready from a coroutine running on p, inline for the common case of one P: when
 * np__ready_fast_ok(p, g), np__ready_fast(p, g) does it. */
static inline bool np__ready_fast_ok(np_p *p, np_g *g)
{
    return np__solo() && atomic_load_explicit(&g->status, memory_order_relaxed) == G_WAITING &&
           !atomic_load_explicit(&p->runnext, memory_order_relaxed);
}
static inline void np__ready_fast(np_p *p, np_g *g)
{
    if (np__tracing())
        np__tev_ready((uint64_t)g->id);
    atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
    g->waitreason = W_NONE;
    atomic_store_explicit(&p->runnext, g, memory_order_relaxed);
}
static inline void np__ready_on(np_p *p, np_g *g)
{
    if (np__ready_fast_ok(p, g))
        np__ready_fast(p, g);
    else
        np__ready_q(g, true);
}
/* Make a parked coroutine runnable (on the caller's P, next in line; from a thread
 * holding no P, on the global queue, waking a P for it). */
static inline void np__ready(np_g *g)
{
    np_m *m = np__getm();
    if (m && m->p)
        np__ready_on(m->p, g);
    else
        np__ready_q(g, true);
}
/* Ask an idle P to look for work (when one is idle and nobody spins already). */
void np__wakep(void);
/* Work was put on the global queue by a thread holding no P: make sure a P sees it
 * soon (an idle one is woken; the poller is broken out of its wait if an M blocks in
 * it, as it then holds no P and takes the idle one). */
void np__wake_global(void);
/* A timer was added at when: make sure someone will wake for it. */
void np__timer_added(int64_t when);
/* unlockf helper that releases a spin lock. */
bool np__unlock_spin(np_g *g, void *lock);
int64_t np__nanotime(void);
/* The monotonic clock in ns, without np__nanotime's update of the coarse "now" (a
 * shared cache line): for the tracer's events. */
static inline int64_t np__clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
/* errno after a possible park (see os/errno.c). */
int np__errno(void);
void np__seterrno(int e);
_Noreturn void np__fatal(const char *msg);
/* G_WAITING -> G_RUNNABLE for a waker that took g off its wait queue, and no wait
 * reason. here: one P and the caller holds it, so nobody else touches g and no stack
 * trim can be under way (the pass runs there too): a plain store instead of
 * np__unwait's CAS. */
static inline void np__unwait_at(np_g *g, bool here)
{
    if (here) {
        if (atomic_load_explicit(&g->status, memory_order_relaxed) != G_WAITING)
            np__fatal("ready of a coroutine that is not waiting");
        atomic_store_explicit(&g->status, G_RUNNABLE, memory_order_relaxed);
        if (np__tracing())
            np__tev_ready((uint64_t)g->id);
    } else {
        np__unwait(g);
    }
    g->waitreason = W_NONE;
}

#endif
