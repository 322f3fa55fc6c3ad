/* The runtime's life: np_run brings up Ps, Ms and sysmon, runs main, tears it all down.
 * Also the per-thread set-up (alternate signal stack for stack-overflow reports). */
#include "sched.h"
#include "poll.h"
#include "runq.h"
#include "../netpoll/netpoll.h"
#include "../debug/debug.h"
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void np__setm(np_m *m);
void np__schedule(np_m *m);
void np__m_init_fiber(np_m *m);
void np__g_free_all(void);
np_g *np__newg(np_p *p, np_fn fn, void *arg, size_t stack);
bool np__retake(np_p *p, int64_t now, int64_t *since);
bool np__retake_syscall(np_p *p, int64_t now);
void np__foreign_stop(void);
void np__foreign_release(void);

#define ALTSTACK (64 * 1024)

static void m_altstack(np_m *m)
{
    m->altstack.ss_sp = malloc(ALTSTACK);
    m->altstack.ss_size = ALTSTACK;
    m->altstack.ss_flags = 0;
    if (m->altstack.ss_sp)
        sigaltstack(&m->altstack, NULL);
}

static void m_altstack_free(np_m *m)
{
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
    free(m->altstack.ss_sp);
}

/* ---- Ms ------------------------------------------------------------------------------ */

static void *mstart(void *arg)
{
    np_m *m = arg;
    np__setm(m);
    np__m_init_fiber(m);
    m_altstack(m);
    m->p = m->nextp;
    m->p->m = m;
    atomic_store(&m->p->status, P_RUNNING);
    m->nextp = NULL;
    if (np__tracing()) {
        np__tev(EV_M_START, 0, 0, 0, 0);
        np__tev(EV_P_START, 0, (uint64_t)m->p->id, 0, 0);
        if (m->spinning)
            np__tev(EV_SPIN_BEGIN, 0, 0, 0, 0);
    }
    np__schedule(m);
    m_altstack_free(m);
    np__setm(NULL);
    pthread_mutex_lock(&np__sched.lock);
    np__sched.mcount--;
    pthread_cond_broadcast(&np__sched.mexit);
    pthread_mutex_unlock(&np__sched.lock);
    return NULL;
}

int np__newm(np_p *p, bool spinning)
{
    np_m *m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    m->nextp = p;
    m->spinning = spinning;
    m->rnd = (uint64_t)(uintptr_t)m;
    pthread_mutex_lock(&np__sched.lock);
    m->id = ++np__sched.mcount;
    m->alllink = np__sched.allm;
    np__sched.allm = m;
    pthread_mutex_unlock(&np__sched.lock);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    int rc = pthread_create(&m->thread, &a, mstart, m);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        pthread_mutex_lock(&np__sched.lock);
        np__sched.mcount--;
        np__sched.allm = m->alllink;
        pthread_mutex_unlock(&np__sched.lock);
        free(m);
        errno = rc;
        return -1;
    }
    return 0;
}

void np__begin_stop(void)
{
    atomic_store(&np__sched.stopping, true);
    np__foreign_stop(); /* (np_blocking's fn may wait in one: its M must be able to end) */
    pthread_mutex_lock(&np__sched.lock);
    for (np_m *m = np__sched.midle; m; m = m->link)
        np_note_wakeup(&m->park);
    np__sched.midle = NULL;
    np__sched.nmidle = 0;
    pthread_mutex_unlock(&np__sched.lock);
    np__netpoll_break();
    np_note_wakeup(&np__sched.sysmonnote);
}

/* ---- sysmon -------------------------------------------------------------------------- */

/* A timer past due on an idle P while no M waits in the poller: nobody would run it.
 * An idle P's timers are run by the M that polls until the earliest of them, or by a
 * spinning M's steal; this is the backstop should neither be under way. */
static bool timers_unwatched(int64_t now)
{
    if (atomic_load(&np__sched.npidle) == 0 || atomic_load(&np__sched.lastpoll) == 0)
        return false;
    for (int i = 0; i < np__sched.nprocs; i++) {
        np_p *p = np__sched.allp[i];
        int64_t first = np__timers_first(&p->timers);
        if (first && first <= now && atomic_load(&p->status) == P_IDLE)
            return true;
    }
    return false;
}

static void *sysmon(void *arg)
{
    (void)arg;
    int64_t *since = calloc((size_t)np__sched.nprocs, sizeof *since);
    int64_t delay = 10000000; /* 10 ms; 20 us while a blocking call is on */
    int allidle = 0;
    while (!atomic_load(&np__sched.stopping)) {
        atomic_store(&np__sched.sysmonslow, delay > 1000000);
        np_note_tsleep(&np__sched.sysmonnote, delay);
        np_note_clear(&np__sched.sysmonnote);
        atomic_store(&np__sched.sysmonslow, false);
        if (atomic_load(&np__sched.stopping))
            break;
        int64_t now = np__nanotime();
        np__trim_arm();
        allidle = atomic_load(&np__sched.npidle) == np__sched.nprocs ? allidle + 1 : 0;
        if (timers_unwatched(now)) { /* (as Go's sysmon starts an M for a timer past due) */
            np__wakep();
            allidle = 0;
        }
        /* Nothing has run for a whole period twice: sleep until a P gets busy (an idle
         * runtime costs no CPU). A brief idle moment under load does not count. */
        if (allidle >= 2) {
            pthread_mutex_lock(&np__sched.lock);
            if (atomic_load(&np__sched.npidle) == np__sched.nprocs &&
                !atomic_load(&np__sched.stopping)) {
                atomic_store(&np__sched.sysmonwait, 1);
                pthread_mutex_unlock(&np__sched.lock);
                np_note_sleep(&np__sched.sysmonnote);
                np_note_clear(&np__sched.sysmonnote);
                allidle = 0;
                delay = 20000; /* just woken: look again soon (a blocking call may follow) */
                continue;
            }
            pthread_mutex_unlock(&np__sched.lock);
        }
        bool did = false, blocked = false;
        /* Poll the network if nobody has for 10 ms (every P busy running). */
        int64_t lp = atomic_load(&np__sched.lastpoll);
        if (np__netpoll_waiters() && lp != 0 && now - lp > 10000000 &&
            atomic_compare_exchange_strong(&np__sched.lastpoll, &lp, now)) {
            np_g *list = np__netpoll(0);
            if (list)
                np__inject(list);
        }
        for (int i = 0; i < np__sched.nprocs; i++) {
            np_p *p = np__sched.allp[i];
            if (atomic_load(&p->status) == P_SYSCALL) {
                blocked = true;
                np__retake_syscall(p, now);
            }
            did |= np__retake(p, now, &since[i]);
        }
        if (did)
            np__wakep();
        delay = blocked ? 20000 : 10000000;
    }
    free(since);
    return NULL;
}

/* ---- np_run ---------------------------------------------------------------------------- */

static int env_procs(void)
{
    const char *s = getenv("NP_PROCS");
    if (s && *s) {
        char *e;
        long v = strtol(s, &e, 10);
        if (*e == 0 && v > 0 && v <= 1024)
            return (int)v;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static size_t env_stack(void)
{
    const char *s = getenv("NP_STACK");
    size_t def = 256 * 1024;
    if (!s || !*s)
        return def;
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (*e == 'k' || *e == 'K')
        v <<= 10, e++;
    else if (*e == 'm' || *e == 'M')
        v <<= 20, e++;
    if (*e != 0 || v < 16 * 1024 || v > (1ULL << 30))
        return def;
    return (size_t)v;
}

void np__fd_fini(void);

static void teardown(void)
{
    /* the heaps first: the timers still in them (some in Gs) are taken out of them, so
     * a channel of np_after freed after np_run finds its timer in none */
    for (int i = 0; i < np__sched.nprocs; i++)
        np__timers_free(&np__sched.allp[i]->timers);
    np__g_free_all();
    for (int i = 0; i < np__sched.nprocs; i++)
        free(np__sched.allp[i]);
    free(np__sched.allp);
    for (np_m *m = np__sched.allm, *n; m; m = n) {
        n = m->alllink;
        free(m);
    }
    np_stack_fini();
    np__netpoll_fini();
    np__fd_fini();
    pthread_mutex_destroy(&np__sched.lock);
    pthread_cond_destroy(&np__sched.mexit);
}

int np_run(np_fn main_fn, void *arg)
{
    if (!main_fn) {
        errno = EINVAL;
        return -1;
    }
    bool no = false;
    if (!atomic_compare_exchange_strong(&np__sched.running, &no, true)) {
        errno = EBUSY;
        return -1;
    }
    np_sched *s = &np__sched;
    memset((char *)s, 0, offsetof(np_sched, running));
    atomic_store(&s->stopping, false);
    if (np__netlog_start() != 0 || np__netpoll_init() != 0) {
        int e = errno;
        np__netlog_stop();
        atomic_store(&s->running, false);
        errno = e;
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->mexit, NULL);
    s->nprocs = env_procs();
    s->stack_size = env_stack();
    np_stack_init(s->stack_size);
    np__trim_init();
    s->allp = calloc((size_t)s->nprocs, sizeof *s->allp);
    np_m *m0 = calloc(1, sizeof *m0);
    if (!s->allp || !m0) {
        free(s->allp);
        free(m0);
        atomic_store(&s->running, false);
        errno = ENOMEM;
        return -1;
    }
    for (int i = 0; i < s->nprocs; i++) {
        s->allp[i] = calloc(1, sizeof(np_p));
        if (!s->allp[i])
            np__fatal("out of memory");
        s->allp[i]->id = i;
    }
    for (int i = s->nprocs - 1; i >= 1; i--) {
        np_p *p = s->allp[i];
        p->link = s->pidle;
        s->pidle = p;
        atomic_fetch_add(&s->npidle, 1);
    }
    m0->ism0 = true;
    m0->rnd = (uint64_t)(uintptr_t)m0 ^ (uint64_t)np__nanotime();
    s->allm = m0;
    np__setm(m0);
    np__m_init_fiber(m0);
    m_altstack(m0);
    m0->p = s->allp[0];
    s->allp[0]->m = m0;
    atomic_store(&s->allp[0]->status, P_RUNNING);

    np__signals_install();
    /* A write to a closed peer returns EPIPE instead of killing the process. */
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, NULL, &s->oldpipe);
    if (s->oldpipe.sa_handler == SIG_DFL)
        sigaction(SIGPIPE, &ign, NULL);

    atomic_store(&s->lastpoll, np__nanotime());
    s->dumpcontinue = getenv("NP_DUMP") && strcmp(getenv("NP_DUMP"), "continue") == 0;
    np_g *g = np__newg(m0->p, main_fn, arg, 0);
    if (!g)
        np__fatal("out of memory");
    g->ismain = true;
    s->maing = g;
    np__trace_init(); /* NP_TRACE */
    if (np__tracing()) {
        np__tev(EV_M_START, 0, 0, 0, 0);
        np__tev(EV_P_START, 0, 0, 0, 0);
        np__tev(EV_GO_CREATE, 0, (uint64_t)g->id, 0, (uint64_t)(uintptr_t)main_fn);
    }
    np__runqput(m0->p, g, false);
    if (pthread_create(&s->sysmon, NULL, sysmon, NULL) != 0)
        np__fatal("cannot start sysmon");

    atomic_store(&s->up, true); /* built: others may look (stats, dumps) */
    np__schedule(m0);

    /* main returned (stopping is set): foreign threads first (np_go, np_wg_done: they
     * may still start an M; later ones see stopping), sysmon (it may too), then wait
     * for every M to leave, then free everything. */
    while (atomic_load(&s->foreigners) > 0)
        sched_yield();
    pthread_join(s->sysmon, NULL);
    pthread_mutex_lock(&s->lock);
    while (s->mcount > 0) {
        for (np_m *m = s->midle; m; m = m->link)
            np_note_wakeup(&m->park);
        s->midle = NULL;
        pthread_cond_wait(&s->mexit, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    for (np_m *m = s->allm; m; m = m->alllink)
        if (!m->ism0)
            pthread_join(m->thread, NULL);
    np__foreign_release(); /* no coroutine runs any more */
    np__trace_fini();      /* (NP_TRACE=FILE: written now) */
    atomic_store(&s->up, false);
    while (atomic_load(&s->lookers) > 0) /* a look in progress ends before teardown */
        sched_yield();
    np__signals_restore();
    sigaction(SIGPIPE, &s->oldpipe, NULL);
    m_altstack_free(m0);
    np__setm(NULL);
    teardown();
    np__netlog_stop();
    atomic_store(&s->running, false);
    return 0;
}

const char *np_version(void) { return NP_VERSION_STRING; }

int np_procs(void)
{
    return atomic_load(&np__sched.up) ? np__sched.nprocs : 0;
}

/* ---- time ------------------------------------------------------------------------------ */

int64_t np_now(void) { return np__nanotime(); }

static void sleep_fire(void *arg, uintptr_t seq)
{
    (void)seq;
    np__ready_q(arg, false);
}

static bool sleep_commit(np_g *g, void *arg)
{
    int64_t when = (int64_t)(intptr_t)arg;
    if (np__timer_add(g->m->p, &g->timer, when, sleep_fire, g, 0) != 0)
        return false; /* no memory for the heap: wake at once rather than never */
    np__timer_added(when);
    return true;
}

int np_sleep(int64_t ns)
{
    np_g *g = np__getg();
    if (!g) {
        errno = EPERM;
        return -1;
    }
    if (ns <= 0)
        return np_yield();
    int64_t when = np__nanotime() + ns;
    np__park(sleep_commit, (void *)(intptr_t)when, W_SLEEP);
    return 0;
}
