/* Unmodified hiredis (Debian's libhiredis) in coroutines, through libnp-hook, against a
 * real redis-server on loopback (tests/servers.sh starts it: NP_REDIS_PORT). hiredis's
 * synchronous API blocks in read, write, connect and poll: each parks its coroutine. */
#include "t.h"
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MS 1000000LL

static int port(void)
{
    const char *p = getenv("NP_REDIS_PORT");
    if (!p)
        T_SKIP("NP_REDIS_PORT not set (tests/servers.sh starts redis-server)");
    return atoi(p);
}

static int rport;
static np_wg wg = NP_WG_INIT;
static _Atomic int64_t checked;

/* SET then GET of keys of its own, every value checked. */
static void setget(void *arg)
{
    int id = (int)(intptr_t)arg;
    redisContext *c = redisConnect("127.0.0.1", rport);
    CHECK(c != NULL);
    if (c->err)
        FAILF("redisConnect: %s", c->errstr);
    for (int i = 0; i < 20; i++) {
        char key[64], val[64];
        snprintf(key, sizeof key, "np:%d:%d:%d", (int)getpid(), id, i);
        snprintf(val, sizeof val, "v%d-%d-%lld", id, i, (long long)np_now());
        redisReply *r = redisCommand(c, "SET %s %s", key, val);
        CHECK(r != NULL);
        CHECK(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0);
        freeReplyObject(r);
        r = redisCommand(c, "GET %s", key);
        CHECK(r != NULL);
        CHECK_EQ(r->type, REDIS_REPLY_STRING);
        CHECK(strcmp(r->str, val) == 0);
        freeReplyObject(r);
        r = redisCommand(c, "DEL %s", key);
        CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
        freeReplyObject(r);
        atomic_fetch_add(&checked, 1);
    }
    redisFree(c);
    np_wg_done(&wg);
}

static void many_main(void *arg)
{
    atomic_store(&checked, 0);
    np_wg_add(&wg, 500);
    for (int i = 0; i < 500; i++)
        CHECK(np_go(setget, (void *)(intptr_t)i) > 0);
    np_wg_wait(&wg);
    CHECK_EQ(atomic_load(&checked), 500 * 20);
}

static void t_500_coroutines_one_p(void)
{
    rport = port();
    t_procs(1);
    T_RUN(many_main, NULL);
}

static void t_500_coroutines_two_ps(void)
{
    rport = port();
    t_procs(2);
    T_RUN(many_main, NULL);
}

/* A redisCommand stuck on a server that accepts and never answers parks only its own
 * coroutine: an echo served by another coroutine on the same (only) P goes on. */
static int silent_fd, echo_sp[2];
static struct sockaddr_in silent_addr;

static void stuck(void *arg)
{
    redisContext *c = redisConnect("127.0.0.1", ntohs(silent_addr.sin_port));
    CHECK(c && !c->err);
    redisReply *r = redisCommand(c, "GET never"); /* the server never answers */
    CHECK(r == NULL);                               /* until it closes */
    CHECK(c->err != 0);
    redisFree(c);
    np_wg_done(&wg);
}

static void echoer(void *arg)
{
    char buf[64];
    ssize_t n;
    while ((n = read(echo_sp[1], buf, sizeof buf)) > 0)
        CHECK_EQ(write(echo_sp[1], buf, (size_t)n), n);
    np_wg_done(&wg);
}

static void stuck_main(void *arg)
{
    silent_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(silent_fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(silent_fd, 8), 0);
    socklen_t l = sizeof silent_addr;
    CHECK_EQ(getsockname(silent_fd, (struct sockaddr *)&silent_addr, &l), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, echo_sp), 0);
    np_wg_add(&wg, 2);
    CHECK(np_go(stuck, NULL) > 0);
    int conn = accept(silent_fd, NULL, NULL); /* parks until hiredis connects */
    CHECK(conn >= 0);
    char req[64];
    CHECK(read(conn, req, sizeof req) > 0); /* the request came; no answer */
    CHECK(np_go(echoer, NULL) > 0);
    for (int i = 0; i < 1000; i++) {
        char out[16], in[16];
        int n = snprintf(out, sizeof out, "m%d", i);
        CHECK_EQ(write(echo_sp[0], out, (size_t)n), n);
        CHECK_EQ(read(echo_sp[0], in, sizeof in), n);
        CHECK(memcmp(in, out, (size_t)n) == 0);
    }
    /* all the while the hiredis coroutine was parked in its read */
    np_stats st;
    np_stats_get(&st);
    CHECK(st.waiting_by[NP_WAIT_IO] >= 1);
    close(echo_sp[0]);
    close(conn);
    np_wg_wait(&wg);
    close(echo_sp[1]);
    close(silent_fd);
}

static void t_stuck_command_does_not_stop_the_p(void)
{
    t_procs(1);
    T_RUN(stuck_main, NULL);
}

/* redisConnectWithTimeout to a black hole (a loopback listener whose accept queue is
 * full drops the SYN) fails on time, while the P serves others. */
static _Atomic int ticks;
static _Atomic bool done_;
static void ticker(void *arg)
{
    while (!atomic_load(&done_)) {
        np_sleep(5 * MS);
        atomic_fetch_add(&ticks, 1);
    }
    np_wg_done(&wg);
}

static void blackhole_main(void *arg)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 0), 0);
    socklen_t al = sizeof a;
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &al), 0);
    int first = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(connect(first, (struct sockaddr *)&a, sizeof a), 0); /* fills the queue */
    np_wg_add(&wg, 1);
    CHECK(np_go(ticker, NULL) > 0);
    struct timeval tv = {0, 300000};
    int64_t t0 = np_now();
    redisContext *c = redisConnectWithTimeout("127.0.0.1", ntohs(a.sin_port), tv);
    int64_t took = np_now() - t0;
    CHECK(c != NULL);
    CHECK(c->err != 0); /* timed out */
    redisFree(c);
    CHECK(took >= 300 * MS);
    CHECK(took < 3000 * MS);
    CHECK(atomic_load(&ticks) >= 10); /* the P was free meanwhile */
    atomic_store(&done_, true);
    np_wg_wait(&wg);
    close(first);
    close(l);
}

static void t_connect_timeout_black_hole(void)
{
    t_procs(1);
    T_RUN(blackhole_main, NULL);
}

static const t_case cases[] = {
    T(t_500_coroutines_one_p),
    T(t_500_coroutines_two_ps),
    T(t_stuck_command_does_not_stop_the_p),
    T(t_connect_timeout_black_hole),
    {0},
};
T_MAIN(cases)
