/* The netpoller and the fd layer, on the back end named by NP_POLLER (tests/run.sh
 * runs this file once per back end): readiness races, close and deadlines while
 * blocked, descriptor reuse, pipes, a pty, many socketpairs streaming. */
#include "t.h"
#include "netpoll/netpoll.h"
#include "sched/poll.h"
#include "netpoll/netpoll_lt.h"
#include "fd/fd.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define MS 1000000LL

static void sockpair(int sv[2])
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(np_fd_open(sv[0]), 0);
    CHECK_EQ(np_fd_open(sv[1]), 0);
}

/* Exactly n coroutines parked in the poller. */
static void wait_parked(int n) { wait_blocked(NP_WAIT_IO, n); }

/* ---- readiness race stress ---------------------------------------------------------- */

static np_wg race_wg = NP_WG_INIT;
static long race_rounds;

static void race_echo(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    for (long i = 0; i < race_rounds; i++) {
        CHECK_EQ(np_read(fd, &c, 1), 1);
        CHECK_EQ(np_write(fd, &c, 1), 1);
    }
    np_wg_done(&race_wg);
}

static void race_ping(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (long i = 0; i < race_rounds; i++) {
        char c = (char)i, d;
        CHECK_EQ(np_write(fd, &c, 1), 1);
        CHECK_EQ(np_read(fd, &d, 1), 1);
        CHECK_EQ(c, d);
    }
    np_wg_done(&race_wg);
}

static void race_main(void *arg)
{
    enum { PAIRS = 8 };
    int sv[PAIRS][2];
    race_rounds = t_scaled(100000) / PAIRS; /* 10^5 park/notify cycles in all */
    for (int i = 0; i < PAIRS; i++) {
        sockpair(sv[i]);
        np_wg_add(&race_wg, 2);
        np_go(race_echo, (void *)(intptr_t)sv[i][1]);
        np_go(race_ping, (void *)(intptr_t)sv[i][0]);
    }
    np_wg_wait(&race_wg);
    for (int i = 0; i < PAIRS; i++) {
        CHECK_EQ(np_close(sv[i][0]), 0);
        CHECK_EQ(np_close(sv[i][1]), 0);
    }
}

static void t_readiness_race_stress(void)
{
    t_procs(2);
    T_RUN(race_main, NULL);
}

/* ---- close while blocked ----------------------------------------------------------------- */

static np_chan *done_ch;

static void blocked_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b[16];
    ssize_t r = np_read(fd, b, sizeof b);
    int e = t_errno();
    int res = (r == -1 && e == EBADF) ? 1 : 0;
    np_chan_send(done_ch, &res);
}

static void blocked_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static char big[1 << 20];
    ssize_t r = np_write(fd, big, sizeof big); /* far more than the pipe holds */
    int e = t_errno();
    int res = (r == -1 && e == EBADF) ? 1 : 0;
    np_chan_send(done_ch, &res);
}

static void close_main(void *arg)
{
    done_ch = np_chan_new(sizeof(int), 4);
    int p[2], q[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(pipe(q), 0);
    CHECK_EQ(np_fd_open(p[0]), 0);
    CHECK_EQ(np_fd_open(q[1]), 0);
    np_go(blocked_reader, (void *)(intptr_t)p[0]);
    np_go(blocked_reader, (void *)(intptr_t)p[0]); /* a second one queued behind it */
    np_go(blocked_writer, (void *)(intptr_t)q[1]);
    wait_parked(2);                 /* the first reader and the writer */
    wait_blocked(NP_WAIT_MUTEX, 1); /* the second reader, for its turn */
    int64_t t = np_now();
    CHECK_EQ(np_close(p[0]), 0);
    CHECK_EQ(np_close(q[1]), 0);
    for (int i = 0; i < 3; i++) {
        int res = 0;
        CHECK_EQ(np_chan_recv(done_ch, &res), 1);
        CHECK_EQ(res, 1);
    }
    CHECK(np_now() - t < 2000 * MS);
    CHECK_ERR(np_read(p[0], &t, 1), EBADF);
    CHECK_ERR(np_close(p[0]), EBADF);
    close(p[1]);
    close(q[0]);
    np_chan_free(done_ch);
}

static void t_close_wakes_blocked_readers_and_writers(void)
{
    t_procs(2);
    T_RUN(close_main, NULL);
}

/* ---- deadlines ------------------------------------------------------------------------------ */

static void deadline_main(void *arg)
{
    int sv[2];
    sockpair(sv);
    char c;
    for (int i = 0; i < 5; i++) {
        int64_t d = np_now() + (20 + 10 * i) * MS;
        CHECK_EQ(np_set_read_deadline(sv[0], d), 0);
        CHECK_ERR(np_read(sv[0], &c, 1), ETIMEDOUT);
        int64_t late = np_now() - d;
        if (late < 0 || late > 15 * MS * t_scale_v()) /* early never; late: a loaded machine */
            FAILF("deadline fired %.3f ms from its time", late / 1e6);
        /* stays expired until changed */
        CHECK_ERR(np_read(sv[0], &c, 1), ETIMEDOUT);
    }
    /* a deadline in the past fails at once; clearing it lets I/O through */
    CHECK_EQ(np_set_deadline(sv[0], np_now() - MS), 0);
    CHECK_ERR(np_read(sv[0], &c, 1), ETIMEDOUT);
    CHECK_ERR(np_write(sv[0], "x", 1), ETIMEDOUT);
    CHECK_EQ(np_set_deadline(sv[0], 0), 0);
    CHECK_EQ(np_write(sv[1], "y", 1), 1);
    CHECK_EQ(np_read(sv[0], &c, 1), 1);
    CHECK_EQ(c, 'y');
    /* write deadline: fill the socket */
    CHECK_EQ(np_set_write_deadline(sv[0], np_now() + 30 * MS), 0);
    static char big[1 << 20];
    CHECK_ERR(np_write(sv[0], big, sizeof big), ETIMEDOUT);
    np_close(sv[0]);
    np_close(sv[1]);
}

static void t_deadline_fires_on_time_never_early(void)
{
    t_procs(2);
    T_RUN(deadline_main, NULL);
}

static int dl_fd;
static np_chan *dl_ch;

static void dl_reader(void *arg)
{
    char c;
    int64_t t0 = np_now();
    ssize_t r = np_read(dl_fd, &c, 1);
    int e = t_errno();
    int64_t res[3] = {r, e, np_now() - t0};
    np_chan_send(dl_ch, res);
}

/* Start dl_reader with a read deadline slack from now and wait until it is parked; on
 * a loaded machine it may reach its read only after the deadline (and fail at once):
 * then again with twice the slack. Returns the slack that worked. */
static int64_t start_parked_reader(int64_t slack)
{
    for (int attempt = 0; attempt < 6; attempt++, slack *= 2) {
        CHECK_EQ(np_set_read_deadline(dl_fd, np_now() + slack), 0);
        np_go(dl_reader, NULL);
        int64_t res[3], until = np_now() + 10000 * MS;
        for (;;) {
            np_stats st;
            CHECK_EQ(np_stats_get(&st), 0);
            if (st.waiting_by[NP_WAIT_IO] >= 1)
                return slack;
            if (np_chan_tryrecv(dl_ch, res) == 1) { /* too late: it timed out unparked */
                CHECK_EQ(res[1], ETIMEDOUT);
                break;
            }
            CHECK(np_now() < until);
            np_yield();
        }
    }
    FAILF("the reader never parked before its deadline");
    return 0;
}

static void dl_change_main(void *arg)
{
    int sv[2];
    sockpair(sv);
    dl_fd = sv[0];
    dl_ch = np_chan_new(sizeof(int64_t[3]), 1);
    int64_t res[3];

    /* extended while blocked: fires at the new time (slow builds get more slack to
     * reach the wait before the first deadline) */
    int64_t slack = start_parked_reader(30 * MS * t_scale_v());
    int64_t t1 = np_now() + slack + 90 * MS;
    CHECK_EQ(np_set_read_deadline(dl_fd, t1), 0);
    CHECK_EQ(np_chan_recv(dl_ch, res), 1);
    CHECK_EQ(res[0], -1);
    CHECK_EQ(res[1], ETIMEDOUT);
    CHECK(np_now() >= t1);

    /* cleared while blocked: no timeout, data arrives later */
    slack = start_parked_reader(slack);
    CHECK_EQ(np_set_read_deadline(dl_fd, 0), 0);
    np_sleep(slack + 50 * MS); /* past the old deadline: what is tested is that nothing fires */
    CHECK_EQ(np_write(sv[1], "z", 1), 1);
    CHECK_EQ(np_chan_recv(dl_ch, res), 1);
    CHECK_EQ(res[0], 1);

    /* shortened into the past while blocked: fails at once */
    CHECK_EQ(np_set_read_deadline(dl_fd, np_now() + 10000 * MS), 0);
    np_go(dl_reader, NULL);
    wait_parked(1);
    CHECK_EQ(np_set_read_deadline(dl_fd, np_now() - 1), 0);
    CHECK_EQ(np_chan_recv(dl_ch, res), 1);
    CHECK_EQ(res[1], ETIMEDOUT);
    CHECK(res[2] < 2000 * MS);
    np_close(sv[0]);
    np_close(sv[1]);
    np_chan_free(dl_ch);
}

static void t_deadline_extended_cleared_shortened_while_blocked(void)
{
    t_procs(2);
    T_RUN(dl_change_main, NULL);
}

/* ---- reuse: a stale timer must not touch the new descriptor ---------------------------------- */

static void reuse_main(void *arg)
{
    dl_ch = np_chan_new(sizeof(int64_t[3]), 1);
    for (int round = 0; round < 20; round++) {
        int sv[2];
        sockpair(sv);
        /* a deadline pending at close time */
        CHECK_EQ(np_set_read_deadline(sv[0], np_now() + 20 * MS), 0);
        int num = sv[0];
        CHECK_EQ(np_close(sv[0]), 0);
        int nv[2];
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, nv), 0);
        if (nv[0] != num) { /* make the new one take the old number */
            CHECK_EQ(dup2(nv[0], num), num);
            close(nv[0]);
            nv[0] = num;
        }
        CHECK_EQ(np_fd_open(nv[0]), 0);
        CHECK_EQ(np_fd_open(nv[1]), 0);
        dl_fd = nv[0];
        np_go(dl_reader, NULL);
        np_sleep(40 * MS); /* past the old deadline */
        CHECK_EQ(np_write(nv[1], "k", 1), 1);
        int64_t res[3];
        CHECK_EQ(np_chan_recv(dl_ch, res), 1);
        CHECK_EQ(res[0], 1); /* data, not ETIMEDOUT */
        np_close(nv[0]);
        np_close(nv[1]);
        np_close(sv[1]);
    }
    np_chan_free(dl_ch);
}

static void t_reuse_after_close_ignores_stale_timer(void)
{
    t_procs(2);
    T_RUN(reuse_main, NULL);
}

/* ---- pipes and a pty: two descriptors at once (the seeds' telnet) ------------------------------ */

static np_wg tn_wg = NP_WG_INIT;

static void tn_copy(void *arg)
{
    int *fds = arg;
    char b[256];
    ssize_t n;
    while ((n = np_read(fds[0], b, sizeof b)) > 0)
        if (np_write(fds[1], b, (size_t)n) != n)
            break;
    np_wg_done(&tn_wg);
}

static void pty_main(void *arg)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(m >= 0);
    CHECK_EQ(grantpt(m), 0);
    CHECK_EQ(unlockpt(m), 0);
    int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(s >= 0);
    int sv[2];
    sockpair(sv);
    CHECK_EQ(np_fd_open(m), 0);
    CHECK_EQ(np_fd_open(s), 0);
    /* terminal -> network and network -> terminal, both blocking-style */
    static int a[2], b[2];
    a[0] = m;
    a[1] = sv[0];
    b[0] = sv[0];
    b[1] = m;
    np_wg_add(&tn_wg, 2);
    np_go(tn_copy, a);
    np_go(tn_copy, b);
    /* a line typed at the terminal reaches the network peer */
    const char *line = "hello\n";
    CHECK_EQ(np_write(s, line, 6), 6);
    char got[64] = {0};
    size_t have = 0;
    while (have < 6) {
        ssize_t r = np_read(sv[1], got + have, sizeof got - have);
        CHECK(r > 0);
        have += (size_t)r;
    }
    CHECK(memmem(got, have, "hello", 5) != NULL);
    /* what the peer sends shows on the terminal */
    CHECK_EQ(np_write(sv[1], "world\n", 6), 6);
    have = 0;
    memset(got, 0, sizeof got);
    while (!memmem(got, have, "world", 5)) {
        ssize_t r = np_read(s, got + have, sizeof got - have - 1);
        CHECK(r > 0);
        have += (size_t)r;
    }
    np_close(sv[1]); /* ends network -> terminal with EOF */
    np_close(s);     /* the master then sees EIO/hangup: terminal -> network ends */
    np_wg_wait(&tn_wg);
    np_close(m);
    np_close(sv[0]);
}

static void t_pty_and_socket_both_ways(void)
{
    t_procs(2);
    T_RUN(pty_main, NULL);
}

static void pipe_main(void *arg)
{
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(np_fd_open(p[0]), 0);
    CHECK_EQ(np_fd_open(p[1]), 0);
    CHECK(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    static int fds[2];
    fds[0] = p[0];
    int q[2];
    CHECK_EQ(pipe(q), 0);
    CHECK_EQ(np_fd_open(q[0]), 0);
    CHECK_EQ(np_fd_open(q[1]), 0);
    fds[1] = q[1];
    np_wg_add(&tn_wg, 1);
    np_go(tn_copy, fds);
    long total = t_scaled(4 << 20);
    uint64_t seed = 7;
    char buf[70000];
    long sent = 0, recvd = 0;
    uint64_t rs = 7;
    while (sent < total) {
        size_t n = 1 + t_rand(&seed) % sizeof buf;
        if ((long)n > total - sent)
            n = (size_t)(total - sent);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)((sent + (long)i) * 31 % 251);
        CHECK_EQ(np_write(p[1], buf, n), n);
        sent += (long)n;
        /* drain what came through so the pipes never fill both ways */
        while (recvd < sent) {
            ssize_t r = np_read(q[0], buf, (size_t)(1 + t_rand(&rs) % 5000));
            CHECK(r > 0);
            for (ssize_t i = 0; i < r; i++)
                if (buf[i] != (char)((recvd + i) * 31 % 251))
                    FAILF("byte %ld wrong", recvd + (long)i);
            recvd += r;
        }
    }
    np_close(p[1]);
    np_wg_wait(&tn_wg);
    CHECK_EQ(np_close(q[1]), 0); /* the copier ended at EOF: now the reader sees EOF */
    char c;
    CHECK_EQ(np_read(q[0], &c, 1), 0);
    np_close(p[0]);
    np_close(q[0]);
}

static void t_pipes_stream_every_byte(void)
{
    t_procs(2);
    T_RUN(pipe_main, NULL);
}

/* ---- 1,000 socketpairs streaming --------------------------------------------------------------- */

#define NPAIRS 1000
static np_wg sp_wg = NP_WG_INIT;
static atomic_long sp_bytes;
static long sp_per;

static void sp_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    uint64_t seed = (uint64_t)fd * 977 + 1;
    char buf[9000];
    long off = 0;
    while (off < sp_per) {
        size_t n = 1 + t_rand(&seed) % sizeof buf;
        if ((long)n > sp_per - off)
            n = (size_t)(sp_per - off);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)((off + (long)i + fd) * 131 % 253);
        CHECK_EQ(np_write(fd, buf, n), n);
        off += (long)n;
    }
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    np_wg_done(&sp_wg);
}

static int sp_fd[NPAIRS][2];

static void sp_read(void *arg)
{
    int i = (int)(intptr_t)arg, fd = sp_fd[i][1], wfd = sp_fd[i][0];
    char buf[7000];
    long off = 0;
    ssize_t r;
    uint64_t seed = (uint64_t)i + 5;
    while ((r = np_read(fd, buf, 1 + t_rand(&seed) % sizeof buf)) > 0) {
        for (ssize_t k = 0; k < r; k++)
            if (buf[k] != (char)((off + k + wfd) * 131 % 253))
                FAILF("pair %d byte %ld wrong", i, off + (long)k);
        off += r;
    }
    CHECK_EQ(r, 0);
    CHECK_EQ(off, sp_per);
    atomic_fetch_add(&sp_bytes, off);
    np_wg_done(&sp_wg);
}

static void pairs_main(void *arg)
{
    int n = (int)t_scaled(NPAIRS);
    if (strcmp(np_poller_name(), "select") == 0 && n > (FD_SETSIZE - 100) / 2)
        n = (FD_SETSIZE - 100) / 2; /* select cannot watch more */
    sp_per = 64 * 1024;
    for (int i = 0; i < n; i++)
        sockpair(sp_fd[i]);
    np_wg_add(&sp_wg, 2 * n);
    for (int i = 0; i < n; i++) {
        np_go(sp_read, (void *)(intptr_t)i);
        np_go(sp_writer, (void *)(intptr_t)sp_fd[i][0]);
    }
    np_wg_wait(&sp_wg);
    CHECK_EQ(atomic_load(&sp_bytes), (long)n * sp_per);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(np_close(sp_fd[i][0]), 0);
        CHECK_EQ(np_close(sp_fd[i][1]), 0);
    }
}

static void t_thousand_socketpairs_every_byte(void)
{
    t_procs(2);
    T_RUN(pairs_main, NULL);
}

/* ---- concurrent readers take turns ----------------------------------------------------------------- */

/* Four readers share one socket, taking turns (one waits in the poller, the others for
 * their turn). The stream is numbered: byte k is k mod 251, so every read must return a
 * run of consecutive values, and over all readers each offset arrives exactly once
 * (counted per value: none lost, none twice). */
#define CR_MOD 251
static atomic_long cr_got;
static atomic_long cr_hist[CR_MOD];
static atomic_int cr_bad;

static void cr_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char b[3];
    ssize_t r;
    while ((r = np_read(fd, b, sizeof b)) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            atomic_fetch_add(&cr_hist[b[i]], 1);
            if (i && b[i] != (b[i - 1] + 1) % CR_MOD)
                atomic_store(&cr_bad, 1); /* not one run of the stream */
        }
        atomic_fetch_add(&cr_got, r);
    }
    CHECK_EQ(r, 0);
    np_wg_done(&sp_wg);
}

static void cr_main(void *arg)
{
    int sv[2];
    sockpair(sv);
    np_wg_add(&sp_wg, 4);
    for (int i = 0; i < 4; i++)
        np_go(cr_reader, (void *)(intptr_t)sv[0]);
    wait_parked(1);                 /* one reader in the poller */
    wait_blocked(NP_WAIT_MUTEX, 3); /* and three waiting for their turn */
    long total = t_scaled(200000) / 100 * 100;
    unsigned char b[100];
    for (long s = 0; s < total; s += 100) {
        for (int i = 0; i < 100; i++)
            b[i] = (unsigned char)((s + i) % CR_MOD);
        CHECK_EQ(np_write(sv[1], b, 100), 100);
    }
    shutdown(sv[1], SHUT_WR);
    np_wg_wait(&sp_wg);
    CHECK_EQ(atomic_load(&cr_got), total);
    CHECK(!atomic_load(&cr_bad));
    for (int v = 0; v < CR_MOD; v++)
        CHECK_EQ(atomic_load(&cr_hist[v]), total / CR_MOD + (v < total % CR_MOD));
    np_close(sv[0]);
    np_close(sv[1]);
}

static void t_concurrent_readers_take_turns(void)
{
    t_procs(2);
    T_RUN(cr_main, NULL);
}

/* ---- a descriptor number reused ------------------------------------------------------------------ */

/* A stream socket's short read leaves its entry marked drained; the number, closed and
 * reused by a regular file, must start afresh: a short read of the file is just the end
 * of its data, and the next read returns end of file (the file has no poll descriptor
 * to wait on). */
static void reuse_file_main(void *arg)
{
    (void)arg;
    int sv[2];
    sockpair(sv);
    char b[16];
    CHECK_EQ(np_write(sv[1], "abc", 3), 3);
    CHECK_EQ(np_read(sv[0], b, sizeof b), 3); /* short: drained (edge-triggered poller) */
    int num = sv[0];
    CHECK_EQ(np_close(sv[0]), 0);
    char path[] = "/tmp/np-test-XXXXXX";
    int f = mkstemp(path);
    CHECK(f >= 0);
    unlink(path);
    CHECK_EQ(write(f, "hello", 5), 5);
    CHECK_EQ(lseek(f, 0, SEEK_SET), 0);
    if (f != num) {
        CHECK_EQ(dup2(f, num), num);
        close(f);
    }
    CHECK_EQ(np_fd_open(num), 0);
    CHECK_EQ(np_read(num, b, sizeof b), 5);
    CHECK(memcmp(b, "hello", 5) == 0);
    CHECK_EQ(np_read(num, b, sizeof b), 0);
    CHECK_EQ(np_close(num), 0);
    CHECK_EQ(np_close(sv[1]), 0);
}

static void t_number_reused_by_a_regular_file(void) { T_RUN(reuse_file_main, NULL); }

/* ---- regular files, bad use ---------------------------------------------------------------------- */

/* In np_blocking's function nothing is a coroutine: fd calls fail without touching
 * the descriptor (EPERM if it is registered, EBADF if not). */
static void *outside_calls(void *arg)
{
    int *sv = arg;
    char b[4];
    CHECK_ERR(np_read(sv[0], b, 1), EPERM);
    CHECK_ERR(np_write(sv[0], "x", 1), EPERM);
    CHECK_ERR(np_wait_readable(sv[0]), EPERM);
    CHECK_ERR(np_set_deadline(sv[0], np_now() + MS), EPERM);
    CHECK_ERR(np_read(sv[1], b, 1), EBADF);
    CHECK_ERR(np_set_read_deadline(sv[1], np_now() + MS), EBADF);
    return NULL;
}

static void outside_main(void)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ(np_fd_open(sv[0]), 0);
    np_blocking(outside_calls, sv);
    /* still whole: it works, and the close does not wait for a reference nobody holds */
    char b[4];
    CHECK_EQ(write(sv[1], "ok", 2), 2);
    CHECK_EQ(np_read(sv[0], b, sizeof b), 2);
    CHECK_EQ(np_close(sv[0]), 0);
    close(sv[1]);
}

static void misc_main(void *arg)
{
    outside_main();
    char path[] = "/tmp/np-test-XXXXXX";
    int f = mkstemp(path);
    CHECK(f >= 0);
    unlink(path);
    CHECK_EQ(np_fd_open(f), 0);
    CHECK_EQ(np_write(f, "file data", 9), 9);
    CHECK_EQ(lseek(f, 0, SEEK_SET), 0);
    char b[16] = {0};
    CHECK_EQ(np_read(f, b, sizeof b), 9);
    CHECK(memcmp(b, "file data", 9) == 0);
    /* regular files are not polled: no deadlines (documented limitation) */
    CHECK_ERR(np_set_deadline(f, np_now() + MS), ENOTSUP);
    CHECK_EQ(np_close(f), 0);

    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_ERR(np_read(sv[0], b, 1), EBADF);  /* not registered */
    CHECK_EQ(np_fd_open(sv[0]), 0);
    CHECK_ERR(np_fd_open(sv[0]), EEXIST);
    CHECK_ERR(np_fd_open(-1), EBADF);
    CHECK_EQ(np_close(sv[0]), 0);
    CHECK_ERR(np_close(sv[0]), EBADF);
    close(sv[1]);
    CHECK(strcmp(np_poller_name(), getenv("NP_POLLER") ? getenv("NP_POLLER") : "epoll") == 0);

    if (strcmp(np_poller_name(), "select") == 0) {
        int hi = 2000;
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        CHECK_EQ(dup2(sv[0], hi), hi);
        CHECK_ERR(np_fd_open(hi), EMFILE); /* past FD_SETSIZE: refused, clearly */
        close(hi);
        close(sv[0]);
        close(sv[1]);
    }
}

static void t_regular_files_and_bad_use(void)
{
    t_procs(1);
    T_RUN(misc_main, NULL);
    CHECK_ERR(np_fd_open(0), EPERM); /* no runtime */
    CHECK(strcmp(np_poller_name(), "none") == 0);
}

/* ---- np_wait_readable / np_wait_writable --------------------------------------------- */

static np_chan *wr_done;

/* What a waiter saw: the wait's result and errno, then the read's count and data. */
typedef struct wr_res { long r, err, n; char b[16]; } wr_res;

/* Wait, then read (only if the wait succeeded): what was written after the wait began
 * is there, whole. */
static void wr_waiter(void *arg)
{
    int fd = (int)(intptr_t)arg;
    wr_res x = {0};
    x.r = np_wait_readable(fd);
    x.err = x.r ? t_errno() : 0;
    x.n = x.r == 0 ? (long)np_read(fd, x.b, sizeof x.b) : -2;
    np_chan_send(wr_done, &x);
}

/* Receive a waiter's result and check it against the expected one. */
static void wr_expect(long r, long err, long n, const char *data)
{
    wr_res x;
    CHECK_EQ(np_chan_recv(wr_done, &x), 1);
    CHECK_EQ(x.r, r);
    CHECK_EQ(x.err, err);
    CHECK_EQ(x.n, n);
    if (data)
        CHECK(memcmp(x.b, data, (size_t)n) == 0);
}

static void wait_readable_main(void *arg)
{
    int sv[2];
    sockpair(sv);
    wr_done = np_chan_new(sizeof(wr_res), 1);
    /* 1: nothing there yet (never read: the level is checked, then the edge) */
    np_go(wr_waiter, (void *)(intptr_t)sv[0]);
    wait_parked(1);
    CHECK_EQ(np_write(sv[1], "hello", 5), 5);
    wr_expect(0, 0, 5, "hello");
    /* 2: after that short read the edge alone tells: it must not be lost */
    np_go(wr_waiter, (void *)(intptr_t)sv[0]);
    wait_parked(1);
    CHECK_EQ(np_write(sv[1], "hello", 5), 5);
    wr_expect(0, 0, 5, "hello");
    /* 3: data already there, after a short read: no wait at all */
    CHECK_EQ(np_write(sv[1], "hello", 5), 5);
    char b[8];
    CHECK_EQ(np_read(sv[0], b, 5), 5);    /* full read: not drained */
    CHECK_EQ(np_write(sv[1], "hello", 5), 5);
    CHECK_EQ(np_wait_readable(sv[0]), 0);
    CHECK_EQ(np_wait_readable(sv[0]), 0); /* waiting consumes nothing */
    CHECK_EQ(np_read(sv[0], b, 8), 5);
    CHECK_EQ(np_write(sv[1], "x", 1), 1);
    CHECK_EQ(np_wait_readable(sv[0]), 0); /* drained by the short read, then an edge */
    CHECK_EQ(np_read(sv[0], b, 8), 1);
    /* 4: end of file counts as readable; the read then reports it */
    np_go(wr_waiter, (void *)(intptr_t)sv[0]);
    wait_parked(1);
    shutdown(sv[1], SHUT_WR);
    wr_expect(0, 0, 0, NULL); /* ready, and the read says end of file */
    CHECK_EQ(np_wait_readable(sv[0]), 0);
    CHECK_EQ(np_read(sv[0], b, 8), 0);
    np_close(sv[0]);
    np_close(sv[1]);
    /* 5: deadline, close, bad descriptor */
    sockpair(sv);
    int64_t t0 = np_now();
    CHECK_EQ(np_set_read_deadline(sv[0], t0 + 20 * MS), 0);
    CHECK_ERR(np_wait_readable(sv[0]), ETIMEDOUT);
    CHECK(np_now() - t0 >= 20 * MS);
    CHECK_EQ(np_set_read_deadline(sv[0], 0), 0);
    np_go(wr_waiter, (void *)(intptr_t)sv[0]);
    wait_parked(1);
    CHECK_EQ(np_close(sv[0]), 0);
    wr_expect(-1, EBADF, -2, NULL); /* the close woke it with EBADF */
    CHECK_ERR(np_wait_readable(sv[0]), EBADF);
    CHECK_ERR(np_wait_writable(sv[0]), EBADF);
    np_close(sv[1]);
    np_chan_free(wr_done);
}

static void t_wait_readable(void) { T_RUN(wait_readable_main, NULL); }

static void ww_waiter(void *arg)
{
    int fd = (int)(intptr_t)arg;
    wr_res x = {0};
    x.r = np_wait_writable(fd);
    x.err = x.r ? t_errno() : 0;
    x.n = x.r == 0 ? (long)write(fd, "y", 1) : -2;
    np_chan_send(wr_done, &x);
}

static void wait_writable_main(void *arg)
{
    int sv[2];
    sockpair(sv);
    wr_done = np_chan_new(sizeof(wr_res), 1);
    CHECK_EQ(np_wait_writable(sv[0]), 0); /* room at once */
    /* fill it up: the waiter parks until the peer drains some */
    static char blk[4096];
    long filled = 0;
    ssize_t w;
    while ((w = write(sv[0], blk, sizeof blk)) > 0)
        filled += w;
    CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
    np_go(ww_waiter, (void *)(intptr_t)sv[0]);
    wait_parked(1);
    char b[4096];
    long got = 0;
    while (got < filled) {
        ssize_t r = np_read(sv[1], b, sizeof b);
        CHECK(r > 0);
        got += r;
    }
    wr_expect(0, 0, 1, NULL);
    CHECK_EQ(np_read(sv[1], b, sizeof b), 1);
    CHECK_EQ(np_close(sv[0]), 0);
    CHECK_EQ(np_close(sv[1]), 0);
    np_chan_free(wr_done);
}

static void t_wait_writable(void) { T_RUN(wait_writable_main, NULL); }

/* ---- sockets: np_read is recv, np_write is send(MSG_NOSIGNAL) -------------------------- */

static void sock_calls_main(void *arg)
{
    (void)arg;
    /* datagrams keep their bounds, an empty one included */
    int dv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dv), 0);
    CHECK_EQ(np_fd_open(dv[0]), 0);
    CHECK_EQ(np_fd_open(dv[1]), 0);
    CHECK_EQ(np_write(dv[1], "", 0), 0);
    CHECK_EQ(send(dv[1], "", 0, 0), 0);
    CHECK_EQ(np_write(dv[1], "abc", 3), 3);
    char b[8];
    CHECK_EQ(np_read(dv[0], b, sizeof b), 0);
    CHECK_EQ(np_read(dv[0], b, sizeof b), 3);
    CHECK(memcmp(b, "abc", 3) == 0);
    np_close(dv[0]);
    np_close(dv[1]);
    /* a write to a closed peer: EPIPE, and no SIGPIPE even where it would kill */
    int sv[2];
    sockpair(sv);
    np_close(sv[1]);
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);
    CHECK_ERR(np_write(sv[0], "x", 1), EPIPE);
    struct iovec v[2] = {{"a", 1}, {"b", 1}};
    CHECK_ERR(np_writev(sv[0], v, 2), EPIPE);
    signal(SIGPIPE, old);
    np_close(sv[0]);
}

static void t_socket_reads_are_recv_writes_never_signal(void) { T_RUN(sock_calls_main, NULL); }

/* ---- level-triggered registry: a late report for a recycled poll descriptor ------------ */

static np_chan *lt_done;

static void lt_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    long r = np_read(fd, &c, 1);
    np_chan_send(lt_done, &r);
}

/* A poll that copied the registry before a descriptor closed reports it after its
 * poll descriptor was reused for a new one: that report must not clear what the new
 * descriptor's waiter armed (the waiter would then sleep through its data). */
static void lt_stale_main(void *arg)
{
    (void)arg;
    int old[2], nv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, old), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, nv), 0);
    int err = 0;
    np_pd *pd = np__pd_open(old[0], &err);
    CHECK(pd != NULL);
    np__lt_arm(pd, PD_R);
    np_lt_ent *snap;
    int n = np__lt_snapshot(&snap, false);
    CHECK(n >= 2);
    int at = -1;
    for (int i = 0; i < n; i++)
        if (snap[i].pd == pd)
            at = i;
    CHECK(at > 0);
    np__pd_unblock(pd);
    np__pd_close(pd);
    close(old[0]);
    close(old[1]);
    CHECK_EQ(np_fd_open(nv[0]), 0); /* the cache hands out the same poll descriptor */
    CHECK_EQ(np_fd_open(nv[1]), 0);
    lt_done = np_chan_new(sizeof(long), 1);
    CHECK_EQ(np_set_read_deadline(nv[0], np_now() + 5000 * MS), 0);
    np_go(lt_reader, (void *)(intptr_t)nv[0]);
    wait_parked(1);
    np_ready rd = {NULL, 0, true};
    np__lt_fired(&snap[at], PD_R, false, &rd); /* the late report */
    free(snap);
    CHECK(rd.list == NULL);
    CHECK_EQ(np_write(nv[1], "x", 1), 1);
    long r = 0;
    CHECK_EQ(np_chan_recv(lt_done, &r), 1);
    CHECK_EQ(r, 1); /* the byte, not ETIMEDOUT */
    np_close(nv[0]);
    np_close(nv[1]);
    np_chan_free(lt_done);
}

static void t_lt_stale_report_keeps_new_interest(void)
{
    const char *be = getenv("NP_POLLER");
    if (!be || (strcmp(be, "poll") && strcmp(be, "select")))
        T_SKIP("the registry belongs to the level-triggered back ends (epoll: "
               "t_stale_event_for_recycled_descriptor)");
    t_procs(1);
    T_RUN(lt_stale_main, NULL);
}

/* ---- a deadline timer that fires after its deadline changed -------------------------------- */

/* Another P may pop a deadline timer from its heap just before the deadline is changed
 * (np__timer_del then finds nothing to remove): the callback runs late, with the seq it
 * was armed with, and must do nothing. Here the late call is made by hand, exactly as
 * that P would make it. */
static void stale_timer_main(void *arg)
{
    int sv[2];
    sockpair(sv);
    np_pd *pd = np__fd_pd(sv[0]);
    CHECK(pd != NULL);
    CHECK_EQ(np_set_read_deadline(sv[0], np_now() + 3600 * 1000 * MS), 0);
    CHECK(pd->rt_set);
    np__timer late = pd->rt; /* what the popping P holds: f, arg, seq */
    CHECK_EQ(np_set_read_deadline(sv[0], np_now() + 7200 * 1000 * MS), 0); /* moved */
    CHECK(pd->rseq != late.seq);
    late.f(late.arg, late.seq); /* the stale callback */
    CHECK(atomic_load(&pd->rd) > 0); /* the new deadline stands */
    char c;
    CHECK_EQ(np_write(sv[1], "k", 1), 1);
    CHECK_EQ(np_read(sv[0], &c, 1), 1); /* data, not ETIMEDOUT */
    /* the same for a combined read+write deadline and a write deadline */
    CHECK_EQ(np_set_deadline(sv[0], np_now() + 3600 * 1000 * MS), 0);
    late = pd->rt;
    CHECK_EQ(np_set_deadline(sv[0], 0), 0); /* cleared */
    late.f(late.arg, late.seq);
    CHECK_EQ(np_set_write_deadline(sv[0], np_now() + 3600 * 1000 * MS), 0);
    CHECK(pd->wt_set);
    late = pd->wt;
    CHECK_EQ(np_set_write_deadline(sv[0], np_now() + 7200 * 1000 * MS), 0);
    late.f(late.arg, late.seq);
    CHECK(atomic_load(&pd->wd) > 0);
    CHECK_EQ(np_write(sv[0], "w", 1), 1); /* not ETIMEDOUT */
    CHECK_EQ(np_write(sv[1], "k", 1), 1);
    CHECK_EQ(np_read(sv[0], &c, 1), 1);
    CHECK_EQ(np_close(sv[0]), 0);
    CHECK_EQ(np_close(sv[1]), 0);
}

static void t_stale_deadline_timer_does_nothing(void)
{
    t_procs(1);
    T_RUN(stale_timer_main, NULL);
}

/* ---- EINTR is retried, never returned --------------------------------------------------------- */

/* An operation interrupted by a signal (EINTR) is tried again, both on a polled
 * descriptor and on a regular file (through np_blocking). The interruption is planted
 * by the operation itself: its first call fails with EINTR, then it reads. */
typedef struct eintr_op { int calls; char *buf; size_t len; } eintr_op;

static ssize_t eintr_read(int fd, void *arg)
{
    eintr_op *x = arg;
    if (x->calls++ < 2) {
        errno = EINTR;
        return -1;
    }
    return read(fd, x->buf, x->len);
}

static void eintr_main(void *arg)
{
    char b[16] = {0};
    /* a socket (the poller's path), data already there */
    int sv[2];
    sockpair(sv);
    CHECK_EQ(write(sv[1], "abc", 3), 3);
    eintr_op x = {0, b, sizeof b};
    CHECK_EQ(np__fd_io(sv[0], PD_R, eintr_read, &x), 3);
    CHECK_EQ(x.calls, 3);
    CHECK(memcmp(b, "abc", 3) == 0);
    np_close(sv[0]);
    np_close(sv[1]);
    /* a regular file (np_blocking's path) */
    char path[] = "/tmp/np-test-XXXXXX";
    int f = mkstemp(path);
    CHECK(f >= 0);
    unlink(path);
    CHECK_EQ(write(f, "file", 4), 4);
    CHECK_EQ(lseek(f, 0, SEEK_SET), 0);
    CHECK_EQ(np_fd_open(f), 0);
    x = (eintr_op){0, b, sizeof b};
    CHECK_EQ(np__fd_io(f, PD_R, eintr_read, &x), 4);
    CHECK_EQ(x.calls, 3);
    CHECK(memcmp(b, "file", 4) == 0);
    np_close(f);
}

static void t_eintr_is_retried(void)
{
    t_procs(1);
    T_RUN(eintr_main, NULL);
}

/* ---- the park/notify race: a wake-up between "about to wait" and "parked" ------------------ */

/* The reader moves rg from 0 to PD_WAIT, then parks; the commit moves PD_WAIT to the
 * coroutine by CAS, which fails (and the reader runs on) if a waker came in between. A
 * plain store there would park the reader with nobody left to wake it. A thread on the
 * other core watches rg and fails the wait (a deadline in the past, as a timer would)
 * the moment it sees PD_WAIT, which lands in that window again and again; each round
 * must end at once. (One P: the reader's P runs nothing else; the watcher is a thread of
 * its own, so the two always run at the same time.) */
static _Atomic long cw_round;   /* the reader is about to wait for the n-th time */
static _Atomic bool cw_enough; /* the watcher has seen the window often enough */
static long cw_hits, cw_rounds;
static int cw_fd, cw_pipe[2];
static np_pd *cw_pd;

static void *cw_waker(void *arg)
{
    int64_t until = np_now() + 5000 * MS * (t_scale_v() > 1 ? 3 : 1);
    for (long i = 1;; i++) {
        while (atomic_load(&cw_round) != i) {
        }
        uintptr_t v;
        while ((v = atomic_load(&cw_pd->rg)) == 0 || v == PD_READY) {
        }
        if (v == PD_WAIT)
            cw_hits++; /* between the reader's CAS and its commit */
        if (cw_hits >= 2000 || np_now() > until)
            atomic_store(&cw_enough, true); /* the reader stops after this round */
        np__pd_set_deadline(cw_pd, -1, PD_R);
        struct pollfd pf = {cw_pipe[0], POLLIN, 0};
        char c;
        if (poll(&pf, 1, 5000 * (int)t_scale_v()) != 1)
            FAILF("round %ld: the reader, failed while parking (rg was %s), never woke: "
                  "a lost wake-up", i, v == PD_WAIT ? "PD_WAIT" : "the coroutine");
        CHECK_EQ(read(cw_pipe[0], &c, 1), 1);
        if (atomic_load(&cw_enough))
            return NULL;
    }
}

static void commit_race_main(void *arg)
{
    int sv[2];
    sockpair(sv);
    CHECK_EQ(pipe(cw_pipe), 0);
    cw_fd = sv[0];
    cw_pd = np__fd_pd(cw_fd);
    CHECK(cw_pd != NULL);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, cw_waker, NULL), 0);
    char c;
    long i = 0;
    while (!atomic_load(&cw_enough)) {
        CHECK_EQ(np_set_read_deadline(cw_fd, 0), 0);
        atomic_store(&cw_round, ++i);
        CHECK_ERR(np_read(cw_fd, &c, 1), ETIMEDOUT); /* nothing is ever sent */
        CHECK_EQ(write(cw_pipe[1], "d", 1), 1);
    }
    cw_rounds = i;
    CHECK_EQ(pthread_join(th, NULL), 0);
    np_close(sv[0]);
    np_close(sv[1]);
    close(cw_pipe[0]);
    close(cw_pipe[1]);
}

static void t_wakeup_while_parking_not_lost(void)
{
    t_procs(2);
    T_RUN(commit_race_main, NULL);
    printf("    %ld of %ld wake-ups landed between the reader's CAS and its commit\n", cw_hits,
           cw_rounds);
    if (cw_hits == 0)
        T_SKIP("the window was never hit in 5 s (a loaded machine?): nothing tested");
}

/* ---- a late event for an earlier life of a poll descriptor ----------------------------------- */

/* Poll descriptors are recycled: a report the back end made for a descriptor that has
 * since been closed (and its pd given to a new one) carries the old fdseq tag and must
 * change nothing: no readiness mark, no hang-up, no error. Every back end reports
 * through np__pd_ready/np__pd_seterr, so the report is made by hand. */
static void stale_event_main(void *arg)
{
    int sv[2];
    sockpair(sv);
    np_pd *pd = np__fd_pd(sv[0]);
    CHECK(pd != NULL);
    uint32_t old = atomic_load(&pd->fdseq);
    CHECK_EQ(np_close(sv[0]), 0);
    CHECK_EQ(np_close(sv[1]), 0);
    int nv[2];
    sockpair(nv); /* the cache hands out the same poll descriptor */
    CHECK(np__fd_pd(nv[0]) == pd || np__fd_pd(nv[1]) == pd);
    int fd = np__fd_pd(nv[0]) == pd ? nv[0] : nv[1], peer = fd == nv[0] ? nv[1] : nv[0];
    CHECK(atomic_load(&pd->fdseq) != old);
    np_ready rd = {NULL, 0, np__on_solo_p()};
    np__pd_ready(pd, old, PD_R | PD_W, true, &rd); /* readable, writable, hung up */
    np__pd_seterr(pd, old);
    CHECK(rd.list == NULL);
    CHECK_EQ(atomic_load(&pd->rg), 0);
    CHECK_EQ(atomic_load(&pd->wg), 0);
    CHECK(!np__pd_hup(pd));
    CHECK(!atomic_load(&pd->everr));
    /* and the new descriptor works: a read waits for its own data */
    char c;
    CHECK_EQ(np_set_read_deadline(fd, np_now() + 20 * MS), 0);
    CHECK_ERR(np_read(fd, &c, 1), ETIMEDOUT);
    CHECK_EQ(np_set_read_deadline(fd, 0), 0);
    CHECK_EQ(np_write(peer, "n", 1), 1);
    CHECK_EQ(np_read(fd, &c, 1), 1);
    CHECK_EQ(c, 'n');
    /* a report with the current tag does act (the check above is not vacuous) */
    np__pd_ready(pd, atomic_load(&pd->fdseq), PD_R, false, &rd);
    CHECK_EQ(atomic_load(&pd->rg), PD_READY);
    np_close(nv[0]);
    np_close(nv[1]);
}

static void t_stale_event_for_recycled_descriptor(void)
{
    t_procs(1);
    T_RUN(stale_event_main, NULL);
}

/* ---- np_close waits for the operations in flight ------------------------------------------------ */

/* np_close returns only once every operation on the descriptor has left (else the number,
 * closed under it, could be reused while it still runs): with one P, a reader woken by
 * the close has finished its np_read by the time np_close returns. */
static atomic_int cl_left;
static long cl_r, cl_err;

static void cl_reader(void *arg)
{
    char c;
    cl_r = np_read((int)(intptr_t)arg, &c, 1);
    cl_err = t_errno();
    atomic_store(&cl_left, 1);
}

static void close_waits_main(void *arg)
{
    int sv[2];
    sockpair(sv);
    int peer = -1;
    for (int round = 0; round < 2; round++) {
        atomic_store(&cl_left, 0);
        np_go(cl_reader, (void *)(intptr_t)sv[0]);
        wait_parked(1);
        CHECK_EQ(np_close(sv[0]), 0);
        CHECK_EQ(atomic_load(&cl_left), 1);
        CHECK_EQ(cl_r, -1);
        CHECK_EQ(cl_err, EBADF);
        if (round == 0) { /* the number, free now, registered anew */
            int nv[2];
            CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, nv), 0);
            if (nv[0] != sv[0]) {
                CHECK_EQ(dup2(nv[0], sv[0]), sv[0]);
                close(nv[0]);
            }
            peer = nv[1];
            CHECK_EQ(np_fd_open(sv[0]), 0);
        }
    }
    close(peer);
    np_close(sv[1]);
}

static void t_close_waits_for_operations_in_flight(void)
{
    t_procs(1);
    T_RUN(close_waits_main, NULL);
}

static const t_case cases[] = {
    T(t_readiness_race_stress),
    T(t_close_wakes_blocked_readers_and_writers),
    T(t_deadline_fires_on_time_never_early),
    T(t_deadline_extended_cleared_shortened_while_blocked),
    T(t_reuse_after_close_ignores_stale_timer),
    T(t_pipes_stream_every_byte),
    T(t_pty_and_socket_both_ways),
    T(t_thousand_socketpairs_every_byte),
    T(t_concurrent_readers_take_turns),
    T(t_number_reused_by_a_regular_file),
    T(t_regular_files_and_bad_use),
    T(t_wait_readable),
    T(t_wait_writable),
    T(t_lt_stale_report_keeps_new_interest),
    T(t_socket_reads_are_recv_writes_never_signal),
    T(t_stale_deadline_timer_does_nothing),
    T(t_eintr_is_retried),
    T(t_wakeup_while_parking_not_lost),
    T(t_stale_event_for_recycled_descriptor),
    T(t_close_waits_for_operations_in_flight),
    {0},
};
T_MAIN(cases)
