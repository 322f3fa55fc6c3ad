/* Run queues, after Go's runqput/runqget/runqgrab/runqsteal. */
#include "runq.h"

/* Put g on the global queue with half of p's ring when the ring is full. */
static bool runqputslow(np_p *p, np_g *g, uint32_t h, uint32_t t)
{
    np_g *batch[NP_RUNQ / 2 + 1];
    uint32_t n = (t - h) / 2;
    for (uint32_t i = 0; i < n; i++)
        batch[i] = atomic_load_explicit(&p->runq[(h + i) % NP_RUNQ], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&p->runqhead, &h, h + n, memory_order_release,
                                                 memory_order_relaxed))
        return false;
    batch[n] = g;
    for (uint32_t i = 0; i < n; i++)
        batch[i]->schedlink = batch[i + 1];
    pthread_mutex_lock(&np__sched.lock);
    np__globrunqputbatch(batch[0], batch[n], (int32_t)n + 1);
    pthread_mutex_unlock(&np__sched.lock);
    return true;
}

void np__runqput(np_p *p, np_g *g, bool next)
{
    if (np__solo()) {
        if (next) {
            np_g *old = atomic_load_explicit(&p->runnext, memory_order_relaxed);
            atomic_store_explicit(&p->runnext, g, memory_order_relaxed);
            if (!old)
                return;
            g = old;
        }
        uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_relaxed);
        uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
        if (t - h < NP_RUNQ) {
            atomic_store_explicit(&p->runq[t % NP_RUNQ], g, memory_order_relaxed);
            atomic_store_explicit(&p->runqtail, t + 1, memory_order_relaxed);
            return;
        }
    }
    if (next) {
        np_g *old = atomic_exchange_explicit(&p->runnext, g, memory_order_acq_rel);
        if (!old)
            return;
        g = old;
    }
    for (;;) {
        uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
        if (t - h < NP_RUNQ) {
            atomic_store_explicit(&p->runq[t % NP_RUNQ], g, memory_order_relaxed);
            atomic_store_explicit(&p->runqtail, t + 1, memory_order_release);
            return;
        }
        if (runqputslow(p, g, h, t))
            return;
    }
}

NP_HOT np_g *np__runqputlist_solo(np_p *p, np_g *list)
{
    uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_relaxed);
    uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
    for (; list && t - h < NP_RUNQ; t++, list = list->schedlink)
        atomic_store_explicit(&p->runq[t % NP_RUNQ], list, memory_order_relaxed);
    atomic_store_explicit(&p->runqtail, t, memory_order_relaxed);
    return list;
}

static np_g *runqget_solo(np_p *p)
{
    np_g *next = atomic_load_explicit(&p->runnext, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_relaxed);
    uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
    if (next && (p->inherit < 64 || h == t)) {
        atomic_store_explicit(&p->runnext, NULL, memory_order_relaxed);
        p->inherit = h == t ? 0 : p->inherit + 1; /* nobody to starve: start counting anew */
        return next;
    }
    if (h != t) {
        np_g *g = atomic_load_explicit(&p->runq[h % NP_RUNQ], memory_order_relaxed);
        atomic_store_explicit(&p->runqhead, h + 1, memory_order_relaxed);
        p->inherit = 0;
        return g;
    }
    return NULL;
}

np_g *np__runqget(np_p *p)
{
    if (np__solo())
        return runqget_solo(p);
    np_g *next = atomic_load_explicit(&p->runnext, memory_order_relaxed);
    /* A chain of coroutines waking each other through runnext may not starve the ring. */
    if (next && (p->inherit < 64 || np__runqempty(p))) {
        if (atomic_compare_exchange_strong_explicit(&p->runnext, &next, NULL,
                                                    memory_order_acquire, memory_order_relaxed)) {
            p->inherit++;
            return next;
        }
    }
    for (;;) {
        uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
        if (t == h)
            break;
        np_g *g = atomic_load_explicit(&p->runq[h % NP_RUNQ], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&p->runqhead, &h, h + 1, memory_order_release,
                                                  memory_order_relaxed)) {
            p->inherit = 0;
            return g;
        }
    }
    next = atomic_load_explicit(&p->runnext, memory_order_relaxed);
    if (next && atomic_compare_exchange_strong_explicit(&p->runnext, &next, NULL,
                                                        memory_order_acquire, memory_order_relaxed))
        return next;
    return NULL;
}

bool np__runqempty(np_p *p)
{
    uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_acquire);
    return h == t && atomic_load_explicit(&p->runnext, memory_order_relaxed) == NULL;
}

/* Take half of victim's ring into p's ring; returns one of them. runnext is left alone:
 * sysmon moves a runnext that waits behind a long-running coroutine. */
np_g *np__runqsteal(np_p *p, np_p *victim)
{
    uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
    for (;;) {
        uint32_t h = atomic_load_explicit(&victim->runqhead, memory_order_acquire);
        uint32_t vt = atomic_load_explicit(&victim->runqtail, memory_order_acquire);
        uint32_t n = vt - h;
        n = n - n / 2;
        if (n == 0)
            return NULL;
        if (n > NP_RUNQ / 2)
            continue; /* read an inconsistent head/tail pair */
        for (uint32_t i = 0; i < n; i++) {
            np_g *g = atomic_load_explicit(&victim->runq[(h + i) % NP_RUNQ], memory_order_relaxed);
            atomic_store_explicit(&p->runq[(t + i) % NP_RUNQ], g, memory_order_relaxed);
        }
        if (atomic_compare_exchange_strong_explicit(&victim->runqhead, &h, h + n,
                                                    memory_order_release, memory_order_relaxed)) {
            n--;
            np_g *g = atomic_load_explicit(&p->runq[(t + n) % NP_RUNQ], memory_order_relaxed);
            if (n)
                atomic_store_explicit(&p->runqtail, t + n, memory_order_release);
            return g;
        }
    }
}

void np__globrunqputbatch(np_g *head, np_g *tail, int32_t n)
{
    tail->schedlink = NULL;
    if (np__sched.runqtail)
        np__sched.runqtail->schedlink = head;
    else
        np__sched.runqhead = head;
    np__sched.runqtail = tail;
    atomic_fetch_add_explicit(&np__sched.runqsize, n, memory_order_release);
}

void np__globrunqput(np_g *g) { np__globrunqputbatch(g, g, 1); }

np_g *np__globrunqget(np_p *p, int32_t max)
{
    int32_t size = atomic_load_explicit(&np__sched.runqsize, memory_order_relaxed);
    if (size == 0)
        return NULL;
    int32_t n = size / np__sched.nprocs + 1;
    if (n > size)
        n = size;
    if (max > 0 && n > max)
        n = max;
    if (n > NP_RUNQ / 2)
        n = NP_RUNQ / 2;
    atomic_fetch_sub_explicit(&np__sched.runqsize, n, memory_order_relaxed);
    np_g *g = np__sched.runqhead;
    np__sched.runqhead = g->schedlink;
    for (int32_t i = 1; i < n; i++) {
        np_g *x = np__sched.runqhead;
        np__sched.runqhead = x->schedlink;
        np__runqput(p, x, false);
    }
    if (!np__sched.runqhead)
        np__sched.runqtail = NULL;
    return g;
}
