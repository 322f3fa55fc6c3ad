/* Unmodified libcurl (Debian's, easy API) in coroutines, through libnp-hook, against
 * nginx on loopback (tests/servers.sh starts it: NP_HTTP_PORT; /hello.txt, /big.bin and
 * /slow.bin, which nginx sends at 16 kB/s). curl_easy_perform waits in poll(2) on its
 * socket and its wake-up socketpair: the waits park, one coroutine per transfer. */
#include "t.h"
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000LL
#define N 100
#define BIG (1 << 20)
#define SLOW (48 << 10)

static int hport;
static np_wg wg = NP_WG_INIT;
static int64_t t0, fast_last, slow_end;

/* The content servers.sh writes: byte i of big.bin and slow.bin is (i * 31 + 7) % 251. */
static unsigned char want_byte(size_t i) { return (unsigned char)((i * 31 + 7) % 251); }

struct body { size_t len; bool ok; char head[64]; };

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t len = size * n;
    for (size_t i = 0; i < len; i++) {
        if (b->len + i < sizeof b->head - 1)
            b->head[b->len + i] = p[i];
        if ((unsigned char)p[i] != want_byte(b->len + i))
            b->ok = false;
    }
    b->len += len;
    return len;
}

static void fetch(void *arg)
{
    int i = (int)(intptr_t)arg;
    const char *path = i == 0 ? "slow.bin" : i % 2 ? "hello.txt" : "big.bin";
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", hport, path);
    CURL *c = curl_easy_init();
    CHECK(c != NULL);
    struct body b = {0, true, {0}};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        FAILF("%s: %s", url, curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    CHECK_EQ(status, 200L);
    if (i == 0) {
        CHECK_EQ(b.len, (size_t)SLOW);
        CHECK(b.ok);
        slow_end = np_now() - t0;
    } else if (i % 2) {
        CHECK_EQ(b.len, strlen("hello from nginx\n"));
        CHECK(strcmp(b.head, "hello from nginx\n") == 0);
    } else {
        CHECK_EQ(b.len, (size_t)BIG);
        CHECK(b.ok);
    }
    if (i != 0 && np_now() - t0 > fast_last)
        fast_last = np_now() - t0;
    curl_easy_cleanup(c);
    np_wg_done(&wg);
}

static void many_main(void *arg)
{
    t0 = np_now();
    fast_last = slow_end = 0;
    np_wg_add(&wg, N);
    for (int i = 0; i < N; i++)
        CHECK(np_go(fetch, (void *)(intptr_t)i) > 0);
    np_wg_wait(&wg);
    /* one thread: the 99 others were served while the slow transfer went on */
    if (fast_last >= slow_end)
        FAILF("the fast transfers ended at %lld ms, after the slow one (%lld ms)", (long long)(fast_last / MS),
              (long long)(slow_end / MS));
    CHECK(slow_end >= 1000 * MS); /* 48 kB at 16 kB/s (nginx sends a first burst) */
}

static void transfers(int procs)
{
    const char *p = getenv("NP_HTTP_PORT");
    if (!p)
        T_SKIP("NP_HTTP_PORT not set (tests/servers.sh starts nginx)");
    hport = atoi(p);
    CHECK_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    t_procs(procs);
    T_RUN(many_main, NULL);
    curl_global_cleanup();
}

static void t_100_transfers_one_slow(void) { transfers(1); }
static void t_100_transfers_two_ps(void) { transfers(2); }

static const t_case cases[] = {
    T(t_100_transfers_one_slow),
    T(t_100_transfers_two_ps),
    {0},
};
T_MAIN(cases)
