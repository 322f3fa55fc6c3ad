/* x86_64 SysV context switch: callee-saved rbx, rbp, r12-r15, the MXCSR control bits
 * and the x87 control word.
 *
 * A saved context, from its sp up: FP control words (8), ret (8), r15 r14 r13 r12 rbx
 * rbp, return address. ret is NULL when np_ctx_switch saved it: it resumes with a ret
 * to the instruction after that call. np_ctx_park saves the ret pointer it is given and
 * is meant to be tail-called: the context then resumes straight in its caller's caller,
 * by an indirect jump, returning *ret (a bool) as an int. The jump leaves the return
 * stack predictor alone: a ret there would be predicted from the other context's calls
 * (and, with both ends of a channel looping, always miss).
 *
 * void np_ctx_switch(np_ctx *from, np_ctx *to)
 * int np_ctx_park(np_ctx *from, np_ctx *to, const bool *ret)
 * void np_ctx_jump(np_ctx *to): resume to, saving nothing */
/* In the shared library the switch is internal, as everything but np.h's API is. */
#ifdef NP_SHARED_OBJECT
#define NP_LOCAL(sym) .hidden sym
#else
#define NP_LOCAL(sym)
#endif
.macro SAVE_CALLEE
        stmxcsr -64(%rsp)               /* first: it is slow to issue (microcoded) */
        fnstcw  -60(%rsp)               /* (into the red zone: the slot below 8 pushes) */
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
.endm

        .section .text.hot.np,"ax",@progbits /* beside the other NP_HOT code (os/hot.h) */
        .globl  np_ctx_switch
        NP_LOCAL(np_ctx_switch)
        .type   np_ctx_switch, @function
        .p2align 4
np_ctx_switch:
        SAVE_CALLEE
        pushq   $0
        movl    $1, %edx                /* np_ctx_resumed for a context np_ctx_park saved */
        jmp     .Lsave
        .size   np_ctx_switch, .-np_ctx_switch

        .globl  np_ctx_park
        NP_LOCAL(np_ctx_park)
        .type   np_ctx_park, @function
        .p2align 4
np_ctx_park:
        SAVE_CALLEE
        pushq   %rdx
        xorl    %edx, %edx              /* no np_ctx_resumed: nothing is left to finish */
.Lsave:
        subq    $8, %rsp
        movl    (%rsp), %eax            /* same-size reloads: store-forwarded */
        movzwl  4(%rsp), %r8d
        movq    %rsp, (%rdi)
.Lrestore:
        movq    (%rsi), %rsp
        cmpl    (%rsp), %eax            /* reload FP control only when it differs */
        jne     3f
        cmpw    4(%rsp), %r8w
        jne     3f
1:      movq    8(%rsp), %rcx           /* ret of the resumed context */
        addq    $16, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        testq   %rcx, %rcx
        jnz     2f
        ret
2:      testl   %edx, %edx
        jnz     4f
5:      movzbl  (%rcx), %eax
        popq    %rdx
        jmp     *%rdx
3:      ldmxcsr (%rsp)
        fldcw   4(%rsp)
        jmp     1b
4:      pushq   %rcx                    /* and aligns the stack for the call */
        call    np_ctx_resumed@PLT
        popq    %rcx
        jmp     5b
        .size   np_ctx_park, .-np_ctx_park

        .globl  np_ctx_jump
        NP_LOCAL(np_ctx_jump)
        .type   np_ctx_jump, @function
        .p2align 4
np_ctx_jump:
        stmxcsr -8(%rsp)                /* the current FP control words, to compare */
        fnstcw  -4(%rsp)
        movl    -8(%rsp), %eax
        movzwl  -4(%rsp), %r8d
        movq    %rdi, %rsi
        movl    $1, %edx                /* np_ctx_resumed for a context np_ctx_park saved */
        jmp     .Lrestore
        .size   np_ctx_jump, .-np_ctx_jump

/* First frame of a new context: rbx = arg, r12 = entry (set by np_ctx_make). */
        .globl  np_ctx_trampoline
        NP_LOCAL(np_ctx_trampoline)
        .type   np_ctx_trampoline, @function
        .p2align 4
np_ctx_trampoline:
        movq    %rbx, %rdi
        callq   *%r12
        ud2
        .size   np_ctx_trampoline, .-np_ctx_trampoline

        .section .note.GNU-stack,"",@progbits
