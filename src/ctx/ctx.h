/* Context switch: the one primitive the scheduler needs from the machine.
 * A context is a saved stack pointer (assembly back ends) or a ucontext (fallback). */
#ifndef NP_CTX_H
#define NP_CTX_H
#include <stddef.h>

#if defined(NP_CTX_UCONTEXT)
#include <ucontext.h>
typedef struct np_ctx { ucontext_t uc; } np_ctx;
#else
typedef struct np_ctx { void *sp; } np_ctx;
#endif

/* Prepare c so that switching to it calls entry(arg) on the stack [lo, lo+size).
 * entry must never return. */
void np_ctx_make(np_ctx *c, void *lo, size_t size, void (*entry)(void *), void *arg);

/* Save the current context in from and resume to. Returns when something switches
 * back to from. Saves only what the ABI says a callee must preserve. */
void np_ctx_switch(np_ctx *from, np_ctx *to);

/* Resume to and never come back: np_ctx_switch for a context that is done (a dying
 * coroutine's), which saves nothing. */
_Noreturn void np_ctx_jump(np_ctx *to);

/* The stack pointer saved in c (everything below it is dead), or NULL when the back end
 * does not say (ucontext on other machines). */
static inline void *np_ctx_sp(const np_ctx *c)
{
#if defined(NP_CTX_UCONTEXT) && defined(__x86_64__)
    return (void *)c->uc.uc_mcontext.gregs[REG_RSP];
#elif defined(NP_CTX_UCONTEXT) && defined(__aarch64__)
    return (void *)c->uc.uc_mcontext.sp;
#elif defined(NP_CTX_UCONTEXT)
    (void)c;
    return NULL;
#else
    return c->sp;
#endif
}
#if defined(__x86_64__) && !defined(NP_CTX_UCONTEXT)
#include <stdbool.h>
#define NP_CTX_PARK 1
/* np_ctx_switch for a context that will resume straight in its caller's caller: call
 * it as a tail call (return np_ctx_park(...);). When something switches back to from,
 * that caller's caller gets *ret as an int (read then), by a jump rather than a
 * return, so that the return predictor is not consulted with another context's calls.
 * Nothing may be left for the context switched to to finish; when np_ctx_switch resumes
 * such a context instead, it calls np_ctx_resumed() first, on that context's stack. */
int np_ctx_park(np_ctx *from, np_ctx *to, const bool *ret);
void np_ctx_resumed(void); /* the scheduler's */
#endif

#endif
