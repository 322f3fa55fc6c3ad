/* Built outside np's tree with `pkg-config --libs np-hook` (tests/install.sh): plain
 * nanosleep/usleep calls in coroutines park them (libnp-hook), so eight 50 ms sleeps on
 * one P take about 50 ms, not 400. Exit status 0 when they did. */
#define _POSIX_C_SOURCE 200809L
#include <np.h>
#include <stdio.h>
#include <time.h>

static np_wg wg = NP_WG_INIT;

static void sleeper(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL); /* libc's name: the hook's definition */
    np_wg_done(&wg);
}

static long long took_ms;

static void main_co(void *arg)
{
    (void)arg;
    int64_t t0 = np_now();
    np_wg_add(&wg, 8);
    for (int i = 0; i < 8; i++)
        np_go(sleeper, NULL);
    np_wg_wait(&wg);
    took_ms = (long long)((np_now() - t0) / 1000000);
}

int main(void)
{
    /* outside a coroutine, libc's (or, linked statically, the system call's) sleep */
    struct timespec ts = {0, 1000000L}, bad = {0, -1};
    int64_t t0 = np_now();
    if (nanosleep(&ts, NULL) != 0 || np_now() - t0 < 1000000 || nanosleep(&bad, NULL) != -1)
        return 1;
    if (np_run(main_co, NULL) != 0)
        return 1;
    printf("eight 50 ms sleeps took %lld ms\n", took_ms);
    return took_ms >= 50 && took_ms < 300 ? 0 : 1;
}
