/* AArch64 AAPCS64 context switch: callee-saved x19-x28, fp, lr, d8-d15 and FPCR.
 * void np_ctx_switch(np_ctx *from, np_ctx *to)
 * void np_ctx_jump(np_ctx *to): resume to, saving nothing */
/* In the shared library the switch is internal, as everything but np.h's API is. */
#ifdef NP_SHARED_OBJECT
#define NP_LOCAL(sym) .hidden sym
#else
#define NP_LOCAL(sym)
#endif
        .section .text.hot.np,"ax",%progbits /* beside the other NP_HOT code (os/hot.h) */
        .globl  np_ctx_switch
        NP_LOCAL(np_ctx_switch)
        .type   np_ctx_switch, %function
        .p2align 4
np_ctx_switch:
        sub     sp, sp, #176
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8,  d9,  [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr
        str     x9, [sp, #160]
        mov     x9, sp
        str     x9, [x0]
.Lrestore:
        ldr     x9, [x1]
        mov     sp, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8,  d9,  [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        ldr     x9, [sp, #160]
        mrs     x10, fpcr
        cmp     x9, x10
        b.eq    1f
        msr     fpcr, x9
1:      add     sp, sp, #176
        ret
        .size   np_ctx_switch, .-np_ctx_switch

        .globl  np_ctx_jump
        NP_LOCAL(np_ctx_jump)
        .type   np_ctx_jump, %function
        .p2align 4
np_ctx_jump:
        mov     x1, x0
        b       .Lrestore
        .size   np_ctx_jump, .-np_ctx_jump

/* First frame of a new context: x19 = arg, x20 = entry (set by np_ctx_make). */
        .globl  np_ctx_trampoline
        NP_LOCAL(np_ctx_trampoline)
        .type   np_ctx_trampoline, %function
        .p2align 4
np_ctx_trampoline:
        mov     x0, x19
        blr     x20
        brk     #0
        .size   np_ctx_trampoline, .-np_ctx_trampoline

        .section .note.GNU-stack,"",%progbits
