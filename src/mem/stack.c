/* Coroutine stacks.
 *
 * vm.max_map_count (65530 by default) forbids one mapping plus one guard mapping per
 * stack for 100k coroutines. Default-size stacks are therefore carved from slabs (one
 * mapping for NP_SLAB stacks), lazily committed (MAP_NORESERVE: a parked coroutine costs
 * only the pages it touched), and guarded with MADV_GUARD_INSTALL (Linux 6.13+), which
 * puts fault-on-access markers in the page tables without splitting the mapping.
 * Older kernels: mprotect guards while they fit in a budget of mappings, then a canary
 * checked at every switch. Stacks are pooled (per-P cache, then a global pool) and never
 * unmapped while the runtime runs; the pages below a long-parked coroutine's stack
 * pointer are given back (np_stack_trim, driven by sched/trim.c).
 */
#include "stack.h"
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "../os/lock.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define STK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STK_ASAN 1
#endif
#endif
#ifdef STK_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define NP_SLAB 64          /* stacks per slab */
#define CACHE_MAX 32        /* stacks kept per P */
#define MPROTECT_BUDGET 24000 /* guarded stacks when guards cost mappings */
#define CANARY 0x6e705f737461636bULL

struct fnode { struct fnode *next; bool canary; };

static struct {
    size_t dflt, guard, page;
    int mode;
    bool madv_checked; /* MADV_GUARD_INSTALL shown to work */
    int nmprotect;
    _Atomic int32_t lock;
    struct fnode *free;
    void **slabs;
    size_t nslabs, capslabs;
} pool;

size_t np_stack_guard(void) { return pool.guard; }

static struct fnode *node_of(char *lo, size_t size) { return (struct fnode *)(lo + size) - 1; }
static char *lo_of(struct fnode *n) { return (char *)(n + 1) - pool.dflt; }

int np_stack_init(size_t size)
{
    memset(&pool, 0, sizeof pool);
    pool.page = (size_t)sysconf(_SC_PAGESIZE);
    pool.guard = 2 * pool.page;
    if (size < 4 * pool.guard)
        size = 4 * pool.guard;
    pool.dflt = (size + pool.page - 1) & ~(pool.page - 1);
    pool.mode = NP_GUARD_MADV;
    return 0;
}

/* Does lo now fault? The kernel reads it for a pipe write: EFAULT if guarded.
 * (Emulators such as qemu-user accept unknown madvise advice and do nothing.) */
static bool faults(char *lo)
{
    int p[2];
    if (pipe(p) != 0)
        return false;
    bool f = write(p[1], lo, 1) < 0 && errno == EFAULT;
    close(p[0]);
    close(p[1]);
    return f;
}

/* Guard the bottom of a fresh stack; returns the mode used. */
static int guard(char *lo)
{
    if (pool.mode == NP_GUARD_MADV) {
        if (madvise(lo, pool.guard, MADV_GUARD_INSTALL) == 0 && (pool.madv_checked || faults(lo))) {
            pool.madv_checked = true;
            return NP_GUARD_MADV;
        }
        pool.mode = NP_GUARD_MPROTECT;
    }
    if (pool.mode == NP_GUARD_MPROTECT && pool.nmprotect < MPROTECT_BUDGET &&
        mprotect(lo, pool.guard, PROT_NONE) == 0) {
        pool.nmprotect++;
        return NP_GUARD_MPROTECT;
    }
    *(uint64_t *)(lo + pool.guard - sizeof(uint64_t)) = CANARY;
    return NP_GUARD_CANARY;
}

bool np_stack_canary_ok(const np_stack *s)
{
    return *(const uint64_t *)(s->lo + pool.guard - sizeof(uint64_t)) == CANARY;
}

static int new_slab(void)
{
    size_t len = pool.dflt * NP_SLAB;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    if (pool.nslabs == pool.capslabs) {
        size_t nc = pool.capslabs ? 2 * pool.capslabs : 64;
        void **ns = realloc(pool.slabs, nc * sizeof *ns);
        if (!ns) {
            munmap(m, len);
            errno = ENOMEM;
            return -1;
        }
        pool.slabs = ns;
        pool.capslabs = nc;
    }
    pool.slabs[pool.nslabs++] = m;
    for (int i = NP_SLAB - 1; i >= 0; i--) {
        char *lo = m + (size_t)i * pool.dflt;
        struct fnode *n = node_of(lo, pool.dflt);
        n->canary = guard(lo) == NP_GUARD_CANARY;
        n->next = pool.free;
        pool.free = n;
    }
    return 0;
}

int np_stack_alloc(np_stack_cache *c, size_t size, np_stack *s)
{
    size = size ? (size + pool.guard + pool.page - 1) & ~(pool.page - 1) : pool.dflt;
    if (size == pool.dflt) {
        struct fnode *n = c->head;
        if (!n) {
            np_spin_lock(&pool.lock);
            if (!pool.free && new_slab() != 0) {
                np_spin_unlock(&pool.lock);
                return -1;
            }
            /* take a handful at once */
            for (int i = 0; i < CACHE_MAX / 2 && pool.free; i++) {
                struct fnode *f = pool.free;
                pool.free = f->next;
                f->next = c->head;
                c->head = f;
                c->n++;
            }
            np_spin_unlock(&pool.lock);
            n = c->head;
        }
        c->head = n->next;
        c->n--;
        s->lo = lo_of(n);
        s->size = pool.dflt;
        s->kind = NP_STK_POOLED;
        s->canary = n->canary;
        goto fresh;
    }
    char *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    if (mprotect(m, pool.guard, PROT_NONE) != 0) {
        munmap(m, size);
        return -1;
    }
    s->lo = m;
    s->size = size;
    s->kind = NP_STK_OWN;
    s->canary = false;
fresh:
    return 0;
}

size_t np_stack_trim(const np_stack *s, const void *sp)
{
    if (s->kind == NP_STK_NONE || !sp)
        return 0;
    uintptr_t lo = (uintptr_t)s->lo + pool.guard;
    /* below sp: the x86-64 red zone (128 bytes) is dead too at a switch, keep it anyway */
    uintptr_t hi = ((uintptr_t)sp - 128) & ~(uintptr_t)(pool.page - 1);
    if (hi <= lo || (uintptr_t)sp > (uintptr_t)s->lo + s->size)
        return 0;
    if (madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0)
        return 0;
    return hi - lo;
}

/* ASan: a finished coroutine leaves poisoned redzones of the frames it was in when it
 * ended (np_exit may end it deep down): clear the part of the stack in use at the top
 * before the memory serves another coroutine. Whole mappings are cleared at unmap. */
static void unpoison(const np_stack *s, size_t top)
{
#ifdef STK_ASAN
    size_t usable = s->size - pool.guard;
    size_t n = top && top < usable ? top : usable;
    __asan_unpoison_memory_region(s->lo + s->size - n, n);
#else
    (void)s;
    (void)top;
#endif
}

void np_stack_free(np_stack_cache *c, np_stack *s)
{
    unpoison(s, s->kind == NP_STK_OWN ? 0 : 64 * 1024);
    if (s->kind == NP_STK_OWN) {
        munmap(s->lo, s->size);
    } else if (s->kind == NP_STK_POOLED) {
        struct fnode *n = node_of(s->lo, s->size);
        n->canary = s->canary;
        n->next = c->head;
        c->head = n;
        if (++c->n > CACHE_MAX) {
            np_spin_lock(&pool.lock);
            while (c->n > CACHE_MAX / 2) {
                struct fnode *f = c->head;
                c->head = f->next;
                c->n--;
                f->next = pool.free;
                pool.free = f;
            }
            np_spin_unlock(&pool.lock);
        }
    }
    s->kind = NP_STK_NONE;
}

void np_stack_fini(void)
{
    for (size_t i = 0; i < pool.nslabs; i++) {
#ifdef STK_ASAN
        /* abandoned coroutines' frames: the next mapping here must start clean */
        for (int k = 0; k < NP_SLAB; k++) {
            np_stack st = {(char *)pool.slabs[i] + (size_t)k * pool.dflt, pool.dflt, NP_STK_POOLED, false};
            unpoison(&st, 0);
        }
#endif
        munmap(pool.slabs[i], pool.dflt * NP_SLAB);
    }
    free(pool.slabs);
    pool.slabs = NULL;
    pool.nslabs = pool.capslabs = 0;
    pool.free = NULL;
}
