/* np-bench-runtime: the shape of the yardstick's go_ctx. Prints
 * switch_ns=… spawn_ns=… parked_kib=…  (run with NP_PROCS=1 to compare with go_ctx). */
#include <np.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static np_chan *a, *b;
static np_wg wg = NP_WG_INIT, started = NP_WG_INIT;
static np_chan *block;

static void echo(void *arg)
{
    long v;
    while (np_chan_recv(a, &v) == 1)
        np_chan_send(b, &v);
}

static void spawned(void *arg) { np_wg_done(&wg); }

static void parked(void *arg)
{
    np_wg_done(&started);
    np_chan_recv(block, NULL);
}

static void bench(void *arg)
{
    const long N = 2000000, P = 100000;
    a = np_chan_new(sizeof(long), 0);
    b = np_chan_new(sizeof(long), 0);
    np_go(echo, NULL);
    int64_t t = np_now();
    for (long i = 0; i < N; i++) {
        long v;
        np_chan_send(a, &i);
        np_chan_recv(b, &v);
    }
    double sw = (double)(np_now() - t) / (2.0 * N);
    np_chan_close(a);

    t = np_now();
    for (long i = 0; i < N; i++) {
        np_wg_add(&wg, 1);
        np_go(spawned, NULL);
    }
    np_wg_wait(&wg);
    double sp = (double)(np_now() - t) / N;

    block = np_chan_new(1, 0);
    long base = rss_kib();
    for (long i = 0; i < P; i++) {
        np_wg_add(&started, 1);
        np_go(parked, NULL);
    }
    np_wg_wait(&started);
    double kib = (double)(rss_kib() - base) / P;
    np_chan_close(block);
    printf("switch_ns=%.1f spawn_ns=%.1f parked_kib=%.2f\n", sw, sp, kib);
}

int main(void)
{
    if (np_run(bench, NULL) != 0) {
        perror("np_run");
        return 1;
    }
    return 0;
}
