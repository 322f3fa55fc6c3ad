/* np_after and np_ticker: channels that time fills, as Go's time.After and time.Ticker.
 *
 * A source (np__tsrc) is a timer on a P's heap with a channel (int64_t elements, one
 * slot). Its callback, on a thread holding a P, sends np_now() to the channel without
 * waiting (np__chan_offer): to a waiting receiver or select, else into the empty slot,
 * else the value is dropped. A ticker's callback arms the timer again for the next
 * point of its fixed schedule (start + k * period), skipping the points already past.
 *
 * Stop, reset and free bump the source's generation under its lock; a callback armed
 * under another generation does nothing, so once they return no old timer delivers.
 *
 * Who frees what: the source belongs to its channel. np_chan_free (np_after) and
 * np_ticker_free free the channel and, first, the source (np__tsrc_free): the timer is
 * taken out of its heap and a callback already under way on another thread is waited
 * out (np__timer_wait), so that nothing touches either once they are gone. A callback
 * never frees anything. */
#include "tick.h"
#include "../sync/chan.h"
#include <errno.h>
#include <stdlib.h>

typedef struct np__tsrc {
    np__timer t;
    np_chan *c;          /* set at creation */
    bool ticker;         /* set at creation */
    _Atomic int32_t lock; /* guards what follows, and the arming of t */
    uintptr_t gen;       /* bumped by stop, reset, free; t is armed under it (its seq) */
    int64_t period;      /* ticker: between ticks (> 0); np_after: 0 */
    int64_t next;        /* the schedule's next point (t is due then, or retrying it) */
} np__tsrc;

/* The public ticker is its source. */
struct np_ticker { np__tsrc s; };

/* A channel lock was held when the value fell due: try again this much later. */
#define RETRY_NS 10000

bool np__tsrc_ticker(const np__tsrc *s) { return s->ticker; }

static inline int64_t add_sat(int64_t a, int64_t b)
{
    return b > INT64_MAX - a ? INT64_MAX : a + b;
}

static void tsrc_fire(void *arg, uintptr_t gen);

/* Arm s's timer at when on p, under the current generation (s locked, t in no heap). */
static int tsrc_arm(np__tsrc *s, np_p *p, int64_t when)
{
    return np__timer_add(p, &s->t, when, tsrc_fire, s, s->gen);
}

static void tsrc_fire(void *arg, uintptr_t gen)
{
    np__tsrc *s = arg;
    np_g *wake = NULL;
    int64_t when = 0;
    np_spin_lock(&s->lock);
    if (gen != s->gen) { /* stopped, reset or being freed since it was armed */
        np_spin_unlock(&s->lock);
        return;
    }
    int64_t now = np__nanotime();
    int r = np__chan_offer(s->c, &now, &wake);
    if (r < 0) {
        when = now + RETRY_NS; /* the same point again: next stays */
    } else if (s->ticker) {
        int64_t n = add_sat(s->next, s->period);
        if (n <= now) /* ticks missed (the P was busy): drop them, keep the phase */
            n = add_sat(n, ((now - n) / s->period + 1) * s->period);
        when = s->next = n;
    }
    /* the thread runs timers only while it holds a P: the next tick goes on that P */
    if (when && tsrc_arm(s, np__getm()->p, when) != 0)
        when = 0; /* no memory for the heap: no more ticks */
    np_spin_unlock(&s->lock);
    if (when)
        np__timer_added(when);
    if (wake)
        np__ready_q(wake, false); /* in deadline order with the other timers' */
}

/* A source with its channel, armed at now + d on the calling coroutine's P. */
static np__tsrc *tsrc_new(np_g *self, bool ticker, int64_t period, int64_t d)
{
    np_chan *c = np_chan_new(sizeof(int64_t), 1);
    /* a struct np_ticker for np_after too: one allocation size */
    np__tsrc *s = c ? calloc(1, sizeof(struct np_ticker)) : NULL;
    if (!s) {
        np__chan_free(c);
        errno = ENOMEM;
        return NULL;
    }
    s->c = c;
    s->ticker = ticker;
    s->period = period;
    c->tsrc = s;
    int64_t when = s->next = add_sat(np__nanotime(), d > 0 ? d : 0);
    if (tsrc_arm(s, self->m->p, when) != 0) { /* nobody can see s yet: no lock */
        c->tsrc = NULL;
        free(s);
        np__chan_free(c);
        errno = ENOMEM;
        return NULL;
    }
    np__timer_added(when);
    return s;
}

/* Take s's timer out of its heap (s locked): no callback armed before delivers. */
static void tsrc_stop(np__tsrc *s)
{
    s->gen++;
    np__timer_del(&s->t);
}

void np__tsrc_free(np__tsrc *s)
{
    np_spin_lock(&s->lock);
    tsrc_stop(s);
    np_spin_unlock(&s->lock);
    np__timer_wait(&s->t); /* a callback under way returns without arming t again */
    free(s);
}

np_chan *np_after(int64_t ns)
{
    np_g *self = np__getg();
    if (!self) {
        errno = EPERM;
        return NULL;
    }
    np__tsrc *s = tsrc_new(self, false, 0, ns);
    return s ? s->c : NULL;
}

np_ticker *np_ticker_new(int64_t period_ns)
{
    if (period_ns <= 0) {
        errno = EINVAL;
        return NULL;
    }
    np_g *self = np__getg();
    if (!self) {
        errno = EPERM;
        return NULL;
    }
    return (np_ticker *)tsrc_new(self, true, period_ns, period_ns);
}

np_chan *np_ticker_chan(np_ticker *t)
{
    if (!t) {
        errno = EINVAL;
        return NULL;
    }
    return t->s.c;
}

int np_ticker_stop(np_ticker *t)
{
    if (!t) {
        errno = EINVAL;
        return -1;
    }
    np_spin_lock(&t->s.lock);
    tsrc_stop(&t->s);
    np_spin_unlock(&t->s.lock);
    return 0;
}

int np_ticker_reset(np_ticker *t, int64_t period_ns)
{
    if (!t || period_ns <= 0) {
        errno = EINVAL;
        return -1;
    }
    np_g *self = np__getg();
    if (!self) {
        errno = EPERM;
        return -1;
    }
    np__tsrc *s = &t->s;
    np_spin_lock(&s->lock);
    tsrc_stop(s);
    s->period = period_ns;
    int64_t when = s->next = add_sat(np__nanotime(), period_ns);
    int r = tsrc_arm(s, self->m->p, when);
    np_spin_unlock(&s->lock);
    if (r != 0) {
        errno = ENOMEM;
        return -1;
    }
    np__timer_added(when);
    return 0;
}

int np_ticker_free(np_ticker *t)
{
    return t ? np__chan_free(t->s.c) : 0;
}
