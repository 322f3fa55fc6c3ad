/* np_cond's fields: the public type is opaque storage (include/np.h) that the runtime
 * reads through this view (may_alias, as np__mutex). */
#ifndef NP_COND_H
#define NP_COND_H
#include "../sched/sched.h"

/* Go's notifyList: a waiter takes a ticket (wait++) while it still holds the caller's
 * mutex, then unlocks it and queues itself under lk; a signal gives the next ticket
 * (notify++) and wakes its holder if queued, else the holder finds its ticket already
 * notified when it comes to queue and does not park. So a signal that follows a
 * waiter's registration in the mutex's order is never lost. Tickets wrap (compared as
 * a signed difference). */
struct np__condw;
typedef struct __attribute__((may_alias)) np__cond {
    _Atomic uint32_t wait;    /* next ticket to hand out */
    _Atomic uint32_t notify;  /* next ticket to notify (written under lk) */
    _Atomic int32_t lk;       /* spin lock over notify's writes, head and tail */
    struct np__condw *head, *tail; /* parked waiters, in the order they queued (under lk) */
} np__cond;
_Static_assert(sizeof(np__cond) <= sizeof(np_cond) && _Alignof(np__cond) <= _Alignof(np_cond),
               "np_cond's storage holds np__cond");
static inline np__cond *np__cv(np_cond *c) { return (np__cond *)(void *)c; }

#endif
