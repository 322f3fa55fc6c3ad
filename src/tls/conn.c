/* TLS connections: OpenSSL driven non-blocking inside the fd layer's operations (see
 * tls.h), parking on the socket in whichever direction OpenSSL asks for. */
#include "tls.h"
#include "../fd/fd.h"
#include "../os/lock.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

_Atomic int64_t np__tls_open, np__tls_hs, np__tls_resumed, np__tls_failed, np__tls_ktls_tx,
    np__tls_ktls_rx;

enum { OP_HS, OP_READ, OP_WRITE, OP_SHUT };

/* One OpenSSL call, run by np__fd_io in mode (the readers' or the writers' turn). */
struct call {
    np_tls *t;
    int kind;
    int mode;         /* PD_R or PD_W: whose turn, and what EAGAIN waits for */
    int want;         /* set when OpenSSL wants the other direction */
    bool drained;     /* a read that emptied the socket and left OpenSSL nothing */
    void *buf;
    size_t len;
};

/* The message and errno of a failed call (under lk, on the calling thread: the error
 * queue is this thread's and holds this call's errors only). */
static int failure(np_tls *t, int sslerr, int sys)
{
    unsigned long e = ERR_peek_last_error();
    t->fatal = true;
    if (sslerr == SSL_ERROR_SYSCALL && !e) {
        int en = sys ? sys : ECONNRESET;
        snprintf(t->err, sizeof t->err, "%s", sys ? strerror(sys) : "connection closed by the peer");
        return en;
    }
    long v = SSL_get_verify_result(t->ssl);
    if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK) {
        snprintf(t->err, sizeof t->err, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        return v == X509_V_ERR_CERT_HAS_EXPIRED || v == X509_V_ERR_CERT_NOT_YET_VALID ? EKEYEXPIRED
                                                                                      : EKEYREJECTED;
    }
    if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        snprintf(t->err, sizeof t->err, "the peer closed the connection without close_notify");
        return ECONNRESET;
    }
    char m[200] = "unknown error";
    if (e)
        ERR_error_string_n(e, m, sizeof m);
    snprintf(t->err, sizeof t->err, "%s", m);
    return EPROTO;
}

static ssize_t op(int fd, void *a)
{
    (void)fd;
    struct call *c = a;
    np_tls *t = c->t;
    np_spin_lock(&t->lk);
    ERR_clear_error();
    errno = 0;
    t->rshort = false;
    c->drained = false;
    size_t n = 0;
    int r;
    switch (c->kind) {
    case OP_HS:
        r = SSL_do_handshake(t->ssl);
        break;
    case OP_READ:
        r = SSL_read_ex(t->ssl, c->buf, c->len, &n);
        /* the socket is empty (a raw read of this call was short) and OpenSSL holds
         * nothing: the next read may wait for an edge without a system call */
        c->drained = r > 0 && t->rshort && !SSL_has_pending(t->ssl);
        break;
    case OP_WRITE:
        r = SSL_write_ex(t->ssl, c->buf, c->len, &n);
        break;
    default:
        r = SSL_shutdown(t->ssl);
        if (r == 0) /* ours is sent; the peer's is not awaited */
            r = 1;
        break;
    }
    int sys = errno;
    ssize_t ret = (ssize_t)n;
    int en = 0;
    if (r <= 0) {
        ret = -1;
        int se = SSL_get_error(t->ssl, r);
        switch (se) {
        case SSL_ERROR_WANT_READ:
            en = c->mode == PD_R ? EAGAIN : EINPROGRESS;
            c->want = PD_R;
            break;
        case SSL_ERROR_WANT_WRITE:
            en = c->mode == PD_W ? EAGAIN : EINPROGRESS;
            c->want = PD_W;
            break;
        case SSL_ERROR_ZERO_RETURN: /* the peer's close_notify */
            if (c->kind == OP_READ) {
                ret = 0;
                break;
            }
            snprintf(t->err, sizeof t->err, "the peer sent close_notify");
            en = c->kind == OP_WRITE ? EPIPE : ECONNRESET;
            break;
        default:
            en = failure(t, se, sys);
            if (en == EINTR || en == EAGAIN) /* io_again would retry or wait */
                en = ECONNRESET;
            break;
        }
    }
    if (r <= 0)
        ERR_clear_error(); /* nothing of this call left for the thread's next user */
    np_spin_unlock(&t->lk);
    errno = en;
    return ret;
}

/* Run c until OpenSSL is done with it: np__fd_io parks on EAGAIN in c's own direction;
 * a want of the other direction (-EINPROGRESS) waits for that one, then tries again.
 * The count or -errno. */
static ssize_t drive(np_tls *t, struct call *c)
{
    for (;;) {
        c->want = 0;
        ssize_t r = c->kind == OP_READ && t->own_bio ? np__fd_read_io(t->fd, op, c, &c->drained)
                                                     : np__fd_io(t->fd, c->mode, op, c);
        if (r != -EINPROGRESS)
            return r;
        int err = np__fd_wait(t->fd, c->want);
        if (err)
            return err;
    }
}

static inline bool enter(np_tls *t)
{
    atomic_fetch_add(&t->calls, 1);
    if (atomic_load(&t->closed)) {
        atomic_fetch_sub(&t->calls, 1);
        errno = EBADF;
        return false;
    }
    return true;
}

static inline void leave(np_tls *t) { atomic_fetch_sub(&t->calls, 1); }

static np_tls *conn_new(int fd, np_tls_config *cfg)
{
    if (!cfg || fd < 0) {
        errno = EINVAL;
        return NULL;
    }
    if (!np__hook_registered(fd) && np_fd_open(fd) < 0)
        return NULL;
    np_tls *t = calloc(1, sizeof *t);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    ERR_clear_error();
    t->fd = fd;
    /* np's BIO unless kTLS is wanted (which needs OpenSSL's socket BIO) */
    t->own_bio = !(SSL_CTX_get_options(cfg->ctx) & SSL_OP_ENABLE_KTLS);
    BIO *b = NULL;
    if (!(t->ssl = SSL_new(cfg->ctx)) ||
        (t->own_bio ? !(b = np__tls_bio(t)) : SSL_set_fd(t->ssl, fd) != 1)) {
        ERR_clear_error();
        SSL_free(t->ssl);
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    if (b)
        SSL_set_bio(t->ssl, b, b);
    SSL_set_app_data(t->ssl, t);
    t->cfg = cfg;
    np__tls_config_ref(cfg);
    atomic_fetch_add(&np__tls_open, 1);
    return t;
}

static void conn_free(np_tls *t)
{
    SSL_free(t->ssl);
    ERR_clear_error();
    np_tls_config_free(t->cfg);
    atomic_fetch_sub(&np__tls_open, 1);
    free(t);
}

static bool is_ip(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

np_tls *np_tls_client(int fd, np_tls_config *cfg, const char *servername)
{
    if (cfg && (cfg->server || (cfg->verify && (!servername || !*servername)))) {
        errno = EINVAL; /* a client config; verification needs the name to verify */
        return NULL;
    }
    np_tls *t = conn_new(fd, cfg);
    if (!t)
        return NULL;
    SSL_set_connect_state(t->ssl);
    bool ok = true;
    if (servername && *servername) {
        bool ip = is_ip(servername);
        if (!ip) /* SNI carries host names only (RFC 6066) */
            ok = SSL_set_tlsext_host_name(t->ssl, servername) == 1;
        if (ok && cfg->verify)
            ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), servername) == 1
                    : SSL_set1_host(t->ssl, servername) == 1;
        if (ok && SSL_CTX_get_session_cache_mode(cfg->ctx) != SSL_SESS_CACHE_OFF) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            int port = 0;
            if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
                port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                      : ((struct sockaddr_in *)&ss)->sin_port);
            snprintf(t->skey, sizeof t->skey, "%s/%d", servername, port);
            SSL_SESSION *s = np__tls_session_get(cfg, t->skey);
            if (s) {
                SSL_set_session(t->ssl, s);
                SSL_SESSION_free(s);
            }
        }
    }
    if (!ok) {
        errno = EINVAL; /* a name OpenSSL refuses (too long, an embedded NUL) */
        t->fd = -1;
        conn_free(t);
        return NULL;
    }
    return t;
}

np_tls *np_tls_server(int fd, np_tls_config *cfg)
{
    if (cfg && !cfg->server) {
        errno = EINVAL;
        return NULL;
    }
    np_tls *t = conn_new(fd, cfg);
    if (t)
        SSL_set_accept_state(t->ssl);
    return t;
}

static void handshake_done(np_tls *t)
{
    const unsigned char *p;
    unsigned n;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n && n < sizeof t->alpn) {
        memcpy(t->alpn, p, n);
        t->alpn[n] = 0;
    }
    t->ktls = (BIO_get_ktls_send(SSL_get_wbio(t->ssl)) ? 1 : 0) |
              (BIO_get_ktls_recv(SSL_get_rbio(t->ssl)) ? 2 : 0);
    atomic_fetch_add(&np__tls_hs, 1);
    if (SSL_session_reused(t->ssl))
        atomic_fetch_add(&np__tls_resumed, 1);
    if (t->ktls & 1)
        atomic_fetch_add(&np__tls_ktls_tx, 1);
    if (t->ktls & 2)
        atomic_fetch_add(&np__tls_ktls_rx, 1);
}

/* 0 or -errno; inside enter/leave. */
static int handshake(np_tls *t)
{
    int st = atomic_load_explicit(&t->hs_state, memory_order_acquire);
    if (st != 0)
        return st > 0 ? 0 : st;
    np_mutex_lock(&t->hs);
    if ((st = atomic_load(&t->hs_state)) == 0) {
        struct call c = {.t = t, .kind = OP_HS, .mode = PD_R};
        ssize_t r = drive(t, &c);
        if (r >= 0) {
            handshake_done(t);
            st = 1;
        } else {
            st = (int)r;
            atomic_fetch_add(&np__tls_failed, 1);
            if (r == -EBADF || r == -ETIMEDOUT)
                snprintf(t->err, sizeof t->err, "handshake: %s", strerror((int)-r));
        }
        atomic_store_explicit(&t->hs_state, st, memory_order_release);
    }
    np_mutex_unlock(&t->hs);
    return st > 0 ? 0 : st;
}

static ssize_t fail_with(np_tls *t, ssize_t r)
{
    leave(t);
    errno = (int)-r;
    return -1;
}

/* Every public call's start: enter, then the handshake if it has not run. 0, or -1/errno
 * (having left). */
static int start(np_tls *t)
{
    if (!enter(t))
        return -1;
    int h = handshake(t);
    return h < 0 ? (int)fail_with(t, h) : 0;
}

int np_tls_handshake(np_tls *t)
{
    if (start(t) < 0)
        return -1;
    leave(t);
    return 0;
}

ssize_t np_tls_read(np_tls *t, void *buf, size_t len)
{
    if (start(t) < 0)
        return -1;
    if (len == 0) {
        leave(t);
        return 0;
    }
    struct call c = {.t = t, .kind = OP_READ, .mode = PD_R, .buf = buf, .len = len};
    ssize_t r = drive(t, &c);
    if (r < 0)
        return fail_with(t, r);
    leave(t);
    return r;
}

/* All of buf, or -errno. */
static ssize_t write_all(np_tls *t, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        struct call c = {.t = t, .kind = OP_WRITE, .mode = PD_W, .buf = (char *)buf + done,
                         .len = len - done};
        ssize_t r = drive(t, &c);
        if (r < 0)
            return r;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

ssize_t np_tls_write(np_tls *t, const void *buf, size_t len)
{
    if (start(t) < 0)
        return -1;
    ssize_t r = write_all(t, buf, len);
    if (r < 0)
        return fail_with(t, r);
    leave(t);
    return r;
}

#define GATHER 4096 /* buffers gathered on the stack into one record */
#define GATHER_HEAP (64 << 10)

ssize_t np_tls_writev(np_tls *t, const struct iovec *iov, int iovcnt)
{
    if (iovcnt == 1)
        return np_tls_write(t, iov[0].iov_base, iov[0].iov_len);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (start(t) < 0)
        return -1;
    char stack[GATHER];
    char *g = total <= GATHER ? stack : total <= GATHER_HEAP ? malloc(total) : NULL;
    ssize_t r = 0;
    if (g) {
        size_t o = 0;
        for (int i = 0; i < iovcnt; i++) {
            memcpy(g + o, iov[i].iov_base, iov[i].iov_len);
            o += iov[i].iov_len;
        }
        r = write_all(t, g, total);
        if (g != stack)
            free(g);
    } else {
        for (int i = 0; i < iovcnt && r >= 0; i++)
            r = write_all(t, iov[i].iov_base, iov[i].iov_len);
    }
    if (r < 0)
        return fail_with(t, r);
    leave(t);
    return (ssize_t)total;
}

/* SSL_shutdown only after a complete handshake and no fatal error (OpenSSL's rule). */
static bool may_shut(np_tls *t)
{
    return atomic_load(&t->hs_state) == 1 && !t->fatal && !t->shut;
}

int np_tls_shutdown(np_tls *t)
{
    if (start(t) < 0)
        return -1;
    np_spin_lock(&t->lk);
    bool go = may_shut(t);
    np_spin_unlock(&t->lk);
    if (go) {
        struct call c = {.t = t, .kind = OP_SHUT, .mode = PD_W};
        ssize_t r = drive(t, &c);
        np_spin_lock(&t->lk);
        t->shut = true;
        np_spin_unlock(&t->lk);
        if (r < 0)
            return (int)fail_with(t, r);
    }
    leave(t);
    return 0;
}

int np_tls_close(np_tls *t)
{
    if (!t) {
        errno = EINVAL;
        return -1;
    }
    if (atomic_exchange(&t->closed, 1))
        return 0;
    /* close_notify if the socket takes it now (the fd is still open: no reuse race). */
    np_spin_lock(&t->lk);
    if (may_shut(t)) {
        ERR_clear_error();
        SSL_shutdown(t->ssl);
        ERR_clear_error();
        t->shut = true;
    }
    np_spin_unlock(&t->lk);
    np_close(t->fd); /* wakes the parked calls (EBADF) and waits for those inside */
    while (atomic_load(&t->calls) > 0)
        if (np_yield() < 0)
            sched_yield();
    conn_free(t);
    return 0;
}

int np_tls_fd(const np_tls *t) { return t ? t->fd : -1; }
const char *np_tls_error(const np_tls *t) { return t ? t->err : ""; }
const char *np_tls_alpn(const np_tls *t) { return t && t->alpn[0] ? t->alpn : NULL; }
const char *np_tls_version(const np_tls *t) { return SSL_get_version(t->ssl); }
const char *np_tls_cipher(const np_tls *t) { return SSL_get_cipher_name(t->ssl); }
const char *np_tls_servername(const np_tls *t)
{
    return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}
int np_tls_resumed(const np_tls *t) { return SSL_session_reused(t->ssl) == 1; }
int np_tls_ktls(const np_tls *t) { return t->ktls; }

int np_tls_stats_get(np_tls_stats *s)
{
    s->open = atomic_load(&np__tls_open);
    s->handshakes = atomic_load(&np__tls_hs);
    s->resumed = atomic_load(&np__tls_resumed);
    s->failed = atomic_load(&np__tls_failed);
    s->ktls_tx = atomic_load(&np__tls_ktls_tx);
    s->ktls_rx = atomic_load(&np__tls_ktls_rx);
    s->ktls_available = np__tls_ktls_available();
    return 0;
}
