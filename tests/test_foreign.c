/* Foreign threads (np.h at np_go): threads that are not coroutines start coroutines with
 * np_go, use np_chan_trysend/tryrecv/close and np_wg_done while the runtime runs, with
 * one P and with two. None lost, none late: a P blocked in the poller or asleep is woken
 * for a foreign thread's coroutine. Without a runtime, and once it stops, the calls fail
 * with EPERM (a call waiting for the runtime when it stops: ECANCELED), and a foreign
 * thread racing np_run's return touches nothing freed (ASan, TSan). */
#include "t.h"
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#define MS 1000000LL
#define SEC 1000000000LL

/* Wait from a foreign thread (no np_yield there) until cond(arg) holds: bounded, 10 s
 * (30 s in slow builds). */
static void f_wait(bool (*cond)(void *), void *arg, const char *what)
{
    int64_t limit = 10 * SEC * (t_scale_v() > 1 ? 3 : 1), t0 = np_now();
    while (!cond(arg)) {
        if (np_now() - t0 > limit)
            FAILF("foreign thread: still waiting for %s after %lld s", what,
                  (long long)(limit / SEC));
        sched_yield();
    }
}

static bool blocked_1(void *arg)
{
    np_stats s;
    CHECK_EQ(np_stats_get(&s), 0);
    return s.waiting_by[(int)(intptr_t)arg] >= 1;
}

/* At least one coroutine blocked for reason, as seen from a foreign thread. */
static void f_wait_blocked(int reason) { f_wait(blocked_1, (void *)(intptr_t)reason, "a blocked coroutine"); }

static void *join_thread(void *arg)
{
    CHECK_EQ(pthread_join(*(pthread_t *)arg, NULL), 0);
    return NULL;
}

/* ---- np_go from 8 foreign threads ---------------------------------------------------- */

#define NTHREADS 8

static long go_n;
static _Atomic int *go_seen;   /* runs of coroutine i */
static int64_t *go_id, *go_self; /* np_go's return for i; np_id() inside i */
static np_wg go_wg = NP_WG_INIT;

static void go_co(void *arg)
{
    long i = (long)(intptr_t)arg;
    atomic_fetch_add(&go_seen[i], 1);
    go_self[i] = np_id();
    CHECK_EQ(np_wg_done(&go_wg), 0);
}

static void *go_thread(void *arg)
{
    long t = (long)(intptr_t)arg;
    CHECK_EQ(np_id(), 0);
    for (long i = t; i < go_n; i += NTHREADS) {
        int64_t id = np_go(go_co, (void *)(intptr_t)i);
        if (id <= 0)
            FAILF("np_go from a foreign thread: %lld, errno %d", (long long)id, t_errno());
        go_id[i] = id;
    }
    return NULL;
}

static void *join_all(void *arg)
{
    pthread_t *th = arg;
    for (int i = 0; i < NTHREADS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void go_main(void *arg)
{
    CHECK_EQ(np_wg_add(&go_wg, go_n), 0);
    pthread_t th[NTHREADS];
    for (long t = 0; t < NTHREADS; t++)
        CHECK_EQ(pthread_create(&th[t], NULL, go_thread, (void *)(intptr_t)t), 0);
    CHECK_EQ(np_wg_wait(&go_wg), 0);
    np_blocking(join_all, th);
}

static void go_from_threads(int procs)
{
    t_procs(procs);
    go_n = t_scaled(10000);
    go_seen = calloc((size_t)go_n, sizeof *go_seen);
    go_id = calloc((size_t)go_n, sizeof *go_id);
    go_self = calloc((size_t)go_n, sizeof *go_self);
    CHECK(go_seen && go_id && go_self);
    T_RUN(go_main, NULL);
    for (long i = 0; i < go_n; i++) {
        if (atomic_load(&go_seen[i]) != 1)
            FAILF("coroutine %ld ran %d times", i, atomic_load(&go_seen[i]));
        if (go_self[i] != go_id[i])
            FAILF("coroutine %ld: np_go returned %lld, np_id() in it %lld", i,
                  (long long)go_id[i], (long long)go_self[i]);
    }
    qsort(go_id, (size_t)go_n, sizeof *go_id, cmp_id);
    for (long i = 1; i < go_n; i++)
        if (go_id[i] == go_id[i - 1])
            FAILF("two coroutines with id %lld", (long long)go_id[i]);
    free(go_seen);
    free(go_id);
    free(go_self);
}

static void t_go_from_8_threads_1p(void) { go_from_threads(1); }
static void t_go_from_8_threads_2p(void) { go_from_threads(2); }

/* ---- a P with nothing to do is woken for a foreign np_go ------------------------------ */

static int idle_pipe[2];
static np_chan *idle_chan;
static _Atomic int64_t idle_t0; /* when the foreign np_go was made */

static void idle_write(void *arg)
{
    CHECK_EQ(write(idle_pipe[1], "x", 1), 1);
}

static void idle_send(void *arg)
{
    int v = 42;
    CHECK_EQ(np_chan_send(idle_chan, &v), 0);
}

static bool is_poll_syscall(long nr)
{
    static const long nrs[] = {
#ifdef SYS_epoll_wait
        SYS_epoll_wait,
#endif
#ifdef SYS_epoll_pwait
        SYS_epoll_pwait,
#endif
#ifdef SYS_epoll_pwait2
        SYS_epoll_pwait2,
#endif
#ifdef SYS_poll
        SYS_poll,
#endif
#ifdef SYS_ppoll
        SYS_ppoll,
#endif
#ifdef SYS_select
        SYS_select,
#endif
#ifdef SYS_pselect6
        SYS_pselect6,
#endif
        -2};
    for (size_t i = 0; nrs[i] != -2; i++)
        if (nr == nrs[i])
            return true;
    return false;
}

/* Is this kernel function (a thread's wchan) where poll, select or epoll_wait sleep? */
static bool is_poll_wchan(const char *w)
{
    return strcmp(w, "do_epoll_wait") == 0 || strcmp(w, "ep_poll") == 0 ||
           strncmp(w, "poll_schedule_timeout", 21) == 0 || strcmp(w, "do_select") == 0 ||
           strcmp(w, "do_sys_poll") == 0;
}

/* Is a thread of this process blocked in a poll system call (the poller's wait: no
 * other thread here polls)? From /proc/self/task/<tid>/wchan (the kernel function it
 * sleeps in: the same under qemu-user, whose threads make the host's system calls), or
 * where that shows nothing, from .../syscall (the number; the host's under qemu-user).
 * Where neither can be read it says yes, and the case tests a P woken on its way there. */
static bool in_poller(void *arg)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return true;
    bool readable = false, found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[300], w[128] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/wchan", de->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%127s", w) == 1 && strcmp(w, "0") != 0) {
                readable = true;
                found = is_poll_wchan(w);
            }
            fclose(f);
        }
        if (found || w[0])
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/syscall", de->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        long nr;
        if (fscanf(f, "%ld", &nr) == 1) {
            readable = true;
            found = is_poll_syscall(nr);
        } else if (!ferror(f)) {
            readable = true; /* "running" */
        }
        fclose(f);
    }
    closedir(d);
    return found || !readable;
}

static void *idle_thread(void *arg)
{
    bool io = arg != NULL;
    f_wait_blocked(io ? NP_WAIT_IO : NP_WAIT_CHAN_RECV);
    if (io)
        f_wait(in_poller, NULL, "a thread blocked in the poller");
    atomic_store(&idle_t0, np_now());
    CHECK(np_go(io ? idle_write : idle_send, NULL) > 0);
    return NULL;
}

static void idle_main(void *arg)
{
    bool io = arg != NULL;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, idle_thread, arg), 0);
    if (io) {
        /* The one coroutine, parked in np_read with nothing else to do: the only timer is
         * the deadline, the M waits in epoll_wait for it. */
        CHECK_EQ(np_fd_open(idle_pipe[0]), 0);
        CHECK_EQ(np_set_read_deadline(idle_pipe[0], np_now() + 5 * SEC), 0);
        char b;
        T_ERRNO = 0;
        ssize_t r = np_read(idle_pipe[0], &b, 1);
        if (r != 1)
            FAILF("np_read: %zd, errno %d (%s): the foreign np_go's coroutine did not run "
                  "before the deadline", r, t_errno(), strerror(t_errno()));
        CHECK_EQ(np_close(idle_pipe[0]), 0);
    } else {
        int v = 0;
        CHECK_EQ(np_chan_recv(idle_chan, &v), 1); /* no timer at all: the M sleeps */
        CHECK_EQ(v, 42);
    }
    printf("note: %s, %d P: woken %.1f us after the foreign np_go\n", io ? "poller" : "asleep",
           np_procs(), (double)(np_now() - atomic_load(&idle_t0)) / 1e3);
    np_blocking(join_thread, &th);
}

static void idle_case(int procs, bool io)
{
    t_procs(procs);
    setenv("NP_STACK_TRIM", "0", 1); /* no trim timer: nothing else wakes the M */
    CHECK_EQ(pipe(idle_pipe), 0);
    idle_chan = np_chan_new(sizeof(int), 0);
    CHECK(idle_chan);
    T_RUN(idle_main, io ? (void *)1 : NULL);
    CHECK_EQ(np_chan_free(idle_chan), 0);
    close(idle_pipe[1]);
}

static void t_poller_runs_foreign_go_1p(void) { idle_case(1, true); }
static void t_poller_runs_foreign_go_2p(void) { idle_case(2, true); }
static void t_asleep_runs_foreign_go_1p(void) { idle_case(1, false); }
static void t_asleep_runs_foreign_go_2p(void) { idle_case(2, false); }

/* ---- channels from a foreign thread ----------------------------------------------------- */

static np_chan *xc;   /* unbuffered */
static long xn;
static np_wg xwg = NP_WG_INIT;

/* Receives xn values in order, from np_chan_recv (blocked each time the sender comes),
 * then the close. */
static void x_receiver(void *arg)
{
    for (long i = 0; i < xn; i++) {
        long v = -1;
        CHECK_EQ(np_chan_recv(xc, &v), 1);
        CHECK_EQ(v, i);
    }
    long v = 7;
    CHECK_EQ(np_chan_recv(xc, &v), 0); /* closed by the foreign thread */
    CHECK_EQ(v, 0);
    CHECK_EQ(np_wg_done(&xwg), 0);
}

static void x_sender(void *arg)
{
    for (long i = 0; i < xn; i++)
        CHECK_EQ(np_chan_send(xc, &i), 0);
    CHECK_EQ(np_wg_done(&xwg), 0);
}

static void *x_thread(void *arg)
{
    /* the first one waits for the receiver blocked in np_chan_recv */
    f_wait_blocked(NP_WAIT_CHAN_RECV);
    double t0 = t_secs();
    long again = 0;
    for (long i = 0; i < xn; i++) {
        int r;
        while ((r = np_chan_trysend(xc, &i)) == -1 && t_errno() == EAGAIN)
            again++; /* the receiver is not back in np_chan_recv yet */
        if (r != 0)
            FAILF("np_chan_trysend: %d, errno %d", r, t_errno());
    }
    double t1 = t_secs();
    CHECK_EQ(np_chan_close(xc), 0);
    CHECK_ERR(np_chan_close(xc), EPIPE);
    long z = 1;
    CHECK_ERR(np_chan_trysend(xc, &z), EPIPE);
    printf("note: %d P: %ld foreign trysends to a waiting receiver, %.2f us per call "
           "(%ld EAGAIN)\n", np_procs(), xn, (t1 - t0) * 1e6 / (double)(xn + again), again);
    return NULL;
}

/* The other way: tryrecv what a coroutine sends (blocked in np_chan_send). */
static void *y_thread(void *arg)
{
    f_wait_blocked(NP_WAIT_CHAN_SEND);
    for (long i = 0; i < xn; i++) {
        long v = -1;
        int r;
        while ((r = np_chan_tryrecv(xc, &v)) == -1 && t_errno() == EAGAIN) {
        }
        if (r != 1)
            FAILF("np_chan_tryrecv: %d, errno %d", r, t_errno());
        CHECK_EQ(v, i);
    }
    long v;
    CHECK_ERR(np_chan_tryrecv(xc, &v), EAGAIN);
    CHECK_EQ(np_chan_close(xc), 0);
    CHECK_EQ(np_chan_tryrecv(xc, &v), 0); /* closed and drained */
    return NULL;
}

static void x_main(void *arg)
{
    bool send = arg != NULL;
    CHECK_EQ(np_wg_add(&xwg, 1), 0);
    CHECK(np_go(send ? x_receiver : x_sender, NULL) > 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, send ? x_thread : y_thread, NULL), 0);
    CHECK_EQ(np_wg_wait(&xwg), 0);
    np_blocking(join_thread, &th);
}

static void x_case(int procs, bool send)
{
    t_procs(procs);
    xn = t_scaled(20000);
    xc = np_chan_new(sizeof(long), 0);
    CHECK(xc);
    T_RUN(x_main, send ? (void *)1 : NULL);
    CHECK_EQ(np_chan_free(xc), 0);
}

static void t_trysend_to_receiver_1p(void) { x_case(1, true); }
static void t_trysend_to_receiver_2p(void) { x_case(2, true); }
static void t_tryrecv_from_sender_1p(void) { x_case(1, false); }
static void t_tryrecv_from_sender_2p(void) { x_case(2, false); }

/* A buffered channel's edges from a foreign thread: full (EAGAIN, nothing lost), empty
 * (EAGAIN), closed (EPIPE, then what was buffered, then 0). */
static np_chan *ec;

static void *edges_thread(void *arg)
{
    long v = 1, w = 0;
    CHECK_ERR(np_chan_tryrecv(ec, &w), EAGAIN);
    CHECK_EQ(np_chan_trysend(ec, &v), 0);
    v = 2;
    CHECK_EQ(np_chan_trysend(ec, &v), 0);
    v = 3;
    CHECK_ERR(np_chan_trysend(ec, &v), EAGAIN); /* full */
    CHECK_ERR(np_chan_trysend(NULL, &v), EINVAL);
    CHECK_ERR(np_chan_trysend(ec, NULL), EINVAL);
    CHECK_ERR(np_chan_tryrecv(NULL, &w), EINVAL);
    CHECK_ERR(np_chan_close(NULL), EINVAL);
    CHECK_EQ(np_chan_tryrecv(ec, &w), 1);
    CHECK_EQ(w, 1);
    CHECK_EQ(np_chan_close(ec), 0);
    CHECK_ERR(np_chan_trysend(ec, &v), EPIPE);
    CHECK_EQ(np_chan_tryrecv(ec, NULL), 1); /* 2, discarded */
    w = 9;
    CHECK_EQ(np_chan_tryrecv(ec, &w), 0);
    CHECK_EQ(w, 0);
    /* blocking calls and select still need a coroutine */
    np_case cs[1] = {{ec, NP_RECV, &w, 0}};
    CHECK_ERR(np_chan_send(ec, &v), EPERM);
    CHECK_ERR(np_chan_recv(ec, &w), EPERM);
    CHECK_ERR(np_select(cs, 1, 0), EPERM);
    /* what a call costs: a send and a receive on a channel nobody waits on */
    np_chan *b = np_chan_new(sizeof(long), 1);
    CHECK(b);
    long n = t_scaled(20000);
    double t0 = t_secs();
    for (long i = 0; i < n; i++) {
        CHECK_EQ(np_chan_trysend(b, &i), 0);
        CHECK_EQ(np_chan_tryrecv(b, &w), 1);
        CHECK_EQ(w, i);
    }
    printf("note: %d P: a foreign trysend or tryrecv costs %.2f us\n", np_procs(),
           (t_secs() - t0) * 1e6 / (double)(2 * n));
    CHECK_EQ(np_chan_free(b), 0);
    return NULL;
}

static void edges_main(void *arg)
{
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, edges_thread, NULL), 0);
    np_blocking(join_thread, &th);
    CHECK_EQ(np_chan_len(ec), 0);
}

static void edges(int procs)
{
    t_procs(procs);
    ec = np_chan_new(sizeof(long), 2);
    CHECK(ec);
    T_RUN(edges_main, NULL);
    CHECK_EQ(np_chan_free(ec), 0);
}

static void t_chan_edges_1p(void) { edges(1); }
static void t_chan_edges_2p(void) { edges(2); }

/* Foreign threads and coroutines on one buffered channel at once: two threads trysend
 * (retrying on EAGAIN) while coroutines receive and send too; every value arrives
 * once, each sender's in order. With one P this holds only if the threads' operations
 * run on the P (the channel has no lock there). */
#define MIX_T 2
#define MIX_C 2
static np_chan *mc;
static long mix_n;
static np_wg mix_wg = NP_WG_INIT;
static _Atomic long mix_got[MIX_T + MIX_C]; /* values received from each sender */
static _Atomic long mix_last[MIX_T + MIX_C];

static void mix_take(long v)
{
    long s = v >> 32, i = v & 0xffffffff;
    if (s < 0 || s >= MIX_T + MIX_C)
        FAILF("received a value no one sent: %#lx", v);
    long want = atomic_exchange(&mix_last[s], i + 1);
    if (i != want) /* one receiver: each sender's values in order, none missing */
        FAILF("sender %ld: value %ld where %ld was due", s, i, want);
    atomic_fetch_add(&mix_got[s], 1);
}

static void mix_receiver(void *arg)
{
    long v;
    int r;
    while ((r = np_chan_recv(mc, &v)) == 1)
        mix_take(v);
    CHECK_EQ(r, 0);
    CHECK_EQ(np_wg_done(&mix_wg), 0);
}

static void mix_csender(void *arg)
{
    long s = (long)(intptr_t)arg;
    for (long i = 0; i < mix_n; i++) {
        long v = s << 32 | i;
        if (i % 2)
            CHECK_EQ(np_chan_send(mc, &v), 0);
        else
            while (np_chan_trysend(mc, &v) != 0)
                CHECK_EQ(np_yield(), 0);
    }
    CHECK_EQ(np_wg_done(&mix_wg), 0);
}

static void *mix_thread(void *arg)
{
    long s = (long)(intptr_t)arg;
    for (long i = 0; i < mix_n; i++) {
        long v = s << 32 | i;
        int r;
        while ((r = np_chan_trysend(mc, &v)) == -1 && t_errno() == EAGAIN)
            sched_yield();
        if (r != 0)
            FAILF("np_chan_trysend: %d, errno %d", r, t_errno());
    }
    return NULL;
}

static void mix_main(void *arg)
{
    CHECK_EQ(np_wg_add(&mix_wg, MIX_C), 0);
    CHECK(np_go(mix_receiver, NULL) > 0);
    for (long s = 0; s < MIX_C; s++)
        CHECK(np_go(mix_csender, (void *)(intptr_t)(MIX_T + s)) > 0);
    pthread_t th[MIX_T];
    for (long s = 0; s < MIX_T; s++)
        CHECK_EQ(pthread_create(&th[s], NULL, mix_thread, (void *)(intptr_t)s), 0);
    for (long s = 0; s < MIX_T; s++)
        np_blocking(join_thread, &th[s]);
    CHECK_EQ(np_wg_wait(&mix_wg), 0); /* the coroutine senders */
    CHECK_EQ(np_wg_add(&mix_wg, 1), 0);
    CHECK_EQ(np_chan_close(mc), 0); /* the receiver drains the rest, then sees 0 */
    CHECK_EQ(np_wg_wait(&mix_wg), 0);
    for (int s = 0; s < MIX_T + MIX_C; s++)
        if (atomic_load(&mix_got[s]) != mix_n)
            FAILF("sender %d: %ld of %ld values received", s, atomic_load(&mix_got[s]), mix_n);
}

static void mix(int procs)
{
    t_procs(procs);
    mix_n = t_scaled(20000);
    mc = np_chan_new(sizeof(long), 4);
    CHECK(mc);
    T_RUN(mix_main, NULL);
    CHECK_EQ(np_chan_free(mc), 0);
}

static void t_chan_shared_with_coroutines_1p(void) { mix(1); }
static void t_chan_shared_with_coroutines_2p(void) { mix(2); }

/* With one P the channel has no lock: a foreign call runs on the P, between coroutines.
 * So it cannot complete while the only P runs a coroutine that does not let go: that
 * coroutine sees the channel unchanged all along, the call completes once it yields. */
static np_chan *ser_c;
static np_mutex ser_mu = NP_MUTEX_INIT;
static bool ser_mutex; /* the call: np_mutex_trylock (else np_chan_trysend) */
static _Atomic int ser_spinning, ser_calling, ser_returned;

static bool ser_flag(void *arg) { return atomic_load((_Atomic int *)arg) != 0; }

static void *ser_thread(void *arg)
{
    f_wait(ser_flag, &ser_spinning, "the coroutine to spin");
    long v = 5;
    atomic_store(&ser_calling, 1);
    if (ser_mutex)
        CHECK_EQ(np_mutex_trylock(&ser_mu), 0);
    else
        CHECK_EQ(np_chan_trysend(ser_c, &v), 0);
    atomic_store(&ser_returned, 1);
    return NULL;
}

static void ser_main(void *arg)
{
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, ser_thread, NULL), 0);
    atomic_store(&ser_spinning, 1);
    /* no np call that switches from here: the P is this coroutine's */
    int64_t t0 = np_now();
    while (!atomic_load(&ser_calling))
        if (np_now() - t0 > 10 * SEC)
            FAILF("the foreign thread did not call");
    t0 = np_now();
    while (np_now() - t0 < 200 * MS) { /* the window in which the call must not end */
        if (atomic_load(&ser_returned) || np_chan_len(ser_c) != 0)
            FAILF("a foreign %s completed while the only P ran a coroutine that did not "
                  "yield (len %zu)", ser_mutex ? "trylock" : "trysend", np_chan_len(ser_c));
    }
    t0 = np_now();
    while (!atomic_load(&ser_returned)) {
        if (np_now() - t0 > 10 * SEC)
            FAILF("the foreign trysend did not complete once the coroutine yielded");
        CHECK_EQ(np_yield(), 0);
    }
    if (ser_mutex) {
        CHECK_ERR(np_mutex_trylock(&ser_mu), EBUSY); /* the thread's */
        CHECK_EQ(np_mutex_unlock(&ser_mu), 0);
    } else {
        CHECK_EQ(np_chan_len(ser_c), 1);
        long v = 0;
        CHECK_EQ(np_chan_recv(ser_c, &v), 1);
        CHECK_EQ(v, 5);
    }
    np_blocking(join_thread, &th);
}

static void serialized(bool mutex)
{
    t_procs(1);
    ser_mutex = mutex;
    ser_c = np_chan_new(sizeof(long), 4);
    CHECK(ser_c);
    T_RUN(ser_main, NULL);
    CHECK_EQ(np_chan_free(ser_c), 0);
}

static void t_chan_serialized_with_coroutines_1p(void) { serialized(false); }
/* (a coroutine takes a free mutex with a plain load and store there) */
static void t_mutex_trylock_serialized_with_coroutines_1p(void) { serialized(true); }

/* A foreign thread holds the mutex (np_mutex_trylock) while coroutines wait for it in
 * np_mutex_lock; its np_mutex_unlock hands it to the first. Coroutines and threads
 * count under it, with a plain counter. */
#define MU_THREADS 2
#define MU_COS 2
static np_mutex fmu = NP_MUTEX_INIT;
static long fmu_count, fmu_n; /* under fmu */
static np_wg fmu_wg = NP_WG_INIT;
static _Atomic int fmu_held; /* the first thread holds it: the coroutines may start */

static void fmu_co(void *arg)
{
    for (long i = 0; i < fmu_n; i++) {
        CHECK_EQ(np_mutex_lock(&fmu), 0);
        long c = fmu_count;
        if (i % 8 == 0)
            CHECK_EQ(np_yield(), 0); /* hold it across a switch */
        fmu_count = c + 1;
        CHECK_EQ(np_mutex_unlock(&fmu), 0);
    }
    CHECK_EQ(np_wg_done(&fmu_wg), 0);
}

static void *fmu_thread(void *arg)
{
    bool first = arg != NULL;
    for (long i = 0; i < fmu_n; i++) {
        while (np_mutex_trylock(&fmu) != 0) {
            CHECK_EQ(t_errno(), EBUSY);
            sched_yield();
        }
        if (first && i == 0) {
            atomic_store(&fmu_held, 1);
            f_wait_blocked(NP_WAIT_MUTEX); /* a coroutine parked behind us, once */
        }
        fmu_count++;
        CHECK_EQ(np_mutex_unlock(&fmu), 0);
    }
    return NULL;
}

static void fmu_main(void *arg)
{
    pthread_t th[MU_THREADS];
    for (long t = 0; t < MU_THREADS; t++)
        CHECK_EQ(pthread_create(&th[t], NULL, fmu_thread, t == 0 ? (void *)1 : NULL), 0);
    int64_t t0 = np_now();
    while (!atomic_load(&fmu_held)) {
        if (np_now() - t0 > 10 * SEC)
            FAILF("the foreign thread did not get the mutex");
        CHECK_EQ(np_yield(), 0);
    }
    CHECK_EQ(np_wg_add(&fmu_wg, MU_COS), 0);
    for (int i = 0; i < MU_COS; i++)
        CHECK(np_go(fmu_co, NULL) > 0);
    CHECK_EQ(np_wg_wait(&fmu_wg), 0);
    for (int t = 0; t < MU_THREADS; t++)
        np_blocking(join_thread, &th[t]);
    CHECK_EQ(fmu_count, (MU_THREADS + MU_COS) * fmu_n);
}

static void mutex_case(int procs)
{
    t_procs(procs);
    fmu_n = t_scaled(3000);
    T_RUN(fmu_main, NULL);
}

static void t_mutex_shared_with_coroutines_1p(void) { mutex_case(1); }
static void t_mutex_shared_with_coroutines_2p(void) { mutex_case(2); }

/* ---- wait groups -------------------------------------------------------------------------- */

static np_wg wwg = NP_WG_INIT;
static long wg_rounds;
static _Atomic long wg_round; /* the round the waiter is in */

static bool at_round(void *arg) { return atomic_load(&wg_round) == (long)(intptr_t)arg; }

static void *wg_thread(void *arg)
{
    for (long r = 0; r < wg_rounds; r++) {
        f_wait(at_round, (void *)(intptr_t)r, "the waiter's next round");
        if (r == 0)
            f_wait_blocked(NP_WAIT_WAITGROUP); /* parked for sure, once */
        CHECK_EQ(np_wg_done(&wwg), 0);
    }
    return NULL;
}

static void wg_main(void *arg)
{
    pthread_t th;
    CHECK_EQ(np_wg_add(&wwg, 1), 0);
    CHECK_EQ(pthread_create(&th, NULL, wg_thread, NULL), 0);
    for (long r = 0; r < wg_rounds; r++) {
        CHECK_EQ(np_wg_wait(&wwg), 0); /* (np_wg_wait's bound: the case's timeout) */
        CHECK_EQ(np_wg_add(&wwg, 1), 0);
        atomic_store(&wg_round, r + 1);
    }
    np_blocking(join_thread, &th);
    CHECK_EQ(np_wg_done(&wwg), 0);
}

static void wg_case(int procs)
{
    t_procs(procs);
    wg_rounds = t_scaled(2000);
    T_RUN(wg_main, NULL);
}

static void t_wg_done_wakes_waiter_1p(void) { wg_case(1); }
static void t_wg_done_wakes_waiter_2p(void) { wg_case(2); }

/* ---- np_blocking's fn is a foreign thread ----------------------------------------------- */

static _Atomic int bl_ran;
static np_wg bl_wg = NP_WG_INIT;

static void bl_co(void *arg)
{
    atomic_fetch_add(&bl_ran, 1);
    np_wg_done(&bl_wg);
}

static void *bl_fn(void *arg)
{
    np_chan *c = arg;
    CHECK_EQ(np_id(), 0);
    CHECK(np_go(bl_co, NULL) > 0);
    long v = 5;
    CHECK_EQ(np_chan_trysend(c, &v), 0);
    CHECK_EQ(np_wg_done(&bl_wg), 0);
    np_mutex mu = NP_MUTEX_INIT;
    CHECK_EQ(np_mutex_trylock(&mu), 0);
    CHECK_ERR(np_mutex_trylock(&mu), EBUSY);
    CHECK_EQ(np_mutex_unlock(&mu), 0);
    return NULL;
}

static void bl_main(void *arg)
{
    np_chan *c = np_chan_new(sizeof(long), 1);
    CHECK(c);
    CHECK_EQ(np_wg_add(&bl_wg, 2), 0);
    for (int i = 0; i < 50; i++) {
        CHECK(np_blocking(bl_fn, c) == NULL);
        long v = 0;
        CHECK_EQ(np_chan_recv(c, &v), 1);
        CHECK_EQ(v, 5);
        CHECK_EQ(np_wg_wait(&bl_wg), 0);
        CHECK_EQ(np_wg_add(&bl_wg, 2), 0);
    }
    CHECK_EQ(np_wg_add(&bl_wg, -2), 0);
    CHECK_EQ(atomic_load(&bl_ran), 50);
    CHECK_EQ(np_chan_free(c), 0);
}

static void t_blocking_fn_is_foreign_1p(void)
{
    t_procs(1);
    T_RUN(bl_main, NULL);
}

static void t_blocking_fn_is_foreign_2p(void)
{
    t_procs(2);
    T_RUN(bl_main, NULL);
}

/* main returns while np_blocking's fn keeps making foreign channel calls: np_run waits
 * for that fn's M, so the call it is waiting in (one P: for a coroutine that will not
 * run any more) must end at once, with ECANCELED, and the next with EPERM. */
static _Atomic long bs_calls;
static _Atomic int bs_err;

static void *bs_fn(void *arg)
{
    long v = 1;
    for (;;) {
        int r = np_chan_trysend(arg, &v);
        if (r == 0 || t_errno() == EAGAIN) {
            atomic_fetch_add(&bs_calls, 1);
            continue;
        }
        atomic_store(&bs_err, t_errno());
        return NULL;
    }
}

static void bs_worker(void *arg) { np_blocking(bs_fn, arg); }

static void bs_drain(void *arg)
{
    while (np_chan_recv(arg, NULL) == 1) {
    }
}

static void bs_main(void *arg)
{
    CHECK(np_go(bs_drain, arg) > 0);
    CHECK(np_go(bs_worker, arg) > 0);
    int64_t t0 = np_now();
    while (atomic_load(&bs_calls) < 20) {
        if (np_now() - t0 > 10 * SEC)
            FAILF("np_blocking's fn made no foreign call");
        CHECK_EQ(np_yield(), 0);
    }
    /* return: the fn is still calling */
}

static void blocking_stop(int procs)
{
    t_procs(procs);
    for (int i = 0; i < 5; i++) {
        np_chan *c = np_chan_new(sizeof(long), 1);
        CHECK(c);
        atomic_store(&bs_calls, 0);
        atomic_store(&bs_err, 0);
        T_RUN(bs_main, c);
        int e = atomic_load(&bs_err);
        if (e != EPERM && e != ECANCELED)
            FAILF("np_blocking's fn ended with errno %d, want EPERM or ECANCELED", e);
        CHECK_EQ(np_chan_free(c), 0);
    }
}

static void t_stop_under_blocking_foreign_call_1p(void) { blocking_stop(1); }
static void t_stop_under_blocking_foreign_call_2p(void) { blocking_stop(2); }

/* ---- no runtime ------------------------------------------------------------------------- */

static void never(void *arg) { FAILF("a coroutine ran without a runtime"); }

static void *no_runtime_calls(void *arg)
{
    np_chan *c = np_chan_new(sizeof(int), 1);
    CHECK(c);
    int v = 1;
    np_attr at = {0};
    CHECK_ERR(np_go(never, NULL), EPERM);
    CHECK_ERR(np_go_attr(&at, never, NULL), EPERM);
    CHECK_ERR(np_go(NULL, NULL), EINVAL);
    CHECK_ERR(np_chan_trysend(c, &v), EPERM);
    CHECK_ERR(np_chan_tryrecv(c, &v), EPERM);
    CHECK_ERR(np_chan_close(c), EPERM);
    CHECK_EQ(np_chan_len(c), 0);
    np_wg w = NP_WG_INIT;
    CHECK_EQ(np_wg_add(&w, 1), 0);
    CHECK_EQ(np_wg_done(&w), 0);
    np_mutex mu = NP_MUTEX_INIT; /* no runtime: nothing to race with */
    CHECK_EQ(np_mutex_trylock(&mu), 0);
    CHECK_EQ(np_mutex_unlock(&mu), 0);
    CHECK_EQ(np_chan_free(c), 0);
    return NULL;
}

static void quick_main(void *arg) { CHECK(np_procs() > 0); }

static void t_no_runtime_eperm(void)
{
    no_runtime_calls(NULL);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, no_runtime_calls, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    T_RUN(quick_main, NULL);
    no_runtime_calls(NULL);
    CHECK_EQ(pthread_create(&th, NULL, no_runtime_calls, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
}

/* ---- np_run returning under foreign threads' calls ------------------------------------ */

static _Atomic int td_ended;   /* np_run has returned */
static _Atomic long td_ran;    /* foreign coroutines that ran (this round) */
static _Atomic long td_ok, td_cancelled;
static np_chan *td_c;
static np_wg td_wg = NP_WG_INIT;

static void td_co(void *arg) { atomic_fetch_add(&td_ran, 1); }

/* A call made when np_run had returned (ended, read before it) must fail with EPERM;
 * one made before may also fail with ECANCELED (it waited for the runtime, which
 * stopped) or EAGAIN. True: stop, EPERM after the end seen. */
static bool td_after(bool ended, int64_t r, int e, const char *what)
{
    if (r >= 0) {
        if (ended)
            FAILF("%s succeeded after np_run returned", what);
        atomic_fetch_add(&td_ok, 1);
        return false;
    }
    if (e == ECANCELED)
        atomic_fetch_add(&td_cancelled, 1);
    if (ended && e != EPERM)
        FAILF("%s after np_run returned: errno %d, want EPERM", what, e);
    if (e != EPERM && e != ECANCELED && e != EAGAIN)
        FAILF("%s: errno %d (%s)", what, e, strerror(e));
    return ended;
}

static _Atomic long td_started;

static void *td_go(void *arg)
{
    for (;;) {
        /* not too far ahead of the P(s): under TSan each new coroutine costs */
        if (!atomic_load(&td_ended) && atomic_load(&td_started) - atomic_load(&td_ran) > 1000) {
            sched_yield();
            continue;
        }
        bool ended = atomic_load(&td_ended);
        int64_t id = np_go(td_co, NULL);
        if (id > 0)
            atomic_fetch_add(&td_started, 1);
        if (td_after(ended, id, t_errno(), "np_go"))
            return NULL;
    }
}

static void *td_send(void *arg)
{
    for (long i = 0;; i++) {
        bool ended = atomic_load(&td_ended);
        int r = np_chan_trysend(td_c, &i);
        if (td_after(ended, r, t_errno(), "np_chan_trysend"))
            return NULL;
    }
}

static void *td_wg_thread(void *arg)
{
    for (;;) {
        bool ended = atomic_load(&td_ended);
        CHECK_EQ(np_wg_add(&td_wg, 1), 0);
        CHECK_EQ(np_wg_done(&td_wg), 0); /* wakes (or, once stopping, drops) the waiter */
        if (ended)
            return NULL;
    }
}

static np_cond td_cv = NP_COND_INIT;
static np_mutex td_mu = NP_MUTEX_INIT;

static void *td_cond_thread(void *arg)
{
    for (;;) {
        bool ended = atomic_load(&td_ended);
        CHECK_EQ(np_cond_signal(&td_cv), 0); /* (once stopping: leaves the waiter) */
        CHECK_EQ(np_cond_broadcast(&td_cv), 0);
        if (ended)
            return NULL;
    }
}

static void td_cond_waiter(void *arg)
{
    CHECK_EQ(np_mutex_lock(&td_mu), 0);
    for (;;)
        CHECK_EQ(np_cond_wait(&td_cv, &td_mu), 0);
}

static void td_receiver(void *arg)
{
    long v;
    while (np_chan_recv(td_c, &v) == 1) {
    }
}

static void td_waiter(void *arg)
{
    for (;;) {
        np_wg_wait(&td_wg);
        np_yield();
    }
}

static void td_main(void *arg)
{
    CHECK(np_go(td_receiver, NULL) > 0);
    CHECK(np_go(td_waiter, NULL) > 0);
    CHECK(np_go(td_cond_waiter, NULL) > 0);
    /* until the foreign coroutines run; then return with the threads still at it */
    int64_t t0 = np_now();
    while (atomic_load(&td_ran) < 20) {
        if (np_now() - t0 > 10 * SEC)
            FAILF("no foreign coroutine ran");
        np_yield();
    }
}

static void teardown_race(int procs)
{
    t_procs(procs);
    long rounds = t_scaled(30);
    for (long r = 0; r < rounds; r++) {
        /* (each round its own channel and group: the last one's waiters are abandoned) */
        td_c = np_chan_new(sizeof(long), 1);
        CHECK(td_c);
        memset(&td_wg, 0, sizeof td_wg);
        memset(&td_cv, 0, sizeof td_cv); /* (the last round's waiter was abandoned) */
        memset(&td_mu, 0, sizeof td_mu);
        atomic_store(&td_ended, 0);
        atomic_store(&td_ran, 0);
        atomic_store(&td_started, 0);
        pthread_t th[4];
        /* started before np_run: their first calls see no runtime (EPERM) */
        CHECK_EQ(pthread_create(&th[0], NULL, td_go, NULL), 0);
        CHECK_EQ(pthread_create(&th[1], NULL, td_send, NULL), 0);
        CHECK_EQ(pthread_create(&th[2], NULL, td_wg_thread, NULL), 0);
        CHECK_EQ(pthread_create(&th[3], NULL, td_cond_thread, NULL), 0);
        T_RUN(td_main, NULL);
        atomic_store(&td_ended, 1);
        for (int i = 0; i < 4; i++)
            CHECK_EQ(pthread_join(th[i], NULL), 0);
        CHECK_EQ(np_chan_free(td_c), 0);
    }
    printf("note: %ld rounds: %ld calls went through, %ld cancelled\n", rounds,
           atomic_load(&td_ok), atomic_load(&td_cancelled));
}

static void t_teardown_race_1p(void) { teardown_race(1); }
static void t_teardown_race_2p(void) { teardown_race(2); }

static const t_case cases[] = {
    T(t_go_from_8_threads_1p),
    T(t_go_from_8_threads_2p),
    T(t_poller_runs_foreign_go_1p),
    T(t_poller_runs_foreign_go_2p),
    T(t_asleep_runs_foreign_go_1p),
    T(t_asleep_runs_foreign_go_2p),
    T(t_trysend_to_receiver_1p),
    T(t_trysend_to_receiver_2p),
    T(t_tryrecv_from_sender_1p),
    T(t_tryrecv_from_sender_2p),
    T(t_chan_edges_1p),
    T(t_chan_edges_2p),
    T(t_chan_shared_with_coroutines_1p),
    T(t_chan_shared_with_coroutines_2p),
    T(t_chan_serialized_with_coroutines_1p),
    T(t_mutex_trylock_serialized_with_coroutines_1p),
    T(t_mutex_shared_with_coroutines_1p),
    T(t_mutex_shared_with_coroutines_2p),
    T(t_wg_done_wakes_waiter_1p),
    T(t_wg_done_wakes_waiter_2p),
    T(t_blocking_fn_is_foreign_1p),
    T(t_blocking_fn_is_foreign_2p),
    T(t_stop_under_blocking_foreign_call_1p),
    T(t_stop_under_blocking_foreign_call_2p),
    T(t_no_runtime_eperm),
    T(t_teardown_race_1p),
    T(t_teardown_race_2p),
    {0},
};

T_MAIN(cases)
