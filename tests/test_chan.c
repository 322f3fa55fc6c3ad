/* Channels and select: semantics (unbuffered rendezvous, buffering, FIFO order of
 * values and of waiters, close), errors, select (default, timeout, randomness, close),
 * and stress: 10^6 messages between coroutines on two Ps with no value lost, none
 * duplicated and no wake-up lost (a lost one shows as a hang, caught by the timeout). */
#include "t.h"
#include <pthread.h>
#include <stdatomic.h>

static np_wg wg = NP_WG_INIT;


/* ---- unbuffered --------------------------------------------------------------------------- */

static atomic_int received_upto = -1;

static void unbuf_recv(void *arg)
{
    np_chan *c = arg;
    int v;
    for (int i = 0; i < 1000; i++) {
        if (i % 21 == 0)
            wait_blocked(NP_WAIT_CHAN_SEND, 1); /* the sender waits first */
        else if (i % 7 == 0)
            CHECK_EQ(np_yield(), 0);
        CHECK_EQ(np_chan_recv(c, &v), 1);
        CHECK_EQ(v, i);
        atomic_store(&received_upto, i);
    }
    np_wg_done(&wg);
}

static void unbuf_main(void *arg)
{
    np_chan *c = np_chan_new(sizeof(int), 0);
    CHECK(c);
    CHECK_EQ(np_chan_cap(c), 0);
    np_wg_add(&wg, 1);
    np_go(unbuf_recv, c);
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(np_chan_send(c, &i), 0);
        /* a send returns only once a receiver has the value */
        CHECK(atomic_load(&received_upto) >= i - 1);
        CHECK_EQ(np_chan_len(c), 0);
    }
    /* no receiver: a try fails, a blocking send would wait */
    int v = 5;
    CHECK_ERR(np_chan_trysend(c, &v), EAGAIN);
    CHECK_ERR(np_chan_tryrecv(c, &v), EAGAIN);
    np_wg_wait(&wg);
    CHECK_EQ(np_chan_free(c), 0);
}

static void t_unbuffered(void)
{
    t_procs(2);
    T_RUN(unbuf_main, NULL);
    t_procs(1);
    atomic_store(&received_upto, -1);
    T_RUN(unbuf_main, NULL);
}

/* Receiving first, then sending: the rendezvous works both ways round. The sender
 * sends once the receiver is blocked. */
static void rdv_send_later(void *arg)
{
    np_chan *c = arg;
    wait_blocked(NP_WAIT_CHAN_RECV, 1);
    long v = 77;
    CHECK_EQ(np_chan_send(c, &v), 0);
    np_wg_done(&wg);
}

static void rdv_main(void *arg)
{
    np_chan *c = np_chan_new(sizeof(long), 0);
    np_wg_add(&wg, 1);
    np_go(rdv_send_later, c);
    long v = 0;
    CHECK_EQ(np_chan_recv(c, &v), 1);
    CHECK_EQ(v, 77);
    np_wg_wait(&wg);
    CHECK_EQ(np_chan_free(c), 0);
}

static void t_unbuffered_receiver_first(void)
{
    t_procs(2);
    T_RUN(rdv_main, NULL);
    t_procs(1);
    T_RUN(rdv_main, NULL);
}

/* ---- buffered ---------------------------------------------------------------------------- */

typedef struct big {
    uint64_t a[5];
} big;

static void buf_main(void *arg)
{
    np_chan *c = np_chan_new(sizeof(big), 4);
    CHECK(c);
    CHECK_EQ(np_chan_cap(c), 4);
    for (int round = 0; round < 3; round++) { /* wraps around the ring */
        for (uint64_t i = 0; i < 4; i++) {
            big b = {{i, i + 1, i + 2, i + 3, (uint64_t)round}};
            CHECK_EQ(np_chan_trysend(c, &b), 0);
            CHECK_EQ(np_chan_len(c), i + 1);
        }
        big x = {{9, 9, 9, 9, 9}};
        CHECK_ERR(np_chan_trysend(c, &x), EAGAIN);
        CHECK_EQ(np_chan_len(c), 4);
        for (uint64_t i = 0; i < 4; i++) {
            big b;
            if (i % 2)
                CHECK_EQ(np_chan_tryrecv(c, &b), 1);
            else
                CHECK_EQ(np_chan_recv(c, &b), 1);
            CHECK_EQ(b.a[0], i);
            CHECK_EQ(b.a[3], i + 3);
            CHECK_EQ(b.a[4], round);
        }
        CHECK_ERR(np_chan_tryrecv(c, &x), EAGAIN);
        CHECK_EQ(np_chan_len(c), 0);
        /* a NULL destination discards */
        CHECK_EQ(np_chan_trysend(c, &x), 0);
        CHECK_EQ(np_chan_recv(c, NULL), 1);
        CHECK_EQ(np_chan_len(c), 0);
    }
    np_chan_free(c);
}

static void t_buffered(void)
{
    t_procs(1);
    T_RUN(buf_main, NULL);
}

/* A full buffer blocks the sender until a receiver makes room; order is kept across
 * blocked senders (a receiver taking from a full buffer pulls a blocked sender's value
 * into it). */
static void bufblock_producer(void *arg)
{
    np_chan *c = arg;
    for (int i = 0; i < 10000; i++)
        CHECK_EQ(np_chan_send(c, &i), 0);
    np_wg_done(&wg);
}

static void bufblock_main(void *arg)
{
    np_chan *c = np_chan_new(sizeof(int), 3);
    np_wg_add(&wg, 1);
    np_go(bufblock_producer, c);
    for (int i = 0; i < 10000; i++) {
        int v;
        if (i % 100 == 0) { /* the producer fills the buffer and blocks */
            wait_blocked(NP_WAIT_CHAN_SEND, 1);
            CHECK_EQ(np_chan_len(c), 3);
        }
        CHECK_EQ(np_chan_recv(c, &v), 1);
        CHECK_EQ(v, i);
        CHECK(np_chan_len(c) <= 3);
    }
    np_wg_wait(&wg);
    CHECK_EQ(np_chan_len(c), 0);
    CHECK_EQ(np_chan_free(c), 0);
}

static void t_buffered_blocking_fifo(void)
{
    t_procs(2);
    T_RUN(bufblock_main, NULL);
    t_procs(1);
    T_RUN(bufblock_main, NULL);
}

/* Waiting senders are served first-come first-served, and so are waiting receivers.
 * One P makes the order in which they start waiting well defined: each records its
 * turn just before it blocks. */
#define NW 20
static int wait_order[NW], nwait;
static np_chan *fc;

static void fifo_sender(void *arg)
{
    int id = (int)(intptr_t)arg;
    wait_order[nwait++] = id;
    CHECK_EQ(np_chan_send(fc, &id), 0);
    np_wg_done(&wg);
}

static void fifo_receiver(void *arg)
{
    int id = (int)(intptr_t)arg, v;
    int turn = nwait;
    wait_order[nwait++] = id;
    CHECK_EQ(np_chan_recv(fc, &v), 1);
    CHECK_EQ(v, turn); /* the n-th receiver to wait gets the n-th value */
    np_wg_done(&wg);
}

static void fifo_main(void *arg)
{
    int cap = *(int *)arg;
    fc = np_chan_new(sizeof(int), (size_t)cap);
    int fill = 0;
    for (int i = 0; i < cap; i++) /* buffered: fill it so the senders block */
        CHECK_EQ(np_chan_send(fc, &fill), 0);
    nwait = 0;
    np_wg_add(&wg, NW);
    for (int i = 0; i < NW; i++)
        np_go(fifo_sender, (void *)(intptr_t)i);
    wait_blocked(NP_WAIT_CHAN_SEND, NW);
    CHECK_EQ(nwait, NW);
    for (int i = 0; i < cap; i++) {
        int v;
        CHECK_EQ(np_chan_recv(fc, &v), 1);
        CHECK_EQ(v, 0);
    }
    for (int i = 0; i < NW; i++) {
        int v;
        CHECK_EQ(np_chan_recv(fc, &v), 1);
        CHECK_EQ(v, wait_order[i]);
    }
    np_wg_wait(&wg);

    nwait = 0;
    np_wg_add(&wg, NW);
    for (int i = 0; i < NW; i++)
        np_go(fifo_receiver, (void *)(intptr_t)i);
    wait_blocked(NP_WAIT_CHAN_RECV, NW);
    CHECK_EQ(nwait, NW);
    for (int i = 0; i < NW; i++)
        CHECK_EQ(np_chan_send(fc, &i), 0);
    np_wg_wait(&wg);
    CHECK_EQ(np_chan_free(fc), 0);
}

static void t_fifo_waiters_1p(void)
{
    int cap = 0;
    t_procs(1);
    T_RUN(fifo_main, &cap);
    cap = 2;
    T_RUN(fifo_main, &cap);
}

/* ---- close ----------------------------------------------------------------------------------- */

static void close_blocked_recv(void *arg)
{
    np_chan *c = arg;
    long v = 123;
    CHECK_EQ(np_chan_recv(c, &v), 0);
    CHECK_EQ(v, 0); /* zeroed */
    np_wg_done(&wg);
}

static void close_blocked_send(void *arg)
{
    np_chan *c = arg;
    long v = 5;
    CHECK_ERR(np_chan_send(c, &v), EPIPE);
    np_wg_done(&wg);
}

static void close_main(void *arg)
{
    /* receivers blocked on an empty channel wake with 0 */
    np_chan *c = np_chan_new(sizeof(long), 0);
    np_wg_add(&wg, 10);
    for (int i = 0; i < 10; i++)
        np_go(close_blocked_recv, c);
    wait_blocked(NP_WAIT_CHAN_RECV, 10);
    CHECK_EQ(np_chan_close(c), 0);
    wait_blocked(NP_WAIT_CHAN_RECV, 0); /* every one woken (not just some) */
    np_wg_wait(&wg);
    CHECK_ERR(np_chan_close(c), EPIPE); /* twice */
    long v = 1;
    CHECK_ERR(np_chan_send(c, &v), EPIPE);
    CHECK_ERR(np_chan_trysend(c, &v), EPIPE);
    CHECK_EQ(np_chan_recv(c, &v), 0);
    CHECK_EQ(np_chan_tryrecv(c, &v), 0);
    CHECK_EQ(np_chan_free(c), 0);

    /* senders blocked on a full channel fail with EPIPE; buffered values drain */
    c = np_chan_new(sizeof(long), 2);
    for (long i = 1; i <= 2; i++)
        CHECK_EQ(np_chan_send(c, &i), 0);
    np_wg_add(&wg, 5);
    for (int i = 0; i < 5; i++)
        np_go(close_blocked_send, c);
    wait_blocked(NP_WAIT_CHAN_SEND, 5);
    CHECK_EQ(np_chan_close(c), 0);
    wait_blocked(NP_WAIT_CHAN_SEND, 0);
    np_wg_wait(&wg);
    CHECK_EQ(np_chan_len(c), 2);
    CHECK_EQ(np_chan_recv(c, &v), 1);
    CHECK_EQ(v, 1);
    CHECK_EQ(np_chan_tryrecv(c, &v), 1);
    CHECK_EQ(v, 2);
    v = 9;
    CHECK_EQ(np_chan_recv(c, &v), 0);
    CHECK_EQ(v, 0);
    CHECK_ERR(np_chan_close(c), EPIPE);
    CHECK_EQ(np_chan_free(c), 0);
}

static void t_close(void)
{
    t_procs(2);
    T_RUN(close_main, NULL);
    t_procs(1);
    T_RUN(close_main, NULL);
}

/* Freeing a channel on which a coroutine is blocked fails with EBUSY; once the close
 * has woken it, freeing works. */
static void busy_recv(void *arg)
{
    CHECK_EQ(np_chan_recv(arg, NULL), 0); /* woken by the close */
    np_wg_done(&wg);
}

static void free_busy_main(void *arg)
{
    np_chan *c = np_chan_new(1, 0);
    np_wg_add(&wg, 1);
    np_go(busy_recv, c);
    wait_blocked(NP_WAIT_CHAN_RECV, 1);
    CHECK_ERR(np_chan_free(c), EBUSY);
    CHECK_EQ(np_chan_close(c), 0);
    wait_blocked(NP_WAIT_CHAN_RECV, 0);
    np_wg_wait(&wg);
    CHECK_EQ(np_chan_free(c), 0);
    CHECK_EQ(np_chan_free(NULL), 0);
}

static void t_free_busy(void)
{
    t_procs(1);
    T_RUN(free_busy_main, NULL);
}

static void t_new_invalid(void)
{
    errno = 0;
    CHECK(np_chan_new(0, 1) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(np_chan_new(8, SIZE_MAX / 4) == NULL);
    CHECK(errno == EINVAL || errno == ENOMEM);
    np_chan *c = np_chan_new(1, 0);
    CHECK(c);
    CHECK_EQ(np_chan_free(c), 0);
}

/* Outside a coroutine (no runtime running, or a thread of its own while one runs):
 * np_chan_new, np_chan_free, np_chan_cap and np_chan_len work; send, receive and select
 * fail with EPERM and leave the channel as it was. The tries and close fail so too
 * when no runtime runs; while one runs (running) they work (test_foreign.c): here the
 * full channel's trysend gives EAGAIN, its value is taken and put back. */
static void outside_ops(np_chan *c, size_t len, bool running)
{
    int v = 3;
    CHECK_EQ(np_chan_cap(c), 1);
    CHECK_EQ(np_chan_len(c), len);
    CHECK_ERR(np_chan_send(c, &v), EPERM);
    CHECK_ERR(np_chan_recv(c, &v), EPERM);
    if (running) {
        CHECK_ERR(np_chan_trysend(c, &v), EAGAIN);
        int w = 0;
        CHECK_EQ(np_chan_tryrecv(c, &w), 1);
        CHECK_EQ(w, 7);
        CHECK_EQ(np_chan_trysend(c, &w), 0);
    } else {
        CHECK_ERR(np_chan_trysend(c, &v), EPERM);
        CHECK_ERR(np_chan_tryrecv(c, &v), EPERM);
        CHECK_ERR(np_chan_close(c), EPERM);
    }
    np_case cs[2] = {{c, NP_RECV, &v, 7}, {c, NP_SEND, &v, 7}};
    CHECK_ERR(np_select(cs, 2, 0), EPERM);
    CHECK_ERR(np_select(cs, 2, -1), EPERM);
    CHECK_ERR(np_select(cs, 2, 1000000), EPERM);
    CHECK_ERR(np_select(NULL, 0, 1000000), EPERM);
    CHECK_EQ(cs[0].ok, 7);
    CHECK_EQ(cs[1].ok, 7);
    CHECK_EQ(v, 3);
    CHECK_EQ(np_chan_len(c), len);
    /* bad arguments are still EINVAL */
    CHECK_ERR(np_chan_close(NULL), EINVAL);
    CHECK_ERR(np_chan_send(c, NULL), EINVAL);
    np_chan *d = np_chan_new(sizeof(long), 4);
    CHECK(d);
    CHECK_EQ(np_chan_cap(d), 4);
    CHECK_EQ(np_chan_len(d), 0);
    CHECK_EQ(np_chan_free(d), 0);
}

static atomic_int outside_done;
static void *outside_thread(void *arg)
{
    outside_ops(arg, 1, true);
    atomic_store(&outside_done, 1);
    return NULL;
}

static void outside_main(void *arg)
{
    np_chan *c = arg;
    int v = 7;
    CHECK_EQ(np_chan_trysend(c, &v), 0); /* still open, still empty */
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, outside_thread, c), 0);
    int64_t t0 = np_now();
    while (!atomic_load(&outside_done)) {
        if (np_now() - t0 > 30LL * 1000000000)
            FAILF("the outside thread did not finish");
        CHECK_EQ(np_yield(), 0);
    }
    CHECK_EQ(pthread_join(th, NULL), 0);
    v = 0;
    CHECK_EQ(np_chan_tryrecv(c, &v), 1);
    CHECK_EQ(v, 7);
    if (np_procs() == 2) /* the last run */
        CHECK_EQ(np_chan_close(c), 0);
}

static void t_outside_coroutine(void)
{
    np_chan *c = np_chan_new(sizeof(int), 1);
    CHECK(c);
    outside_ops(c, 0, false); /* no runtime */
    for (int procs = 1; procs <= 2; procs++) { /* a plain thread while a runtime runs */
        atomic_store(&outside_done, 0);
        t_procs(procs);
        T_RUN(outside_main, c);
    }
    CHECK_ERR(np_chan_close(c), EPERM); /* after np_run: closed, but EPERM comes first */
    int v = 1;
    CHECK_ERR(np_chan_tryrecv(c, &v), EPERM);
    CHECK_EQ(np_chan_free(c), 0);
}

static void null_chan_main(void *arg)
{
    int v = 0;
    CHECK_ERR(np_chan_send(NULL, &v), EINVAL);
    CHECK_ERR(np_chan_recv(NULL, &v), EINVAL);
    CHECK_ERR(np_chan_close(NULL), EINVAL);
    np_chan *c = np_chan_new(sizeof v, 1);
    CHECK_ERR(np_chan_send(c, NULL), EINVAL);
    np_chan_free(c);
}

static void t_invalid_args(void)
{
    t_procs(1);
    T_RUN(null_chan_main, NULL);
}

/* ---- select ----------------------------------------------------------------------------------- */

static void sel_default_main(void *arg)
{
    np_chan *a = np_chan_new(sizeof(int), 1), *b = np_chan_new(sizeof(int), 0);
    int va = -1, vb = -1;
    np_case cs[2] = {{a, NP_RECV, &va, 7}, {b, NP_RECV, &vb, 7}};
    /* nothing ready: the default branch */
    CHECK_ERR(np_select(cs, 2, 0), EAGAIN);
    CHECK_ERR(np_select(NULL, 0, 0), EAGAIN);
    /* one ready */
    int x = 11;
    CHECK_EQ(np_chan_send(a, &x), 0);
    CHECK_EQ(np_select(cs, 2, 0), 0);
    CHECK_EQ(cs[0].ok, 1);
    CHECK_EQ(va, 11);
    /* a send case into the buffer */
    np_case snd[2] = {{b, NP_SEND, &x, 0}, {a, NP_SEND, &x, 0}};
    CHECK_EQ(np_select(snd, 2, 0), 1);
    CHECK_EQ(snd[1].ok, 1);
    CHECK_ERR(np_select(snd, 2, 0), EAGAIN); /* buffer full, no receiver */
    CHECK_EQ(np_chan_recv(a, &va), 1);
    /* NULL channels never become ready */
    np_case nil[2] = {{NULL, NP_RECV, &va, 0}, {NULL, NP_SEND, &x, 0}};
    CHECK_ERR(np_select(nil, 2, 0), EAGAIN);
    /* bad op */
    np_case bad = {a, 99, &x, 0};
    CHECK_ERR(np_select(&bad, 1, 0), EINVAL);
    CHECK_ERR(np_select(cs, -1, 0), EINVAL);
    np_chan_free(a);
    np_chan_free(b);
}

static void t_select_default(void)
{
    t_procs(1);
    T_RUN(sel_default_main, NULL);
}

static void sel_timeout_main(void *arg)
{
    np_chan *a = np_chan_new(sizeof(int), 0);
    int v;
    np_case cs[1] = {{a, NP_RECV, &v, 0}};
    for (int64_t to = 1000000; to <= 16000000; to *= 4) {
        int64_t t0 = np_now();
        CHECK_ERR(np_select(cs, 1, to), ETIMEDOUT);
        int64_t dt = np_now() - t0;
        if (dt < to)
            FAILF("select with a %lld ns timeout returned after %lld ns", (long long)to,
                  (long long)dt);
    }
    /* no cases at all (or only NULL channels): a plain timed wait */
    np_case nil = {NULL, NP_RECV, &v, 0};
    int64_t t0 = np_now();
    CHECK_ERR(np_select(&nil, 1, 3000000), ETIMEDOUT);
    CHECK(np_now() - t0 >= 3000000);
    t0 = np_now();
    CHECK_ERR(np_select(NULL, 0, 3000000), ETIMEDOUT);
    CHECK(np_now() - t0 >= 3000000);
    /* two cases, neither ever ready (a send nobody takes): times out as well */
    np_chan *b = np_chan_new(sizeof(int), 0);
    int out = 1;
    np_case two[2] = {{a, NP_RECV, &v, 0}, {b, NP_SEND, &out, 0}};
    t0 = np_now();
    CHECK_ERR(np_select(two, 2, 3000000), ETIMEDOUT);
    CHECK(np_now() - t0 >= 3000000);
    CHECK_EQ(np_chan_free(b), 0); /* its cases were withdrawn */
    CHECK_EQ(np_chan_free(a), 0);
}

static void t_select_timeout_not_early(void)
{
    t_procs(2);
    T_RUN(sel_timeout_main, NULL);
    t_procs(1);
    T_RUN(sel_timeout_main, NULL);
}

/* A blocked select wakes for whichever case becomes ready: a send, a receive, a close;
 * and a value that arrives before the timeout beats it. */
static np_chan *sa, *sb, *sc;

static void sel_feeder(void *arg)
{
    int step = (int)(intptr_t)arg;
    wait_blocked(NP_WAIT_SELECT, 1); /* the select is blocked */
    int v = 40 + step, r = -1;
    switch (step) {
    case 0:
        CHECK_EQ(np_chan_send(sb, &v), 0);
        break;
    case 1:
        CHECK_EQ(np_chan_recv(sc, &r), 1); /* takes what the select's send case offers */
        CHECK_EQ(r, 99);
        break;
    case 2:
        CHECK_EQ(np_chan_close(sa), 0);
        break;
    }
    np_wg_done(&wg);
}

static void sel_wake_main(void *arg)
{
    sa = np_chan_new(sizeof(int), 0);
    sb = np_chan_new(sizeof(int), 0);
    sc = np_chan_new(sizeof(int), 0);
    int va = -1, vb = -1, out = 99;
    for (int step = 0; step < 3; step++) {
        np_case cs[3] = {{sa, NP_RECV, &va, 0}, {sb, NP_RECV, &vb, 0}, {sc, NP_SEND, &out, 0}};
        np_wg_add(&wg, 1);
        np_go(sel_feeder, (void *)(intptr_t)step);
        int64_t t0 = np_now();
        int r = np_select(cs, 3, step == 1 ? 10LL * 1000000000 : -1);
        if (step == 1 && np_now() - t0 >= 10LL * 1000000000)
            FAILF("the select with a value coming waited for its whole timeout");
        switch (step) {
        case 0:
            CHECK_EQ(r, 1);
            CHECK_EQ(cs[1].ok, 1);
            CHECK_EQ(vb, 40);
            break;
        case 1:
            CHECK_EQ(r, 2);
            CHECK_EQ(cs[2].ok, 1);
            break;
        case 2:
            CHECK_EQ(r, 0);
            CHECK_EQ(cs[0].ok, 0);
            CHECK_EQ(va, 0);
            break;
        }
        np_wg_wait(&wg);
    }
    /* the losing cases were withdrawn: the channels have no waiters left */
    CHECK_EQ(np_chan_free(sb), 0);
    CHECK_EQ(np_chan_free(sc), 0);
    CHECK_EQ(np_chan_free(sa), 0);
}

static void t_select_wakes(void)
{
    t_procs(2);
    T_RUN(sel_wake_main, NULL);
    t_procs(1);
    T_RUN(sel_wake_main, NULL);
}

/* Several ready cases: each gets chosen (the order of polling is random). */
static void sel_random_main(void *arg)
{
    enum { K = 4, N = 4000 };
    np_chan *c[K];
    int counts[K] = {0}, v[K];
    np_case cs[K];
    for (int k = 0; k < K; k++) {
        c[k] = np_chan_new(sizeof(int), 1);
        cs[k] = (np_case){c[k], NP_RECV, &v[k], 0};
    }
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < K; k++)
            if (np_chan_len(c[k]) == 0)
                CHECK_EQ(np_chan_send(c[k], &k), 0);
        int r = np_select(cs, K, -1);
        CHECK(r >= 0 && r < K);
        CHECK_EQ(v[r], r);
        counts[r]++;
    }
    for (int k = 0; k < K; k++)
        if (counts[k] < N / K / 2)
            FAILF("case %d chosen %d times out of %d", k, counts[k], N);
    for (int k = 0; k < K; k++)
        np_chan_free(c[k]);
}

static void t_select_random_choice(void)
{
    t_procs(1);
    T_RUN(sel_random_main, NULL);
}

static void sel_closed_main(void *arg)
{
    np_chan *a = np_chan_new(sizeof(int), 0), *b = np_chan_new(sizeof(int), 0);
    CHECK_EQ(np_chan_close(a), 0);
    int v = 1, w = 5;
    /* a send on a closed channel: -1/EPIPE with that case's ok = -1 */
    np_case cs[2] = {{b, NP_RECV, &w, 0}, {a, NP_SEND, &v, 0}};
    CHECK_ERR(np_select(cs, 2, -1), EPIPE);
    CHECK_EQ(cs[1].ok, -1);
    CHECK_ERR(np_select(&cs[1], 1, 0), EPIPE);
    /* a receive from a closed channel is ready: ok = 0, value zeroed */
    np_case rc[2] = {{b, NP_RECV, &w, 0}, {a, NP_RECV, &v, 7}};
    CHECK_EQ(np_select(rc, 2, -1), 1);
    CHECK_EQ(rc[1].ok, 0);
    CHECK_EQ(v, 0);
    CHECK_EQ(w, 5); /* the other case's destination is untouched */
    CHECK_EQ(np_chan_free(a), 0);
    CHECK_EQ(np_chan_free(b), 0);
}

static void sel_send_closed_later(void *arg)
{
    wait_blocked(NP_WAIT_SELECT, 1);
    CHECK_EQ(np_chan_close(arg), 0);
    np_wg_done(&wg);
}

static void sel_closed_while_blocked_main(void *arg)
{
    np_chan *a = np_chan_new(sizeof(int), 0), *b = np_chan_new(sizeof(int), 0);
    int v = 1, w = 5;
    np_case cs[2] = {{b, NP_RECV, &w, 0}, {a, NP_SEND, &v, 0}};
    np_wg_add(&wg, 1);
    np_go(sel_send_closed_later, a);
    CHECK_ERR(np_select(cs, 2, -1), EPIPE);
    CHECK_EQ(cs[1].ok, -1);
    np_wg_wait(&wg);
    CHECK_EQ(np_chan_free(b), 0);
    CHECK_EQ(np_chan_free(a), 0);
}

static void t_select_closed(void)
{
    t_procs(2);
    T_RUN(sel_closed_main, NULL);
    T_RUN(sel_closed_while_blocked_main, NULL);
    t_procs(1);
    T_RUN(sel_closed_while_blocked_main, NULL);
}

/* ---- stress -------------------------------------------------------------------------------------- */

typedef struct stress {
    np_chan *c;
    long per_producer;
    int producers, consumers;
    np_wg prod, cons;
    atomic_ullong sum, xsum;
    atomic_long count;
} stress;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL;
    x ^= x >> 27;
    return x;
}

static void producer(void *arg)
{
    stress *s = arg;
    static atomic_int next_id;
    long id = atomic_fetch_add(&next_id, 1) % s->producers;
    for (long i = 0; i < s->per_producer; i++) {
        uint64_t v = (uint64_t)id << 40 | (uint64_t)i;
        if (np_chan_send(s->c, &v) != 0)
            FAILF("send: %s", strerror(T_ERRNO));
    }
    np_wg_done(&s->prod);
}

static void consumer(void *arg)
{
    stress *s = arg;
    uint64_t v, sum = 0, xs = 0;
    long n = 0;
    int r;
    while ((r = np_chan_recv(s->c, &v)) == 1) {
        sum += v;
        xs ^= mix(v);
        n++;
    }
    CHECK_EQ(r, 0);
    atomic_fetch_add(&s->sum, sum);
    atomic_fetch_xor(&s->xsum, xs);
    atomic_fetch_add(&s->count, n);
    np_wg_done(&s->cons);
}

static void stress_main(void *arg)
{
    stress *s = arg;
    np_wg_add(&s->cons, s->consumers);
    for (int i = 0; i < s->consumers; i++)
        np_go(consumer, s);
    np_wg_add(&s->prod, s->producers);
    for (int i = 0; i < s->producers; i++)
        np_go(producer, s);
    np_wg_wait(&s->prod);
    np_chan_close(s->c);
    np_wg_wait(&s->cons);
}

static void run_stress(int procs, size_t cap, int producers, int consumers, long total)
{
    stress *s = calloc(1, sizeof *s);
    s->c = np_chan_new(sizeof(uint64_t), cap);
    s->producers = producers;
    s->consumers = consumers;
    s->per_producer = total / producers;
    t_procs(procs);
    T_RUN(stress_main, s);
    uint64_t sum = 0, xs = 0;
    for (long id = 0; id < producers; id++)
        for (long i = 0; i < s->per_producer; i++) {
            uint64_t v = (uint64_t)id << 40 | (uint64_t)i;
            sum += v;
            xs ^= mix(v);
        }
    CHECK_EQ(atomic_load(&s->count), s->per_producer * producers);
    CHECK(atomic_load(&s->sum) == sum);
    CHECK(atomic_load(&s->xsum) == xs);
    CHECK_EQ(np_chan_free(s->c), 0);
    free(s);
}

/* 10^6 messages, several producers and consumers, two Ps. */
static void t_stress_unbuffered_2p(void) { run_stress(2, 0, 4, 4, t_scaled(1000000)); }
static void t_stress_buffered_2p(void) { run_stress(2, 64, 4, 4, t_scaled(1000000)); }
static void t_stress_cap1_2p(void) { run_stress(2, 1, 3, 5, t_scaled(1000000)); }
static void t_stress_unbuffered_1p(void) { run_stress(1, 0, 4, 4, t_scaled(1000000)); }
static void t_stress_many_2p(void) { run_stress(2, 16, 50, 50, t_scaled(500000)); }

/* Select under load: consumers select over two channels (with a timeout case that keeps
 * firing and being withdrawn), producers alternate between plain sends and selects.
 * No value is lost or duplicated (count and sum), a select that timed out took no
 * value, and once the producers are done (nothing is sent any more) every consumer's
 * select times out again (its timer still works after all those withdrawals). */
#define SEL_CONSUMERS 4
typedef struct selstress {
    np_chan *c[2];
    long per_producer;
    np_wg prod, cons;
    atomic_long count;
    atomic_long timeouts[SEL_CONSUMERS];
    atomic_int next_consumer;
    atomic_ullong sum;
} selstress;

static void sel_producer(void *arg)
{
    selstress *s = arg;
    for (long i = 1; i <= s->per_producer; i++) {
        uint64_t v = (uint64_t)i;
        if (i % 2) {
            CHECK_EQ(np_chan_send(s->c[i % 4 == 1], &v), 0);
        } else {
            np_case cs[2] = {{s->c[0], NP_SEND, &v, 0}, {s->c[1], NP_SEND, &v, 0}};
            int r = np_select(cs, 2, -1);
            if (r != 0 && r != 1)
                FAILF("select returned %d (errno %d)", r, T_ERRNO);
            CHECK_EQ(cs[r].ok, 1);
        }
    }
    np_wg_done(&s->prod);
}

static void sel_consumer(void *arg)
{
    selstress *s = arg;
    int me = atomic_fetch_add(&s->next_consumer, 1);
    CHECK(me < SEL_CONSUMERS);
    int open = 3;
    uint64_t v;
    long n = 0;
    uint64_t sum = 0;
    while (open) {
        np_case cs[2] = {{(open & 1) ? s->c[0] : NULL, NP_RECV, &v, 0},
                         {(open & 2) ? s->c[1] : NULL, NP_RECV, &v, 0}};
        v = UINT64_MAX; /* no value sent is this */
        int r = np_select(cs, 2, 200000);
        if (r < 0) {
            CHECK_EQ(T_ERRNO, ETIMEDOUT);
            if (v != UINT64_MAX)
                FAILF("a select that timed out took a value (%" PRIu64 ")", v);
            atomic_fetch_add(&s->timeouts[me], 1);
            continue;
        }
        CHECK(r == 0 || r == 1);
        if (cs[r].ok == 0) {
            open &= ~(1 << r);
            continue;
        }
        n++;
        sum += v;
    }
    atomic_fetch_add(&s->count, n);
    atomic_fetch_add(&s->sum, sum);
    np_wg_done(&s->cons);
}

static void selstress_main(void *arg)
{
    selstress *s = arg;
    s->c[0] = np_chan_new(sizeof(uint64_t), 0);
    s->c[1] = np_chan_new(sizeof(uint64_t), 8);
    np_wg_add(&s->cons, SEL_CONSUMERS);
    for (int i = 0; i < SEL_CONSUMERS; i++)
        np_go(sel_consumer, s);
    np_wg_add(&s->prod, 4);
    for (int i = 0; i < 4; i++)
        np_go(sel_producer, s);
    np_wg_wait(&s->prod);
    /* nothing is sent any more: each consumer's select times out, again and again */
    long before[SEL_CONSUMERS];
    for (int i = 0; i < SEL_CONSUMERS; i++)
        before[i] = atomic_load(&s->timeouts[i]);
    int64_t t0 = np_now(), limit = 10LL * 1000000000 * (t_scale_v() > 1 ? 3 : 1);
    for (int i = 0; i < SEL_CONSUMERS; i++)
        while (atomic_load(&s->timeouts[i]) < before[i] + 2) {
            if (np_now() - t0 > limit)
                FAILF("consumer %d: %ld timeouts in 10 s with nothing sent", i,
                      atomic_load(&s->timeouts[i]) - before[i]);
            CHECK_EQ(np_yield(), 0);
        }
    CHECK_EQ(np_chan_len(s->c[1]), 0);
    CHECK_EQ(np_chan_close(s->c[0]), 0);
    CHECK_EQ(np_chan_close(s->c[1]), 0);
    np_wg_wait(&s->cons);
    CHECK_EQ(np_chan_free(s->c[0]), 0);
    CHECK_EQ(np_chan_free(s->c[1]), 0);
}

static void t_stress_select_2p(void)
{
    selstress s = {0};
    s.per_producer = t_scaled(250000);
    t_procs(2);
    T_RUN(selstress_main, &s);
    CHECK_EQ(atomic_load(&s.count), 4 * s.per_producer);
    CHECK(atomic_load(&s.sum) == 4 * (uint64_t)s.per_producer * (s.per_producer + 1) / 2);
}

static void t_stress_select_1p(void)
{
    selstress s = {0};
    s.per_producer = t_scaled(100000);
    t_procs(1);
    T_RUN(selstress_main, &s);
    CHECK_EQ(atomic_load(&s.count), 4 * s.per_producer);
    CHECK(atomic_load(&s.sum) == 4 * (uint64_t)s.per_producer * (s.per_producer + 1) / 2);
}

/* One P: a receiver waiting on an unbuffered channel resumed in each way the one that
 * readied it can leave: yielding, exiting, parking in a sleep (which has work to finish
 * once off its stack); and woken by a close. Each round checks the value, the
 * order, and that the readier's leaving was finished (it runs again, its G is reused). */
static np_chan *rs_c;
static int rs_step;

static void rs_yielder(void *arg)
{
    long v = (long)(intptr_t)arg;
    if (v < 0)
        CHECK_EQ(np_yield(), 0); /* let the receiver wait first */
    CHECK_EQ(np_chan_send(rs_c, &v), 0);
    rs_step = 1;
    CHECK_EQ(np_yield(), 0); /* the receiver runs; this one is queued again */
    CHECK_EQ(rs_step, 2);
    rs_step = 3;
}

static void rs_exiter(void *arg)
{
    CHECK_EQ(np_yield(), 0); /* let the receiver wait first */
    long v = (long)(intptr_t)arg;
    CHECK_EQ(np_chan_send(rs_c, &v), 0);
}

static void rs_sleeper(void *arg)
{
    CHECK_EQ(np_yield(), 0);
    long v = (long)(intptr_t)arg;
    CHECK_EQ(np_chan_send(rs_c, &v), 0);
    np_sleep(1000); /* parks with an unlock function */
    rs_step = 5;
}

static void rs_closer(void *arg)
{
    CHECK_EQ(np_yield(), 0);
    CHECK_EQ(np_chan_close(rs_c), 0);
}

static void rs_main(void *arg)
{
    rs_c = np_chan_new(sizeof(long), 0);
    long v = 0;
    for (long i = 1; i <= 200; i++) {
        for (long s = -1; s <= 1; s += 2) {
            rs_step = 0;
            /* i: runs first, its send waits; -i: yields, the receive waits */
            CHECK(np_go(rs_yielder, (void *)(intptr_t)(s * i)) > 0);
            CHECK_EQ(np_chan_recv(rs_c, &v), 1);
            CHECK_EQ(v, s * i);
            while (rs_step != 1)
                CHECK_EQ(np_yield(), 0);
            rs_step = 2;
            while (rs_step != 3)
                CHECK_EQ(np_yield(), 0);
        }

        CHECK(np_go(rs_exiter, (void *)(intptr_t)(i + 1000)) > 0);
        CHECK_EQ(np_chan_recv(rs_c, &v), 1); /* waits; resumed as the sender exits */
        CHECK_EQ(v, i + 1000);

        CHECK(np_go(rs_sleeper, (void *)(intptr_t)(i + 2000)) > 0);
        CHECK_EQ(np_chan_recv(rs_c, &v), 1); /* resumed as the sender parks in its sleep */
        CHECK_EQ(v, i + 2000);
        while (rs_step != 5)
            CHECK_EQ(np_yield(), 0);
    }
    v = 9;
    CHECK(np_go(rs_closer, NULL) > 0);
    CHECK_EQ(np_chan_recv(rs_c, &v), 0); /* waits; woken by the close */
    CHECK_EQ(v, 0);
    CHECK_EQ(np_chan_recv(rs_c, &v), 0);
    CHECK_EQ(np_chan_free(rs_c), 0);
}

static void t_parked_receiver_resumes_1p(void)
{
    t_procs(1);
    T_RUN(rs_main, NULL);
}

static const t_case cases[] = {
    T(t_unbuffered),
    T(t_unbuffered_receiver_first),
    T(t_buffered),
    T(t_buffered_blocking_fifo),
    T(t_fifo_waiters_1p),
    T(t_close),
    T(t_free_busy),
    T(t_new_invalid),
    T(t_invalid_args),
    T(t_outside_coroutine),
    T(t_select_default),
    T(t_select_timeout_not_early),
    T(t_select_wakes),
    T(t_select_random_choice),
    T(t_select_closed),
    T(t_stress_unbuffered_2p),
    T(t_stress_buffered_2p),
    T(t_stress_cap1_2p),
    T(t_stress_unbuffered_1p),
    T(t_stress_many_2p),
    T(t_stress_select_2p),
    T(t_stress_select_1p),
    T(t_parked_receiver_resumes_1p),
    {0},
};

T_MAIN(cases)
