/* The HTTP/1.1 client: a request on a pooled connection per HOST:PORT (and scheme), the
 * response's head parsed by llhttp and its body streamed to the caller; https:// over
 * np_tls. */
#include "http.h"
#include "../tls/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { CBUF = 8192, DRAIN_MAX = 256 << 10 };

typedef struct cconn {
    struct cconn *next;          /* in the client's idle list */
    int fd;
    np_tls *tls;                 /* https: owns fd; else NULL */
    hin in;
    int64_t rd, wd;              /* deadlines set (np__http_deadline) */
    char key[300];               /* HOST:PORT as np_dial takes it */
} cconn;

struct np_http_client {
    np_http_client_opts o;
    np_mutex mu;                 /* guards idle and tls */
    cconn *idle;
    np_tls_config *tls;          /* for https:// (one reference), made at the first */
};

struct np_http_resp {
    np_http_client *cl;
    cconn *cc;
    int status;
    int err;                     /* sticky errno of the body reader */
};

np_http_client *np_http_client_new(const np_http_client_opts *opts)
{
    np_http_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (opts)
        c->o = *opts;
    if (!c->o.connect_timeout_ns)
        c->o.connect_timeout_ns = 10 * 1000000000LL;
    if (!c->o.timeout_ns)
        c->o.timeout_ns = 30 * 1000000000LL;
    if (!c->o.max_idle_per_host)
        c->o.max_idle_per_host = 8;
    return c;
}

static void cconn_close(cconn *cc)
{
    if (cc->tls)
        np_tls_close(cc->tls);
    else
        np_close(cc->fd);
    np__hin_free(&cc->in);
    free(cc);
}

void np_http_client_free(np_http_client *c)
{
    if (!c)
        return;
    while (c->idle) {
        cconn *cc = c->idle;
        c->idle = cc->next;
        cconn_close(cc);
    }
    np_tls_config_free(c->tls);
    free(c);
}

int np_http_client_set_tls(np_http_client *c, np_tls_config *cfg)
{
    if (!c || !cfg || cfg->server) {
        errno = EINVAL;
        return -1;
    }
    np__tls_config_ref(cfg);
    np_mutex_lock(&c->mu);
    np_tls_config *old = c->tls;
    c->tls = cfg;
    np_mutex_unlock(&c->mu);
    np_tls_config_free(old);
    return 0;
}

/* The client's TLS config (a reference), made on first use. NULL/errno. */
static np_tls_config *client_tls(np_http_client *c)
{
    np_mutex_lock(&c->mu);
    if (!c->tls)
        c->tls = np_tls_config_new(0, &(np_tls_opts){.alpn = "http/1.1"}, NULL, 0);
    np_tls_config *t = c->tls;
    if (t)
        np__tls_config_ref(t);
    np_mutex_unlock(&c->mu);
    return t;
}

/* "http[s]://HOST[:PORT][/PATH]" into key "HOST:PORT", host (the Host header), the
 * request target and whether it is https. -1/EINVAL. */
static int split_url(const char *url, char *key, size_t kl, char *host, size_t hl, const char **target,
                     bool *https)
{
    if (!url)
        goto bad;
    *https = strncasecmp(url, "https://", 8) == 0;
    if (!*https && strncasecmp(url, "http://", 7) != 0)
        goto bad;
    const char *a = url + (*https ? 8 : 7), *e = a + strcspn(a, "/?#");
    size_t al = (size_t)(e - a);
    if (al == 0 || al >= hl)
        goto bad;
    if (memchr(a, '@', al) || strpbrk(url, " \r\n\t"))
        goto bad;
    memcpy(host, a, al);
    host[al] = 0;
    const char *port = NULL;
    if (host[0] == '[') {
        char *rb = strchr(host, ']');
        if (!rb || (rb[1] && rb[1] != ':'))
            goto bad;
        if (rb[1] == ':')
            port = rb + 2;
    } else if ((port = strrchr(host, ':'))) {
        port++;
    }
    if (port && (!*port || strspn(port, "0123456789") != strlen(port)))
        goto bad;
    if (strlen(host) + 4 > kl)
        goto bad;
    memcpy(key, host, strlen(host) + 1);
    if (!port)
        strcat(key, *https ? ":443" : ":80");
    *target = e; /* "/PATH?QUERY#FRAGMENT" or "?QUERY" or "" (the caller completes it) */
    return 0;
bad:
    errno = EINVAL;
    return -1;
}

static cconn *take_idle(np_http_client *c, const char *key, bool https)
{
    np_mutex_lock(&c->mu);
    cconn **pp = &c->idle, *cc;
    while ((cc = *pp) && (strcmp(cc->key, key) != 0 || (cc->tls != NULL) != https))
        pp = &cc->next;
    if (cc)
        *pp = cc->next;
    np_mutex_unlock(&c->mu);
    return cc;
}

/* The TLS handshake of a new https connection, within the connect timeout: the server
 * name is host without its port (and an IPv6 literal's brackets). 0 or -1/errno. */
static int tls_start(np_http_client *c, cconn *cc, const char *host)
{
    char name[300];
    const char *h = host;
    size_t n = host[0] == '[' ? strcspn(++h, "]") : strcspn(host, ":");
    snprintf(name, sizeof name, "%.*s", (int)n, h);
    np_tls_config *cfg = client_tls(c);
    if (!cfg)
        return -1;
    cc->tls = cc->in.tls = np_tls_client(cc->fd, cfg, name);
    np_tls_config_free(cfg);
    if (!cc->tls)
        return -1;
    np_set_deadline(cc->fd, np_now() + c->o.connect_timeout_ns);
    if (np_tls_handshake(cc->tls) < 0)
        return -1;
    np_set_deadline(cc->fd, 0);
    return 0;
}

static cconn *dial(np_http_client *c, const char *key, bool https, const char *host)
{
    cconn *cc = calloc(1, sizeof *cc);
    if (!cc)
        return NULL;
    snprintf(cc->key, sizeof cc->key, "%s", key);
    if ((cc->fd = np_dial("tcp", key, c->o.connect_timeout_ns)) < 0) {
        int e = errno;
        free(cc);
        errno = e;
        return NULL;
    }
    if (np__hin_init(&cc->in, cc->fd, HTTP_RESPONSE, CBUF, 1 << 20) < 0) {
        np_close(cc->fd);
        free(cc);
        return NULL;
    }
    if (https && tls_start(c, cc, host) < 0) {
        int e = errno;
        cconn_close(cc);
        errno = e;
        return NULL;
    }
    return cc;
}

/* Send the request and read the response's head (1xx ones skipped). 0, or -1/errno;
 * *stale: the connection was closed by the server before any answer (a kept one
 * that it had timed out: worth a retry on a new one). */
static int exchange(np_http_client *c, cconn *cc, const hout *head, const void *body, size_t len,
                    bool head_only, bool *stale)
{
    hin *in = &cc->in;
    *stale = false;
    np__http_deadline(cc->fd, true, &cc->wd, c->o.timeout_ns);
    struct iovec iov[2] = {{head->buf, head->len}, {(void *)body, len}};
    if (np__http_writev(cc->fd, cc->tls, iov, len ? 2 : 1) < 0) {
        *stale = errno == EPIPE || errno == ECONNRESET;
        return -1;
    }
    for (;;) {
        np__hin_next(in);
        in->head_only = head_only;
        bool got = in->pos < in->end;
        while (!in->head_done) {
            if (np__hin_parse(in) < 0) {
                errno = EPROTO;
                return -1;
            }
            if (in->head_done)
                break;
            np__http_deadline(cc->fd, false, &cc->rd, c->o.timeout_ns);
            ssize_t n = np__hin_fill(in);
            if (n <= 0) {
                if (n == 0 || errno == ECONNRESET) {
                    *stale = !got;
                    errno = ECONNRESET;
                }
                return -1;
            }
            got = true;
        }
        int st = llhttp_get_status_code(&in->p);
        if (st / 100 != 1 || st == 101)
            return 0;
        while (!in->msg_done) /* an interim response: its (empty) end, then the next */
            if (np__hin_parse(in) < 0) {
                errno = EPROTO;
                return -1;
            }
    }
}

np_http_resp *np_http_do(np_http_client *c, const char *method, const char *url,
                         const char *const *headers, const void *body, size_t len)
{
    char key[300], host[300];
    const char *target;
    bool https;
    if (!c || !method || !*method || split_url(url, key, sizeof key, host, sizeof host, &target, &https) < 0) {
        errno = EINVAL;
        return NULL;
    }
    hout head = {0};
    /* the target: the path ("/" if none) and query, without the fragment */
    int tl = (int)strcspn(target, "#");
    int r = np__hout_printf(&head, "%s %s%.*s HTTP/1.1\r\nHost: %s\r\n", method,
                            *target == '/' ? "" : "/", tl, target, host);
    for (const char *const *h = headers; r == 0 && h && h[0]; h += 2) {
        if (!h[1] || strpbrk(h[0], "\r\n:") || strpbrk(h[1], "\r\n")) {
            free(head.buf);
            errno = EINVAL;
            return NULL;
        }
        r = np__hout_printf(&head, "%s: %s\r\n", h[0], h[1]);
    }
    if (r == 0 && (body || len))
        r = np__hout_printf(&head, "Content-Length: %zu\r\n", len);
    if (r == 0)
        r = np__hout_put(&head, "\r\n", 2);
    np_http_resp *resp = calloc(1, sizeof *resp);
    if (r < 0 || !resp) {
        free(head.buf);
        free(resp);
        errno = ENOMEM;
        return NULL;
    }
    bool head_only = strcmp(method, "HEAD") == 0;
    for (int attempt = 0;; attempt++) {
        cconn *cc = attempt == 0 ? take_idle(c, key, https) : NULL;
        bool reused = cc != NULL;
        if (!cc && !(cc = dial(c, key, https, host)))
            break;
        bool stale;
        if (exchange(c, cc, &head, body, len, head_only, &stale) == 0) {
            free(head.buf);
            resp->cl = c;
            resp->cc = cc;
            resp->status = llhttp_get_status_code(&cc->in.p);
            return resp;
        }
        int e = errno;
        cconn_close(cc);
        errno = e;
        if (!(reused && stale))
            break; /* retried only when a kept connection turned out closed */
    }
    int e = errno;
    free(head.buf);
    free(resp);
    errno = e;
    return NULL;
}

np_http_resp *np_http_get(np_http_client *c, const char *url)
{
    return np_http_do(c, "GET", url, NULL, NULL, 0);
}

int np_http_resp_status(const np_http_resp *r)
{
    return r->status;
}

const char *np_http_resp_header(const np_http_resp *r, const char *name)
{
    return np__hin_header(&r->cc->in, name);
}

ssize_t np_http_resp_read(np_http_resp *r, void *buf, size_t len)
{
    hin *in = &r->cc->in;
    for (;;) {
        if (r->err) {
            errno = r->err;
            return -1;
        }
        size_t n = np__hin_take(in, buf, len);
        if (n || len == 0 || in->msg_done)
            return (ssize_t)n;
        if (in->err) {
            r->err = EPROTO;
            continue;
        }
        np__http_deadline(r->cc->fd, false, &r->cc->rd, r->cl->o.timeout_ns);
        ssize_t m = np__hin_fill(in);
        if (m == 0) {
            /* a body that ends with the connection ends here; another is cut short */
            if (llhttp_message_needs_eof(&in->p)) {
                llhttp_finish(&in->p);
                in->msg_done = true;
                in->p.flags |= F_CONNECTION_CLOSE;
            } else {
                r->err = ECONNRESET;
            }
        } else if (m < 0) {
            r->err = errno;
        }
    }
}

void np_http_resp_close(np_http_resp *r)
{
    if (!r)
        return;
    cconn *cc = r->cc;
    hin *in = &cc->in;
    char scratch[4096];
    int64_t dropped = 0;
    while (!in->msg_done && !r->err && dropped <= DRAIN_MAX) {
        ssize_t n = np_http_resp_read(r, scratch, sizeof scratch);
        if (n <= 0)
            break;
        dropped += n;
    }
    np_http_client *c = r->cl;
    bool keep = in->msg_done && !in->err && !r->err && !in->upgrade && in->pos == in->end &&
                llhttp_should_keep_alive(&in->p);
    if (keep) {
        np_mutex_lock(&c->mu);
        int n = 0;
        for (cconn *x = c->idle; x; x = x->next)
            n += strcmp(x->key, cc->key) == 0;
        if (n < c->o.max_idle_per_host) {
            cc->next = c->idle;
            c->idle = cc;
            cc = NULL;
        }
        np_mutex_unlock(&c->mu);
    }
    if (cc)
        cconn_close(cc);
    free(r);
}
