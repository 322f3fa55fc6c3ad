/* Portable fallback (make CTX=ucontext): makecontext/swapcontext. Slower: swapcontext
 * saves the signal mask with a system call on every switch. */
#include "ctx.h"
#include <stdint.h>
#include <stdlib.h>

static void uc_entry(unsigned hi, unsigned lo, unsigned ehi, unsigned elo)
{
    void *arg = (void *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
    void (*entry)(void *) = (void (*)(void *))(((uintptr_t)ehi << 32) | (uintptr_t)elo);
    entry(arg);
    abort();
}

void np_ctx_make(np_ctx *c, void *lo, size_t size, void (*entry)(void *), void *arg)
{
    getcontext(&c->uc);
#if defined(__x86_64__)
    /* a new coroutine starts with the default FP environment, not its creator's */
    c->uc.uc_mcontext.fpregs->mxcsr = 0x1F80;
    c->uc.uc_mcontext.fpregs->cwd = 0x037F;
#endif
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    uintptr_t a = (uintptr_t)arg, e = (uintptr_t)entry;
    makecontext(&c->uc, (void (*)(void))uc_entry, 4, (unsigned)(a >> 32), (unsigned)a,
                (unsigned)(e >> 32), (unsigned)e);
}

void np_ctx_switch(np_ctx *from, np_ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}

void np_ctx_jump(np_ctx *to)
{
    setcontext(&to->uc);
    abort();
}
