/* The fd layer's internal entry points for the network layer. Results are counts or
 * -errno; np__ret turns them into the public -1/errno convention. */
#ifndef NP_FD_H
#define NP_FD_H
#include "../netpoll/netpoll.h"
#include <sys/types.h>

/* Run op(fd, arg) in turn with other readers (mode PD_R) or writers (PD_W), parking
 * on EAGAIN until the fd is ready in mode. */
ssize_t np__fd_io(int fd, int mode, ssize_t (*op)(int, void *), void *arg);
/* Park until fd is ready in mode (or its deadline passes, or it is closed), taking the
 * readers' or writers' turn. 0 or -errno (np_wait_readable/np_wait_writable). */
int np__fd_wait(int fd, int mode);
ssize_t np__ret(ssize_t r);
/* The poll descriptor of a registered fd, NULL if it has none or is not open (for
 * tests that look at the netpoller's state; no reference is taken). */
np_pd *np__fd_pd(int fd);

#endif
