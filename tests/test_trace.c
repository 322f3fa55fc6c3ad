/* The execution tracer: programs of known behaviour traced, their JSON checked by
 * tests/trace_check.py (Python's json; the scenario's events in order, every slice
 * closed, every async begin ended, every flow with both ends); the flight recorder's
 * snapshot (by call, on SIGQUIT, on a crash) bounded and holding the last events; the
 * API's errors; np-trace's summary. Traces go to build/test-logs/trace/. */
#include "t.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define MS 1000000LL

static char tdir[512];

static const char *tpath(const char *name)
{
    static char p[700];
    if (!tdir[0]) {
        snprintf(tdir, sizeof tdir, "build/test-logs/trace");
        mkdir("build", 0755);
        mkdir("build/test-logs", 0755);
        mkdir(tdir, 0755);
    }
    snprintf(p, sizeof p, "%s/%s-%d.json", tdir, name, (int)getpid());
    return p;
}

/* tests/trace_check.py SCENARIO FILE ARGS...: 0 when the trace is as expected */
static int check_trace(const char *scen, const char *file, const char *args)
{
    char cmd[4000];
    snprintf(cmd, sizeof cmd, "python3 tests/trace_check.py %s '%s' %s", scen, file, args ? args : "");
    fflush(stdout);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The coroutines' functions are not static: the trace names them (dladdr, -rdynamic). */
void pinger(void *a), ponger(void *a), pingpong_main(void *a), sleeper(void *a), sleeper_main(void *a),
    reader(void *a), socket_main(void *a), blocker(void *a), ticker(void *a), blocking_main(void *a),
    worker(void *a), steal_main(void *a), annotator(void *a), regions_main(void *a), errors_main(void *a),
    ring_main(void *a), sigquit_main(void *a), env_main(void *a), foreign_child(void *a), window_main(void *a),
    churner(void *a), churn_main(void *a), spun_child(void *a), spinning_main(void *a),
    full_quit_main(void *a), snapper(void *a), restarter(void *a), race_main(void *a),
    quitrace_main(void *a), log_only_main(void *a);

/* ---- ping-pong: two coroutines over unbuffered channels -------------------------------- */

enum { ROUNDS = 5 };
static np_chan *ping, *pong;
static np_wg pp_wg;

void pinger(void *a)
{
    (void)a;
    for (int i = 0; i < ROUNDS; i++) {
        CHECK_EQ(np_chan_send(ping, &i), 0);
        int v;
        CHECK_EQ(np_chan_recv(pong, &v), 1);
        CHECK_EQ(v, i);
    }
    np_wg_done(&pp_wg);
}

void ponger(void *a)
{
    (void)a;
    for (int i = 0; i < ROUNDS; i++) {
        int v;
        CHECK_EQ(np_chan_recv(ping, &v), 1);
        CHECK_EQ(np_chan_send(pong, &v), 0);
    }
    np_wg_done(&pp_wg);
}

void pingpong_main(void *a)
{
    CHECK_EQ(np_trace_start((const char *)a), 0);
    CHECK_EQ(np_trace_on(), 1);
    ping = np_chan_new(sizeof(int), 0);
    pong = np_chan_new(sizeof(int), 0);
    np_wg_add(&pp_wg, 2);
    np_go(pinger, NULL);
    np_go(ponger, NULL);
    CHECK_EQ(np_wg_wait(&pp_wg), 0);
    CHECK_EQ(np_trace_stop(), 0);
    CHECK_EQ(np_trace_on(), 0);
    np_chan_free(ping);
    np_chan_free(pong);
}

static void t_pingpong_in_order(void)
{
    t_procs(1);
    const char *f = tpath("pingpong");
    T_RUN(pingpong_main, (void *)f);
    char args[64];
    snprintf(args, sizeof args, "rounds=%d", ROUNDS);
    CHECK_EQ(check_trace("pingpong", f, args), 0);
}

/* ---- a sleeper, woken by a timer ----------------------------------------------------- */

void sleeper(void *a)
{
    np_trace_log("sleep", "20 ms"); /* (its time is before the sleep's deadline is taken) */
    np_sleep(20 * MS);
    if (a)
        np_wg_done(a);
}

void sleeper_main(void *a)
{
    CHECK_EQ(np_trace_start((const char *)a), 0);
    np_wg wg = {0};
    np_wg_add(&wg, 1);
    CHECK(np_go(sleeper, &wg) > 0);
    np_wg_wait(&wg);
    CHECK_EQ(np_trace_stop(), 0);
}

static void t_sleeper_woken_by_timer(void)
{
    t_procs(1);
    const char *f = tpath("sleeper");
    T_RUN(sleeper_main, (void *)f);
    CHECK_EQ(check_trace("sleeper", f, "ms=20"), 0);
    /* and np-trace's summary of it */
    CHECK_EQ(check_trace("summary", f, "ms=20"), 0);
}

/* ---- a coroutine blocked on a socket, woken by the netpoller -------------------------- */

static int sock[2];
static np_wg rd_wg;

void reader(void *a)
{
    (void)a;
    char b[8];
    CHECK_EQ(np_read(sock[0], b, sizeof b), 3);
    np_wg_done(&rd_wg);
}

void socket_main(void *a)
{
    CHECK_EQ(np_fd_open(sock[0]), 0);
    CHECK_EQ(np_fd_open(sock[1]), 0);
    CHECK_EQ(np_trace_start((const char *)a), 0);
    np_wg_add(&rd_wg, 1);
    np_go(reader, NULL);
    wait_blocked(NP_WAIT_IO, 1);
    np_sleep(10 * MS);
    CHECK_EQ(np_write(sock[1], "abc", 3), 3);
    np_wg_wait(&rd_wg);
    CHECK_EQ(np_trace_stop(), 0);
}

static void t_socket_wait_woken_by_netpoller(void)
{
    t_procs(1);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sock), 0);
    const char *f = tpath("socket");
    T_RUN(socket_main, (void *)f);
    char args[64];
    snprintf(args, sizeof args, "fd=%d ms=10", sock[0]);
    CHECK_EQ(check_trace("socket", f, args), 0);
}

/* ---- np_blocking: the P handed off while another coroutine goes on ---------------------- */

static _Atomic int blk_done;
static void *slow_call(void *a)
{
    (void)a;
    struct timespec ts = {0, 30 * MS};
    nanosleep(&ts, NULL);
    return NULL;
}
void blocker(void *a)
{
    (void)a;
    np_blocking(slow_call, NULL);
    atomic_store(&blk_done, 1);
}
void ticker(void *a)
{
    while (!atomic_load(&blk_done))
        np_sleep(MS); /* runs on while the blocker's thread is in its call */
    np_wg_done(a);
}

void blocking_main(void *a)
{
    CHECK_EQ(np_trace_start((const char *)a), 0);
    np_wg wg = {0};
    np_wg_add(&wg, 1);
    np_go(ticker, &wg);
    np_go(blocker, NULL);
    np_wg_wait(&wg);
    CHECK_EQ(np_trace_stop(), 0);
}

static void t_blocking_call_hands_off_p(void)
{
    t_procs(1);
    const char *f = tpath("blocking");
    T_RUN(blocking_main, (void *)f);
    CHECK_EQ(check_trace("blocking", f, "ms=30"), 0);
}

/* ---- a steal with two Ps -------------------------------------------------------------- */

static np_wg st_wg;
static t_threads st_threads = {.mu = NP_MUTEX_INIT};

/* Busy for 3 ms, and on until both threads have run a worker: when one thread is held
 * off by the OS the other may steal every worker in turn (nothing wrong), but the
 * trace is to show workers on both Ps. Bounded, so a scheduler that never shares the
 * work fails the check instead of hanging. */
void worker(void *a)
{
    (void)a;
    int64_t end = np_now() + 3 * MS, give_up = np_now() + 10000LL * MS * t_scale_v();
    t_threads_note(&st_threads);
    while (np_now() < end || (atomic_load(&st_threads.n) < 2 && np_now() < give_up))
        if (atomic_load(&st_threads.n) < 2)
            t_threads_note(&st_threads);
    np_wg_done(&st_wg);
}

/* Rounds until one traced a steal: a steal is likely, not certain (when the thread of
 * the P that made the workers is held off, a worker preempted there goes to the global
 * queue, and the other P takes the work from it without stealing). */
void steal_main(void *a)
{
    int rounds = 0;
    for (;;) {
        np_stats before, after;
        np_stats_get(&before);
        atomic_store(&st_threads.n, 0);
        CHECK_EQ(np_trace_start((const char *)a), 0);
        np_wg_add(&st_wg, 8);
        for (int i = 0; i < 8; i++)
            np_go(worker, NULL);
        np_wg_wait(&st_wg);
        CHECK_EQ(np_trace_stop(), 0);
        np_stats_get(&after);
        if (after.steals > before.steals && atomic_load(&st_threads.n) == 2)
            break;
        if (++rounds == 20)
            FAILF("no steal in %d rounds", rounds);
    }
}

static void t_steal_with_two_ps(void)
{
    t_procs(2);
    const char *f = tpath("steal");
    T_RUN(steal_main, (void *)f);
    CHECK_EQ(check_trace("steal", f, "workers=8"), 0);
}

/* ---- regions and logs ------------------------------------------------------------------ */

void annotator(void *a)
{
    (void)a;
    np_trace_region_begin("outer");
    np_sleep(MS);
    np_trace_region_begin("inner \"quoted\"");
    np_trace_log("phase", "step %d", 3);
    np_trace_region_end();
    np_trace_region_end();
    np_trace_region_end(); /* one too many: ignored */
    np_trace_region_begin("left open");
}

void regions_main(void *a)
{
    /* off: the annotations are no-ops */
    CHECK_EQ(np_trace_on(), 0);
    np_trace_region_begin("nothing");
    np_trace_log("x", "nothing");
    np_trace_region_end();
    CHECK_EQ(np_trace_start((const char *)a), 0);
    int64_t id = np_go(annotator, NULL);
    CHECK(id > 0);
    np_sleep(5 * MS);
    CHECK_EQ(np_trace_stop(), 0);
}

static void t_regions_and_logs(void)
{
    t_procs(1);
    const char *f = tpath("regions");
    T_RUN(regions_main, (void *)f);
    CHECK_EQ(check_trace("regions", f, ""), 0);
}

/* ---- start and stop while two Ps record ----------------------------------------------- */

static _Atomic int churn_stop;
static np_wg churn_wg;
void churner(void *a)
{
    np_chan *c = a;
    int v = 0;
    while (!atomic_load(&churn_stop)) {
        if (np_chan_send(c, &v) != 0 || np_chan_recv(c, &v) != 1)
            break;
        v++;
    }
    np_wg_done(&churn_wg);
}

/* Two churners exchanging messages (on both Ps with 2): every thread records. */
static np_chan *churn_begin(void)
{
    np_chan *c = np_chan_new(sizeof(int), 0);
    atomic_store(&churn_stop, 0);
    np_wg_add(&churn_wg, 2);
    np_go(churner, c);
    np_go(churner, c);
    return c;
}

static void churn_end(np_chan *c)
{
    atomic_store(&churn_stop, 1);
    np_chan_close(c);
    np_wg_wait(&churn_wg);
    np_chan_free(c);
}

/* fn on 2 Ps, writing its traces to NAME's file, which must then be a whole trace */
static void run_2p_any(np_fn fn, const char *name)
{
    t_procs(2);
    const char *f = tpath(name);
    T_RUN(fn, (void *)f);
    CHECK_EQ(check_trace("any", f, ""), 0);
}

void churn_main(void *a)
{
    const char *f = a;
    np_chan *c = churn_begin();
    long sessions = t_scaled(60);
    for (long i = 0; i < sessions; i++) {
        CHECK_EQ(np_trace_start(i % 2 ? "ring:64K" : f), 0);
        for (int k = 0; k < 100; k++)
            np_yield();
        if (i % 2)
            CHECK_EQ(np_trace_snapshot(f), 0);
        CHECK_EQ(np_trace_stop(), 0);
    }
    churn_end(c);
}

static void t_start_stop_while_recording(void) { run_2p_any(churn_main, "churn"); }

/* ---- snapshots and starts racing a stop ------------------------------------------------ */

/* Two coroutines start and stop flight recorders, a third takes snapshots, on 2 Ps while
 * churners record: a start succeeds or finds a session (EBUSY, also while a stop still
 * frees), a stop succeeds or finds none (EINVAL), a snapshot succeeds or finds no
 * recorder (EINVAL); no snapshot reads a buffer a stop freed (a fault, or ASan's report),
 * and the last one written is a whole trace. */
static _Atomic int race_end;
static _Atomic long race_snaps, race_sessions;
static np_wg race_wg;

void snapper(void *a)
{
    while (!atomic_load(&race_end)) {
        if (np_trace_snapshot((const char *)a) == 0)
            atomic_fetch_add(&race_snaps, 1);
        else
            CHECK_EQ(errno, EINVAL);
        np_yield();
    }
    np_wg_done(&race_wg);
}

void restarter(void *a)
{
    (void)a;
    while (!atomic_load(&race_end)) {
        if (np_trace_start("ring:64K") == 0)
            atomic_fetch_add(&race_sessions, 1);
        else
            CHECK_EQ(errno, EBUSY);
        for (int k = 0; k < 50; k++)
            np_yield();
        if (np_trace_stop() != 0)
            CHECK_EQ(errno, EINVAL);
    }
    np_wg_done(&race_wg);
}

void race_main(void *a)
{
    np_chan *c = churn_begin();
    np_wg_add(&race_wg, 3);
    np_go(snapper, a);
    np_go(restarter, NULL);
    np_go(restarter, NULL);
    long want = t_scaled(400);
    int64_t t0 = np_now();
    while (atomic_load(&race_sessions) < want || atomic_load(&race_snaps) < 100) {
        if (np_now() - t0 > 20000 * MS * t_scale_v())
            FAILF("%ld sessions, %ld snapshots", (long)atomic_load(&race_sessions),
                  (long)atomic_load(&race_snaps));
        np_yield();
    }
    atomic_store(&race_end, 1);
    np_wg_wait(&race_wg);
    if (np_trace_on())
        CHECK_EQ(np_trace_stop(), 0);
    churn_end(c);
}

static void t_snapshot_and_start_race_stop(void) { run_2p_any(race_main, "race"); }

/* ---- a waker that has run since before the trace began, and never stops in it ---------- */

static _Atomic int spun;
void spun_child(void *a)
{
    (void)a;
    atomic_store(&spun, 1);
}

void spinning_main(void *a)
{
    CHECK_EQ(np_trace_start((const char *)a), 0);
    CHECK(np_go(spun_child, NULL) > 0);
    while (!atomic_load(&spun)) { /* the other P runs it; this coroutine never parks */
    }
    CHECK_EQ(np_trace_stop(), 0);
}

static void t_waker_running_since_before_start(void)
{
    t_procs(2);
    const char *f = tpath("spinning");
    T_RUN(spinning_main, (void *)f);
    CHECK_EQ(check_trace("spinning", f, ""), 0);
}

/* ---- the API's errors ------------------------------------------------------------------- */

void errors_main(void *a)
{
    (void)a;
    CHECK_ERR(np_trace_stop(), EINVAL);
    CHECK_ERR(np_trace_snapshot(tpath("none")), EINVAL);
    CHECK_ERR(np_trace_start(NULL), EINVAL);
    CHECK_ERR(np_trace_start(""), EINVAL);
    CHECK_ERR(np_trace_start("ring:"), EINVAL);
    CHECK_ERR(np_trace_start("ring:12Q"), EINVAL);
    CHECK_ERR(np_trace_start("ring:100"), EINVAL); /* under 4 KiB */
    CHECK_ERR(np_trace_start("/nonexistent-dir/x.json"), ENOENT);
    CHECK_EQ(np_trace_start(tpath("errors")), 0);
    CHECK_ERR(np_trace_start("ring:1M"), EBUSY);
    CHECK_ERR(np_trace_snapshot(tpath("none")), EINVAL); /* full, not a ring */
    CHECK_EQ(np_trace_stop(), 0);
    CHECK_ERR(np_trace_stop(), EINVAL);
    CHECK_EQ(np_trace_start("ring:64K"), 0);
    CHECK_ERR(np_trace_snapshot(NULL), EINVAL);
    CHECK_ERR(np_trace_snapshot("/nonexistent-dir/x.json"), ENOENT);
    CHECK_EQ(np_trace_stop(), 0);
}

static void t_api_errors(void)
{
    t_procs(1);
    T_RUN(errors_main, NULL);
    CHECK_EQ(check_trace("any", tpath("errors"), ""), 0);
}

/* ---- the flight recorder --------------------------------------------------------------- */

/* yields, a mark in the trace every 100 */
static void rounds(int from, int to)
{
    for (int i = from; i < to; i++) {
        if (i % 100 == 0)
            np_trace_log("mark", "round %d", i);
        np_yield();
    }
}

void ring_main(void *a)
{
    const char *snap = a;
    CHECK_EQ(np_trace_start("ring:64K"), 0);
    rounds(0, 20000);
    CHECK_EQ(np_trace_snapshot(snap), 0);
    rounds(20000, 20300); /* recording goes on */
    CHECK_EQ(np_trace_snapshot(snap), 0);
    CHECK_EQ(np_trace_stop(), 0);
}

static void t_ring_snapshot_bounded_holds_last(void)
{
    t_procs(1);
    const char *f = tpath("ring");
    T_RUN(ring_main, (void *)f);
    /* 64 KiB of events per thread: 1,024 slots; a few hundred bytes of JSON each */
    CHECK_EQ(check_trace("ring", f, "max_bytes=600000 last='round 20200' absent='round 19000'"), 0);
}

/* A ring that has not wrapped keeps everything from the start, though another thread's
 * ring begins later (a foreign thread's np_go). */
static np_wg fg_wg;
void foreign_child(void *a)
{
    (void)a;
    np_wg_done(&fg_wg);
}
static void *foreign_thread(void *a)
{
    (void)a;
    CHECK(np_go(foreign_child, NULL) > 0);
    return NULL;
}

void window_main(void *a)
{
    CHECK_EQ(np_trace_start("ring:64K"), 0);
    np_trace_log("mark", "first");
    np_wg_add(&fg_wg, 1);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_thread, NULL), 0);
    np_wg_wait(&fg_wg);
    CHECK_EQ(pthread_join(th, NULL), 0);
    np_trace_log("mark", "last");
    CHECK_EQ(np_trace_snapshot((const char *)a), 0);
    CHECK_EQ(np_trace_stop(), 0);
}

static void t_ring_unwrapped_keeps_its_start(void)
{
    t_procs(1);
    const char *f = tpath("window");
    T_RUN(window_main, (void *)f);
    CHECK_EQ(check_trace("window", f, ""), 0);
}

/* A child: NP_TRACE=ring:64K, the flight recorder's snapshot on SIGQUIT (or a crash);
 * its standard error (the dump) in errf. */
void sigquit_main(void *a)
{
    rounds(0, 20000);
    np_trace_log("mark", "before the signal");
    raise(a ? SIGSEGV : SIGQUIT); /* (a store through NULL would stop at UBSan's check) */
}

static bool snapshot_path(const char *errf, char *path, size_t n);

static void child_traced(const char *spec, np_fn fn, void *arg, bool dumpcontinue, const char *errf,
                         int *status)
{
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        setenv("NP_TRACE", spec, 1);
        setenv("NP_TRACE_DIR", tdir, 1);
        if (dumpcontinue)
            setenv("NP_DUMP", "continue", 1);
        else
            unsetenv("NP_DUMP");
        t_procs(1);
        np_run(fn, arg);
        _exit(0);
    }
    CHECK_EQ(waitpid(pid, status, 0), pid);
}

static void child_with_ring(bool crash, const char *errf, int *status)
{
    child_traced("ring:64K", sigquit_main, crash ? (void *)1 : NULL, false, errf, status);
}

/* Full tracing and SIGQUIT (the program goes on): the trace so far is written to its
 * file at the signal, the whole one at the end. */
void full_quit_main(void *a)
{
    (void)a;
    rounds(0, 3000);
    np_trace_log("mark", "before the signal");
    raise(SIGQUIT);
    rounds(3000, 6000);
    np_trace_log("mark", "after the signal");
}

static void t_full_written_on_sigquit_and_at_exit(void)
{
    tpath("x");
    char errf[1200], path[1100];
    snprintf(errf, sizeof errf, "%s/fullquit-%d.err", tdir, (int)getpid());
    const char *f = tpath("fullquit");
    int st;
    child_traced(f, full_quit_main, NULL, true, errf, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!snapshot_path(errf, path, sizeof path))
        FAILF("the dump names no trace file (%.150s)", errf);
    CHECK_EQ(strcmp(path, f), 0);
    CHECK_EQ(check_trace("marks", f, "want='before the signal,after the signal'"), 0);
}

/* the path the dump named: "np: trace written to PATH (N events)" */
static bool snapshot_path(const char *errf, char *path, size_t n)
{
    FILE *f = fopen(errf, "r");
    if (!f)
        return false;
    char line[1200];
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        const char *k = strstr(line, "np: trace written to ");
        if (k) {
            k += strlen("np: trace written to ");
            const char *e = strstr(k, " (");
            if (e && (size_t)(e - k) < n) {
                memcpy(path, k, (size_t)(e - k));
                path[e - k] = 0;
                found = true;
            }
        }
    }
    fclose(f);
    return found;
}

static void t_ring_written_on_sigquit(void)
{
    tpath("x");
    char errf[1200], path[1100];
    snprintf(errf, sizeof errf, "%s/sigquit-%d.err", tdir, (int)getpid());
    int st;
    child_with_ring(false, errf, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2); /* SIGQUIT: dump, exit 2 (as Go) */
    if (!snapshot_path(errf, path, sizeof path))
        FAILF("the dump names no trace file (%.150s)", errf);
    CHECK(strstr(path, "/np-trace.") != NULL);
    CHECK_EQ(check_trace("ring", path, "max_bytes=600000 last='before the signal' absent='round 0'"), 0);
    unlink(path);
}

static void t_ring_written_on_crash(void)
{
    tpath("x");
    char errf[1200], path[1100];
    snprintf(errf, sizeof errf, "%s/crash-%d.err", tdir, (int)getpid());
    int st;
    child_with_ring(true, errf, &st);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    if (!snapshot_path(errf, path, sizeof path))
        FAILF("the crash report names no trace file (%.150s)", errf);
    CHECK_EQ(check_trace("ring", path, "max_bytes=600000 last='before the signal' absent='round 0'"), 0);
    unlink(path);
}

/* SIGQUIT (the program goes on) while the flight recorder is stopped and started again
 * and again: a thread sends a signal each time a new session begins, so some land while
 * a stop frees the buffers. The program lives on, and every snapshot named is whole. */
static _Atomic long qr_sessions;
static _Atomic int qr_sent;
enum { QR_SIGNALS = 30 };

static void *quit_sender(void *a)
{
    (void)a;
    long seen = 0;
    for (int i = 0; i < QR_SIGNALS; i++) {
        while (atomic_load(&qr_sessions) == seen)
            sched_yield();
        seen = atomic_load(&qr_sessions);
        kill(getpid(), SIGQUIT);
    }
    atomic_store(&qr_sent, 1);
    return NULL;
}

static void *join_thread(void *a)
{
    pthread_join(*(pthread_t *)a, NULL);
    return NULL;
}

void quitrace_main(void *a)
{
    (void)a;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, quit_sender, NULL), 0);
    while (!atomic_load(&qr_sent)) {
        if (np_trace_on())
            CHECK_EQ(np_trace_stop(), 0);
        CHECK_EQ(np_trace_start("ring:16K"), 0);
        atomic_fetch_add(&qr_sessions, 1);
        rounds(0, 50);
    }
    np_blocking(join_thread, &th);
}

/* A child on a ring:16K recorder, NP_DUMP=continue, running fn: it exits 0, and the last
 * snapshot its dumps name passes trace_check's scenario scen. */
static void child_snapshot_checked(const char *name, np_fn fn, const char *scen)
{
    tpath("x");
    char errf[1200], path[1100];
    snprintf(errf, sizeof errf, "%s/%s-%d.err", tdir, name, (int)getpid());
    int st;
    child_traced("ring:16K", fn, NULL, true, errf, &st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!snapshot_path(errf, path, sizeof path))
        FAILF("no dump named a trace file (%.150s)", errf);
    CHECK_EQ(check_trace(scen, path, ""), 0);
}

static void t_sigquit_races_stop(void) { child_snapshot_checked("quitrace", quitrace_main, "any"); }

/* A SIGQUIT's snapshot when a coroutine's only event is a log line (the signal right
 * after a start, as above): the log is on the coroutine's track, and that track named. */
void log_only_main(void *a)
{
    (void)a;
    CHECK_EQ(np_trace_stop(), 0);
    CHECK_EQ(np_trace_start("ring:16K"), 0);
    np_trace_log("mark", "alone");
    raise(SIGQUIT);
    CHECK_EQ(np_trace_stop(), 0);
}

static void t_log_only_coroutine_named(void) { child_snapshot_checked("logonly", log_only_main, "logonly"); }

/* ---- NP_TRACE=FILE: from np_run's start to its end -------------------------------------- */

void env_main(void *a)
{
    (void)a;
    np_wg wg = {0};
    np_wg_add(&wg, 1);
    np_go(sleeper, &wg);
    np_wg_wait(&wg);
}

static void t_env_file_whole_run(void)
{
    t_procs(1);
    const char *f = tpath("env");
    setenv("NP_TRACE", f, 1);
    T_RUN(env_main, NULL);
    unsetenv("NP_TRACE");
    CHECK_EQ(check_trace("env", f, "ms=20"), 0);
    /* a bad NP_TRACE: said, and the program runs untraced */
    setenv("NP_TRACE", "ring:nonsense", 1);
    T_RUN(env_main, NULL);
    unsetenv("NP_TRACE");
}

static const t_case cases[] = {
    T(t_pingpong_in_order),
    T(t_sleeper_woken_by_timer),
    T(t_socket_wait_woken_by_netpoller),
    T(t_blocking_call_hands_off_p),
    T(t_steal_with_two_ps),
    T(t_regions_and_logs),
    T(t_start_stop_while_recording),
    T(t_snapshot_and_start_race_stop),
    T(t_waker_running_since_before_start),
    T(t_api_errors),
    T(t_ring_snapshot_bounded_holds_last),
    T(t_ring_unwrapped_keeps_its_start),
    T(t_ring_written_on_sigquit),
    T(t_ring_written_on_crash),
    T(t_full_written_on_sigquit_and_at_exit),
    T(t_sigquit_races_stop),
    T(t_log_only_coroutine_named),
    T(t_env_file_whole_run),
    {0},
};
T_MAIN(cases)
