/* libnp-hook: libc calls interposed so that blocking libraries run as coroutines. A
 * program that links libnp-hook (pkg-config np-hook) gets these definitions instead of
 * libc's: inside a coroutine a call that would block parks the coroutine; on any other
 * thread the real call runs, unchanged. The real functions are found once, with
 * dlsym(RTLD_NEXT, name): the next definition after this library (libc's, or a
 * sanitizer's interceptor that calls libc's). */
#ifndef NP_HOOK_H
#define NP_HOOK_H
#include <np.h>
#include <stdatomic.h>
#include <stdbool.h>

/* The real function name, resolved on first use (racing threads resolve the same
 * pointer: a benign duplicate lookup). In a statically linked program there is no next
 * definition to find (dlsym(RTLD_NEXT) needs the dynamic linker; libc.a's definitions
 * gave way to ours): fallback then, an equivalent made of system calls. */
void *np__hook_next(const char *name, void *_Atomic *slot, void *fallback);
#define NP_REAL(type, name, fallback)                                                     \
    ({                                                                                    \
        static void *_Atomic slot_;                                                       \
        void *p_ = atomic_load_explicit(&slot_, memory_order_acquire);                    \
        (type)(p_ ? p_ : np__hook_next(#name, &slot_, (void *)(fallback)));               \
    })

/* A hooked libc function: exported from libnp-hook.so (built with hidden visibility). */
#define NP_HOOK __attribute__((visibility("default")))

/* Whether the caller is a coroutine (np_id() > 0): the hooked call may park. */
static inline bool np__hook_in_coroutine(void) { return np_id() > 0; }

#endif
