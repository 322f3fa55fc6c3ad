/* libnp-hook (src/hook): libc's sleeping calls park a coroutine instead of its thread,
 * and run unchanged elsewhere. Linked with libnp-hook before libnp. */
#include "t.h"
#include <errno.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000LL

/* Sleepers on one P: with the hooks, four 30 ms sleeps in four coroutines take ~30 ms
 * together (they park); without them, libc's call would block the only thread: 120 ms. */
static np_wg sl_wg = NP_WG_INIT;
static int sl_kind;

static void sleeper(void *arg)
{
    struct timespec ts = {0, 30 * MS}, rem = {5, 5};
    switch ((int)(intptr_t)arg) {
    case 0: CHECK_EQ(nanosleep(&ts, &rem), 0); CHECK_EQ(rem.tv_sec + rem.tv_nsec, 0); break;
    case 1: CHECK_EQ(usleep(30000), 0); break;
    case 2: CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), 0); break;
    case 3: CHECK_EQ(clock_nanosleep(CLOCK_REALTIME, 0, &ts, &rem), 0); break;
    }
    np_wg_done(&sl_wg);
}

static void sleepers_main(void *arg)
{
    for (int attempt = 0;; attempt++) {
        int64_t t0 = np_now();
        np_wg_add(&sl_wg, 8);
        for (int i = 0; i < 8; i++)
            CHECK(np_go(sleeper, (void *)(intptr_t)(sl_kind >= 0 ? sl_kind : i % 4)) > 0);
        /* all eight are parked in a sleep at once: the thread is free */
        wait_blocked(NP_WAIT_SLEEP, 8);
        np_wg_wait(&sl_wg);
        int64_t took = np_now() - t0;
        CHECK(took >= 30 * MS); /* never early */
        if (took < 200 * MS)
            break;
        if (attempt == 2)
            FAILF("eight 30 ms sleeps in coroutines took %lld ms: they blocked the thread",
                  (long long)(took / MS));
    }
}

static void t_sleeps_park_the_coroutine(void)
{
    t_procs(1);
    sl_kind = -1;
    T_RUN(sleepers_main, NULL);
}

static void bad_args_main(void *arg)
{
    struct timespec bad = {0, 1000000000L}, neg = {-1, 0};
    T_ERRNO = 0;
    CHECK_EQ(nanosleep(&bad, NULL), -1);
    CHECK_EQ(t_errno(), EINVAL);
    CHECK_EQ(nanosleep(&neg, NULL), -1);
    CHECK_EQ(t_errno(), EINVAL);
    CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, NULL), EINVAL);
    /* an absolute sleep goes to libc: a time already passed returns at once */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &now, NULL), 0);
    CHECK_EQ(sleep(0), 0u);
}

static void t_sleep_arguments(void)
{
    t_procs(1);
    T_RUN(bad_args_main, NULL);
}

/* Outside a coroutine libc's call runs: the thread sleeps, errors as libc gives them. */
static void t_outside_coroutine_is_libc(void)
{
    struct timespec ts = {0, 5 * MS}, bad = {0, -1};
    int64_t t0 = np_now();
    CHECK_EQ(nanosleep(&ts, NULL), 0);
    CHECK(np_now() - t0 >= 5 * MS);
    T_ERRNO = 0;
    CHECK_EQ(nanosleep(&bad, NULL), -1);
    CHECK_EQ(t_errno(), EINVAL);
    CHECK_EQ(usleep(1000), 0);
}

static const t_case cases[] = {
    T(t_sleeps_park_the_coroutine),
    T(t_sleep_arguments),
    T(t_outside_coroutine_is_libc),
    {0},
};
T_MAIN(cases)
