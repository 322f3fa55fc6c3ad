/* A Redis load from unmodified hiredis (synchronous redisCommand), as coroutines through
 * libnp-hook or as one thread per connection: CONNS connections, REQUESTS in all,
 * alternately SET and GET of a 3-byte value (redis-benchmark -t get,set's requests).
 * Prints requests/s, the client's CPU per request (user+sys of this process over the
 * load) and its peak RSS.
 * Usage: np-redisload np|threads CONNS REQUESTS PORT */
#include <hiredis/hiredis.h>
#include <np.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int port_, per_;
static _Atomic long errors_;
static np_wg wg_ = NP_WG_INIT;
static pthread_barrier_t ready_;
static bool threads_;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static void work(redisContext *c)
{
    for (int i = 0; i < per_; i++) {
        redisReply *r = i % 2 ? redisCommand(c, "GET key:__rand_int__") : redisCommand(c, "SET key:__rand_int__ xxx");
        if (!r || (i % 2 ? r->type != REDIS_REPLY_STRING : r->type != REDIS_REPLY_STATUS))
            atomic_fetch_add(&errors_, 1);
        if (!r)
            return;
        freeReplyObject(r);
    }
}

/* One connection's requests once all are connected (wait_all). */
static void client(void (*wait_all)(void))
{
    redisContext *c = redisConnect("127.0.0.1", port_);
    wait_all();
    if (!c || c->err)
        atomic_fetch_add(&errors_, 1);
    else
        work(c);
    if (c)
        redisFree(c);
}

static void thread_ready(void) { pthread_barrier_wait(&ready_); } /* all connected: the clock starts */
static void *thread_main(void *arg)
{
    client(thread_ready);
    return NULL;
}

static np_wg connected_ = NP_WG_INIT, start_ = NP_WG_INIT;
static void co_ready(void)
{
    np_wg_done(&connected_);
    np_wg_wait(&start_);
}
static void co_main(void *arg)
{
    client(co_ready);
    np_wg_done(&wg_);
}

static int conns_;
static double t0_, c0_;
static void np_main(void *arg)
{
    np_wg_add(&wg_, conns_);
    np_wg_add(&connected_, conns_);
    np_wg_add(&start_, 1);
    for (int i = 0; i < conns_; i++)
        if (np_go(co_main, NULL) < 0) {
            perror("np_go");
            exit(1);
        }
    np_wg_wait(&connected_);
    t0_ = now_s();
    c0_ = cpu_s();
    np_wg_done(&start_);
    np_wg_wait(&wg_);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s np|threads CONNS REQUESTS PORT\n", argv[0]);
        return 2;
    }
    threads_ = strcmp(argv[1], "threads") == 0;
    conns_ = atoi(argv[2]);
    long total = atol(argv[3]);
    port_ = atoi(argv[4]);
    if (conns_ <= 0 || total <= 0 || port_ <= 0) {
        fprintf(stderr, "%s: bad arguments\n", argv[0]);
        return 2;
    }
    per_ = (int)(total / conns_);
    if (threads_) {
        pthread_t *th = calloc((size_t)conns_, sizeof *th);
        pthread_barrier_init(&ready_, NULL, (unsigned)conns_ + 1);
        for (int i = 0; i < conns_; i++)
            if (pthread_create(&th[i], NULL, thread_main, NULL) != 0) {
                perror("pthread_create");
                return 1;
            }
        pthread_barrier_wait(&ready_);
        t0_ = now_s();
        c0_ = cpu_s();
        for (int i = 0; i < conns_; i++)
            pthread_join(th[i], NULL);
        free(th);
    } else if (np_run(np_main, NULL) != 0) {
        perror("np_run");
        return 1;
    }
    double secs = now_s() - t0_, cpu = cpu_s() - c0_;
    long done = (long)per_ * conns_;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("mode=%s conns=%d requests=%ld req_s=%.0f cpu_us_per_req=%.2f maxrss_kib=%ld errors=%ld\n", argv[1],
           conns_, done, (double)done / secs, cpu * 1e6 / (double)done, ru.ru_maxrss, atomic_load(&errors_));
    return atomic_load(&errors_) ? 1 : 0;
}
