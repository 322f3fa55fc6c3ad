/* Sleeping: sleep, usleep, nanosleep and relative clock_nanosleep park a coroutine
 * (np_sleep) instead of its thread. Outside a coroutine, and for an absolute
 * clock_nanosleep or a clock np cannot sleep on, libc's call runs. A coroutine's sleep
 * is not interrupted by signals: it never fails with EINTR, and rem (when given) is
 * set to zero. */
#undef _FORTIFY_SOURCE /* these define the functions glibc's fortify wrappers inline */
#include "hook.h"
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The real calls as system calls, for a statically linked program (see NP_REAL). */
static int sys_nanosleep(const struct timespec *req, struct timespec *rem)
{
    return (int)syscall(SYS_clock_nanosleep, CLOCK_REALTIME, 0, req, rem);
}

static int sys_clock_nanosleep(clockid_t clk, int flags, const struct timespec *req,
                               struct timespec *rem)
{
    int e = errno;
    int r = syscall(SYS_clock_nanosleep, clk, flags, req, rem) == 0 ? 0 : errno;
    errno = e; /* clock_nanosleep returns its error and leaves errno alone */
    return r;
}

static int sys_usleep(useconds_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    return sys_nanosleep(&ts, NULL);
}

static unsigned int sys_sleep(unsigned int s)
{
    struct timespec ts = {(time_t)s, 0}, rem = {0, 0};
    if (sys_nanosleep(&ts, &rem) == 0)
        return 0;
    return (unsigned int)rem.tv_sec + (rem.tv_nsec > 0); /* interrupted: what is left */
}

/* Valid relative timespec to nanoseconds; -1 when malformed (EINVAL). */
static int64_t ts_ns(const struct timespec *ts)
{
    if (!ts || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L || ts->tv_sec < 0)
        return -1;
    if (ts->tv_sec > (INT64_MAX - 999999999) / 1000000000)
        return INT64_MAX;
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

NP_HOOK int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!np__hook_in_coroutine())
        return NP_REAL(int (*)(const struct timespec *, struct timespec *), nanosleep,
                       sys_nanosleep)(req, rem);
    int64_t ns = ts_ns(req);
    if (ns < 0) {
        errno = req ? EINVAL : EFAULT;
        return -1;
    }
    np_sleep(ns);
    if (rem)
        rem->tv_sec = rem->tv_nsec = 0;
    return 0;
}

NP_HOOK int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
    /* np sleeps on the monotonic clock: a relative sleep measures the same on
     * CLOCK_REALTIME, CLOCK_MONOTONIC and CLOCK_BOOTTIME (suspend aside). */
    bool relative_ok = !(flags & TIMER_ABSTIME) &&
                       (clk == CLOCK_MONOTONIC || clk == CLOCK_REALTIME || clk == CLOCK_BOOTTIME);
    if (!relative_ok || !np__hook_in_coroutine())
        return NP_REAL(int (*)(clockid_t, int, const struct timespec *, struct timespec *),
                       clock_nanosleep, sys_clock_nanosleep)(clk, flags, req, rem);
    int64_t ns = ts_ns(req);
    if (ns < 0)
        return req ? EINVAL : EFAULT; /* clock_nanosleep returns the error, errno untouched */
    np_sleep(ns);
    if (rem)
        rem->tv_sec = rem->tv_nsec = 0;
    return 0;
}

NP_HOOK int usleep(useconds_t us)
{
    if (!np__hook_in_coroutine())
        return NP_REAL(int (*)(useconds_t), usleep, sys_usleep)(us);
    np_sleep((int64_t)us * 1000);
    return 0;
}

NP_HOOK unsigned int sleep(unsigned int s)
{
    if (!np__hook_in_coroutine())
        return NP_REAL(unsigned int (*)(unsigned int), sleep, sys_sleep)(s);
    np_sleep((int64_t)s * 1000000000);
    return 0;
}
