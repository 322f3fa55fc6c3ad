/* np_once's fields: the public type is opaque storage (include/np.h) that the runtime
 * reads through this view (may_alias, as np__mutex). */
#ifndef NP_ONCE_H
#define NP_ONCE_H
#include "../sched/sched.h"

/* state: ONCE_IDLE (0) before the first call; ONCE_DONE once fn has returned; while fn
 * runs, ONCE_RUN or'ed with the top of a stack of parked callers (pushed by CAS from
 * their park's unlock function, after they are off their stacks). The runner ends with
 * one exchange to ONCE_DONE that takes the whole stack, and never touches the once
 * again: a caller that sees ONCE_DONE may free it at once. */
enum { ONCE_IDLE = 0, ONCE_DONE = 1, ONCE_RUN = 2 };
struct np__oncew;
typedef struct __attribute__((may_alias)) np__once {
    _Atomic uintptr_t state;
    _Atomic int64_t owner; /* id of the coroutine running fn (set while ONCE_RUN) */
} np__once;
_Static_assert(sizeof(np__once) <= sizeof(np_once) && _Alignof(np__once) <= _Alignof(np_once),
               "np_once's storage holds np__once");
static inline np__once *np__on(np_once *o) { return (np__once *)(void *)o; }

#endif
