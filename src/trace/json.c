/* The tracer's converter: every thread's buffer, merged by time, written as Chrome's
 * JSON Trace Event Format (Perfetto's UI, chrome://tracing, speedscope).
 *
 * Tracks (pid, tid): pid 1 the Ps (tid = P id), pid 2 the threads (tid = M id; a thread
 * that is not an M: 100000 + its buffer's number), pid 3 the coroutines (tid = its id:
 * one track per coroutine wherever it runs). Coroutines have complete ("X") slices
 * "running", "runnable", "wait: REASON", "np_blocking"; Ps have "gN" and "idle"; threads
 * "gN", "spinning", "idle", "netpoll", "timers", "np_blocking gN". Who made a coroutine
 * runnable is a flow ("s" to "f") from the waker's slice to the coroutine's next
 * running slice; regions are async ("b"/"e") events, logs instants ("i").
 *
 * A slice is written when it ends: a flight recorder's window may begin in the middle
 * of one (it then starts at the window's start) and the end of the trace closes those
 * still open, so every begin has its end. Runs in signal handlers too: memory from
 * mmap, output with write(2), no lock, no malloc, no stdio. */
#include "trace.h"
#include "../debug/debug.h"
#include "../sched/sched.h"
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- output ------------------------------------------------------------------------- */

typedef struct jw { int fd; int err; size_t n; char b[1 << 16]; } jw;

static void jflush(jw *w)
{
    size_t off = 0;
    while (off < w->n && !w->err) {
        ssize_t k = write(w->fd, w->b + off, w->n - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            w->err = k < 0 ? errno : EIO;
        else
            off += (size_t)k;
    }
    w->n = 0;
}

static void jput(jw *w, const char *s, size_t n)
{
    while (n) {
        if (w->n == sizeof w->b)
            jflush(w);
        size_t k = sizeof w->b - w->n < n ? sizeof w->b - w->n : n;
        memcpy(w->b + w->n, s, k);
        w->n += k;
        s += k;
        n -= k;
    }
}
static void js(jw *w, const char *s) { jput(w, s, strlen(s)); }

static void jdec(jw *w, int64_t v)
{
    char d[24], *p = d + sizeof d;
    uint64_t u = v < 0 ? (uint64_t)-v : (uint64_t)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    jput(w, p, (size_t)(d + sizeof d - p));
}

/* Times are written in microseconds (the format's unit) as multiples of 1/1024 us:
 * binary fractions that a reader's doubles hold exactly, so that a slice's ts + dur is
 * exactly the next one's ts (viewers that add them in floating point would otherwise
 * nest back-to-back slices inside each other). q(): ns to those units. */
static inline int64_t q(int64_t ns) { return ns < 0 ? 0 : (ns * 128 + 62) / 125; } /* ns*1024/1000 */

static void jus(jw *w, int64_t units)
{
    if (units < 0)
        units = 0;
    jdec(w, units >> 10);
    uint64_t frac = (uint64_t)(units & 1023) * 9765625; /* 1/1024 = 0.0009765625 */
    if (!frac)
        return;
    char f[11];
    f[0] = '.';
    for (int i = 10; i >= 1; i--, frac /= 10)
        f[i] = (char)('0' + frac % 10);
    size_t n = 11;
    while (f[n - 1] == '0')
        n--;
    jput(w, f, n);
}

static void jhex(jw *w, uint64_t v)
{
    char d[20], *p = d + sizeof d;
    do
        *--p = "0123456789abcdef"[v & 15];
    while (v >>= 4);
    *--p = 'x';
    *--p = '0';
    jput(w, p, (size_t)(d + sizeof d - p));
}

/* a JSON string, quoted; bytes that are not printable ASCII as \u00XX */
static void jstr(jw *w, const char *s, size_t n)
{
    js(w, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jput(w, e, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]};
            jput(w, e, 6);
        } else {
            jput(w, (const char *)&c, 1);
        }
    }
    js(w, "\"");
}

/* ---- the converter's state ------------------------------------------------------------- */

enum { GS_UNKNOWN, GS_RUNNABLE, GS_RUNNING, GS_WAITING, GS_BLOCKING, GS_DEAD };
#define NREG 8

typedef struct gst {
    int64_t id;    /* 0: a free entry */
    int64_t since; /* when the current state began; 0: before the window */
    uint64_t fn, obj;
    int32_t p, tid; /* running: on which P and thread track */
    uint8_t st, reason;
    bool wake;      /* a flow waits for the next running slice */
    int8_t wpid;
    int64_t wtid, wts;
    int nreg;       /* open regions (those beyond NREG are counted only) */
    uint64_t regid[NREG];
    uint32_t regname[NREG], reglen[NREG];
} gst;

typedef struct pst { int64_t idle, sys, sysg; } pst;
#define NPMAX 1024

typedef struct rd {
    np_tbuf *tb;
    int tid;
    /* ring: a copy of the window, events ev[i..n) (none when the ring is empty) */
    bool ring;
    np_tev *copy;
    size_t copysz;
    /* full: chunk c (ev[i..n)) up to tail, then cur (as they were when opened) */
    np_tchunk *c, *tail, *curc;
    bool lastchunk;
    np_tev *ev;
    uint64_t i, n;
    /* the current event */
    bool has;
    uint64_t w[5];
    char text[TEV_TEXT_MAX + 1];
    size_t tn;
    /* the thread's open slices */
    int64_t spin, idle, poll, pollto, timers, blk, blkg;
} rd;

typedef struct cv {
    jw *w;
    bool first;
    int64_t base, t0, t1;
    gst *g;
    size_t gcap, gn;
    pst *p;
    int np;
    char *arena;
    size_t arenan, arenacap;
    uint64_t flows, regions, nev;
} cv;

static void *cmap(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static gst *gfind(cv *c, int64_t id, bool add)
{
    if (id <= 0)
        return NULL;
    if (add && (c->gn + 1) * 2 > c->gcap) {
        size_t ncap = c->gcap ? c->gcap * 2 : 4096;
        gst *ng = cmap(ncap * sizeof *ng);
        if (!ng)
            return NULL;
        for (size_t i = 0; i < c->gcap; i++) {
            if (!c->g[i].id)
                continue;
            size_t h = (size_t)c->g[i].id * 0x9E3779B97F4A7C15ULL % ncap;
            while (ng[h].id)
                h = (h + 1) % ncap;
            ng[h] = c->g[i];
        }
        if (c->g)
            munmap(c->g, c->gcap * sizeof *c->g);
        c->g = ng;
        c->gcap = ncap;
    }
    if (!c->gcap)
        return NULL;
    size_t h = (size_t)id * 0x9E3779B97F4A7C15ULL % c->gcap;
    while (c->g[h].id) {
        if (c->g[h].id == id)
            return &c->g[h];
        h = (h + 1) % c->gcap;
    }
    if (!add)
        return NULL;
    c->gn++;
    memset(&c->g[h], 0, sizeof c->g[h]);
    c->g[h].id = id;
    return &c->g[h];
}

/* ---- events out ----------------------------------------------------------------------- */

static void ev_begin(cv *c, const char *ph, int pid, int64_t tid, int64_t ts)
{
    js(c->w, c->first ? "\n{\"ph\":\"" : ",\n{\"ph\":\"");
    c->first = false;
    js(c->w, ph);
    js(c->w, "\",\"pid\":");
    jdec(c->w, pid);
    js(c->w, ",\"tid\":");
    jdec(c->w, tid);
    if (ts >= 0) {
        js(c->w, ",\"ts\":");
        jus(c->w, q(ts - c->base));
    }
    c->nev++;
}

/* a complete slice [t0, t1] named name + name2 (if any) + num (if >= 0); args may
 * follow, then ev_end */
static void ev_x2(cv *c, int pid, int64_t tid, int64_t t0, int64_t t1, const char *name,
                  const char *name2, int64_t num)
{
    if (t0 < c->t0)
        t0 = c->t0;
    if (t1 < t0)
        t1 = t0;
    ev_begin(c, "X", pid, tid, t0);
    js(c->w, ",\"dur\":");
    jus(c->w, q(t1 - c->base) - q(t0 - c->base));
    js(c->w, ",\"name\":\"");
    js(c->w, name);
    if (name2)
        js(c->w, name2);
    if (num >= 0)
        jdec(c->w, num);
    js(c->w, "\"");
}
static void ev_x(cv *c, int pid, int64_t tid, int64_t t0, int64_t t1, const char *name, int64_t num)
{
    ev_x2(c, pid, tid, t0, t1, name, NULL, num);
}
static void ev_end(cv *c) { js(c->w, "}"); }

static void arg_int(cv *c, bool first, const char *k, int64_t v)
{
    js(c->w, first ? ",\"args\":{\"" : ",\"");
    js(c->w, k);
    js(c->w, "\":");
    jdec(c->w, v);
}

/* the running slice of g, ending at ts: on its own track, its P's and its thread's */
static void g_ran(cv *c, gst *g, int64_t ts)
{
    ev_x(c, 3, g->id, g->since, ts, "running", -1);
    arg_int(c, true, "p", g->p);
    arg_int(c, false, "thread", g->tid);
    js(c->w, "}");
    ev_end(c);
    if (g->p >= 0) {
        ev_x(c, 1, g->p, g->since, ts, "g", g->id);
        ev_end(c);
    }
    ev_x(c, 2, g->tid, g->since, ts, "g", g->id);
    ev_end(c);
}

/* close g's current slice at ts */
static void g_close(cv *c, gst *g, int64_t ts)
{
    switch (g->st) {
    case GS_RUNNING:
        g_ran(c, g, ts);
        break;
    case GS_RUNNABLE:
        ev_x(c, 3, g->id, g->since, ts, "runnable", -1);
        ev_end(c);
        break;
    case GS_WAITING:
        ev_x2(c, 3, g->id, g->since, ts, "wait: ", np__wait_name(g->reason), -1);
        if (g->reason == W_IO)
            arg_int(c, true, "fd", (int64_t)g->obj);
        else if (g->obj) {
            js(c->w, ",\"args\":{\"object\":\"");
            jhex(c->w, g->obj);
            js(c->w, "\"");
        }
        if (g->reason == W_IO || g->obj)
            js(c->w, "}");
        ev_end(c);
        break;
    case GS_BLOCKING:
        ev_x(c, 3, g->id, g->since, ts, "np_blocking", -1);
        ev_end(c);
        break;
    default:
        break;
    }
}

static void flow(cv *c, gst *g, int64_t ts)
{
    if (!g->wake)
        return;
    g->wake = false;
    c->flows++;
    ev_begin(c, "s", g->wpid, g->wtid, g->wts);
    js(c->w, ",\"cat\":\"wake\",\"name\":\"wake\",\"id\":");
    jdec(c->w, (int64_t)c->flows);
    ev_end(c);
    ev_begin(c, "f", 3, g->id, ts);
    js(c->w, ",\"bp\":\"e\",\"cat\":\"wake\",\"name\":\"wake\",\"id\":");
    jdec(c->w, (int64_t)c->flows);
    ev_end(c);
}

static void instant(cv *c, int pid, int64_t tid, int64_t ts, const char *name)
{
    ev_begin(c, "i", pid, tid, ts);
    js(c->w, ",\"s\":\"t\",\"name\":\"");
    js(c->w, name);
    js(c->w, "\"");
}

/* ---- reading the buffers ------------------------------------------------------------------ */

static void ld(const np_tev *e, uint64_t w[5])
{
    for (int k = 0; k < 5; k++)
        w[k] = atomic_load_explicit(&e->w[k], memory_order_relaxed);
}

static const np_tev *peek(rd *r)
{
    while (r->i == r->n) {
        if (r->ring || r->lastchunk)
            return NULL;
        np_tbuf *tb = r->tb;
        if (r->c && r->c != r->tail) {
            r->c = r->c->next;
        } else {
            r->c = r->curc;
            r->lastchunk = true;
        }
        r->ev = r->c->ev;
        r->i = 0;
        r->n = r->lastchunk ? atomic_load_explicit(&tb->pos, memory_order_acquire) : TCHUNK;
    }
    return &r->ev[r->i];
}

/* the next event of r (its text gathered), skipping stray continuation slots */
static void advance(rd *r)
{
    const np_tev *e;
    r->has = false;
    while ((e = peek(r))) {
        ld(e, r->w);
        r->i++;
        if (r->w[0] == TEV_TEXT)
            continue;
        r->has = true;
        r->tn = 0;
        int type = (int)(r->w[1] & 0xff);
        if (type == EV_REGION_BEGIN || type == EV_LOG) {
            size_t n = r->w[3] < TEV_TEXT_MAX ? (size_t)r->w[3] : TEV_TEXT_MAX;
            while (r->tn < n && (e = peek(r))) {
                uint64_t t[5];
                ld(e, t);
                if (t[0] != TEV_TEXT)
                    break;
                r->i++;
                size_t k = n - r->tn < 32 ? n - r->tn : 32;
                memcpy(r->text + r->tn, &t[1], k);
                r->tn += k;
            }
        }
        return;
    }
}

/* r's events: a ring's window copied (those its owner overwrote meanwhile left out), a
 * full buffer read in place. Returns whether events were lost before the window. */
static bool rd_open(rd *r, np_tbuf *tb, bool ring)
{
    memset(r, 0, sizeof *r);
    r->tb = tb;
    r->tid = tb->mid >= 0 ? tb->mid : 100000 + tb->seq;
    if (!ring) {
        r->c = atomic_load_explicit(&tb->head, memory_order_acquire);
        r->tail = atomic_load_explicit(&tb->tail, memory_order_acquire);
        r->curc = atomic_load_explicit(&tb->curchunk, memory_order_acquire);
        if (r->c) {
            r->ev = r->c->ev;
            r->n = TCHUNK;
        } else {
            r->c = r->curc;
            r->lastchunk = true;
            r->ev = r->c->ev;
            r->n = atomic_load_explicit(&tb->pos, memory_order_acquire);
        }
        advance(r);
        return false;
    }
    r->ring = true;
    uint64_t hi = atomic_load_explicit(&tb->pos, memory_order_acquire);
    uint64_t lo = hi > tb->cap ? hi - tb->cap : 0;
    r->copysz = (hi - lo) * sizeof(np_tev);
    if (r->copysz && !(r->copy = cmap(r->copysz)))
        return false;
    for (uint64_t k = lo; k < hi; k++) {
        uint64_t w[5];
        ld(&tb->cur[k & (tb->cap - 1)], w);
        for (int j = 0; j < 5; j++)
            atomic_store_explicit(&r->copy[k - lo].w[j], w[j], memory_order_relaxed);
    }
    /* slots written while copying (up to hi2, the one maybe in progress) held events
     * up to hi2 - cap */
    uint64_t hi2 = atomic_load_explicit(&tb->pos, memory_order_acquire);
    uint64_t valid = hi2 + 1 > tb->cap ? hi2 + 1 - tb->cap : 0;
    r->ev = r->copy;
    r->i = valid > lo ? valid - lo : 0;
    r->n = hi - lo;
    if (r->i > r->n)
        r->i = r->n;
    bool lost = lo > 0 || r->i > 0;
    advance(r);
    return lost;
}

/* ---- the events, one by one --------------------------------------------------------------- */

static void m_slice(cv *c, rd *r, int64_t *since, int64_t ts, const char *name)
{
    ev_x(c, 2, r->tid, *since ? *since : c->t0, ts, name, -1);
    *since = 0;
}

static pst *pget(cv *c, int p)
{
    if (p < 0 || p >= NPMAX)
        return NULL;
    if (p >= c->np)
        c->np = p + 1;
    return &c->p[p];
}

/* A coroutine of which nothing was known (its last change was before the trace or the
 * window) is in state st since the start: running on P p and r's thread, waiting, or in
 * np_blocking. */
static void g_assume(gst *g, int st, int p, rd *r)
{
    if (g->st != GS_UNKNOWN)
        return;
    g->st = (uint8_t)st;
    g->since = 0;
    g->p = p;
    g->tid = r->tid;
    g->reason = W_NONE;
}

/* A coroutine seen making another runnable runs here and now (so that the slice its
 * flow leaves from exists). Before g is looked up: this may move the table. */
static void g_waker(cv *c, rd *r, int64_t id, int p)
{
    gst *w = gfind(c, id, true);
    if (w)
        g_assume(w, GS_RUNNING, p, r);
}

/* g made runnable at ts by coroutine by, or (0) by r's thread, whose slice the flow
 * leaves from: the thread's own (netpoll, timers) or, if anchor, one made for it. */
static void g_woken(cv *c, rd *r, gst *g, int64_t ts, int64_t by, const char *anchor)
{
    g->st = GS_RUNNABLE;
    g->since = ts;
    g->wake = true;
    g->wts = ts;
    g->wpid = by ? 3 : 2;
    g->wtid = by ? by : r->tid;
    if (!by && anchor) {
        ev_x(c, 2, r->tid, ts, ts, anchor, g->id);
        ev_end(c);
    }
}

/* A region of g's stack (k) begun or ended ("b", "e") at ts. */
static void region_ev(cv *c, const char *ph, gst *g, int k, int64_t ts)
{
    ev_begin(c, ph, 3, g->id, ts);
    js(c->w, ",\"cat\":\"region\",\"id\":");
    jdec(c->w, (int64_t)g->regid[k]);
    js(c->w, ",\"name\":");
    jstr(c->w, c->arena + g->regname[k], g->reglen[k]);
    ev_end(c);
}

/* g's innermost region ends at ts (those past NREG were only counted). */
static void region_pop(cv *c, gst *g, int64_t ts)
{
    if (--g->nreg >= NREG)
        return;
    int k = g->nreg;
    region_ev(c, "e", g, k, ts);
    if (g->regname[k] + g->reglen[k] == c->arenan)
        c->arenan = g->regname[k];
}

static void one(cv *c, rd *r)
{
    uint64_t *w = r->w;
    int64_t ts = (int64_t)w[0];
    int type = (int)(w[1] & 0xff), sub = (int)(w[1] >> 8 & 0xff);
    int p = (int)(w[1] >> 16 & 0xffff) - 1;
    if (p >= 0)
        pget(c, p);
    gst *g;
    pst *ps;
    switch (type) {
    case EV_GO_CREATE:
        if (w[3])
            g_waker(c, r, (int64_t)w[3], p);
        if (!(g = gfind(c, (int64_t)w[2], true)))
            break;
        g->fn = w[4];
        g_woken(c, r, g, ts, (int64_t)w[3], "go g");
        break;
    case EV_GO_START:
        if (!(g = gfind(c, (int64_t)w[2], true)))
            break;
        g_close(c, g, ts);
        flow(c, g, ts);
        g->st = GS_RUNNING;
        g->since = ts;
        g->p = p;
        g->tid = r->tid;
        break;
    case EV_GO_STOP:
        if (!(g = gfind(c, (int64_t)w[2], true)))
            break;
        g_assume(g, GS_RUNNING, p, r);
        g_close(c, g, ts);
        g->since = ts;
        g->st = sub == ST_YIELD ? GS_RUNNABLE : sub == ST_PARK ? GS_WAITING : GS_DEAD;
        g->reason = (uint8_t)w[3];
        g->obj = w[4];
        if (sub == ST_EXIT) {
            instant(c, 3, g->id, ts, "exit");
            ev_end(c);
        }
        break;
    case EV_GO_READY:
        if (sub == WK_G && w[3])
            g_waker(c, r, (int64_t)w[3], p);
        if (!(g = gfind(c, (int64_t)w[2], true)))
            break;
        if (g->st == GS_RUNNABLE || g->st == GS_RUNNING)
            break;
        g_assume(g, GS_WAITING, p, r);
        g_close(c, g, ts);
        g_woken(c, r, g, ts, sub == WK_G ? (int64_t)w[3] : 0,
                sub == WK_NETPOLL || sub == WK_TIMER ? NULL : "ready g");
        break;
    case EV_BLOCK_BEGIN:
        if (!(g = gfind(c, (int64_t)w[2], true)))
            break;
        g_assume(g, GS_RUNNING, p, r);
        g_close(c, g, ts);
        g->st = GS_BLOCKING;
        g->since = ts;
        r->blk = ts;
        r->blkg = g->id;
        if ((ps = pget(c, p))) {
            ps->sys = ts;
            ps->sysg = g->id;
        }
        break;
    case EV_BLOCK_END:
        if (!(g = gfind(c, (int64_t)w[2], true)))
            break;
        g_assume(g, GS_BLOCKING, p, r);
        g_close(c, g, ts);
        ev_x(c, 2, r->tid, r->blk ? r->blk : c->t0, ts, "np_blocking g", g->id);
        ev_end(c);
        r->blk = 0;
        if (sub == BE_KEPT && (ps = pget(c, p)) && ps->sys) {
            ev_x(c, 1, p, ps->sys, ts, "np_blocking g", g->id);
            ev_end(c);
            ps->sys = 0;
        }
        g->since = ts;
        if (sub == BE_REQUEUED) {
            g->st = GS_RUNNABLE;
        } else {
            g->st = GS_RUNNING;
            g->p = p;
            g->tid = r->tid;
        }
        break;
    case EV_P_START:
        if ((ps = pget(c, (int)w[2])) && ps->idle) {
            ev_x(c, 1, (int64_t)w[2], ps->idle, ts, "idle", -1);
            ev_end(c);
            ps->idle = 0;
        }
        break;
    case EV_P_STOP:
        if ((ps = pget(c, (int)w[2])))
            ps->idle = ts;
        break;
    case EV_HANDOFF:
        if ((ps = pget(c, (int)w[2]))) {
            if (ps->sys) {
                ev_x(c, 1, (int64_t)w[2], ps->sys, ts, "np_blocking g", ps->sysg);
                ev_end(c);
                ps->sys = 0;
            }
            instant(c, 1, (int64_t)w[2], ts, "handoff");
            arg_int(c, true, "g", ps->sysg);
            js(c->w, "}");
            ev_end(c);
        }
        break;
    case EV_M_START:
        instant(c, 2, r->tid, ts, "thread start");
        ev_end(c);
        break;
    case EV_SPIN_BEGIN:
        r->spin = ts;
        break;
    case EV_SPIN_END:
        m_slice(c, r, &r->spin, ts, "spinning");
        ev_end(c);
        break;
    case EV_IDLE_BEGIN:
        r->idle = ts;
        break;
    case EV_IDLE_END:
        m_slice(c, r, &r->idle, ts, "idle");
        ev_end(c);
        break;
    case EV_POLL_BEGIN:
        r->poll = ts;
        r->pollto = (int64_t)w[2];
        break;
    case EV_POLL_END:
        m_slice(c, r, &r->poll, ts, "netpoll");
        arg_int(c, true, "timeout_ns", r->pollto);
        arg_int(c, false, "readied", (int64_t)w[2]);
        js(c->w, "}");
        ev_end(c);
        break;
    case EV_TIMERS_BEGIN:
        r->timers = ts;
        break;
    case EV_TIMERS_END:
        m_slice(c, r, &r->timers, ts, "timers");
        arg_int(c, true, "fired", (int64_t)w[2]);
        js(c->w, "}");
        ev_end(c);
        break;
    case EV_STEAL:
        instant(c, 1, p, ts, "steal");
        arg_int(c, true, "from", (int64_t)w[2]);
        arg_int(c, false, "g", (int64_t)w[3]);
        js(c->w, "}");
        ev_end(c);
        break;
    case EV_REGION_BEGIN:
        if (!(g = gfind(c, (int64_t)w[2], true)))
            break;
        if (g->nreg < NREG) {
            c->regions++;
            g->regid[g->nreg] = c->regions;
            g->regname[g->nreg] = (uint32_t)c->arenan;
            g->reglen[g->nreg] = 0;
            if (c->arena && c->arenan + r->tn <= c->arenacap) {
                memcpy(c->arena + c->arenan, r->text, r->tn);
                g->reglen[g->nreg] = (uint32_t)r->tn;
                c->arenan += r->tn;
            }
            region_ev(c, "b", g, g->nreg, ts);
        }
        g->nreg++;
        break;
    case EV_REGION_END:
        if (!(g = gfind(c, (int64_t)w[2], false)) || g->nreg == 0)
            break; /* (its begin was before the window) */
        region_pop(c, g, ts);
        break;
    case EV_LOG: {
        size_t cl = strnlen(r->text, r->tn);
        if (w[2] && (g = gfind(c, (int64_t)w[2], true))) /* (named, as every track) */
            instant(c, 3, g->id, ts, "log");
        else
            instant(c, 2, r->tid, ts, "log");
        js(c->w, ",\"args\":{\"category\":");
        jstr(c->w, r->text, cl);
        js(c->w, ",\"message\":");
        jstr(c->w, cl < r->tn ? r->text + cl + 1 : "", cl < r->tn ? r->tn - cl - 1 : 0);
        js(c->w, "}");
        ev_end(c);
        break;
    }
    default:
        break;
    }
}

/* ---- names ---------------------------------------------------------------------------- */

static void meta(cv *c, int pid, int64_t tid, const char *what, const char *name, int64_t num,
                 const char *tail)
{
    ev_begin(c, "M", pid, tid, -1);
    js(c->w, ",\"name\":\"");
    js(c->w, what);
    js(c->w, "\",\"args\":{\"name\":\"");
    js(c->w, name);
    if (num >= 0)
        jdec(c->w, num);
    if (tail)
        js(c->w, tail);
    js(c->w, "\"}}");
}

static void sort_index(cv *c, int pid, int64_t tid, int64_t idx)
{
    ev_begin(c, "M", pid, tid, -1);
    js(c->w, ",\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":");
    jdec(c->w, idx);
    js(c->w, "}}");
}

/* a symbol's name inside a JSON string (identifiers; anything else as '?') */
static void jsym(jw *w, const char *s)
{
    for (; *s; s++) {
        char ch = *s;
        if (ch == '"' || ch == '\\' || (unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f)
            ch = '?';
        jput(w, &ch, 1);
    }
}

/* (reads coroutines that others may be creating meanwhile, as the dump does) */
NP_NOTSAN static void g_fn(np_g *x, void *arg)
{
    cv *c = arg;
    uint32_t st = atomic_load_explicit(&x->status, memory_order_relaxed);
    if (st == G_IDLE || st == G_DEAD)
        return;
    gst *g = gfind(c, x->id, false);
    if (g && !g->fn)
        g->fn = (uint64_t)(uintptr_t)x->fn;
}

static void g_name(cv *c, gst *g)
{
    ev_begin(c, "M", 3, g->id, -1);
    js(c->w, ",\"name\":\"thread_name\",\"args\":{\"name\":\"g");
    jdec(c->w, g->id);
    Dl_info di;
    if (g->fn && dladdr((void *)(uintptr_t)g->fn, &di) && di.dli_sname) {
        js(c->w, " ");
        jsym(c->w, di.dli_sname);
    } else if (g->fn && dladdr((void *)(uintptr_t)g->fn, &di) && di.dli_fname && di.dli_fname[0]) {
        /* not exported (a static function): module+offset, for addr2line */
        const char *base = di.dli_fname;
        for (const char *s = base; *s; s++)
            if (*s == '/')
                base = s + 1;
        js(c->w, " ");
        jsym(c->w, base);
        js(c->w, "+");
        jhex(c->w, g->fn - (uint64_t)(uintptr_t)di.dli_fbase);
        /* the file, for addr2line (np-trace): the main program's name may be relative */
        char exe[1024];
        const char *path = di.dli_fname;
        ssize_t n = path[0] == '/' ? -1 : readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = 0;
            path = exe;
        }
        js(c->w, "\",\"module\":");
        jstr(c->w, path, strlen(path));
        js(c->w, "}}");
        sort_index(c, 3, g->id, g->id);
        return;
    } else if (g->fn) {
        js(c->w, " ");
        jhex(c->w, g->fn);
    }
    js(c->w, "\"}}");
    sort_index(c, 3, g->id, g->id);
}

/* ---- the whole -------------------------------------------------------------------------- */

int64_t np__trace_write(int fd, bool ring)
{
    cv cvs;
    cv *c = &cvs;
    memset(c, 0, sizeof *c);
    /* the list as it is now: buffers attached meanwhile go on at its head */
    np_tbuf *head = atomic_load_explicit(&np__trace.bufs, memory_order_acquire);
    int nb = 0;
    for (np_tbuf *tb = head; tb; tb = tb->next)
        nb++;
    size_t rdsz = (size_t)(nb ? nb : 1) * sizeof(rd);
    c->w = cmap(sizeof(jw));
    rd *rs = cmap(rdsz);
    c->p = cmap(NPMAX * sizeof(pst));
    c->arenacap = 1 << 20;
    c->arena = cmap(c->arenacap);
    if (!c->w || !rs || !c->p || !c->arena) {
        if (c->w)
            munmap(c->w, sizeof(jw));
        if (rs)
            munmap(rs, rdsz);
        if (c->p)
            munmap(c->p, NPMAX * sizeof(pst));
        if (c->arena)
            munmap(c->arena, c->arenacap);
        errno = ENOMEM;
        return -1;
    }
    c->w->fd = fd;
    c->first = true;
    /* readers; a ring window starts where the latest of those that lost events starts */
    int k = 0;
    c->t0 = ring ? 0 : np__trace.t0;
    for (np_tbuf *tb = head; tb && k < nb; tb = tb->next, k++) {
        bool lost = rd_open(&rs[k], tb, ring);
        if (lost && rs[k].has && (int64_t)rs[k].w[0] > c->t0)
            c->t0 = (int64_t)rs[k].w[0];
    }
    nb = k;
    if (ring && c->t0 == 0) {
        c->t0 = INT64_MAX;
        for (k = 0; k < nb; k++)
            if (rs[k].has && (int64_t)rs[k].w[0] < c->t0)
                c->t0 = (int64_t)rs[k].w[0];
        if (c->t0 == INT64_MAX)
            c->t0 = np__trace.t0;
    }
    c->base = c->t0;
    c->t1 = c->t0;
    js(c->w, "{\"traceEvents\":[");
    /* merge by time */
    for (;;) {
        rd *best = NULL;
        for (k = 0; k < nb; k++)
            if (rs[k].has && (!best || rs[k].w[0] < best->w[0]))
                best = &rs[k];
        if (!best)
            break;
        if ((int64_t)best->w[0] >= c->t0) {
            if ((int64_t)best->w[0] > c->t1)
                c->t1 = (int64_t)best->w[0];
            one(c, best);
        }
        advance(best);
    }
    /* close what is still open */
    int64_t t1 = c->t1;
    for (size_t i = 0; i < c->gcap; i++) {
        gst *g = &c->g[i];
        if (!g->id)
            continue;
        g_close(c, g, t1);
        while (g->nreg > 0)
            region_pop(c, g, t1);
    }
    for (int i = 0; i < c->np; i++) {
        pst *ps = &c->p[i];
        if (ps->idle) {
            ev_x(c, 1, i, ps->idle, t1, "idle", -1);
            ev_end(c);
        }
        if (ps->sys) {
            ev_x(c, 1, i, ps->sys, t1, "np_blocking g", ps->sysg);
            ev_end(c);
        }
    }
    for (k = 0; k < nb; k++) {
        rd *r = &rs[k];
        if (r->spin) {
            m_slice(c, r, &r->spin, t1, "spinning");
            ev_end(c);
        }
        if (r->idle) {
            m_slice(c, r, &r->idle, t1, "idle");
            ev_end(c);
        }
        if (r->poll) {
            m_slice(c, r, &r->poll, t1, "netpoll");
            ev_end(c);
        }
        if (r->timers) {
            m_slice(c, r, &r->timers, t1, "timers");
            ev_end(c);
        }
        if (r->blk) {
            ev_x(c, 2, r->tid, r->blk, t1, "np_blocking g", r->blkg);
            ev_end(c);
        }
    }
    /* names */
    if (atomic_load(&np__sched.ngchunks))
        np__each_g(g_fn, c);
    meta(c, 1, 0, "process_name", "np Ps", -1, NULL);
    meta(c, 2, 0, "process_name", "np threads", -1, NULL);
    meta(c, 3, 0, "process_name", "np coroutines", -1, NULL);
    for (int pid = 1; pid <= 3; pid++) {
        ev_begin(c, "M", pid, 0, -1);
        js(c->w, ",\"name\":\"process_sort_index\",\"args\":{\"sort_index\":");
        jdec(c->w, pid);
        js(c->w, "}}");
    }
    for (int i = 0; i < c->np; i++) {
        meta(c, 1, i, "thread_name", "P", i, NULL);
        sort_index(c, 1, i, i);
    }
    for (k = 0; k < nb; k++) {
        np_tbuf *tb = rs[k].tb;
        if (tb->mid >= 0)
            meta(c, 2, rs[k].tid, "thread_name", "M", tb->mid, tb->mid == 0 ? " (np_run's thread)" : NULL);
        else
            meta(c, 2, rs[k].tid, "thread_name", tb->name, -1, NULL);
        sort_index(c, 2, rs[k].tid, rs[k].tid);
    }
    for (size_t i = 0; i < c->gcap; i++)
        if (c->g[i].id)
            g_name(c, &c->g[i]);
    js(c->w, "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"generator\":\"np ");
    js(c->w, NP_VERSION_STRING);
    js(c->w, "\",\"mode\":\"");
    js(c->w, ring ? "flight recorder" : "full");
    js(c->w, "\"}}\n");
    jflush(c->w);
    int err = c->w->err;
    int64_t n = (int64_t)c->nev;
    for (k = 0; k < nb; k++)
        if (rs[k].copy)
            munmap(rs[k].copy, rs[k].copysz);
    if (c->g)
        munmap(c->g, c->gcap * sizeof *c->g);
    munmap(rs, rdsz);
    munmap(c->p, NPMAX * sizeof(pst));
    munmap(c->arena, c->arenacap);
    munmap(c->w, sizeof(jw));
    if (err) {
        errno = err;
        return -1;
    }
    return n;
}
