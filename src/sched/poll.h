/* What the scheduler needs from the network poller (src/netpoll/netpoll.c). */
#ifndef NP_POLL_H
#define NP_POLL_H
#include "sched.h"

/* True when coroutines wait for I/O (a non-blocking poll is worth it). */
bool np__netpoll_waiters(void);
/* Wait up to delay ns (-1: until broken) for I/O; returns the coroutines made
 * runnable, linked by schedlink. */
np_g *np__netpoll(int64_t delay);
/* Wake an M blocked in np__netpoll. */
void np__netpoll_break(void);
void np__inject(np_g *list);

#endif
