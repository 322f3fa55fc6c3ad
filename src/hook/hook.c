/* libnp-hook's core: finding the real functions. */
#undef _FORTIFY_SOURCE /* these define the functions glibc's fortify wrappers inline */
#include "hook.h"
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Atomic bool np__hook_forked;

__attribute__((noinline)) int np__hook_errno(void) { return errno; }
__attribute__((noinline)) void np__hook_seterrno(int e) { errno = e; }

/* A child forked by a coroutine has no runtime, but its thread still looks like that
 * coroutine (np_id() > 0, copied): from then on every hook runs the real call there. A
 * child forked elsewhere may start a runtime of its own. */
static void forked(void)
{
    if (np_id() > 0)
        atomic_store(&np__hook_forked, true);
}

__attribute__((constructor)) static void hook_init(void) { pthread_atfork(NULL, NULL, forked); }

void *np__hook_next(const char *name, void *_Atomic *slot, void *fallback)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p)
        p = fallback;
    if (!p) {
        /* No libc function of that name after us: nothing sensible to call. */
        static const char msg[] = "np-hook: no next definition of ";
        ssize_t r = write(2, msg, sizeof msg - 1);
        r = write(2, name, strlen(name));
        r = write(2, "\n", 1);
        (void)r;
        abort();
    }
    atomic_store_explicit(slot, p, memory_order_release);
    return p;
}
