/* Sockets: listen, dial, accept, datagrams, shutdown, over the fd layer. */
#include "addr.h"
#include "../fd/fd.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int sock(int family, int type)
{
    int s = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s >= 0 && family != AF_UNIX && type == SOCK_STREAM) {
        int one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return s;
}

static int registered(int s)
{
    if (np_fd_open(s) != 0) {
        int e = errno;
        close(s);
        errno = e;
        return -1;
    }
    return s;
}

int np_listen(const char *network, const char *address)
{
    np_net net;
    np_addrs as;
    if (np__net_parse(network, &net) != 0 || np__addr_resolve(&net, address, true, &as) != 0)
        return -1;
    int err = EADDRNOTAVAIL;
    for (int i = 0; i < as.n; i++) {
        int fam = as.a[i].ss_family;
        int s = sock(fam, net.socktype);
        if (s < 0) {
            err = errno;
            continue;
        }
        int one = 1, zero = 0;
        if (fam != AF_UNIX) {
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        }
        if (fam == AF_INET6 && net.family == AF_UNSPEC)
            setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (fam == AF_INET6 && net.family == AF_INET6)
            setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(s, (struct sockaddr *)&as.a[i], as.len[i]) != 0 ||
            (net.socktype == SOCK_STREAM && listen(s, 4096) != 0)) {
            err = errno;
            close(s);
            continue;
        }
        return registered(s);
    }
    errno = err;
    return -1;
}

int np_dial(const char *network, const char *address, int64_t timeout_ns)
{
    np_net net;
    np_addrs as;
    int64_t deadline = timeout_ns > 0 ? np_now() + timeout_ns : 0;
    if (np__net_parse(network, &net) != 0 || np__addr_resolve(&net, address, false, &as) != 0)
        return -1;
    if (np_id() == 0) { /* it may block; and np_close could not undo a registration */
        errno = EPERM;
        return -1;
    }
    int err = ECONNREFUSED;
    for (int i = 0; i < as.n; i++) {
        if (deadline && np_now() >= deadline) {
            err = ETIMEDOUT;
            break;
        }
        int s = sock(as.a[i].ss_family, net.socktype);
        if (s < 0 || registered(s) < 0) {
            err = errno;
            continue;
        }
        int r = connect(s, (struct sockaddr *)&as.a[i], as.len[i]);
        int e = r == 0 ? 0 : np__errno();
        if (e == EINPROGRESS || e == EAGAIN) {
            if (deadline)
                np_set_write_deadline(s, deadline);
            e = -np__fd_wait(s, PD_W);
            if (e == 0) {
                socklen_t l = sizeof e;
                if (getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l) != 0)
                    e = np__errno();
            }
            if (deadline)
                np_set_write_deadline(s, 0);
        }
        if (e == 0)
            return s;
        err = e;
        np_close(s);
    }
    np__seterrno(err);
    return -1;
}

struct acc { struct sockaddr *sa; socklen_t *len; };
static ssize_t op_accept(int fd, void *a)
{
    struct acc *x = a;
    return accept4(fd, x->sa, x->len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int np_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    struct acc x = {addr, addrlen};
    int64_t backoff = 5000000;
    for (;;) {
        ssize_t s = np__fd_io(fd, PD_R, op_accept, &x);
        if (s == -EMFILE || s == -ENFILE || s == -ENOBUFS || s == -ENOMEM) {
            /* Out of descriptors: wait for some to be closed instead of spinning. */
            np_sleep(backoff);
            if (backoff < 1000000000)
                backoff *= 2;
            continue;
        }
        if (s < 0)
            return (int)np__ret(s);
        int one = 1;
        if (addr == NULL || addr->sa_family != AF_UNIX)
            setsockopt((int)s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return registered((int)s);
    }
}

struct dg { void *buf; size_t len; int flags; struct sockaddr *sa; socklen_t *salen; socklen_t tolen; };
static ssize_t op_recvfrom(int fd, void *a)
{
    struct dg *x = a;
    return recvfrom(fd, x->buf, x->len, x->flags, x->sa, x->salen);
}
static ssize_t op_sendto(int fd, void *a)
{
    struct dg *x = a;
    return sendto(fd, x->buf, x->len, x->flags | MSG_NOSIGNAL, x->sa, x->tolen);
}

ssize_t np_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from, socklen_t *fromlen)
{
    struct dg x = {buf, len, flags, from, fromlen, 0};
    return np__ret(np__fd_io(fd, PD_R, op_recvfrom, &x));
}

ssize_t np_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t tolen)
{
    struct dg x = {(void *)buf, len, flags, (struct sockaddr *)to, NULL, tolen};
    return np__ret(np__fd_io(fd, PD_W, op_sendto, &x));
}

int np_shutdown(int fd, int how)
{
    return shutdown(fd, how);
}
