/* np — coroutines that block like threads, scheduled M:N over a few OS threads.
 *
 * Errors follow the C library convention: a function that fails returns -1 (or NULL)
 * and sets errno. Calls that may block must be made from inside a coroutine; made
 * from any other thread they fail with EPERM. What other threads may call: see "Foreign
 * threads" at np_go.
 *
 * errno is per thread and, with NP_PROCS > 1, a coroutine may resume on another thread
 * after any call that can block. np sets errno on the thread the call returns on, so
 * read errno right after the failing call; do not keep its value or address across
 * another blocking np call (compilers may cache errno's address within a function).
 */
#ifndef NP_H
#define NP_H

#include <stddef.h>
#include <stdint.h>

/* The version of this header; np_version() gives the library's. A change of the major
 * version (the shared library's soname, libnp.so.MAJOR) breaks the ABI. */
#define NP_VERSION_MAJOR 0
#define NP_VERSION_MINOR 15
#define NP_VERSION_PATCH 0
#define NP_VERSION_STRING "0.15.0"

#ifdef __cplusplus
extern "C" {
#endif
/* What this header declares is the library's interface: built as a shared object with
 * hidden visibility, libnp exports these names and nothing else. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* The library's version, "MAJOR.MINOR.PATCH" (compare with NP_VERSION_STRING to catch a
 * program running against another libnp than the one it was built with). */
const char *np_version(void);

/* ---- runtime and coroutines ------------------------------------------------------ */

/* The function a coroutine runs. */
typedef void (*np_fn)(void *arg);

/* Optional attributes for np_go_attr. Zero-initialise, then set what you need. */
typedef struct np_attr {
    size_t stack_size; /* bytes of stack (rounded up to pages); 0 = default (NP_STACK) */
} np_attr;

/* Start the runtime (NP_PROCS processors, default: CPUs available), run main_fn(arg) as
 * the first coroutine and return 0 when it returns. Coroutines still alive then are
 * abandoned. Fails with EBUSY if a runtime is already running in this process. */
int np_run(np_fn main_fn, void *arg);

/* Foreign threads: any thread that is not a coroutine (a plain pthread, a C library's
 * callback thread, np_blocking's fn) may call np_go while np_run runs: the coroutine is
 * queued on the global run queue and an idle processor is woken for it, also one whose
 * thread waits in the poller. Such threads may also call np_chan_trysend,
 * np_chan_tryrecv, np_chan_close and np_mutex_trylock (with NP_PROCS=1 the operation
 * runs as a short coroutine while the thread waits, two thread wake-ups: 10-20 us;
 * -1/ECANCELED or EPERM when the runtime is stopping), np_mutex_unlock,
 * np_wg_add/np_wg_done, np_cond_signal/np_cond_broadcast, np_rwmutex_tryrlock/trylock/
 * runlock/unlock (waiters a call would wake once main_fn has returned are abandoned:
 * left parked), np_once_do once done, and the calls that need no coroutine (np_now,
 * np_id: 0, np_procs, np_stats_get, np_dump, np_log, np_chan_new, np_chan_cap,
 * np_fd_open). The calls that may block, np_select and the descriptor calls need a
 * coroutine and fail with EPERM there. Not from a signal handler: these take locks. */

/* Spawn a coroutine running fn(arg), from a coroutine or a foreign thread (above).
 * Returns its id (> 0), or -1: EPERM when no runtime runs (or main_fn has returned),
 * ENOMEM, EINVAL for a NULL fn. */
int64_t np_go(np_fn fn, void *arg);

/* np_go with attributes (attr may be NULL). */
int64_t np_go_attr(const np_attr *attr, np_fn fn, void *arg);

/* Let other runnable coroutines run; returns 0, or -1/EPERM outside a coroutine. */
int np_yield(void);

/* Block the calling coroutine for at least ns nanoseconds (<= 0: just yield).
 * Returns 0, or -1/EPERM outside a coroutine. */
int np_sleep(int64_t ns);

/* Monotonic clock in nanoseconds (the clock of every deadline and timeout in np). */
int64_t np_now(void);

/* Id of the calling coroutine, or 0 when not called from a coroutine. */
int64_t np_id(void);

/* End the calling coroutine now (as if its function returned). Outside a coroutine it
 * returns with errno = EPERM. */
void np_exit(void);

/* Run fn(arg), a call that may block the thread (file I/O, getaddrinfo, ...), without
 * stalling the other coroutines: if it lasts over ~20 us its P moves to another thread.
 * Returns fn's result. fn runs as a foreign thread: it may call what any thread may
 * (see np_go); those that need a coroutine fail there with EPERM. Outside a coroutine
 * it just calls fn. */
void *np_blocking(void *(*fn)(void *), void *arg);

/* Number of processors (P) of the running runtime, 0 when none is running. */
int np_procs(void);

/* ---- channels -------------------------------------------------------------------- */
/* np_chan_new and np_chan_cap work from any thread. np_chan_free and np_chan_len work
 * from a coroutine, or from any thread while no coroutine can be using the channel
 * (before np_run, after it returned). np_chan_trysend, np_chan_tryrecv and
 * np_chan_close work from any thread while the runtime runs (see np_go). np_chan_send,
 * np_chan_recv and np_select must come from a coroutine; from any other thread (and the
 * three above when no runtime runs) they fail with EPERM and leave the channel as it
 * was. Bad arguments (a NULL channel, a NULL element to send) fail with EINVAL first. */

typedef struct np_chan np_chan;

/* A channel of elements of elem_size bytes (> 0) with cap slots (0 = unbuffered).
 * Returns NULL/ENOMEM or EINVAL. */
np_chan *np_chan_new(size_t elem_size, size_t cap);

/* Free a channel. Fails with EBUSY while coroutines are blocked on it (after np_run
 * returned, coroutines it abandoned no longer count). A channel of np_after: its timer
 * is cancelled first; a ticker's channel: EINVAL (np_ticker_free frees it). */
int np_chan_free(np_chan *c);

/* Send *elem; blocks until a receiver takes it or buffer space frees.
 * Returns 0, or -1 with EPIPE if the channel is (or gets) closed. */
int np_chan_send(np_chan *c, const void *elem);

/* Receive into *elem (may be NULL to discard). Returns 1 with a value, 0 when the
 * channel is closed and drained (*elem zeroed), -1 on error. */
int np_chan_recv(np_chan *c, void *elem);

/* Non-blocking np_chan_send: -1 with EAGAIN when it would block. */
int np_chan_trysend(np_chan *c, const void *elem);

/* Non-blocking np_chan_recv: -1 with EAGAIN when it would block. */
int np_chan_tryrecv(np_chan *c, void *elem);

/* Close: wakes every blocked receiver (they get 0) and sender (they get EPIPE).
 * Closing twice fails with EPIPE; closing a channel of np_after or a ticker, EINVAL. */
int np_chan_close(np_chan *c);

/* Number of buffered elements. */
size_t np_chan_len(np_chan *c);

/* Buffer capacity. */
size_t np_chan_cap(np_chan *c);

/* One case of np_select. A NULL chan never becomes ready (as a nil channel in Go). */
enum { NP_SEND = 1, NP_RECV = 2 };
typedef struct np_case {
    np_chan *chan;
    int op;      /* NP_SEND or NP_RECV */
    void *elem;  /* value to send, or where to receive (may be NULL) */
    int ok;      /* out, for the chosen case: recv 1 = value, 0 = closed; send 1 */
} np_case;

/* Wait until one of n cases can proceed, perform it, return its index. timeout_ns < 0
 * waits forever, 0 acts as a default branch (-1/EAGAIN if none is ready), > 0 fails
 * with ETIMEDOUT when it passes. A send on a closed channel: -1/EPIPE, its ok = -1. */
int np_select(np_case *cases, int n, int64_t timeout_ns);

/* ---- mutex and waitgroup ----------------------------------------------------------- */

/* The synchronisation objects below are opaque storage that programs embed (in C and
 * C++ alike): np keeps its fields there (src/sync/), sized and aligned for them. Copying
 * one that is in use, or touching its bytes, is undefined. */

/* A mutex for coroutines: a blocked np_mutex_lock parks the coroutine, not the thread.
 * Initialise with NP_MUTEX_INIT (or zero). */
typedef struct np_mutex { uint64_t np__opaque[4]; } np_mutex;
#define NP_MUTEX_INIT {{0}}

/* Lock; returns 0, or -1/EPERM outside a coroutine. */
int np_mutex_lock(np_mutex *mu);

/* Try to lock without blocking: 0 on success, -1/EBUSY if held. From any thread (see
 * np_go: with one P another thread's call runs on the P, where coroutines take the
 * mutex without atomic instructions). */
int np_mutex_trylock(np_mutex *mu);

/* Unlock (ownership passes FIFO to a waiter), from any thread (see np_go). Unlocking an
 * unlocked mutex: -1/EPERM. */
int np_mutex_unlock(np_mutex *mu);

/* A wait group (Go's sync.WaitGroup). Initialise with NP_WG_INIT (or zero). */
typedef struct np_wg { uint64_t np__opaque[4]; } np_wg;
#define NP_WG_INIT {{0}}

/* Add delta to the counter; at zero every waiter wakes. Going negative: -1/EINVAL
 * (the counter is left unchanged). From any thread (see np_go); once main_fn has
 * returned, waiters left are abandoned and not woken. */
int np_wg_add(np_wg *wg, int64_t delta);

/* np_wg_add(wg, -1). */
int np_wg_done(np_wg *wg);

/* Block until the counter is zero; returns 0, or -1/EPERM outside a coroutine. */
int np_wg_wait(np_wg *wg);

/* ---- condition variable, reader/writer mutex, once ------------------------------------
 * Go's sync.Cond, sync.RWMutex and sync.Once for coroutines: opaque storage as above
 * (zero is the initial state); a blocked call parks the coroutine, not the thread. */

/* A condition variable (Go's sync.Cond) used with an np_mutex. NP_COND_INIT (or zero). */
typedef struct np_cond { uint64_t np__opaque[4]; } np_cond;
#define NP_COND_INIT {{0}}

/* The caller holds mu: atomically unlock mu and park until np_cond_signal or
 * np_cond_broadcast wakes this wait, then lock mu again and return 0. No spurious
 * wake-ups, but the state may have changed before mu was relocked: re-check the
 * condition in a loop. A wait that began (under mu) before a signal is never missed by
 * it. -1/EPERM outside a coroutine or if mu is not locked; EINVAL for NULL. */
int np_cond_wait(np_cond *c, np_mutex *mu);

/* Wake the longest-waiting np_cond_wait, if any (holding the mutex is not required).
 * Any thread may call it. Returns 0 (-1/EINVAL for NULL). */
int np_cond_signal(np_cond *c);

/* Wake every np_cond_wait begun before the call. Any thread. 0 (-1/EINVAL for NULL). */
int np_cond_broadcast(np_cond *c);

/* A reader/writer mutex (Go's sync.RWMutex): any number of readers, or one writer.
 * A writer waiting for the lock holds back readers that come after it, so a stream of
 * readers cannot starve writers; a writer's unlock lets in the readers that queued
 * during its turn before the next writer. Ownership passes to waiters directly, so,
 * as with np_mutex, the last unlocker may free the object right after its unlock.
 * Initialise with NP_RWMUTEX_INIT (or zero). */
typedef struct np_rwmutex { uint64_t np__opaque[6]; } np_rwmutex;
#define NP_RWMUTEX_INIT {{0}}

/* Lock for reading; returns 0, or -1/EPERM outside a coroutine. A reader must not
 * read-lock again while holding it (a writer that came between would deadlock both). */
int np_rwmutex_rlock(np_rwmutex *rw);

/* Release a read lock: 0, or -1/EPERM when no reader holds it. */
int np_rwmutex_runlock(np_rwmutex *rw);

/* Lock for writing; returns 0, or -1/EPERM outside a coroutine. */
int np_rwmutex_lock(np_rwmutex *rw);

/* Release the write lock: 0, or -1/EPERM when no writer holds it. */
int np_rwmutex_unlock(np_rwmutex *rw);

/* Read-lock without blocking: 0, or -1/EBUSY while a writer holds it or waits for it. */
int np_rwmutex_tryrlock(np_rwmutex *rw);

/* Write-lock without blocking: 0, or -1/EBUSY while anyone holds it. */
int np_rwmutex_trylock(np_rwmutex *rw);

/* One-time initialisation (Go's sync.Once). Initialise with NP_ONCE_INIT (or zero). */
typedef struct np_once { uint64_t np__opaque[2]; } np_once;
#define NP_ONCE_INIT {{0}}

/* Run fn(arg) if no call on o has run it yet; callers that come while it runs park
 * until it has returned. Returns 0 once fn has returned (whoever ran it): after that it
 * is one load and works from any thread. Before, -1 with EPERM outside a coroutine (fn
 * not run), EINVAL for a NULL o or fn, EDEADLK when called from fn itself on the same
 * o (fn carries on). fn must return: if its coroutine ends inside it (np_exit), every
 * later caller waits forever. */
int np_once_do(np_once *o, void (*fn)(void *), void *arg);

/* ---- time ------------------------------------------------------------------------------
 * Channels that time fills, as Go's time.After and time.Ticker. Their elements are
 * int64_t: the np_now() of the moment each was sent; their capacity is 1. Receive from
 * them as from any channel (np_chan_recv, np_select, ...); never send to them. The
 * runtime sends, from no coroutine (a timer, on a thread holding a P). */

/* A channel that receives np_now() once, at least ns from now (ns <= 0: at once).
 * The caller owns it and frees it with np_chan_free, fired or not, read or not; freed
 * before it fires, the timer is cancelled. NULL/EPERM outside a coroutine, ENOMEM. */
np_chan *np_after(int64_t ns);

/* A ticker: its channel receives np_now() every period_ns on a fixed schedule (start +
 * k * period_ns: no drift); a tick due while the previous one is still unread is
 * dropped, and so are those the runtime was too busy to send on time. Returns NULL with
 * EINVAL (period_ns <= 0), EPERM (outside a coroutine) or ENOMEM. */
typedef struct np_ticker np_ticker;
np_ticker *np_ticker_new(int64_t period_ns);

/* The ticker's channel. The ticker owns it: np_ticker_free frees it (np_chan_free of
 * it fails with EINVAL). Any thread; NULL/EINVAL for a NULL ticker. */
np_chan *np_ticker_chan(np_ticker *t);

/* No more ticks (until np_ticker_reset). The channel is not closed: a receive or select
 * waiting on it keeps waiting; a tick already in it stays there. Any thread. */
int np_ticker_stop(np_ticker *t);

/* Tick every period_ns (> 0, else EINVAL) from now on, stopped or not. From a coroutine
 * (EPERM outside one); ENOMEM leaves it stopped. */
int np_ticker_reset(np_ticker *t, int64_t period_ns);

/* Stop t and free it and its channel (NULL: nothing). As np_chan_free: from a coroutine,
 * or from any thread while no coroutine can be using the channel; EBUSY while
 * coroutines are blocked on it (then nothing is stopped or freed). */
int np_ticker_free(np_ticker *t);

/* ---- file descriptors ------------------------------------------------------------------
 * A descriptor used with np_read/np_write must first be registered with np_fd_open.
 * Sockets, pipes, ttys, eventfds and the like are set non-blocking and polled: a call
 * that would block parks the coroutine instead. Regular files cannot be polled: their
 * reads and writes run directly and block the thread (see np_blocking, issue 5).
 * Errors: EBADF when the descriptor is not registered or was closed with np_close
 * (also for calls blocked in it at that moment), ETIMEDOUT when a deadline passed,
 * EPERM for a registered descriptor outside a coroutine (np_fd_open excepted). */
#include <sys/types.h>
#include <sys/uio.h>

/* Register fd with the runtime (sets O_NONBLOCK on pollable ones). 0, or -1/errno
 * (EEXIST if registered already, EPERM when no runtime is running). */
int np_fd_open(int fd);

/* Read up to len bytes; parks until some are available. Returns the count (0 at end
 * of file), or -1/errno. Concurrent readers of one fd take turns. On a socket: recv(2). */
ssize_t np_read(int fd, void *buf, size_t len);

/* Write all len bytes (parking while the fd is full). Returns len, or -1/errno (part
 * may have been written). Concurrent writers take turns. On a socket it is send(2) with
 * MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE, whatever its disposition. */
ssize_t np_write(int fd, const void *buf, size_t len);

/* Park until fd is readable (data, end of file or an error to report), without
 * reading. Returns 0, or -1/errno as np_read. Lets an idle connection's coroutine wait
 * without a buffer on its stack: wait, then read into a buffer in a called function. */
int np_wait_readable(int fd);

/* Park until fd is writable (as np_wait_readable). */
int np_wait_writable(int fd);

/* readv(2) counterpart of np_read. */
ssize_t np_readv(int fd, const struct iovec *iov, int iovcnt);

/* writev(2) counterpart of np_write: writes everything or fails (on a socket: sendmsg(2)
 * with MSG_NOSIGNAL). */
ssize_t np_writev(int fd, const struct iovec *iov, int iovcnt);

/* Deregister and close fd. Coroutines blocked on it wake with EBADF; the call waits
 * until they have left, so the number is not reused under them. Returns close(2)'s. */
int np_close(int fd);

/* Read and write deadline at absolute time abs_ns (np_now clock); 0 clears, a time
 * already passed fails pending and later calls with ETIMEDOUT. Applies at once to
 * calls blocked now. -1/EBADF if fd is not registered, ENOTSUP for regular files. */
int np_set_deadline(int fd, int64_t abs_ns);

/* Deadline for reads only (as np_set_deadline). */
int np_set_read_deadline(int fd, int64_t abs_ns);

/* Deadline for writes only (as np_set_deadline). */
int np_set_write_deadline(int fd, int64_t abs_ns);

/* ---- network ---------------------------------------------------------------------------
 * network: "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6" or "unix". address:
 * "127.0.0.1:8080", "[::1]:8080", ":8080" (every local address), "localhost:8080"
 * (names are resolved off the P), or a path for "unix" ("@name": abstract). A bad
 * network name or a malformed address fails with EINVAL. Sockets returned are
 * registered (np_fd_open), non-blocking and close-on-exec; TCP ones have TCP_NODELAY. */
#include <sys/socket.h>

/* A listening socket (tcp, unix) or a bound one (udp) with SO_REUSEADDR and
 * SO_REUSEPORT. Returns the fd, or -1/errno. */
int np_listen(const char *network, const char *address);

/* Connect to address (tries each address a name resolves to), giving up with
 * ETIMEDOUT after timeout_ns (<= 0: no limit). Returns the fd, or -1/errno. */
int np_dial(const char *network, const char *address, int64_t timeout_ns);

/* Accept a connection (parks until one comes); addr/addrlen may be NULL. Out of
 * descriptors (EMFILE, ENFILE) it backs off and retries; ECONNABORTED and the like are
 * returned. Returns the new registered fd, or -1/errno. */
int np_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);

/* recvfrom(2) that parks until a datagram (or data) is there. */
ssize_t np_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                    socklen_t *fromlen);

/* sendto(2) that parks while the socket buffer is full. */
ssize_t np_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
                  socklen_t tolen);

/* shutdown(2) on a registered socket (SHUT_RD, SHUT_WR, SHUT_RDWR). */
int np_shutdown(int fd, int how);

/* Name of the poller in use ("epoll", "poll", "select"; chosen by NP_POLLER), or
 * "none" when no runtime is running. */
const char *np_poller_name(void);

/* ---- seeing inside ------------------------------------------------------------------------
 * SIGQUIT prints every coroutine (as Go prints goroutines) to standard error and to the
 * netlog, then exits with status 2 (NP_DUMP=continue: keep running). SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGABRT and coroutine stack overflow print the faulting coroutine
 * and the dump, then kill the process with the original signal. Backtraces name
 * functions when the program is linked with -rdynamic. */

/* Write the coroutine dump to fd (plain write(2)s: fd need not be registered). Safe
 * from a signal handler; never waits for the scheduler (reads its state as it is).
 * Returns 0, or -1/errno: EPERM when no runtime is running, write(2)'s error (EBADF,
 * EPIPE, ...) when the dump could not be written. */
int np_dump(int fd);

/* What the runtime is doing (np_stats). Counters are totals since np_run. waiting_by
 * counts the waiting coroutines by what they wait in (NP_WAIT_COND: np_cond_wait,
 * NP_WAIT_RWMUTEX: np_rwmutex_rlock/lock, NP_WAIT_ONCE: np_once_do, ...). */
enum {
    NP_WAIT_SLEEP, NP_WAIT_CHAN_SEND, NP_WAIT_CHAN_RECV, NP_WAIT_SELECT, NP_WAIT_MUTEX,
    NP_WAIT_WAITGROUP, NP_WAIT_IO, NP_WAIT_BLOCKING, NP_WAIT_OTHER, NP_WAIT_COND,
    NP_WAIT_RWMUTEX, NP_WAIT_ONCE, NP_WAIT_NREASONS
};
typedef struct np_stats {
    int64_t coroutines;                  /* alive (not finished) */
    int64_t running, runnable, waiting;
    int64_t waiting_by[NP_WAIT_NREASONS];
    int64_t procs, threads;              /* Ps; OS threads running coroutines (Ms) */
    int64_t polls, events;               /* poller calls; coroutines it woke */
    int64_t steals, switches;            /* coroutines stolen between Ps; switches */
    int64_t timers;                      /* pending */
    int64_t fds;                         /* registered with np_fd_open */
    int64_t stack_trims;                 /* parked stacks whose dead pages went back */
} np_stats;

/* Fill *s. Returns 0, or -1/EPERM when no runtime is running. */
int np_stats_get(np_stats *s);

/* Send np's log lines and dumps as UDP datagrams to url ("udp://HOST:PORT"; HOST an
 * IPv4 address, [IPv6] or a name resolved with getaddrinfo). Also read from NP_NETLOG
 * at np_run. Each datagram is "np N K/M text": N numbers the datagrams (a gap is a
 * loss on the way), K/M the fragment of a long message. The send path takes no lock,
 * allocates nothing and does not need the scheduler (usable in a signal handler); what
 * cannot be sent at once is queued in a fixed ring, in order, and retried by a thread
 * of its own; when the ring is full messages are dropped and counted, and
 * "np: netlog dropped N messages (ring full; T in all)" follows (T: the running total
 * since np_netlog_open). A datagram "dump" from the collector's address (only: the
 * socket is connected to it) makes the runtime send "np: dump requested by HOST:PORT",
 * then a dump. Returns 0, or -1/errno: EINVAL for a NULL url, one not starting with
 * "udp://" or a malformed HOST:PORT (no port, a port over 65535, characters no host
 * name has); EBUSY if the netlog is open already; EHOSTUNREACH for a name that does not
 * resolve; the socket's error otherwise. */
int np_netlog_open(const char *url);

/* Log one line (printf format) to the netlog, if open, and to standard error. */
void np_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Stop the netlog: flushes what is queued (as far as the socket takes it), ending with
 * "np: netlog closed (T dropped in all, R drop reports)". */
void np_netlog_close(void);

/* ---- execution tracing (after Go's runtime/trace) ----------------------------------
 * A trace records what every coroutine, P and thread did: created (by whom), ran
 * (where), waited (why, on what), made runnable (by whom: a coroutine, the netpoller, a
 * timer, a foreign thread), Ps idle, threads spinning, polling, in np_blocking, steals,
 * timers; written as Chrome's JSON Trace Event Format (Perfetto's UI, chrome://tracing,
 * speedscope), one track per coroutine. Also set by NP_TRACE=FILE or NP_TRACE=ring:SIZE
 * at np_run; NP_TRACE_DIR (else TMPDIR, else /tmp) is where a flight recorder's
 * snapshots on SIGQUIT and on a crash go (np-trace.PID.N.json, named in the dump). */

/* Start tracing. spec "FILE": record everything until np_trace_stop (or np_run's end),
 * then write FILE (created now). spec "ring:SIZE" (SIZE in bytes, with K, M or G): a
 * flight recorder keeping the last SIZE of events per thread, written by
 * np_trace_snapshot. Returns 0, or -1/errno: EINVAL (bad spec), EBUSY (tracing already,
 * or a stop still writing), or open(2)'s error for FILE. */
int np_trace_start(const char *spec);

/* Stop tracing; a full trace is then written to its file (from a coroutine, as in
 * np_blocking). Returns 0, or -1/errno: EINVAL when not tracing, write(2)'s error. */
int np_trace_stop(void);

/* Write the flight recorder's events (the last SIZE per thread) to path, tracing going
 * on (a concurrent np_trace_stop waits for it). Returns 0, or -1/errno: EINVAL when no
 * flight recorder runs, open(2)/write(2)'s. */
int np_trace_snapshot(const char *path);

/* 1 while tracing is on, else 0. */
int np_trace_on(void);

/* Begin a region named name (a slice over the calling coroutine's track, shown even
 * across its waits) ... */
void np_trace_region_begin(const char *name);
/* ... and end the calling coroutine's innermost one. No-ops while not tracing. */
void np_trace_region_end(void);

/* Log a line (printf format) into the trace, on the calling coroutine's track, under a
 * category (up to 120 bytes in all are kept). A no-op while not tracing. */
void np_trace_log(const char *category, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif
#endif
