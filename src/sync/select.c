/* np_select, after Go's selectgo: lock every channel in address order, take a case that
 * is ready (in random order), else queue a sudog on every channel and park; the first
 * waker to win the coroutine's select token fires its case. */
#include "chan.h"
#include <errno.h>
#include <string.h>

#define MAXCASES 256

typedef struct selctx {
    np_case *cases;
    uint16_t *lockorder;
    int nlock;
    int64_t when;
    uintptr_t tok;
} selctx;

static void lockall(np_case *cs, uint16_t *lo, int n)
{
    for (int i = 0; i < n; i++)
        if (i == 0 || cs[lo[i]].chan != cs[lo[i - 1]].chan)
            np__chan_lock(cs[lo[i]].chan);
}

static void unlockall(np_case *cs, uint16_t *lo, int n)
{
    for (int i = n - 1; i >= 0; i--)
        if (i == 0 || cs[lo[i]].chan != cs[lo[i - 1]].chan)
            np__chan_unlock(cs[lo[i]].chan);
}

static void select_fire(void *arg, uintptr_t tok)
{
    np_g *g = arg;
    uintptr_t t = tok;
    if (atomic_compare_exchange_strong(&g->selecttok, &t, 0)) {
        g->param = NULL;
        np__ready(g);
    }
}

static bool select_commit(np_g *g, void *arg)
{
    selctx *x = arg;
    int64_t when = x->when;
    bool timed = when > 0 && np__timer_add(g->m->p, &g->timer, when, select_fire, g, x->tok) == 0;
    /* Unlocking in descending order keeps the lowest channel locked to the end: the
     * coroutine, once woken, must lock it first, so x (on its stack) stays valid until
     * the last unlock; nothing of x may be touched after it. */
    unlockall(x->cases, x->lockorder, x->nlock);
    if (timed)
        np__timer_added(when);
    return true;
}

int np_select(np_case *cases, int n, int64_t timeout)
{
    if (n < 0 || n > MAXCASES || (n > 0 && !cases)) {
        errno = EINVAL;
        return -1;
    }
    np_m *m = np__getm();
    np_g *self = m ? m->curg : NULL;
    if (!self) {
        errno = EPERM;
        return -1;
    }
    uint16_t poll[n > 0 ? n : 1], lock[n > 0 ? n : 1];
    int np = 0;
    for (int i = 0; i < n; i++) {
        if (!cases[i].chan)
            continue;
        if (cases[i].op != NP_SEND && cases[i].op != NP_RECV) {
            errno = EINVAL;
            return -1;
        }
        poll[np] = (uint16_t)i;
        lock[np] = (uint16_t)i;
        np++;
    }
    /* random poll order */
    uint64_t r = m ? m->rnd : (uint64_t)(uintptr_t)&r;
    for (int i = np - 1; i > 0; i--) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        int j = (int)((r >> 33) % (uint64_t)(i + 1));
        uint16_t t = poll[i];
        poll[i] = poll[j];
        poll[j] = t;
    }
    if (m)
        m->rnd = r;
    /* lock order: by channel address */
    for (int i = 1; i < np; i++)
        for (int j = i; j > 0 && (uintptr_t)cases[lock[j]].chan < (uintptr_t)cases[lock[j - 1]].chan; j--) {
            uint16_t t = lock[j];
            lock[j] = lock[j - 1];
            lock[j - 1] = t;
        }
    if (np == 0) {
        if (timeout == 0) {
            errno = EAGAIN;
            return -1;
        }
        if (timeout < 0) {
            np__park(NULL, NULL, W_SELECT_NOCASES); /* forever, as Go's empty select */
            np__fatal("empty select resumed");
        }
        np_sleep(timeout);
        np__seterrno(ETIMEDOUT);
        return -1;
    }

    lockall(cases, lock, np);
    for (int k = 0; k < np; k++) {
        int i = poll[k];
        np_case *cs = &cases[i];
        np_chan *c = cs->chan;
        np_g *w = NULL;
        if (cs->op == NP_RECV) {
            np_sudog *sg = np__dequeue(&c->sendq);
            if (sg)
                w = np__recv_from(c, sg, cs->elem);
            else if (c->count > 0)
                np__buf_take(c, cs->elem);
            else if (c->closed) {
                unlockall(cases, lock, np);
                if (cs->elem)
                    memset(cs->elem, 0, c->esize);
                cs->ok = 0;
                return i;
            } else
                continue;
            unlockall(cases, lock, np);
            if (w)
                np__ready(w);
            cs->ok = 1;
            return i;
        }
        if (c->closed) {
            unlockall(cases, lock, np);
            cs->ok = -1;
            errno = EPIPE;
            return -1;
        }
        np_sudog *sg = np__dequeue(&c->recvq);
        if (sg)
            w = np__send_to(c, sg, cs->elem);
        else if (c->count < c->cap)
            np__buf_put(c, cs->elem);
        else
            continue;
        unlockall(cases, lock, np);
        if (w)
            np__ready(w);
        cs->ok = 1;
        return i;
    }
    if (timeout == 0) {
        unlockall(cases, lock, np);
        errno = EAGAIN;
        return -1;
    }

    np_sudog sgs[np];
    uintptr_t tok = (++self->seltokgen << 1) | 1;
    atomic_store(&self->selecttok, tok);
    for (int k = 0; k < np; k++) {
        int i = lock[k];
        np_sudog *sg = &sgs[k];
        memset(sg, 0, sizeof *sg);
        sg->g = self;
        sg->elem = cases[i].elem;
        sg->c = cases[i].chan;
        sg->tok = tok;
        sg->caseidx = i;
        np__enqueue(cases[i].op == NP_RECV ? &sg->c->recvq : &sg->c->sendq, sg);
    }
    self->param = NULL;
    selctx x = {cases, lock, np, timeout > 0 ? np__nanotime() + timeout : 0, tok};
    np__park(select_commit, &x, W_SELECT);

    np_sudog *won = self->param;
    if (timeout > 0)
        np__timer_del(&self->timer);
    atomic_store(&self->selecttok, 0);
    lockall(cases, lock, np);
    for (int k = 0; k < np; k++) {
        np_sudog *sg = &sgs[k];
        if (sg != won)
            np__unlink(cases[sg->caseidx].op == NP_RECV ? &sg->c->recvq : &sg->c->sendq, sg);
    }
    unlockall(cases, lock, np);
    if (!won) {
        np__seterrno(ETIMEDOUT);
        return -1;
    }
    np_case *cs = &cases[won->caseidx];
    if (cs->op == NP_RECV) {
        cs->ok = won->success ? 1 : 0;
        return won->caseidx;
    }
    if (!won->success) {
        cs->ok = -1;
        np__seterrno(EPIPE);
        return -1;
    }
    cs->ok = 1;
    return won->caseidx;
}
