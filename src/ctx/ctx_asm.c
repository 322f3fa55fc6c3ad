/* Initial frames for the assembly back ends (switch_x86_64.S, switch_aarch64.S). */
#include "ctx.h"
#include <stdint.h>
#include <string.h>

void np_ctx_trampoline(void);

void np_ctx_make(np_ctx *c, void *lo, size_t size, void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* Popped by np_ctx_switch: fp control words (8), ret (NULL: resume with a ret),
     * r15 r14 r13 r12 rbx rbp, return address; the trampoline then runs with rsp
     * 16-aligned, as before a call. */
    uint64_t *sp = (uint64_t *)(top - 88);
    memset(sp, 0, 88);
    sp[0] = 0x1F80u | ((uint64_t)0x037Fu << 32); /* MXCSR default, x87 CW default */
    sp[5] = (uint64_t)(uintptr_t)entry;          /* r12 */
    sp[6] = (uint64_t)(uintptr_t)arg;            /* rbx */
    sp[8] = (uint64_t)(uintptr_t)np_ctx_trampoline;
    c->sp = sp;
#elif defined(__aarch64__)
    uint64_t *sp = (uint64_t *)(top - 176);
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)arg;   /* x19 */
    sp[1] = (uint64_t)(uintptr_t)entry; /* x20 */
    sp[11] = (uint64_t)(uintptr_t)np_ctx_trampoline; /* x30 */
    sp[20] = 0; /* FPCR: round to nearest, no traps (the process default) */
    c->sp = sp;
#else
#error "no assembly context switch for this architecture: build with CTX=ucontext"
#endif
}
