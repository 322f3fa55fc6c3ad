/* The fd layer's internal entry points for the network layer. Results are counts or
 * -errno; np__ret turns them into the public -1/errno convention. */
#ifndef NP_FD_H
#define NP_FD_H
#include "../netpoll/netpoll.h"
#include <sys/types.h>

/* Run op(fd, arg) in turn with other readers (mode PD_R) or writers (PD_W), parking
 * on EAGAIN until the fd is ready in mode. */
ssize_t np__fd_io(int fd, int mode, ssize_t (*op)(int, void *), void *arg);
/* np__fd_io for a reader whose op knows better than its result whether it drained the
 * socket (TLS: the raw read under a decrypting one): op sets *drained (false before each
 * call) when it did, and the next read waits for an edge instead of calling op for an
 * EAGAIN, as after a short np_read. *drained must only be set for a read made after the
 * current call began. */
ssize_t np__fd_read_io(int fd, ssize_t (*op)(int, void *), void *arg, bool *drained);
/* Park until fd is ready in mode (or its deadline passes, or it is closed), taking the
 * readers' or writers' turn. 0 or -errno (np_wait_readable/np_wait_writable). */
int np__fd_wait(int fd, int mode);
ssize_t np__ret(ssize_t r);
/* The poll descriptor of a registered fd, NULL if it has none or is not open (for
 * tests that look at the netpoller's state; no reference is taken). */
np_pd *np__fd_pd(int fd);

/* The private interface of libnp-hook (src/hook), exported from libnp.so beside np.h's
 * functions and from nothing else; a libnp-hook of the same version is its only user.
 * Results are counts or -errno; timeout_ns > 0 bounds the call (-ETIMEDOUT), <= 0 does
 * not. Coroutines only (-EPERM elsewhere), on a descriptor registered with np_fd_open. */
#define NP_HOOK_ABI __attribute__((visibility("default")))
/* One I/O call in the readers' (PD_R) or writers' (PD_W) turn: op(fd, arg) until it
 * does not fail with EAGAIN, parking in between. want > 0 (a read of want bytes on a
 * stream): a shorter read marks the socket drained, as np_read does. */
NP_HOOK_ABI ssize_t np__hook_io(int fd, int mode, int64_t timeout_ns, ssize_t (*op)(int, void *),
                                void *arg, size_t want);
/* Park until fd is ready in mode (np_wait_readable/np_wait_writable with a timeout). */
NP_HOOK_ABI int np__hook_wait(int fd, int mode, int64_t timeout_ns);
/* Whether fd is registered with np. */
NP_HOOK_ABI bool np__hook_registered(int fd);
/* Unregister fd as np_close does (blocked calls wake with EBADF, np waits for them to
 * leave), but leave the descriptor open. Any thread: one that is not a coroutine
 * yields until the calls in flight have left. 0 or -EBADF. */
NP_HOOK_ABI int np__hook_forget(int fd);

#endif
