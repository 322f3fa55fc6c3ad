/* Coroutine stacks: lazily committed, guarded below, pooled. */
#ifndef NP_STACK_H
#define NP_STACK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct np_stack {
    char *lo;      /* lowest address of the mapping, guard included */
    size_t size;   /* whole size, guard included */
    uint8_t kind;  /* NP_STK_* */
    bool canary;   /* no hardware guard: check np_stack_canary_ok at switches */
} np_stack;

enum { NP_STK_NONE, NP_STK_POOLED, NP_STK_OWN };
enum { NP_GUARD_MADV, NP_GUARD_MPROTECT, NP_GUARD_CANARY };

/* A stack cache (one per P); stacks of the default size only. */
typedef struct np_stack_cache { void *head; int n; } np_stack_cache;

int np_stack_init(size_t default_size);  /* once per runtime */
void np_stack_fini(void);                /* unmaps everything */
size_t np_stack_guard(void);             /* bytes of guard at the bottom of each stack */
/* size 0 = default. Returns 0 or -1 (ENOMEM). */
int np_stack_alloc(np_stack_cache *c, size_t size, np_stack *s);
void np_stack_free(np_stack_cache *c, np_stack *s);
/* Usable range for the context. */
static inline char *np_stack_base(const np_stack *s) { return s->lo + np_stack_guard(); }
static inline size_t np_stack_usable(const np_stack *s) { return s->size - np_stack_guard(); }
/* Is addr inside the guard of s? */
static inline bool np_stack_in_guard(const np_stack *s, uintptr_t a)
{
    return s->kind != NP_STK_NONE && a >= (uintptr_t)s->lo &&
           a < (uintptr_t)s->lo + np_stack_guard();
}
/* Give back to the OS the pages of s wholly below sp (a parked coroutine's saved stack
 * pointer: nothing below it is live). The owner must not run meanwhile. Returns the
 * number of bytes released. */
size_t np_stack_trim(const np_stack *s, const void *sp);
/* For stacks without a hardware guard: false when the canary was overwritten. */
bool np_stack_canary_ok(const np_stack *s);

#endif
