/* libnp-hook: libc calls interposed so that blocking libraries run as coroutines. A
 * program that links libnp-hook (pkg-config np-hook) gets these definitions instead of
 * libc's: inside a coroutine a call that would block parks the coroutine; on any other
 * thread the real call runs, unchanged. The real functions are found once, with
 * dlsym(RTLD_NEXT, name): the next definition after this library (libc's, or a
 * sanitizer's interceptor that calls libc's). */
#ifndef NP_HOOK_H
#define NP_HOOK_H
#include "../fd/fd.h"
#include <np.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <poll.h>
#include <stdint.h>

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

/* Set in a child that a coroutine forked: it has no runtime (the forking thread's state
 * was copied, none of the other threads), so every hook runs the real call there. */
extern _Atomic bool np__hook_forked;

/* Whether the caller is a coroutine (np_id() > 0): the hooked call may park. */
static inline bool np__hook_in_coroutine(void)
{
    return np_id() > 0 && !atomic_load_explicit(&np__hook_forked, memory_order_relaxed);
}

/* errno, after a call that may have parked: the coroutine may be on another thread
 * now, and libc's __errno_location() is declared const, so a compiler may reuse the
 * address it computed before the park. These compute it afresh (out of line). */
int np__hook_errno(void);
void np__hook_seterrno(int e);

/* ---- the hook's view of descriptors (fd.c) ------------------------------------------- */

/* What the hook knows of an fd (h_state): */
enum {
    H_KNOWN = 1,   /* its kind and the program's O_NONBLOCK have been read */
    H_POLL = 2,    /* a kind the netpoller can watch: socket, pipe/FIFO, eventfd... */
    H_SOCK = 4,    /* a socket */
    H_UNB = 8,     /* the program made it non-blocking: calls never park */
    H_FORCED = 16, /* the kernel's O_NONBLOCK is the hook's, not the program's */
    H_OWNED = 32,  /* registered with np by the hook (np_fd_open); unregistered at close */
    H_CLOSING = 64, /* close(2) under way: calls fail with EBADF (until the number is new) */
};
/* The state of fd, read (H_KNOWN) if it was not; 0 for a bad fd. */
uint32_t np__hook_state(int fd);
/* Make fd ready for a cooperative wait in a coroutine: registered with np (by the hook
 * if it was not; fds the program registered itself stay its own). false when the call
 * should go to libc unchanged (not pollable, non-blocking by the program's wish, not
 * registrable). */
bool np__hook_adopt(int fd, bool io);
/* SO_RCVTIMEO (PD_R) or SO_SNDTIMEO (PD_W) in ns; 0 for none. */
int64_t np__hook_timeout(int fd, int mode);
/* The real poll(2), for waits outside a coroutine. */
int np__hook_real_poll(struct pollfd *fds, unsigned long n, int timeout_ms);

#endif
