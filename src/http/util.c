/* np_http helpers: the output buffer, the Date line, status texts, deadlines. */
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>

int np__hout_grow(hout *o, size_t n)
{
    size_t nc = o->cap ? o->cap : 256;
    while (nc < o->len + n)
        nc *= 2;
    char *nb = realloc(o->buf, nc);
    if (!nb)
        return -1;
    o->buf = nb;
    o->cap = nc;
    return 0;
}

int np__hout_put(hout *o, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (o->len + n > o->cap && np__hout_grow(o, n) < 0)
        return -1;
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

int np__hout_vprintf(hout *o, const char *fmt, va_list ap)
{
    char tmp[512];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    int r = -1;
    if (n >= 0 && (size_t)n < sizeof tmp) {
        r = np__hout_put(o, tmp, (size_t)n);
    } else if (n >= 0) { /* longer: formatted again, straight into the buffer */
        if (o->cap - o->len > (size_t)n || np__hout_grow(o, (size_t)n + 1) == 0) {
            vsnprintf(o->buf + o->len, (size_t)n + 1, fmt, again);
            o->len += (size_t)n;
            r = 0;
        }
    }
    va_end(again);
    return r;
}

int np__hout_printf(hout *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = np__hout_vprintf(o, fmt, ap);
    va_end(ap);
    return r;
}

ssize_t np__http_writev(int fd, np_tls *tls, const struct iovec *iov, int cnt)
{
    if (tls)
        return cnt == 1 ? np_tls_write(tls, iov[0].iov_base, iov[0].iov_len) : np_tls_writev(tls, iov, cnt);
    return cnt == 1 ? np_write(fd, iov[0].iov_base, iov[0].iov_len) : np_writev(fd, iov, cnt);
}

int np__hout_flush(hout *o, int fd, np_tls *tls, const void *data, size_t n)
{
    struct iovec iov[2];
    int cnt = 0;
    if (o->len)
        iov[cnt++] = (struct iovec){o->buf, o->len};
    if (n)
        iov[cnt++] = (struct iovec){(void *)data, n};
    o->len = 0;
    if (cnt == 0)
        return 0;
    return np__http_writev(fd, tls, iov, cnt) < 0 ? -1 : 0;
}

const char *np__http_date(size_t *len)
{
    static _Thread_local struct {
        time_t sec;
        size_t len;
        char line[64];
    } c;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != c.sec || !c.len) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        c.len = strftime(c.line, sizeof c.line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        c.sec = ts.tv_sec;
    }
    *len = c.len;
    return c.line;
}

char *np__http_num(char *end, uint64_t v, unsigned base)
{
    do {
        *--end = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    return end;
}

bool np__http_eq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

void np__http_deadline(int fd, bool w, int64_t *cur, int64_t timeout)
{
    int64_t want = timeout > 0 ? np_now() + timeout : 0;
    int64_t slack = timeout / 16 < 1000000000 ? timeout / 16 : 1000000000;
    if (want == *cur || (want && *cur && want >= *cur && want - *cur <= slack))
        return;
    *cur = want;
    if (w)
        np_set_write_deadline(fd, want);
    else
        np_set_read_deadline(fd, want);
}

const char *np_http_status_text(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Request Entity Too Large";
    case 414: return "Request URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}
