/* Signals: SIGQUIT dumps (and exits with status 2, as Go, unless NP_DUMP=continue);
 * fatal signals and coroutine stack overflow report the faulting coroutine, dump,
 * and kill the process with the original signal. Handlers run on each M's alternate
 * signal stack, so an overflowed coroutine stack is no obstacle. */
#include "debug.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static const int fatals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
#define NFATAL (sizeof fatals / sizeof fatals[0])

static struct {
    struct sigaction old[NFATAL], oldquit;
    _Atomic int busy;
} sig_;

static const char *signame(int s)
{
    switch (s) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGQUIT: return "SIGQUIT";
    default: return "signal";
    }
}

static void die(int sig, siginfo_t *si)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    if (sig == SIGABRT || si->si_code <= 0) { /* sent, not a fault: send it again */
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, sig);
        sigprocmask(SIG_UNBLOCK, &s, NULL);
        raise(sig);
    }
    /* a fault: returning re-executes the instruction, now with the default action */
}

NP_NOTSAN static void fatal(int sig, siginfo_t *si, void *uc)
{
    if (atomic_exchange(&sig_.busy, 1)) {
        die(sig, si); /* a fault while reporting one */
        return;
    }
    np_m *m = np__getm();
    np_g *g = m ? (m->curg ? m->curg : m->blockedg) : NULL;
    np_out o = {.fd = 2, .netlog = np__netlog_on()};
    if (g && (sig == SIGSEGV || sig == SIGBUS) &&
        np_stack_in_guard(&g->stack, (uintptr_t)si->si_addr)) {
        np__out_str(&o, "np: fatal: coroutine stack overflow (coroutine ");
        np__out_dec(&o, g->id);
        np__out_str(&o, ")\n");
    } else {
        np__out_str(&o, "np: fatal signal ");
        np__out_str(&o, signame(sig));
        if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE) {
            np__out_str(&o, " at address ");
            np__out_hex(&o, (uintptr_t)si->si_addr);
        }
        if (g) {
            np__out_str(&o, " in coroutine ");
            np__out_dec(&o, g->id);
        } else {
            np__out_str(&o, " outside any coroutine");
        }
        np__out_str(&o, "\n");
    }
    np__out_str(&o, "\n");
    np__dump_to(&o, uc);
    np__trace_dump(&o);
    np__netlog_flush();
    die(sig, si);
}

NP_NOTSAN static void quit(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    np_out o = {.fd = 2, .netlog = np__netlog_on()};
    np__out_str(&o, "SIGQUIT: quit\n");
    np__dump_to(&o, uc);
    np__trace_dump(&o);
    np__netlog_flush();
    if (!np__sched.dumpcontinue)
        _exit(2);
    (void)sig;
}

void np__signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    atomic_store(&sig_.busy, 0);
    for (size_t i = 0; i < NFATAL; i++)
        sigaction(fatals[i], &sa, &sig_.old[i]);
    sa.sa_sigaction = quit;
    sigaction(SIGQUIT, &sa, &sig_.oldquit);
}

void np__signals_restore(void)
{
    for (size_t i = 0; i < NFATAL; i++)
        sigaction(fatals[i], &sig_.old[i], NULL);
    sigaction(SIGQUIT, &sig_.oldquit, NULL);
}
