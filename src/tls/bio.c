/* np's BIO: the connection's socket read with recv and written with send (MSG_NOSIGNAL),
 * non-blocking, as OpenSSL's socket BIO does, and one thing more: it records whether a
 * read came back short, so that np_tls_read can tell the fd layer that the socket is
 * drained and wait for the next edge instead of asking the kernel for an EAGAIN (one
 * system call less per request). kTLS needs OpenSSL's own socket BIO: with kTLS wanted,
 * conn.c uses that one instead. */
#include "tls.h"
#include <errno.h>
#include <sys/socket.h>

static BIO_METHOD *method;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int bread(BIO *b, char *buf, int len)
{
    np_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = recv(t->fd, buf, (size_t)len, 0);
    if (n > 0) {
        t->rshort |= n < len;
        return (int)n;
    }
    if (n == 0) {
        t->reof = true;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_read(b);
    return -1;
}

static int bwrite(BIO *b, const char *buf, int len)
{
    np_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = send(t->fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_write(b);
    return -1;
}

static long bctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    np_tls *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF: /* OpenSSL tells an end without close_notify by it */
        return t->reof;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = t->fd;
        return t->fd;
    default:
        return 0;
    }
}

static void make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "np socket");
    if (m && BIO_meth_set_read(m, bread) == 1 && BIO_meth_set_write(m, bwrite) == 1 &&
        BIO_meth_set_ctrl(m, bctrl) == 1)
        method = m;
    else
        BIO_meth_free(m);
}

BIO *np__tls_bio(np_tls *t)
{
    pthread_once(&once, make);
    BIO *b = method ? BIO_new(method) : NULL;
    if (b) {
        BIO_set_data(b, t);
        BIO_set_init(b, 1);
    }
    return b;
}
