/* The tracer's recording side: per-thread buffers, sessions (start, stop, snapshot),
 * NP_TRACE, and the user's annotations. The converter is json.c. */
#include "trace.h"
#include "../debug/debug.h"
#include "../sched/sched.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

np_trace_state np__trace;
_Thread_local signed char np__trace_ctx = -1;

static _Thread_local np_tslot *myslot; /* the calling thread's, once it recorded */
static pthread_key_t slotkey;           /* its destructor frees the slot at thread exit */
static pthread_once_t slotonce = PTHREAD_ONCE_INIT;

static void tlock(void)
{
    int z = 0;
    while (!atomic_compare_exchange_weak(&np__trace.lock, &z, 1)) {
        z = 0;
        sched_yield();
    }
}
static void tunlock(void) { atomic_store(&np__trace.lock, 0); }

static void slot_free(void *arg)
{
    np_tslot *sl = arg;
    tlock();
    sl->freelink = np__trace.freeslots;
    np__trace.freeslots = sl;
    tunlock();
}
static void slot_key(void) { pthread_key_create(&slotkey, slot_free); }

/* The calling thread's slot: a free one, or a new one. NULL without memory. */
static __attribute__((noinline)) np_tslot *slot_get(void)
{
    pthread_once(&slotonce, slot_key);
    tlock();
    np_tslot *sl = np__trace.freeslots;
    if (sl) {
        np__trace.freeslots = sl->freelink;
    } else if ((sl = calloc(1, sizeof *sl))) {
        sl->next = atomic_load(&np__trace.slots);
        atomic_store_explicit(&np__trace.slots, sl, memory_order_release);
    }
    if (sl) {
        sl->tb = NULL; /* (a dead thread's: its buffer stays in the session) */
        sl->gen = 0;
    }
    tunlock();
    if (sl) {
        pthread_setspecific(slotkey, sl);
        myslot = sl;
    }
    return sl;
}

static void *zmap(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A buffer of session gen for the calling thread (busy set in sl), or NULL (that
 * session is over, or no memory: the thread's events are lost). */
static __attribute__((noinline)) np_tbuf *attach(np_tslot *sl, np_m *m, uint32_t gen)
{
    tlock();
    np_tbuf *tb = NULL;
    if (!atomic_load(&np__trace.on) || atomic_load(&np__trace.gen) != gen)
        goto out;
    tb = calloc(1, sizeof *tb);
    if (!tb)
        goto out;
    if (np__trace.mode == TR_RING) {
        tb->cap = np__trace.ringslots;
        tb->cur = zmap(tb->cap * sizeof(np_tev));
    } else {
        np_tchunk *c = zmap(sizeof(np_tchunk));
        atomic_store_explicit(&tb->curchunk, c, memory_order_relaxed);
        tb->cur = c ? c->ev : NULL;
        tb->cap = TCHUNK;
    }
    if (!tb->cur) {
        free(tb);
        tb = NULL;
        goto out;
    }
    tb->mid = m ? m->id : -1;
    tb->ostid = (int)syscall(SYS_gettid);
    if (!m) {
        if (atomic_load(&np__sched.up) && pthread_equal(pthread_self(), np__sched.sysmon))
            snprintf(tb->name, sizeof tb->name, "sysmon");
        else
            snprintf(tb->name, sizeof tb->name, "thread %d", tb->ostid);
    }
    tb->seq = np__trace.nbufs++;
    tb->next = atomic_load(&np__trace.bufs);
    atomic_store_explicit(&np__trace.bufs, tb, memory_order_release);
    sl->tb = tb;
    sl->gen = gen;
out:
    tunlock();
    return tb;
}

/* The next slot of tb (inside busy), or NULL when full mode has no memory left. */
static inline np_tev *slot(np_tbuf *tb, uint64_t *pos)
{
    uint64_t p = atomic_load_explicit(&tb->pos, memory_order_relaxed);
    if (np__trace.mode == TR_RING) {
        *pos = p + 1;
        return &tb->cur[p & (tb->cap - 1)];
    }
    if (p == TCHUNK) {
        np_tchunk *c = zmap(sizeof(np_tchunk));
        if (!c)
            return NULL;
        np_tchunk *done = atomic_load_explicit(&tb->curchunk, memory_order_relaxed);
        np_tchunk *tail = atomic_load_explicit(&tb->tail, memory_order_relaxed);
        if (tail)
            tail->next = done;
        else
            atomic_store_explicit(&tb->head, done, memory_order_release);
        atomic_store_explicit(&tb->tail, done, memory_order_release);
        atomic_store_explicit(&tb->curchunk, c, memory_order_release);
        tb->cur = c->ev;
        atomic_store_explicit(&tb->pos, 0, memory_order_relaxed);
        p = 0;
    }
    *pos = p + 1;
    return &tb->cur[p];
}

static inline void put(np_tev *e, uint64_t w0, uint64_t w1, uint64_t a, uint64_t b, uint64_t c)
{
    atomic_store_explicit(&e->w[0], w0, memory_order_relaxed);
    atomic_store_explicit(&e->w[1], w1, memory_order_relaxed);
    atomic_store_explicit(&e->w[2], a, memory_order_relaxed);
    atomic_store_explicit(&e->w[3], b, memory_order_relaxed);
    atomic_store_explicit(&e->w[4], c, memory_order_relaxed);
}

/* Enter the calling thread's buffer: busy set in its slot, then tracing seen still on
 * and the buffer of the current session (see np_tslot). NULL: record nothing (then
 * busy is cleared again). */
static inline np_tbuf *enter(np_m *m, np_tslot **slp)
{
    np_tslot *sl = myslot ? myslot : slot_get();
    if (!sl)
        return NULL;
    *slp = sl;
    atomic_exchange_explicit(&sl->busy, 1, memory_order_seq_cst);
    np_tbuf *tb = NULL;
    if (atomic_load_explicit(&np__trace.on, memory_order_seq_cst)) {
        uint32_t gen = atomic_load_explicit(&np__trace.gen, memory_order_seq_cst);
        tb = sl->gen == gen && sl->tb ? sl->tb : attach(sl, m, gen);
    }
    if (!tb)
        atomic_store_explicit(&sl->busy, 0, memory_order_release);
    return tb;
}
static inline void leave(np_tslot *sl) { atomic_store_explicit(&sl->busy, 0, memory_order_release); }

static inline uint64_t hdr(np_m *m, int type, int sub)
{
    uint64_t p = m && m->p ? (uint64_t)m->p->id + 1 : 0;
    return (uint64_t)type | (uint64_t)(sub & 0xff) << 8 | p << 16;
}

/* One slot of tb written (inside busy) and published; false when there is no room. */
static inline bool record(np_tbuf *tb, uint64_t w0, uint64_t w1, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t pos;
    np_tev *e = slot(tb, &pos);
    if (!e)
        return false;
    put(e, w0, w1, a, b, c);
    atomic_store_explicit(&tb->pos, pos, memory_order_release);
    return true;
}

void np__tev(int type, int sub, uint64_t a, uint64_t b, uint64_t c)
{
    np_m *m = np__getm();
    np_tslot *sl;
    np_tbuf *tb = enter(m, &sl);
    if (!tb)
        return;
    record(tb, (uint64_t)np__clock(), hdr(m, type, sub), a, b, c);
    leave(sl);
}

void np__tev_text(int type, uint64_t a, const char *t1, size_t n1, const char *t2, size_t n2)
{
    char text[TEV_TEXT_MAX];
    if (n1 > TEV_TEXT_MAX)
        n1 = TEV_TEXT_MAX;
    memcpy(text, t1, n1);
    size_t n = n1;
    if (t2 && n < TEV_TEXT_MAX) {
        text[n++] = 0;
        if (n2 > TEV_TEXT_MAX - n)
            n2 = TEV_TEXT_MAX - n;
        memcpy(text + n, t2, n2);
        n += n2;
    }
    np_m *m = np__getm();
    np_tslot *sl;
    np_tbuf *tb = enter(m, &sl);
    if (!tb)
        return;
    /* the event, then ceil(n / 32) continuation slots of 32 bytes each */
    if (record(tb, (uint64_t)np__clock(), hdr(m, type, 0), a, n, 0)) {
        for (size_t off = 0; off < n; off += 32) {
            uint64_t w[4] = {0, 0, 0, 0};
            memcpy(w, text + off, n - off < 32 ? n - off : 32);
            if (!record(tb, TEV_TEXT, w[0], w[1], w[2], w[3]))
                break;
        }
    }
    leave(sl);
}

void np__tev_ready(uint64_t g)
{
    np_m *m = np__getm();
    int who;
    uint64_t by = 0;
    if (np__trace_ctx >= 0)
        who = np__trace_ctx;
    else if (!m)
        who = WK_FOREIGN;
    else if (m->curg) {
        who = WK_G;
        by = (uint64_t)m->curg->id;
    } else
        who = WK_SCHED;
    np__tev(EV_GO_READY, who, g, by, 0);
}

/* ---- sessions -------------------------------------------------------------------- */

static size_t parse_size(const char *s)
{
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (e == s)
        return 0;
    if (*e == 'k' || *e == 'K')
        v <<= 10, e++;
    else if (*e == 'm' || *e == 'M')
        v <<= 20, e++;
    else if (*e == 'g' || *e == 'G')
        v <<= 30, e++;
    if (*e == 'b' || *e == 'B')
        e++;
    return *e ? 0 : (size_t)v;
}

/* Free every buffer of the session (tracing off, nobody inside one). */
static void free_bufs(void)
{
    np_tbuf *tb = atomic_load(&np__trace.bufs);
    atomic_store(&np__trace.bufs, NULL);
    while (tb) {
        np_tbuf *n = tb->next;
        if (np__trace.mode == TR_RING) {
            munmap(tb->cur, tb->cap * sizeof(np_tev));
        } else {
            np_tchunk *tail = atomic_load(&tb->tail);
            for (np_tchunk *c = atomic_load(&tb->head), *cn; c; c = cn) {
                cn = c == tail ? NULL : c->next;
                munmap(c, sizeof *c);
            }
            munmap(atomic_load(&tb->curchunk), sizeof(np_tchunk));
        }
        free(tb);
        tb = n;
    }
    np__trace.nbufs = 0;
}

int np_trace_start(const char *spec)
{
    if (!spec || !*spec) {
        errno = EINVAL;
        return -1;
    }
    int mode = TR_FULL;
    size_t slots = 0;
    if (strncmp(spec, "ring:", 5) == 0) {
        size_t bytes = parse_size(spec + 5);
        if (bytes < 4096 || bytes > ((size_t)1 << 34)) {
            errno = EINVAL;
            return -1;
        }
        mode = TR_RING;
        for (slots = 256; slots * 2 * sizeof(np_tev) <= bytes;)
            slots *= 2;
    } else if (strlen(spec) >= sizeof np__trace.path) {
        errno = ENAMETOOLONG;
        return -1;
    } else {
        /* the file must be writable now, not only at the end */
        int fd = open(spec, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return -1;
        close(fd);
    }
    tlock();
    if (np__trace.mode != TR_OFF) { /* on, or a stop still writing */
        tunlock();
        errno = EBUSY;
        return -1;
    }
    np__trace.mode = mode;
    np__trace.ringslots = slots;
    if (mode == TR_FULL)
        snprintf(np__trace.path, sizeof np__trace.path, "%s", spec);
    const char *dir = getenv("NP_TRACE_DIR");
    if (!dir || !*dir)
        dir = getenv("TMPDIR");
    snprintf(np__trace.dir, sizeof np__trace.dir, "%s", dir && *dir ? dir : "/tmp");
    np__trace.t0 = np__nanotime();
    atomic_fetch_add(&np__trace.gen, 1);
    atomic_store(&np__trace.on, 1);
    tunlock();
    return 0;
}

/* Tracing off, and every recorder out of its buffer. */
static int quiesce(void)
{
    tlock();
    if (!atomic_load(&np__trace.on)) {
        tunlock();
        return -1;
    }
    atomic_store(&np__trace.on, 0);
    atomic_fetch_add(&np__trace.gen, 1);
    tunlock();
    for (np_tslot *sl = atomic_load(&np__trace.slots); sl; sl = sl->next)
        while (atomic_load(&sl->busy))
            sched_yield();
    return 0;
}

static int write_path(const char *path, bool ring, int64_t *nev)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int64_t n = np__trace_write(fd, ring);
    int e = errno;
    if (close(fd) != 0 && n >= 0) {
        n = -1;
        e = errno;
    }
    errno = e;
    if (nev)
        *nev = n;
    return n < 0 ? -1 : 0;
}

/* A snapshot's way in: false when tracing is off (or stopping). */
static bool reader_enter(void)
{
    atomic_fetch_add(&np__trace.readers, 1);
    if (atomic_load(&np__trace.on))
        return true;
    atomic_fetch_sub(&np__trace.readers, 1);
    return false;
}
static void reader_leave(void) { atomic_fetch_sub(&np__trace.readers, 1); }

/* After quiesce: wait out the snapshots (a SIGQUIT's of a full trace writes the same
 * file), write the full trace, free the session. */
static void *stop_job(void *arg)
{
    int *rc = arg;
    while (atomic_load(&np__trace.readers))
        sched_yield();
    int mode = np__trace.mode;
    int r = 0;
    if (mode == TR_FULL)
        r = write_path(np__trace.path, false, NULL);
    int e = errno;
    free_bufs();
    tlock();
    np__trace.mode = TR_OFF;
    tunlock();
    errno = e;
    *rc = r ? errno : 0;
    return NULL;
}

int np_trace_stop(void)
{
    if (quiesce() != 0) {
        errno = EINVAL;
        return -1;
    }
    int rc = 0;
    np_blocking(stop_job, &rc); /* writing may take a while: the P goes on meanwhile */
    if (rc) {
        errno = rc;
        return -1;
    }
    return 0;
}

struct snap { const char *path; int rc; };
static void *snap_job(void *arg)
{
    struct snap *s = arg;
    if (!reader_enter()) {
        s->rc = EINVAL; /* not tracing */
        return NULL;
    }
    if (np__trace.mode != TR_RING)
        s->rc = EINVAL; /* no flight recorder */
    else
        s->rc = write_path(s->path, true, NULL) ? errno : 0;
    reader_leave();
    return NULL;
}

int np_trace_snapshot(const char *path)
{
    if (!path || !*path) {
        errno = EINVAL;
        return -1;
    }
    struct snap s = {path, 0};
    np_blocking(snap_job, &s);
    if (s.rc) {
        errno = s.rc;
        return -1;
    }
    return 0;
}

void np__trace_init(void)
{
    const char *s = getenv("NP_TRACE");
    if (!s || !*s || atomic_load(&np__trace.on))
        return;
    if (np_trace_start(s) != 0) {
        np_out o = {.fd = 2, .netlog = np__netlog_on()};
        np__out_str(&o, "np: NP_TRACE=");
        np__out_str(&o, s);
        np__out_str(&o, ": ");
        np__out_str(&o, strerror(errno));
        np__out_str(&o, " (expected FILE or ring:SIZE such as ring:4M); not tracing\n");
        np__out_flush(&o);
    }
}

void np__trace_fini(void)
{
    if (quiesce() != 0)
        return;
    int rc = 0;
    stop_job(&rc);
    if (rc) {
        np_out o = {.fd = 2, .netlog = np__netlog_on()};
        np__out_str(&o, "np: trace: cannot write ");
        np__out_str(&o, np__trace.path);
        np__out_str(&o, ": ");
        np__out_str(&o, strerror(rc));
        np__out_str(&o, "\n");
        np__out_flush(&o);
    }
}

void np__trace_dump(np_out *o)
{
    if (!reader_enter())
        return;
    char path[4200];
    size_t n = 0;
    if (np__trace.mode == TR_FULL) {
        for (const char *s = np__trace.path; *s && n + 1 < sizeof path; s++)
            path[n++] = *s;
    } else {
        /* DIR/np-trace.PID.N.json, built without stdio */
        char tail[64], *t = tail + sizeof tail;
        int k = atomic_fetch_add(&np__trace.nsnap, 1) + 1;
        *--t = 0;
        const char *sfx = ".json";
        t -= strlen(sfx);
        memcpy(t, sfx, strlen(sfx));
        do
            *--t = (char)('0' + k % 10);
        while (k /= 10);
        *--t = '.';
        long pid = (long)getpid();
        do
            *--t = (char)('0' + pid % 10);
        while (pid /= 10);
        const char *pre = "/np-trace.";
        t -= strlen(pre);
        memcpy(t, pre, strlen(pre));
        for (const char *s = np__trace.dir; *s && n + 1 < sizeof path - strlen(t); s++)
            path[n++] = *s;
        memcpy(path + n, t, strlen(t));
        n += strlen(t);
    }
    path[n] = 0;
    int64_t nev = 0;
    int r = write_path(path, np__trace.mode == TR_RING, &nev);
    np__out_str(o, r == 0 ? "np: trace written to " : "np: trace could not be written to ");
    np__out_str(o, path);
    if (r == 0) {
        np__out_str(o, " (");
        np__out_dec(o, nev);
        np__out_str(o, " events)\n");
    } else {
        np__out_str(o, ": ");
        np__out_str(o, strerror(errno));
        np__out_str(o, "\n");
    }
    np__out_flush(o);
    reader_leave();
}

/* ---- annotations ----------------------------------------------------------------- */

void np_trace_region_begin(const char *name)
{
    if (!np__tracing() || !name)
        return;
    np_g *g = np__getg();
    np__tev_text(EV_REGION_BEGIN, g ? (uint64_t)g->id : 0, name, strlen(name), NULL, 0);
}

void np_trace_region_end(void)
{
    if (!np__tracing())
        return;
    np_g *g = np__getg();
    np__tev(EV_REGION_END, 0, g ? (uint64_t)g->id : 0, 0, 0);
}

void np_trace_log(const char *category, const char *fmt, ...)
{
    if (!np__tracing() || !fmt)
        return;
    char msg[TEV_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof msg)
        n = sizeof msg - 1;
    if (!category)
        category = "";
    np_g *g = np__getg();
    np__tev_text(EV_LOG, g ? (uint64_t)g->id : 0, category, strlen(category), msg, (size_t)n);
}

int np_trace_on(void) { return atomic_load(&np__trace.on) != 0; }
