/* The coroutine dump, after Go's goroutine dump: id, state, wait reason and for how
 * long, the function it was started with, a backtrace. It reads the scheduler's state
 * as it is, without locks, so it works while every P is busy or stuck (and from signal
 * handlers); a coroutine running on another thread is shown without a backtrace. */
#include "debug.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

void np__out_flush(np_out *o)
{
    if (o->n == 0)
        return;
    if (o->fd >= 0 && !o->err) {
        int e = errno; /* (a signal handler's caller keeps its errno) */
        size_t off = 0;
        while (off < o->n) {
            ssize_t w = write(o->fd, o->b + off, o->n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                o->err = w < 0 ? errno : EIO;
                break;
            }
            off += (size_t)w;
        }
        errno = e;
    }
    if (o->netlog) {
        size_t st = 0;
        for (size_t i = 0; i < o->n; i++)
            if (o->b[i] == '\n') {
                np__netlog_send(o->b + st, i - st);
                st = i + 1;
            }
        if (st < o->n)
            np__netlog_send(o->b + st, o->n - st);
    }
    o->n = 0;
}

void np__out_str(np_out *o, const char *s)
{
    for (; *s; s++) {
        if (o->n == sizeof o->b)
            np__out_flush(o);
        o->b[o->n++] = *s;
        if (*s == '\n' && o->netlog)
            np__out_flush(o); /* one datagram per line */
    }
}

void np__out_dec(np_out *o, int64_t v)
{
    char d[24], *p = d + sizeof d;
    uint64_t u = v < 0 ? (uint64_t)-v : (uint64_t)v;
    *--p = 0;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    np__out_str(o, p);
}

void np__out_hex(np_out *o, uintptr_t v)
{
    char d[24], *p = d + sizeof d;
    *--p = 0;
    do
        *--p = "0123456789abcdef"[v & 15];
    while (v >>= 4);
    *--p = 'x';
    *--p = '0';
    np__out_str(o, p);
}

static void sym(np_out *o, uintptr_t pc)
{
    np__out_hex(o, pc);
    Dl_info di;
    if (!dladdr((void *)pc, &di))
        return;
    if (di.dli_sname) {
        np__out_str(o, " ");
        np__out_str(o, di.dli_sname);
        np__out_str(o, "+");
        np__out_hex(o, pc - (uintptr_t)di.dli_saddr);
    } else if (di.dli_fname && di.dli_fname[0]) {
        /* No exported name (a static function, or np's own code in libnp.so, where only
         * the API is exported): the module and offset, for addr2line -e MODULE OFFSET. */
        const char *base = di.dli_fname, *s;
        for (s = base; *s; s++)
            if (*s == '/')
                base = s + 1;
        np__out_str(o, " (");
        np__out_str(o, base);
        np__out_str(o, "+");
        np__out_hex(o, pc - (uintptr_t)di.dli_fbase);
        np__out_str(o, ")");
    }
}

/* ---- another coroutine's stack ----------------------------------------------------------
 * Its owner may run, end or give the stack back while the dump reads it, so the dump
 * never loads from it: the kernel copies the bytes (process_vm_readv on this process),
 * and an address gone bad fails (EFAULT) instead of faulting here; no sanitizer sees a
 * racy load or a redzone of a live frame. Where that call is missing (qemu-user) or
 * refused (a seccomp filter), the copy goes through a pipe: write(2) from the address
 * (the raw system call, past the sanitizers' interceptors), then read(2). The window
 * w is an earlier copy, reused while the frames walked lie in it. */
typedef struct peeker {
    int pfd[2];     /* that pipe, made at its first need; -1 until then */
    int avoid;      /* the dump's own fd: the pipe never takes its number (if closed) */
    bool nopvr;     /* process_vm_readv missing or refused */
    uintptr_t base; /* the window: n bytes from base, copied into w */
    size_t n;
    uintptr_t w[128];
} peeker;

/* (the pipe: raw system calls, as the write, so no hook library takes them for its own) */
static void peek_done(peeker *k)
{
    for (int i = 0; i < 2; i++)
        if (k->pfd[i] >= 0)
            syscall(SYS_close, k->pfd[i]);
    k->pfd[0] = k->pfd[1] = -1;
}

/* The fallback's pipe, made at its first need; false if it cannot be. */
static bool peek_pipe(peeker *k)
{
    if (k->pfd[0] >= 0)
        return true;
    if (syscall(SYS_pipe2, k->pfd, O_CLOEXEC | O_NONBLOCK) != 0) {
        k->pfd[0] = k->pfd[1] = -1;
        return false;
    }
    for (int i = 0; i < 2; i++)
        if (k->pfd[i] == k->avoid) { /* (its output would go into the pipe) */
            int moved = (int)syscall(SYS_fcntl, k->pfd[i], F_DUPFD_CLOEXEC, k->avoid + 1);
            syscall(SYS_close, k->pfd[i]);
            k->pfd[i] = moved;
        }
    if (k->pfd[0] >= 0 && k->pfd[1] >= 0)
        return true;
    peek_done(k);
    return false;
}

/* Copy up to n bytes from a into buf: how many were copied, which stops short at a page
 * that is not mapped (0: a itself is not). */
static size_t copy_in(peeker *k, uintptr_t a, void *buf, size_t n)
{
    if (!k->nopvr) {
        struct iovec l = {buf, n}, r = {(void *)a, n};
        ssize_t got = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
        if (got >= 0 || (errno != ENOSYS && errno != EPERM))
            return got > 0 ? (size_t)got : 0;
        k->nopvr = true;
    }
    if (!peek_pipe(k))
        return 0;
    long put = syscall(SYS_write, k->pfd[1], (void *)a, n); /* n <= PIPE_BUF */
    if (put <= 0)
        return 0;
    long got = syscall(SYS_read, k->pfd[0], buf, (size_t)put);
    return got > 0 ? (size_t)got : 0;
}

/* The word at a, if a is aligned and the word lies in [lo, hi): from the window, else
 * from a window refilled from a. */
static bool peek_word(peeker *k, uintptr_t a, uintptr_t lo, uintptr_t hi, uintptr_t *v)
{
    if (a < lo || a > hi || hi - a < sizeof *v || (a & (sizeof *v - 1)))
        return false;
    if (a < k->base || a - k->base + sizeof *v > k->n) {
        k->base = a;
        k->n = copy_in(k, a, k->w, hi - a < sizeof k->w ? hi - a : sizeof k->w);
        if (k->n < sizeof *v)
            return false;
    }
    *v = k->w[(a - k->base) / sizeof *v];
    return true;
}

/* Walk frame pointers within [lo, hi). */
static void walk(np_out *o, peeker *k, uintptr_t pc, uintptr_t fp, uintptr_t lo, uintptr_t hi)
{
    for (int i = 0; i < 40 && pc; i++) {
        np__out_str(o, "    #");
        np__out_dec(o, i);
        np__out_str(o, " ");
        sym(o, pc);
        np__out_str(o, "\n");
        uintptr_t nfp;
        if (!peek_word(k, fp, lo, hi, &nfp) || !peek_word(k, fp + sizeof nfp, lo, hi, &pc))
            break;
        if (nfp <= fp)
            break;
        fp = nfp;
    }
}

/* pc and frame pointer of a switched-out coroutine, from its saved context; [lo, hi)
 * its stack as the dump read it (the coroutine may be running again meanwhile). */
NP_NOTSAN static bool saved_regs(np_g *g, peeker *k, uintptr_t lo, uintptr_t hi, uintptr_t *pc,
                                 uintptr_t *fp)
{
    (void)k;
    (void)lo;
    (void)hi;
#if defined(NP_CTX_UCONTEXT) && defined(__x86_64__)
    *pc = (uintptr_t)g->ctx.uc.uc_mcontext.gregs[REG_RIP];
    *fp = (uintptr_t)g->ctx.uc.uc_mcontext.gregs[REG_RBP];
    return true;
#elif defined(NP_CTX_UCONTEXT) && defined(__aarch64__)
    *pc = (uintptr_t)g->ctx.uc.uc_mcontext.pc;
    *fp = (uintptr_t)g->ctx.uc.uc_mcontext.regs[29];
    return true;
#elif defined(__x86_64__) /* (the layout: see switch_x86_64.S) */
    uintptr_t sp = (uintptr_t)g->ctx.sp;
    return peek_word(k, sp + 7 * sizeof(uintptr_t), lo, hi, fp) && /* (lower first: one copy) */
           peek_word(k, sp + 8 * sizeof(uintptr_t), lo, hi, pc);
#elif defined(__aarch64__)
    uintptr_t sp = (uintptr_t)g->ctx.sp;
    return peek_word(k, sp + 10 * sizeof(uintptr_t), lo, hi, fp) &&
           peek_word(k, sp + 11 * sizeof(uintptr_t), lo, hi, pc);
#else
    (void)g;
    return false;
#endif
}

static bool ctx_regs(const void *ctx, uintptr_t *pc, uintptr_t *fp)
{
    const ucontext_t *uc = ctx;
#if defined(__x86_64__)
    *pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    *fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    return true;
#elif defined(__aarch64__)
    *pc = (uintptr_t)uc->uc_mcontext.pc;
    *fp = (uintptr_t)uc->uc_mcontext.regs[29];
    return true;
#else
    (void)uc;
    return false;
#endif
}

const char *np__wait_name(int r)
{
    switch (r) {
    case W_SLEEP: return "sleep";
    case W_CHAN_SEND: return "chan send";
    case W_CHAN_RECV: return "chan receive";
    case W_SELECT: return "select";
    case W_SELECT_NOCASES: return "select (no cases)";
    case W_MUTEX: return "mutex";
    case W_WAITGROUP: return "waitgroup";
    case W_COND: return "cond wait";
    case W_RWMUTEX: return "rwmutex";
    case W_ONCE: return "once";
    case W_IO: return "IO wait";
    case W_BLOCKING: return "blocking call";
    default: return "waiting";
    }
}

typedef struct dumpctx { np_out *o; const void *ctx; np_m *self; int64_t now; int n; peeker *k; } dumpctx;

NP_NOTSAN static void dump_g(np_g *g, void *arg)
{
    dumpctx *d = arg;
    np_out *o = d->o;
    uint32_t st = atomic_load_explicit(&g->status, memory_order_relaxed);
    if (st == G_IDLE || st == G_DEAD)
        return;
    d->n++;
    np__out_str(o, "coroutine ");
    np__out_dec(o, g->id);
    np__out_str(o, " [");
    bool blocking = st == G_RUNNING && g->waitreason == W_BLOCKING;
    if (st == G_RUNNING && !blocking)
        np__out_str(o, "running");
    else if (st == G_RUNNABLE)
        np__out_str(o, "runnable");
    else {
        np__out_str(o, blocking ? "blocking call" : np__wait_name(g->waitreason));
        if (!blocking && g->waitreason == W_IO) {
            np__out_str(o, " fd ");
            np__out_dec(o, g->waitfd);
            np__out_str(o, g->waitmode == 2 ? " write" : " read");
        }
        if (!blocking && g->waitsince > 0 && d->now >= g->waitsince) {
            int64_t ms = (d->now - g->waitsince) / 1000000;
            np__out_str(o, ", ");
            np__out_dec(o, ms / 1000);
            np__out_str(o, ".");
            np__out_dec(o, ms % 1000 / 100);
            np__out_dec(o, ms % 100 / 10);
            np__out_str(o, " s");
        }
    }
    np__out_str(o, "]");
    if (g->ismain)
        np__out_str(o, " (main)");
    np__out_str(o, ":\n    started at ");
    sym(o, (uintptr_t)g->fn);
    np__out_str(o, "\n");
    /* the stack as it is now (read once: the owner may change it meanwhile) */
    np_stack stk = g->stack;
    if (stk.kind == NP_STK_NONE || !stk.lo)
        return; /* has not run yet */
    uintptr_t lo = (uintptr_t)stk.lo + np_stack_guard(), hi = (uintptr_t)stk.lo + stk.size, pc, fp;
    if (hi <= lo)
        return;
    d->k->n = 0; /* (no bytes of an earlier coroutine's stack, which this one may reuse) */
    if (st == G_RUNNING) {
        np_m *m = g->m;
        if (m == d->self && d->ctx && ctx_regs(d->ctx, &pc, &fp))
            walk(o, d->k, pc, fp, lo, hi);
        else if (!blocking) {
            np__out_str(o, "    (running on thread ");
            np__out_dec(o, m ? m->id : -1);
            np__out_str(o, ")\n");
        }
        return;
    }
    if (saved_regs(g, d->k, lo, hi, &pc, &fp))
        walk(o, d->k, pc, fp, lo, hi);
}

void np__dump_to(np_out *o, const void *ctx)
{
    int e = errno; /* (a signal handler's caller keeps its errno) */
    peeker k = {.pfd = {-1, -1}, .avoid = o->fd};
    dumpctx d = {o, ctx, np__getm(), atomic_load(&np__sched.nowcache), 0, &k};
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
        d.now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    np__out_str(o, "np: coroutine dump (");
    np__out_dec(o, np__sched.nprocs);
    np__out_str(o, " procs)\n\n");
    np__each_g(dump_g, &d);
    np__out_str(o, "np: ");
    np__out_dec(o, d.n);
    np__out_str(o, " coroutines\n");
    np__out_flush(o);
    peek_done(&k);
    errno = e;
}

int np_dump(int fd)
{
    if (!np__look_begin()) {
        errno = EPERM;
        return -1;
    }
    np_out o = {.fd = fd, .netlog = false};
    np__dump_to(&o, NULL);
    np__look_end();
    if (o.err) {
        errno = o.err;
        return -1;
    }
    return 0;
}
