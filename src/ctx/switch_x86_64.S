/* x86_64 SysV context switch: callee-saved rbx, rbp, r12-r15, the MXCSR control bits
 * and the x87 control word. void np_ctx_switch(np_ctx *from, np_ctx *to). */
        .text
        .globl  np_ctx_switch
        .type   np_ctx_switch, @function
        .p2align 4
np_ctx_switch:
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .size   np_ctx_switch, .-np_ctx_switch

/* First frame of a new context: rbx = arg, r12 = entry (set by np_ctx_make). */
        .globl  np_ctx_trampoline
        .type   np_ctx_trampoline, @function
        .p2align 4
np_ctx_trampoline:
        movq    %rbx, %rdi
        callq   *%r12
        ud2
        .size   np_ctx_trampoline, .-np_ctx_trampoline

        .section .note.GNU-stack,"",@progbits
