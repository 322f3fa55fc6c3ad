/* Spin lock slow path and futex notes (Linux). */
#include "lock.h"
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void np_spin_lock_slow(_Atomic int32_t *l)
{
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(l, memory_order_relaxed) == 0) {
            int32_t z = 0;
            if (atomic_compare_exchange_weak_explicit(l, &z, 1, memory_order_acquire,
                                                      memory_order_relaxed))
                return;
        }
        if (i < 64)
            np_cpu_relax();
        else
            sched_yield();
    }
}

static long futex(_Atomic uint32_t *a, int op, uint32_t v, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)a, op | FUTEX_PRIVATE_FLAG, v, ts, NULL, 0);
}

void np_note_clear(np_note *n) { atomic_store_explicit(&n->key, 0, memory_order_relaxed); }

void np_note_wakeup(np_note *n)
{
    if (atomic_exchange_explicit(&n->key, 1, memory_order_release) == 0)
        futex(&n->key, FUTEX_WAKE, 1, NULL);
}

void np_note_sleep(np_note *n)
{
    while (atomic_load_explicit(&n->key, memory_order_acquire) == 0)
        futex(&n->key, FUTEX_WAIT, 0, NULL);
}

bool np_note_tsleep(np_note *n, int64_t ns)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t start = (int64_t)t0.tv_sec * 1000000000 + t0.tv_nsec, left = ns;
    while (atomic_load_explicit(&n->key, memory_order_acquire) == 0) {
        if (left <= 0)
            return false;
        struct timespec ts = {left / 1000000000, left % 1000000000};
        futex(&n->key, FUTEX_WAIT, 0, &ts);
        clock_gettime(CLOCK_MONOTONIC, &now);
        left = ns - ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec - start);
    }
    return true;
}
