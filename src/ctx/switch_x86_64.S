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
        movl    (%rsp), %eax            /* same-size reloads: store-forwarded */
        movzwl  4(%rsp), %edx
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        cmpl    (%rsp), %eax            /* reload FP control only when it differs */
        jne     2f
        cmpw    4(%rsp), %dx
        jne     2f
1:      addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
2:      ldmxcsr (%rsp)
        fldcw   4(%rsp)
        jmp     1b
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
