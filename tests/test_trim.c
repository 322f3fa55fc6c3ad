/* Stack trimming (src/sched/trim.c): a coroutine parked for NP_STACK_TRIM ms gives the
 * pages below its stack pointer back, keeps everything above it, and runs deep again
 * afterwards; trims racing wake-ups on two Ps never let a stack run while trimmed. */
#include "t.h"
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#define MS 1000000LL
#define DEEP 65536

static volatile char *deep_page; /* a page the deep frame used, below the parked sp */

/* Touch DEEP bytes of stack below the caller; returns a checksum of a fresh pattern. */
static __attribute__((noinline)) long deep(int seed)
{
    volatile char buf[DEEP];
    for (int i = 0; i < DEEP; i += 64)
        buf[i] = (char)(i / 64 + seed);
    deep_page = (volatile char *)((uintptr_t)&buf[DEEP / 2] & ~(uintptr_t)4095);
    long sum = 0;
    for (int i = 0; i < DEEP; i += 64)
        sum += buf[i];
    return sum;
}

static long want_sum(int seed)
{
    long sum = 0;
    for (int i = 0; i < DEEP; i += 64)
        sum += (char)(i / 64 + seed);
    return sum;
}

static bool resident(volatile char *page)
{
    unsigned char v = 0;
    CHECK_EQ(mincore((void *)page, 4096, &v), 0);
    return v & 1;
}

/* Does MADV_DONTNEED take effect here? (qemu-user may accept it and do nothing.) */
static bool dontneed_works(void)
{
    char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    m[0] = 1;
    bool ok = madvise(m, 4096, MADV_DONTNEED) == 0 && m[0] == 0;
    munmap(m, 4096);
    return ok;
}

static int64_t trims(void)
{
    np_stats s;
    CHECK_EQ(np_stats_get(&s), 0);
    return s.stack_trims;
}

/* Wait (on the counter itself) until at least n stacks were trimmed. */
static void wait_trims(int64_t n)
{
    int64_t until = np_now() + 20000 * MS;
    while (trims() < n && np_now() < until)
        np_sleep(MS);
    CHECK(trims() >= n);
}

/* Run fn as the main coroutine on procs Ps, trimming after 1 ms parked. */
static void trim_run(int procs, np_fn fn)
{
    setenv("NP_STACK_TRIM", "1", 1);
    t_procs(procs);
    T_RUN(fn, NULL);
}

/* ---- one coroutine: dead pages go, live ones stay ----------------------------------- */

static np_chan *go_on, *result, *deep_done;

static void parker(void *arg)
{
    char live[8192]; /* above the parked sp: must survive */
    for (int i = 0; i < (int)sizeof live; i++)
        live[i] = (char)(i * 7 + 3);
    long r1 = deep(1) == want_sum(1);
    long v = 0;
    np_chan_send(deep_done, &v); /* deep_page is set */
    np_chan_recv(go_on, &v); /* parks here; the trim happens meanwhile */
    long ok = r1;
    for (int i = 0; i < (int)sizeof live; i++)
        ok &= live[i] == (char)(i * 7 + 3);
    ok &= deep(2) == want_sum(2); /* the released pages come back, zeroed, usable */
    np_chan_send(result, &ok);
}

static void one_main(void *arg)
{
    go_on = np_chan_new(sizeof(long), 0);
    result = np_chan_new(sizeof(long), 0);
    deep_done = np_chan_new(sizeof(long), 0);
    int64_t before = trims();
    np_go(parker, NULL);
    long d;
    CHECK_EQ(np_chan_recv(deep_done, &d), 1); /* (with 2 Ps it may start late) */
    wait_trims(before + 1); /* (this coroutine's own stack may be the one trimmed) */
    if (dontneed_works()) {
        int64_t until = np_now() + 20000 * MS;
        while (resident(deep_page) && np_now() < until)
            np_sleep(MS);
        CHECK(!resident(deep_page));
    } else {
        fprintf(stderr, "note: MADV_DONTNEED has no effect here; residency not checked\n");
    }
    long v = 1, ok = 0;
    CHECK_EQ(np_chan_send(go_on, &v), 0);
    CHECK_EQ(np_chan_recv(result, &ok), 1);
    CHECK_EQ(ok, 1);
    np_chan_free(go_on);
    np_chan_free(result);
    np_chan_free(deep_done);
}

static void t_trim_releases_dead_pages_keeps_live_1p(void) { trim_run(1, one_main); }

static void t_trim_releases_dead_pages_keeps_live_2p(void) { trim_run(2, one_main); }

/* ---- many coroutines waking while trims run ----------------------------------------- */

static np_wg race_wg = NP_WG_INIT;
static atomic_long race_bad;
static long race_iters;

static void racer(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    char live[2048];
    for (long it = 0; it < race_iters; it++) {
        char tag = (char)(it * 31 + (long)(uintptr_t)arg);
        memset(live, tag, sizeof live);
        if (deep((int)it) != want_sum((int)it))
            atomic_fetch_add(&race_bad, 1);
        /* 0-3 ms, now and then 4: trims (after 1 ms) race the timer's wake-up */
        np_sleep(it % 8 == 7 ? 4 * MS : (int64_t)(t_rand(&seed) % 3000000));
        for (size_t i = 0; i < sizeof live; i++)
            if (live[i] != tag) {
                atomic_fetch_add(&race_bad, 1);
                break;
            }
    }
    np_wg_done(&race_wg);
}

static void race_main(void *arg)
{
    int n = (int)t_coroutines(64);
    race_iters = t_scaled(150);
    if (race_iters < 30)
        race_iters = 30;
    int64_t before = trims();
    for (int i = 0; i < n; i++) {
        np_wg_add(&race_wg, 1);
        np_go(racer, (void *)(intptr_t)i);
    }
    np_wg_wait(&race_wg);
    CHECK_EQ(atomic_load(&race_bad), 0);
    CHECK(trims() > before);
}

static void t_trim_races_wakeups_2p(void) { trim_run(2, race_main); }

static void t_trim_races_wakeups_1p(void) { trim_run(1, race_main); }

static const t_case cases[] = {
    T(t_trim_releases_dead_pages_keeps_live_1p),
    T(t_trim_releases_dead_pages_keeps_live_2p),
    T(t_trim_races_wakeups_2p),
    T(t_trim_races_wakeups_1p),
    {0},
};

T_MAIN(cases)
