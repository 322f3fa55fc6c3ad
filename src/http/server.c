/* The HTTP/1.1 server: routes, the accept loop, one coroutine per connection, the
 * request and its body reader, graceful shutdown. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

enum { RBUF = 8192 };

/* ---- the server and its routes ----------------------------------------------------- */
np_http_server *np_http_server_new(const np_http_opts *opts)
{
    np_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (opts)
        s->o = *opts;
    np_http_opts *o = &s->o;
    if (!o->max_header_bytes)
        o->max_header_bytes = 64 << 10;
    if (!o->max_body_bytes)
        o->max_body_bytes = 64 << 20;
    if (!o->drain_bytes)
        o->drain_bytes = 256 << 10;
    if (!o->read_header_timeout_ns)
        o->read_header_timeout_ns = 10 * 1000000000LL;
    if (!o->read_timeout_ns)
        o->read_timeout_ns = 60 * 1000000000LL;
    if (!o->write_timeout_ns)
        o->write_timeout_ns = 60 * 1000000000LL;
    if (!o->idle_timeout_ns)
        o->idle_timeout_ns = 120 * 1000000000LL;
    atomic_init(&s->ln, -1);
    if (!(s->gone = np_chan_new(1, 1))) {
        free(s);
        return NULL;
    }
    return s;
}

int np_http_handle(np_http_server *s, const char *pattern, np_http_handler h, void *arg)
{
    if (!s || !pattern || pattern[0] != '/' || !h) {
        errno = EINVAL;
        return -1;
    }
    for (int i = 0; i < s->nroutes; i++)
        if (strcmp(s->routes[i].pat, pattern) == 0) {
            errno = EEXIST;
            return -1;
        }
    hroute *r = realloc(s->routes, (size_t)(s->nroutes + 1) * sizeof *r);
    if (!r)
        return -1;
    s->routes = r;
    char *p = strdup(pattern);
    if (!p)
        return -1;
    size_t len = strlen(p);
    int i = s->nroutes++;
    while (i > 0 && s->routes[i - 1].len < len) { /* longest first */
        s->routes[i] = s->routes[i - 1];
        i--;
    }
    s->routes[i] = (hroute){p, len, p[len - 1] == '/', h, arg};
    return 0;
}

static const hroute *route(const np_http_server *s, const char *path, bool *redirect)
{
    size_t pl = strlen(path);
    *redirect = false;
    for (int i = 0; i < s->nroutes; i++) {
        const hroute *r = &s->routes[i];
        if (r->prefix ? strncmp(path, r->pat, r->len) == 0 : strcmp(path, r->pat) == 0)
            return r;
        /* "/x" when only "/x/" is routed: redirect there (as ServeMux does) */
        if (r->prefix && pl + 1 == r->len && strncmp(path, r->pat, pl) == 0) {
            *redirect = true;
            return r;
        }
    }
    return NULL;
}

void np_http_server_free(np_http_server *s)
{
    if (!s)
        return;
    np_wg_wait(&s->wg);
    for (int i = 0; i < s->nroutes; i++)
        free(s->routes[i].pat);
    free(s->routes);
    np_chan_free(s->gone);
    free(s);
}

int64_t np_http_server_conns(np_http_server *s)
{
    return atomic_load(&s->nconns);
}

/* ---- the request ------------------------------------------------------------------- */
const char *np_http_req_method(const np_http_req *r) { return r->method; }
const char *np_http_req_target(const np_http_req *r) { return r->c->in.target; }
const char *np_http_req_path(const np_http_req *r) { return r->path; }
const char *np_http_req_query(const np_http_req *r) { return r->query; }
int np_http_req_minor(const np_http_req *r) { return r->minor; }
int64_t np_http_req_content_length(const np_http_req *r) { return r->clen; }
np_tls *np_http_req_tls(const np_http_req *r) { return r->c->tls; }
const char *np_http_req_remote(const np_http_req *r)
{
    hconn *c = r->c;
    if (!c->remote[0]) {
        char ip[INET6_ADDRSTRLEN] = "?";
        const struct sockaddr_storage *ss = &c->peer;
        if (ss->ss_family == AF_INET) {
            const struct sockaddr_in *a = (const void *)ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
            snprintf(c->remote, sizeof c->remote, "%s:%d", ip, ntohs(a->sin_port));
        } else if (ss->ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const void *)ss;
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            snprintf(c->remote, sizeof c->remote, "[%s]:%d", ip, ntohs(a->sin6_port));
        } else {
            snprintf(c->remote, sizeof c->remote, "unix");
        }
    }
    return c->remote;
}
int np_http_req_header_count(const np_http_req *r) { return r->c->in.nh; }

const char *np_http_req_header(const np_http_req *r, const char *name)
{
    return np__hin_header(&r->c->in, name);
}

int np_http_req_header_at(const np_http_req *r, int i, const char **name, const char **value)
{
    if (i < 0 || i >= r->c->in.nh) {
        errno = EINVAL;
        return -1;
    }
    *name = r->c->in.h[i].name;
    *value = r->c->in.h[i].value;
    return 0;
}

/* Bytes from the socket for the body; "100 Continue" first if the client waits for it.
 * The count, or 0 / -1 (r->err set). */
static ssize_t body_fill(np_http_req *r)
{
    hconn *c = r->c;
    if (r->expect_continue) {
        r->expect_continue = false;
        if (!c->rw.sent) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (np__hout_put(&c->out, cont, sizeof cont - 1) < 0 || np__conn_flush(c) < 0) {
                r->err = errno;
                return -1;
            }
        }
    }
    np__conn_deadline(c, false, c->s->o.read_timeout_ns);
    ssize_t n = np__hin_fill(&c->in);
    if (n == 0)
        r->err = ECONNRESET; /* the body ended early */
    else if (n < 0)
        r->err = errno;
    return n;
}

ssize_t np_http_req_read(np_http_req *r, void *buf, size_t len)
{
    hconn *c = r->c;
    hin *in = &c->in;
    for (;;) {
        if (r->err) {
            errno = r->err;
            return -1;
        }
        if (len == 0)
            return 0;
        size_t n = np__hin_take(in, buf, len);
        if (n) {
            int64_t max = c->s->o.max_body_bytes;
            if (max >= 0 && in->body_total > max) {
                r->err = EFBIG;
                c->rw.close = true;
                continue;
            }
            return (ssize_t)n;
        }
        if (in->msg_done)
            return 0;
        if (in->err) {
            r->err = EPROTO;
            c->rw.close = true;
            continue;
        }
        if (body_fill(r) <= 0)
            c->rw.close = true;
    }
}

/* Read and drop the rest of the body, up to drain_bytes. 0 when the message ended. */
static int drain(hconn *c)
{
    hin *in = &c->in;
    int64_t dropped = 0;
    while (!in->msg_done) {
        if (c->req.err || dropped > c->s->o.drain_bytes)
            return -1;
        if (in->body_len) {
            dropped += (int64_t)in->body_len;
            in->body_len = 0;
            continue;
        }
        size_t pos = in->pos;
        if (np__hin_parse(in) < 0)
            return -1;
        if (!in->body_len && !in->msg_done && in->pos == pos && body_fill(&c->req) <= 0)
            return -1;
    }
    return 0;
}

/* ---- a connection ------------------------------------------------------------------ */
void np__conn_deadline(hconn *c, bool w, int64_t timeout)
{
    if (atomic_load_explicit(&c->s->forced, memory_order_relaxed))
        return;
    np__http_deadline(c->fd, w, w ? &c->wd : &c->rd, timeout);
    /* a forced shutdown that came meanwhile may have been overwritten: its way again */
    if (atomic_load(&c->s->forced))
        np_set_deadline(c->fd, 1);
}

/* A response for a request that never reaches a handler (400, 413, 431). */
static void refuse(hconn *c, int code)
{
    c->req.minor = 1;
    c->req.expect_continue = false;
    np__rw_begin(c, false);
    c->rw.close = true;
    np_http_error(&c->rw, code);
    np__rw_finish(&c->rw);
    c->linger = true;
}

/* Close without losing the answer: a close with bytes of the client unread makes the
 * kernel send a reset, which may destroy the response before the client reads it. So
 * the write side is shut first and what the client still sends is read and dropped
 * (until it closes, 256 KiB, or a second). */
static void linger(hconn *c)
{
    if (c->tls && np_tls_shutdown(c->tls) < 0) /* close_notify, then TCP's end */
        return;
    if (np_shutdown(c->fd, SHUT_WR) < 0)
        return;
    np__conn_deadline(c, false, 1000000000LL);
    for (size_t got = 0; got < (256 << 10);) {
        ssize_t n = np_read(c->fd, c->in.buf, c->in.cap);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
}

/* The request whose head is parsed: call its handler, finish its response, consume the
 * rest of its body. 0 to go on with the next request, -1 to close. */
static int serve_one(hconn *c)
{
    np_http_server *s = c->s;
    hin *in = &c->in;
    np_http_req *r = &c->req;
    r->c = c;
    r->err = 0;
    r->method = llhttp_method_name((llhttp_method_t)in->p.method);
    r->minor = in->p.http_minor;
    r->clen = (in->p.flags & F_CHUNKED) ? -1
              : (in->p.flags & F_CONTENT_LENGTH) ? (int64_t)in->p.content_length : 0;
    const char *ex = r->minor >= 1 && !in->msg_done ? np__hin_header(in, "Expect") : NULL;
    r->expect_continue = ex && np__http_eq(ex, "100-continue");
    /* path and query: the target itself, or with a query a copy split at '?' */
    const char *t = in->target, *q = strchr(t, '?');
    r->path = t;
    r->query = "";
    if (q) {
        c->arena.len = 0;
        if (np__hout_put(&c->arena, t, strlen(t) + 1) < 0) {
            refuse(c, 500);
            return -1;
        }
        char *path = c->arena.buf;
        path[q - t] = 0;
        r->path = path;
        r->query = path + (q - t) + 1;
    }
    const char *path = r->path;
    np__rw_begin(c, in->p.method == HTTP_HEAD);
    if (in->head_end - in->head_start > s->o.max_header_bytes) {
        refuse(c, 431);
        return -1;
    }
    if (s->o.max_body_bytes >= 0 && r->clen > s->o.max_body_bytes) {
        refuse(c, 413);
        return -1;
    }
    bool redirect;
    const hroute *rt = route(s, path, &redirect);
    if (!rt) {
        np_http_error(&c->rw, 404);
    } else if (redirect) {
        char loc[1024];
        snprintf(loc, sizeof loc, "%s/%s%s", path, *r->query ? "?" : "", r->query);
        np_http_set_header(&c->rw, "Location", loc);
        np_http_error(&c->rw, 301);
    } else {
        rt->h(r, &c->rw, rt->arg);
    }
    if (np__rw_finish(&c->rw) < 0)
        return -1;
    if (!in->msg_done && (r->expect_continue || drain(c) < 0)) {
        c->linger = true;
        return -1; /* a body never asked for (100-continue), too long, or broken */
    }
    if (c->rw.close || in->upgrade || atomic_load(&s->shutting)) {
        c->linger = in->pos < in->end && !in->upgrade; /* requests pipelined after it */
        return -1;
    }
    return 0;
}

static void conn_end(hconn *c);

void np__http_conn(void *arg)
{
    hconn *c = arg;
    np_http_server *s = c->s;
    hin *in = &c->in;
    /* HTTPS: the handshake first, within the time a request head has */
    if (c->tls) {
        np__conn_deadline(c, false, s->o.read_header_timeout_ns);
        if (np_tls_handshake(c->tls) < 0)
            goto out;
    }
    for (;;) {
        np__hin_next(in);
        if (in->pos == in->end) {
            /* idle: what is answered goes out, then wait for the next request */
            if (np__conn_flush(c) < 0)
                break;
            np__conn_deadline(c, false, s->o.idle_timeout_ns);
            atomic_store(&c->state, C_IDLE);
            if (atomic_load(&s->shutting))
                break;
            /* still idle while the read waits (a wake-up may find nothing to read);
             * the first bytes make it active, unless a shutdown closed it first */
            ssize_t n = np__hin_fill(in);
            int idle = C_IDLE;
            if (!atomic_compare_exchange_strong(&c->state, &idle, C_ACTIVE) || n <= 0)
                break;
        }
        bool timed = false;
        for (;;) {
            if (np__hin_parse(in) < 0) {
                refuse(c, 400);
                goto out;
            }
            if (in->head_done)
                break;
            if (!timed) { /* a head in pieces: it has read_header_timeout to be whole */
                np__conn_deadline(c, false, s->o.read_header_timeout_ns);
                timed = true;
            }
            if (np__conn_flush(c) < 0)
                goto out;
            ssize_t n = np__hin_fill(in);
            if (n < 0 && errno == EMSGSIZE)
                refuse(c, 431);
            if (n <= 0)
                goto out;
        }
        if (serve_one(c) < 0)
            break;
    }
out:
    if (np__conn_flush(c) == 0 && c->linger)
        linger(c);
    conn_end(c);
}

/* Out of the list, closed, freed; the last one of a shutdown tells it. */
static void conn_end(hconn *c)
{
    np_http_server *s = c->s;
    np_mutex_lock(&s->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    np_mutex_unlock(&s->mu);
    if (c->tls)
        np_tls_close(c->tls); /* close_notify if it goes out at once; closes fd */
    else
        np_close(c->fd);
    np__hin_free(&c->in);
    free(c->out.buf);
    free(c->arena.buf);
    free(c->rw.hdrs.buf);
    free(c->rw.pre.buf);
    free(c);
    if (atomic_fetch_sub(&s->nconns, 1) == 1 && atomic_load(&s->shutting)) {
        char one = 1;
        np_chan_trysend(s->gone, &one);
    }
    np_wg_done(&s->wg);
}

/* The handshake runs at the connection's first read, under the read-header timeout. */
static int conn_start(np_http_server *s, int fd, const struct sockaddr_storage *ss, np_tls_config *tls)
{
    hconn *c = calloc(1, sizeof *c);
    if (!c || np__hin_init(&c->in, fd, HTTP_REQUEST, RBUF, s->o.max_header_bytes) < 0) {
        free(c);
        return -1;
    }
    if (tls && !(c->tls = c->in.tls = np_tls_server(fd, tls))) {
        np__hin_free(&c->in);
        free(c);
        return -1;
    }
    c->s = s;
    c->fd = fd;
    atomic_init(&c->state, C_ACTIVE);
    c->peer = *ss;
    np_wg_add(&s->wg, 1);
    atomic_fetch_add(&s->nconns, 1);
    np_mutex_lock(&s->mu);
    c->next = s->conns;
    if (c->next)
        c->next->prev = c;
    s->conns = c;
    np_mutex_unlock(&s->mu);
    if (np_go(np__http_conn, c) < 0)
        conn_end(c); /* the runtime is stopping: closes fd */
    return 0;
}

/* Inlined into both entry points: a dump shows np_http_serve(_tls) in the stack. */
static inline __attribute__((always_inline)) int serve(np_http_server *s, int ln, np_tls_config *tls)
{
    np_wg_add(&s->wg, 1); /* (np_http_server_free waits for this call to return too) */
    atomic_store(&s->ln, ln);
    while (!atomic_load(&s->shutting)) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = np_accept(ln, (struct sockaddr *)&ss, &sl);
        if (fd < 0) {
            if (atomic_load(&s->shutting))
                break;
            if (errno == ECONNABORTED || errno == EPROTO || errno == EINTR)
                continue;
            int e = errno;
            atomic_store(&s->ln, -1);
            np_close(ln);
            np_wg_done(&s->wg);
            errno = e;
            return -1;
        }
        if (atomic_load(&s->shutting) || conn_start(s, fd, &ss, tls) < 0) {
            np_close(fd);
            continue;
        }
    }
    atomic_store(&s->ln, -1);
    np_close(ln);
    np_wg_done(&s->wg);
    return 0;
}

int np_http_serve(np_http_server *s, int ln) { return serve(s, ln, NULL); }

int np_http_serve_tls(np_http_server *s, int ln, np_tls_config *cfg)
{
    if (!cfg) {
        np_close(ln);
        errno = EINVAL;
        return -1;
    }
    return serve(s, ln, cfg);
}

/* Make the connections' waits fail now: the idle ones (CAS), or all. */
static void poke(np_http_server *s, bool all)
{
    np_mutex_lock(&s->mu);
    for (hconn *c = s->conns; c; c = c->next) {
        int idle = C_IDLE;
        if (all)
            np_set_deadline(c->fd, 1);
        else if (atomic_compare_exchange_strong(&c->state, &idle, C_CLOSING))
            np_set_read_deadline(c->fd, 1);
    }
    np_mutex_unlock(&s->mu);
}

int np_http_shutdown(np_http_server *s, int64_t deadline)
{
    atomic_store(&s->shutting, true);
    int ln = atomic_load(&s->ln);
    if (ln >= 0)
        np_set_read_deadline(ln, 1);
    poke(s, false);
    while (atomic_load(&s->nconns) > 0) {
        int64_t left = deadline ? deadline - np_now() : -1;
        if (deadline && left <= 0) {
            atomic_store(&s->forced, true);
            poke(s, true);
            errno = ETIMEDOUT;
            return -1;
        }
        char one;
        np_case k = {s->gone, NP_RECV, &one, 0};
        np_select(&k, 1, left);
    }
    return 0;
}
