/* Short-held spin lock (test-and-test-and-set, yields the CPU after a while) and a
 * futex "note" for one sleeping thread (Go's note: sleep, wakeup, timed sleep). */
#ifndef NP_LOCK_H
#define NP_LOCK_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

void np_spin_lock_slow(_Atomic int32_t *l);

static inline void np_spin_lock(_Atomic int32_t *l)
{
    int32_t z = 0;
    if (__builtin_expect(atomic_compare_exchange_weak_explicit(l, &z, 1, memory_order_acquire,
                                                               memory_order_relaxed), 1))
        return;
    np_spin_lock_slow(l);
}

/* Take the lock if it is free; false if it is held. */
static inline bool np_spin_trylock(_Atomic int32_t *l)
{
    int32_t z = 0;
    return atomic_load_explicit(l, memory_order_relaxed) == 0 &&
           atomic_compare_exchange_strong_explicit(l, &z, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

static inline void np_spin_unlock(_Atomic int32_t *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

static inline void np_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* A note: one sleeper, any number of wakers. Reset before reuse. */
typedef struct np_note { _Atomic uint32_t key; } np_note;
void np_note_clear(np_note *n);
void np_note_wakeup(np_note *n);
void np_note_sleep(np_note *n);
/* Sleep until woken or ns (>= 0) nanoseconds pass; returns true if woken. */
bool np_note_tsleep(np_note *n, int64_t ns);

#endif
