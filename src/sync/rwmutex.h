/* np_rwmutex's fields: the public type is opaque storage (include/np.h) that the runtime
 * reads through this view (may_alias, as np__mutex). */
#ifndef NP_RWMUTEX_H
#define NP_RWMUTEX_H
#include "../sched/sched.h"

/* state: bit 0 (RW_W) a writer holds it; bit 1 (RW_WQ) writers are queued; bit 2
 * (RW_RQ) readers are queued; the rest (units of RW_R) counts the readers holding it.
 * The two queued bits change only under lk, together with their queue: a bit is set
 * exactly while its queue is not empty. Readers neither take it nor enter while
 * RW_WQ is set (a waiting writer holds back new readers: writer preference). Whoever
 * releases it to waiters hands ownership over (sets it for them) while they are still
 * parked, as np_mutex does, and after its last store to the lock never touches it. */
enum { RW_W = 1, RW_WQ = 2, RW_RQ = 4, RW_R = 8 };
struct np__rwwaiter;
typedef struct __attribute__((may_alias)) np__rwmutex {
    _Atomic uint32_t state;
    _Atomic int32_t lk;                  /* spin lock over the queues */
    struct np__rwwaiter *rhead, *rtail;  /* parked readers, FIFO (under lk) */
    struct np__rwwaiter *whead, *wtail;  /* parked writers, FIFO (under lk) */
} np__rwmutex;
_Static_assert(sizeof(np__rwmutex) <= sizeof(np_rwmutex) &&
                   _Alignof(np__rwmutex) <= _Alignof(np_rwmutex),
               "np_rwmutex's storage holds np__rwmutex");
static inline np__rwmutex *np__rw(np_rwmutex *rw) { return (np__rwmutex *)(void *)rw; }

#endif
