/* Unmodified libpq (Debian's) in coroutines, through libnp-hook, against a throw-away
 * PostgreSQL cluster (tests/servers.sh runs this under pg_virtualenv, which sets PGHOST,
 * PGPORT, PGUSER, PGPASSWORD, PGDATABASE). libpq makes its socket non-blocking itself
 * and waits in poll(2): the waits park. */
#include "t.h"
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000LL
#define N 100

static np_wg wg = NP_WG_INIT, connected = NP_WG_INIT, start = NP_WG_INIT;
static int64_t t0, fast_end[N / 2], slow_end[N / 2];

static PGconn *connect_db(void)
{
    PGconn *c = PQconnectdb("");
    CHECK(c != NULL);
    if (PQstatus(c) != CONNECTION_OK)
        FAILF("PQconnectdb: %s", PQerrorMessage(c));
    return c;
}

/* Half sleep a second in the server; the other half run quick queries meanwhile. */
static void query(void *arg)
{
    int i = (int)(intptr_t)arg;
    PGconn *c = connect_db(); /* (a backend forked per connection: they all connect first) */
    np_wg_done(&connected);
    np_wg_wait(&start);
    char sql[128];
    bool slow = i % 2 == 0;
    if (slow)
        snprintf(sql, sizeof sql, "SELECT %d, pg_sleep(1)", i);
    else
        snprintf(sql, sizeof sql, "SELECT %d * 2, repeat('x', %d)", i, 1000 + i);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        FAILF("%s: %s", sql, PQerrorMessage(c));
    CHECK_EQ(PQntuples(r), 1);
    if (slow) {
        CHECK_EQ(atoi(PQgetvalue(r, 0, 0)), i);
        slow_end[i / 2] = np_now() - t0;
    } else {
        CHECK_EQ(atoi(PQgetvalue(r, 0, 0)), i * 2);
        CHECK_EQ((int)strlen(PQgetvalue(r, 0, 1)), 1000 + i);
        fast_end[i / 2] = np_now() - t0;
    }
    PQclear(r);
    PQfinish(c);
    np_wg_done(&wg);
}

static void many_main(void *arg)
{
    np_wg_add(&wg, N);
    np_wg_add(&connected, N);
    np_wg_add(&start, 1);
    for (int i = 0; i < N; i++)
        CHECK(np_go(query, (void *)(intptr_t)i) > 0);
    np_wg_wait(&connected);
    t0 = np_now();
    np_wg_done(&start);
    np_wg_wait(&wg);
    int64_t last_fast = 0, first_slow = INT64_MAX, last_slow = 0;
    for (int i = 0; i < N / 2; i++) {
        if (fast_end[i] > last_fast)
            last_fast = fast_end[i];
        if (slow_end[i] < first_slow)
            first_slow = slow_end[i];
        if (slow_end[i] > last_slow)
            last_slow = slow_end[i];
    }
    /* the quick half finished while the sleepers slept, all on one thread */
    if (last_fast >= first_slow)
        FAILF("the quick queries ended at %lld ms, after the first pg_sleep(1) (%lld ms)",
              (long long)(last_fast / MS), (long long)(first_slow / MS));
    CHECK(first_slow >= 1000 * MS);
    /* the fifty sleeps overlapped: one thread, one second each, together not much more */
    if (last_slow > 8000 * MS)
        FAILF("fifty concurrent pg_sleep(1) took %lld ms: they did not overlap", (long long)(last_slow / MS));
}

static void t_100_coroutines_half_sleeping(void)
{
    if (!getenv("PGPORT") && !getenv("PGHOST"))
        T_SKIP("no PostgreSQL (tests/servers.sh runs this under pg_virtualenv)");
    t_procs(1);
    T_RUN(many_main, NULL);
}

static void t_100_coroutines_two_ps(void)
{
    if (!getenv("PGPORT") && !getenv("PGHOST"))
        T_SKIP("no PostgreSQL (tests/servers.sh runs this under pg_virtualenv)");
    t_procs(2);
    T_RUN(many_main, NULL);
}

static const t_case cases[] = {
    T(t_100_coroutines_half_sleeping),
    T(t_100_coroutines_two_ps),
    {0},
};
T_MAIN(cases)
