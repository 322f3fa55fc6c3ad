/* The _FORTIFY_SOURCE entry points: a library built with -D_FORTIFY_SOURCE=2 -O2 (as
 * Debian builds its packages) calls __read_chk, __recv_chk... where the size of the
 * buffer is known; glibc's versions check it, then call the system call themselves,
 * past the hooks. These check the same way (a buffer overflow ends the program as
 * glibc's do), then go through the hook. */
#undef _FORTIFY_SOURCE /* these define the functions glibc's fortify wrappers inline */
#include "hook.h"
#include <sys/socket.h>
#include <unistd.h>

extern void __chk_fail(void) __attribute__((noreturn));

NP_HOOK ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return read(fd, buf, n);
}

NP_HOOK ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (n > buflen)
        __chk_fail();
    return recv(fd, buf, n, flags);
}

NP_HOOK ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *addr,
                               socklen_t *alen)
{
    if (n > buflen)
        __chk_fail();
    return recvfrom(fd, buf, n, flags, addr, alen);
}

NP_HOOK int __poll_chk(struct pollfd *fds, nfds_t n, int ms, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return poll(fds, n, ms);
}

NP_HOOK int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        __chk_fail();
    return ppoll(fds, n, t, mask);
}
