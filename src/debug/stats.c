/* np_stats_get: counts taken from the scheduler's structures as they are. */
#include "debug.h"
#include <errno.h>
#include <string.h>

int64_t np__fd_count(void);

static int bucket(int r)
{
    switch (r) {
    case W_SLEEP: return NP_WAIT_SLEEP;
    case W_CHAN_SEND: return NP_WAIT_CHAN_SEND;
    case W_CHAN_RECV: return NP_WAIT_CHAN_RECV;
    case W_SELECT: case W_SELECT_NOCASES: return NP_WAIT_SELECT;
    case W_MUTEX: return NP_WAIT_MUTEX;
    case W_WAITGROUP: return NP_WAIT_WAITGROUP;
    case W_COND: return NP_WAIT_COND;
    case W_RWMUTEX: return NP_WAIT_RWMUTEX;
    case W_ONCE: return NP_WAIT_ONCE;
    case W_IO: return NP_WAIT_IO;
    case W_BLOCKING: return NP_WAIT_BLOCKING;
    default: return NP_WAIT_OTHER;
    }
}

NP_NOTSAN static void count_g(np_g *g, void *arg)
{
    np_stats *s = arg;
    uint32_t st = atomic_load_explicit(&g->status, memory_order_relaxed);
    if (st == G_IDLE || st == G_DEAD)
        return;
    s->coroutines++;
    if (st == G_RUNNING && g->waitreason == W_BLOCKING) {
        s->waiting++;
        s->waiting_by[NP_WAIT_BLOCKING]++;
    } else if (st == G_RUNNING) {
        s->running++;
    } else if (st == G_RUNNABLE) {
        s->runnable++;
    } else {
        s->waiting++;
        s->waiting_by[bucket(g->waitreason)]++;
    }
}

int np_stats_get(np_stats *s)
{
    if (!s) {
        errno = EINVAL;
        return -1;
    }
    if (!np__look_begin()) {
        errno = EPERM;
        return -1;
    }
    memset(s, 0, sizeof *s);
    np__each_g(count_g, s);
    s->procs = np__sched.nprocs;
    pthread_mutex_lock(&np__sched.lock);
    s->threads = np__sched.mcount + 1;
    pthread_mutex_unlock(&np__sched.lock);
    s->polls = (int64_t)atomic_load(&np__sched.npolls);
    s->events = (int64_t)atomic_load(&np__sched.nevents);
    for (int i = 0; i < np__sched.nprocs; i++) {
        np_p *p = np__sched.allp[i];
        s->steals += (int64_t)atomic_load_explicit(&p->nsteal, memory_order_relaxed);
        s->switches += (int64_t)atomic_load_explicit(&p->nswitch, memory_order_relaxed);
        np_spin_lock(&p->timers.lock);
        s->timers += p->timers.n;
        np_spin_unlock(&p->timers.lock);
    }
    s->fds = np__fd_count();
    s->stack_trims = atomic_load_explicit(&np__sched.ntrims, memory_order_relaxed);
    np__look_end();
    return 0;
}
