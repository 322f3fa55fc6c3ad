/* The server's response writer: status and headers until the first byte goes out, a
 * body buffered until it is known whether it fits (Content-Length) or must be chunked,
 * all of it appended to the connection's output buffer, which is written when the
 * connection has nothing more to parse (so pipelined responses go out in one write). */
#include "http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    PRE_MAX = 4096,     /* body bytes held back before the headers must go */
    OUT_MAX = 32768,    /* output buffered before it is written */
    DIRECT = 8192,      /* a body write this large goes out without a copy */
};

int np__conn_flush(hconn *c)
{
    if (!c->out.len)
        return 0;
    np__conn_deadline(c, true, c->s->o.write_timeout_ns);
    return np__hout_flush(&c->out, c->fd, c->tls, NULL, 0);
}

void np__rw_begin(hconn *c, bool head)
{
    np_http_rw *w = &c->rw;
    w->c = c;
    w->status = 200;
    w->hdrs.len = 0;
    w->pre.len = 0;
    w->clen = -1;
    w->written = 0;
    w->sent = w->chunked = w->close = false;
    w->head = head;
    w->err = 0;
}

static bool body_allowed(int status)
{
    return !(status / 100 == 1 || status == 204 || status == 304);
}

/* Bytes of the response body (or framing) for the connection; large ones are written
 * at once behind what is buffered. */
static int emit(np_http_rw *w, const void *p, size_t n)
{
    hconn *c = w->c;
    int r;
    if (n >= DIRECT) {
        np__conn_deadline(c, true, c->s->o.write_timeout_ns);
        r = np__hout_flush(&c->out, c->fd, c->tls, p, n);
    } else {
        r = np__hout_put(&c->out, p, n);
        if (r == 0 && c->out.len >= OUT_MAX)
            r = np__conn_flush(c);
    }
    if (r < 0) {
        w->err = errno;
        w->close = true;
    }
    return r;
}

static int emit_chunk(np_http_rw *w, const void *p, size_t n)
{
    char h[24];
    memcpy(h + 20, "\r\n", 2);
    char *hs = np__http_num(h + 20, n, 16);
    if (np__hout_put(&w->c->out, hs, (size_t)(h + 22 - hs)) < 0 || emit(w, p, n) < 0)
        return -1;
    return np__hout_put(&w->c->out, "\r\n", 2);
}

/* The status line and headers, into the output buffer. final: the handler has returned,
 * so a body still held back is the whole body. */
static int send_head(np_http_rw *w, bool final)
{
    hconn *c = w->c;
    np_http_req *rq = &c->req;
    hout *o = &c->out;
    char line[64];
    const char *reason = np_http_status_text(w->status);
    size_t rl = strlen(reason);
    memcpy(line, "HTTP/1.1 ", 9);
    np__http_num(line + 12, (uint64_t)w->status, 10); /* (100-999: three digits) */
    line[12] = ' ';
    memcpy(line + 13, reason, rl);
    memcpy(line + 13 + rl, "\r\n", 2);
    if (np__hout_put(o, line, 15 + rl) < 0)
        return -1;
    size_t dl;
    const char *date = np__http_date(&dl);
    if (np__hout_put(o, date, dl) < 0 || np__hout_put(o, w->hdrs.buf, w->hdrs.len) < 0)
        return -1;
    if (!body_allowed(w->status)) {
        w->clen = -1;
    } else if (w->clen >= 0 || final) {
        if (w->clen < 0)
            w->clen = w->head ? w->written : (int64_t)w->pre.len;
        memcpy(line + 40, "\r\n", 2);
        char *d = np__http_num(line + 40, (uint64_t)w->clen, 10);
        d -= 16;
        memcpy(d, "Content-Length: ", 16);
        if (np__hout_put(o, d, (size_t)(line + 42 - d)) < 0)
            return -1;
    } else if (rq->minor >= 1) {
        w->chunked = true;
        if (np__hout_put(o, "Transfer-Encoding: chunked\r\n", 28) < 0)
            return -1;
    } else {
        w->close = true; /* HTTP/1.0 without a length: the end of the connection ends it */
    }
    /* A body the client may still send after "Expect: 100-continue" went unanswered
     * cannot be told from the next request: close. */
    if (rq->expect_continue && !c->in.msg_done)
        w->close = true;
    if (atomic_load_explicit(&c->s->shutting, memory_order_relaxed) ||
        !llhttp_should_keep_alive(&c->in.p))
        w->close = true;
    const char *conn = w->close ? "Connection: close\r\n\r\n"
                                : rq->minor == 0 ? "Connection: keep-alive\r\n\r\n" : "\r\n";
    if (np__hout_put(o, conn, strlen(conn)) < 0)
        return -1;
    w->sent = true;
    return 0;
}

static int fail(np_http_rw *w, int e)
{
    if (!w->err)
        w->err = e;
    errno = w->err;
    return -1;
}

/* Send the headers and the body held back (not the end of a chunked body). */
static int commit(np_http_rw *w, bool final)
{
    if (send_head(w, final) < 0)
        return fail(w, errno);
    if (w->pre.len && !w->head) {
        size_t n = w->pre.len;
        w->pre.len = 0;
        if ((w->chunked ? emit_chunk(w, w->pre.buf, n) : emit(w, w->pre.buf, n)) < 0)
            return fail(w, errno);
    }
    return 0;
}

int np__rw_finish(np_http_rw *w)
{
    hconn *c = w->c;
    if (!w->sent) {
        if (c->req.err == EFBIG) {
            /* the body went past the limit: whatever the handler began, say so */
            np__rw_begin(c, w->head);
            w->close = true;
            np_http_error(w, 413);
        }
        if (commit(w, true) < 0)
            return -1;
    } else if (w->chunked) {
        if (np__hout_put(&c->out, "0\r\n\r\n", 5) < 0)
            return fail(w, errno);
    } else if (w->clen >= 0 && w->written < w->clen && !w->head) {
        w->close = true; /* short of its Content-Length: the client sees it end early */
    }
    return w->err ? -1 : 0;
}

int np_http_set_status(np_http_rw *w, int code)
{
    if (code < 100 || code > 999) {
        errno = EINVAL;
        return -1;
    }
    if (w->sent) {
        errno = EALREADY;
        return -1;
    }
    w->status = code;
    return 0;
}

static bool clean(const char *s)
{
    return !strpbrk(s, "\r\n");
}

/* Remove the lines of header name from the handler's headers. */
static void del_header(np_http_rw *w, const char *name)
{
    size_t nl = strlen(name), i = 0;
    char *b = w->hdrs.buf;
    while (i < w->hdrs.len) {
        char *eol = memchr(b + i, '\n', w->hdrs.len - i);
        size_t ll = (size_t)(eol - (b + i)) + 1;
        if (ll > nl && b[i + nl] == ':' && strncasecmp(b + i, name, nl) == 0) {
            memmove(b + i, b + i + ll, w->hdrs.len - i - ll);
            w->hdrs.len -= ll;
        } else {
            i += ll;
        }
    }
}

static int header(np_http_rw *w, const char *name, const char *value, bool replace)
{
    if (!name || !*name || !clean(name) || strchr(name, ':') || (value && !clean(value))) {
        errno = EINVAL;
        return -1;
    }
    if (w->sent) {
        errno = EALREADY;
        return -1;
    }
    if (np__http_eq(name, "Content-Length")) {
        char *end;
        long long v = value ? strtoll(value, &end, 10) : -1;
        if (value && (end == value || *end || v < 0)) {
            errno = EINVAL;
            return -1;
        }
        w->clen = v;
        return 0;
    }
    if (np__http_eq(name, "Connection")) {
        if (value && np__http_eq(value, "close"))
            w->close = true;
        return 0;
    }
    if (np__http_eq(name, "Transfer-Encoding"))
        return 0; /* the writer frames the body itself */
    if (replace)
        del_header(w, name);
    if (!value)
        return 0;
    size_t nl = strlen(name), vl = strlen(value);
    if (np__hout_put(&w->hdrs, name, nl) < 0 || np__hout_put(&w->hdrs, ": ", 2) < 0 ||
        np__hout_put(&w->hdrs, value, vl) < 0 || np__hout_put(&w->hdrs, "\r\n", 2) < 0)
        return -1;
    return 0;
}

int np_http_set_header(np_http_rw *w, const char *name, const char *value)
{
    return header(w, name, value, true);
}

int np_http_add_header(np_http_rw *w, const char *name, const char *value)
{
    if (!value) {
        errno = EINVAL;
        return -1;
    }
    return header(w, name, value, false);
}

ssize_t np_http_write(np_http_rw *w, const void *buf, size_t len)
{
    if (w->err)
        return fail(w, w->err);
    if (!body_allowed(w->status) && len) {
        errno = EINVAL;
        return -1;
    }
    size_t n = len;
    if (w->clen >= 0 && w->written + (int64_t)len > w->clen) {
        n = (size_t)(w->clen - w->written); /* no more than the length announced */
        w->close = true;
    }
    w->written += (int64_t)n;
    if (!w->head && n) {
        if (!w->sent && w->pre.len + n <= PRE_MAX) {
            if (np__hout_put(&w->pre, buf, n) < 0)
                return fail(w, errno);
        } else {
            if (!w->sent && commit(w, false) < 0)
                return -1;
            if ((w->chunked ? emit_chunk(w, buf, n) : emit(w, buf, n)) < 0)
                return fail(w, errno);
        }
    }
    if (n < len) {
        errno = EMSGSIZE;
        return -1;
    }
    return (ssize_t)len;
}

int np_http_printf(np_http_rw *w, const char *fmt, ...)
{
    hout tmp = {0};
    va_list ap;
    va_start(ap, fmt);
    int r = np__hout_vprintf(&tmp, fmt, ap);
    va_end(ap);
    if (r == 0)
        r = np_http_write(w, tmp.buf, tmp.len) < 0 ? -1 : (int)tmp.len;
    free(tmp.buf);
    return r;
}

int np_http_flush(np_http_rw *w)
{
    if (w->err)
        return fail(w, w->err);
    if (!w->sent && commit(w, false) < 0)
        return -1;
    if (np__conn_flush(w->c) < 0)
        return fail(w, errno);
    return 0;
}

int np_http_reply(np_http_rw *w, int code, const char *ctype, const void *body, size_t len)
{
    if (np_http_set_status(w, code) < 0 ||
        (ctype && np_http_set_header(w, "Content-Type", ctype) < 0))
        return -1;
    if (w->clen < 0 && body_allowed(code)) {
        w->clen = (int64_t)len; /* (np_http_set_header(w, "Content-Length", ...)) */
    }
    return len && np_http_write(w, body, len) < 0 ? -1 : 0;
}

int np_http_error(np_http_rw *w, int code)
{
    char body[96];
    int n = snprintf(body, sizeof body, "%d %s\n", code, np_http_status_text(code));
    np_http_set_header(w, "X-Content-Type-Options", "nosniff");
    return np_http_reply(w, code, "text/plain; charset=utf-8", body, (size_t)n);
}

int np_http_headers_sent(const np_http_rw *w)
{
    return w->sent;
}
