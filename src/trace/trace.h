/* The execution tracer (after Go's runtime/trace): the scheduler records what every
 * coroutine, P and thread does into per-thread buffers, and the converter (json.c)
 * turns them into Chrome's JSON Trace Event Format. Internal to np.
 *
 * Recording: every trace point is `if (np__tracing()) np__tev(...)`: tracing off costs
 * one load and a branch not taken. On, an event is five 64-bit words written by the
 * recording thread into its own buffer (no lock, no shared cache line but its own busy
 * flag): full mode appends to a list of chunks, ring mode (the flight recorder)
 * overwrites the oldest. Build with -DNP_NO_TRACE for a runtime without trace points
 * (the benchmark's baseline). */
#ifndef NP_TRACE_H
#define NP_TRACE_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Event types. a, b, c: the three arguments; sub: a small one. The P is the recording
 * thread's (or none), the thread is the buffer's owner. */
enum {
    EV_NONE,
    EV_GO_CREATE,   /* a new g, b parent g (0: a foreign thread), c start function */
    EV_GO_START,    /* a g now runs on this P and thread */
    EV_GO_STOP,     /* sub ST_*, a g, b wait reason (ST_PARK), c fd or object */
    EV_GO_READY,    /* sub WK_* (who), a g, b waker g (WK_G) */
    EV_BLOCK_BEGIN, /* a g enters np_blocking (its P may be handed off) */
    EV_BLOCK_END,   /* sub BE_*, a g */
    EV_P_START,     /* a P id: this thread took it */
    EV_P_STOP,      /* a P id: this thread gave it up (idle) */
    EV_HANDOFF,     /* a P id: taken from a thread in np_blocking (sysmon) */
    EV_M_START,     /* the thread started */
    EV_SPIN_BEGIN,  /* the thread looks for work (spinning) */
    EV_SPIN_END,
    EV_IDLE_BEGIN,  /* the thread sleeps, holding no P */
    EV_IDLE_END,
    EV_POLL_BEGIN,  /* a: timeout ns (-1 forever, 0 a non-blocking look) */
    EV_POLL_END,    /* a: coroutines readied */
    EV_TIMERS_BEGIN,
    EV_TIMERS_END,  /* a: timers fired */
    EV_STEAL,       /* a victim P, b stolen g (the first) */
    EV_REGION_BEGIN, /* a g; text: the name */
    EV_REGION_END,  /* a g */
    EV_LOG,         /* a g; text: category, NUL, message */
    EV_TEXT,        /* continuation slot holding text (w[0] == TEV_TEXT) */
    EV_MAX
};
enum { ST_YIELD, ST_PARK, ST_EXIT };
enum { WK_G, WK_NETPOLL, WK_TIMER, WK_FOREIGN, WK_SCHED };
enum { BE_KEPT, BE_OTHER_P, BE_REQUEUED };
#define TEV_TEXT UINT64_MAX /* w[0] of a continuation slot */
#define TEV_TEXT_MAX 120     /* bytes of text an event keeps */

/* One event: ts, header (type | sub << 8 | (P id + 1) << 16), a, b, c. Atomic words
 * (relaxed: plain moves) so that a snapshot may read a ring its owner writes. */
typedef struct np_tev { _Atomic uint64_t w[5]; } np_tev;

#define TCHUNK 8192 /* events per chunk in full mode */
typedef struct np_tchunk {
    struct np_tchunk *next;
    np_tev ev[TCHUNK];
} np_tchunk;

/* A thread's buffer in one session. Written by its owner only, inside its slot's busy;
 * read by the converter after tracing stopped and every busy was seen 0 (full), or at
 * any time (ring: relaxed loads, validated by pos). Freed when the session stops, after
 * every slot's busy was seen 0. */
typedef struct np_tbuf {
    struct np_tbuf *next; /* all buffers of this tracing session (pushed under lock) */
    int mid;              /* the M's id, or -1: a thread that is not an M */
    int seq;              /* order of attachment */
    int ostid;            /* the OS thread id */
    char name[24];        /* a thread that is not an M: its name */
    /* full: events in cur[0..pos), earlier ones in the chunks head..tail (full);
     * ring: cur is the ring of cap (a power of two) slots, pos counts every slot ever
     * written (release-stored after the slot) */
    _Atomic uint64_t pos;
    np_tev *cur;
    size_t cap;
    /* (release-stored after the chunk's next, so that a snapshot of a running full
     * trace, from SIGQUIT or a crash, walks a list that holds together) */
    np_tchunk *_Atomic head, *_Atomic tail, *_Atomic curchunk;
} np_tbuf;

/* A recording thread's slot: where its busy flag lives, outside any session's memory.
 * Slots are never freed (a thread's slot goes back to a free list when it exits, for
 * the next new thread), so a thread may set busy before it knows whether its buffer
 * still exists: with busy set it checks that tracing is on and that tb belongs to the
 * current session (gen), and only then touches tb. Stop clears on, bumps gen, then
 * waits for every slot's busy to be 0: after that no thread is inside a buffer of the
 * stopped session, nor will be. */
typedef struct np_tslot {
    struct np_tslot *next;     /* every slot ever (pushed under lock, read without) */
    struct np_tslot *freelink; /* free slots, under lock */
    _Atomic int busy;          /* 1 while its thread records */
    uint32_t gen;              /* the session tb belongs to (0: none) */
    np_tbuf *tb;
} np_tslot;

enum { TR_OFF, TR_FULL, TR_RING };

typedef struct np_trace_state {
    _Atomic int on;           /* the only thing a trace point reads while off */
    _Atomic uint32_t gen;     /* tracing session: a thread's buffer belongs to one */
    int mode;                 /* TR_*, under lock; not TR_OFF from a start until its stop
                                 has freed the buffers (a start meanwhile: EBUSY) */
    size_t ringslots;         /* ring: slots per thread */
    char path[4096];          /* full: where np_trace_stop writes */
    char dir[4096];           /* ring: where SIGQUIT and crash snapshots go */
    _Atomic int nsnap;
    int64_t t0;               /* when the session started */
    np_tbuf *_Atomic bufs;    /* every buffer of the session */
    int nbufs;
    np_tslot *_Atomic slots;  /* every thread slot ever */
    np_tslot *freeslots;
    _Atomic int lock;         /* start, stop, attaching a buffer, slots */
    /* Snapshots writing from the session's buffers (np_trace_snapshot, SIGQUIT, a
     * crash): a reader counts itself in, then checks on (both seq_cst); stop clears on,
     * then waits for 0 before it frees anything. */
    _Atomic int readers;
} np_trace_state;
extern np_trace_state np__trace;

#ifdef NP_NO_TRACE
static inline bool np__tracing(void) { return false; }
#else
static inline bool np__tracing(void)
{
    return __builtin_expect(atomic_load_explicit(&np__trace.on, memory_order_relaxed), 0);
}
#endif

/* Record one event from the calling thread (only when np__tracing()). */
void np__tev(int type, int sub, uint64_t a, uint64_t b, uint64_t c);
/* The same with text (a region's name, a log line; up to TEV_TEXT_MAX bytes kept). */
void np__tev_text(int type, uint64_t a, const char *t1, size_t n1, const char *t2, size_t n2);
/* A coroutine made runnable: who did it is found from the calling thread. */
void np__tev_ready(uint64_t g);

/* What the calling thread is doing, for np__tev_ready (WK_NETPOLL, WK_TIMER, or -1). */
extern _Thread_local signed char np__trace_ctx;

/* At np_run's start (NP_TRACE), and its end (full: write the file; free). */
void np__trace_init(void);
void np__trace_fini(void);
/* From the SIGQUIT and fatal-signal handlers: write a snapshot of the flight recorder
 * (or of the full trace so far) and say where on o (an np_out). Async-signal-safe
 * enough: write(2), mmap(2); no lock, no malloc. */
struct np_out;
void np__trace_dump(struct np_out *o);

/* The converter (json.c): every buffer's events, merged by time, as Chrome JSON on fd.
 * Returns the number of events written, or -1 (errno). */
int64_t np__trace_write(int fd, bool ring);

#endif
