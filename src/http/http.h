/* np_http's internals: the incoming half of a connection (read buffer + llhttp), shared
 * by the server (requests) and the client (responses); the outgoing buffer; helpers.
 *
 * Reading model. One buffer per connection: [0, pos) is consumed by the parser,
 * [pos, end) is read but not parsed yet, [end, cap) is free. llhttp is a push parser
 * whose callbacks report spans of that buffer; a message head's spans are kept as
 * offsets (the head may move to the buffer's start when it needs room) and become
 * NUL-terminated strings in place once the head is complete. The parser pauses at the
 * end of a head that has a body, at each body span (the body reader hands it out
 * before parsing on) and at the end of each message (so a pipelined next request is
 * not parsed while the current one is served). */
#ifndef NP_HTTP_INTERNAL_H
#define NP_HTTP_INTERNAL_H
#include <np.h>
#include <np_http.h>
#include <np_tls.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <llhttp.h>

typedef struct hspan { uint32_t off, len; } hspan;
typedef struct hhdr {
    hspan n, v;                  /* offsets while the head is parsed */
    const char *name, *value;    /* NUL-terminated in the buffer once it is complete */
} hhdr;

typedef struct hin {
    int fd;
    np_tls *tls;                 /* HTTPS: bytes come through it (it owns fd) */
    char *buf;
    size_t cap, pos, end;        /* pos <= end <= cap (see above) */
    size_t head_start;           /* where the current message's head began */
    size_t head_end;             /* just past it (valid once head_done) */
    size_t max_head;             /* head size limit; a longer one: EMSGSIZE */
    llhttp_t p;
    hspan url;
    const char *target;          /* the request target, NUL-terminated (complete head) */
    hhdr *h;                     /* the head's headers: inl, or a larger array */
    int nh, caph;
    hhdr inl[12];
    int last;                    /* the span kind last appended (merging split spans) */
    bool head_done, msg_done;
    bool upgrade;                /* the message ended in an upgrade (CONNECT, Upgrade:) */
    bool head_only;              /* client: the response to HEAD has no body */
    const char *body;            /* a body span handed out by on_body, not yet consumed */
    size_t body_len;
    int64_t body_total;          /* body bytes parsed so far */
    int err;                     /* llhttp's error (HPE_*) once it failed, else 0 */
} hin;

/* Set up in with a buffer of cap bytes and a parser of type (HTTP_REQUEST or
 * HTTP_RESPONSE). -1/ENOMEM. */
int np__hin_init(hin *in, int fd, llhttp_type_t type, size_t cap, size_t max_head);
void np__hin_free(hin *in);
/* Start the next message: the head's spans are forgotten, the buffer before pos too. */
void np__hin_next(hin *in);
/* Run the parser over [pos, end) until it pauses or runs out. 0, or -1 with in->err. */
int np__hin_parse(hin *in);
/* Read more bytes into the buffer (room made first). The count, 0 at end of file, or
 * -1/errno: EMSGSIZE when a head outgrows max_head. */
ssize_t np__hin_fill(hin *in);
/* First value of header name (case-insensitive) of a complete head, or NULL. */
const char *np__hin_header(const hin *in, const char *name);
/* Hand out body bytes: what is parsed, then what parsing what is buffered gives.
 * Returns the count, or 0 when the message ended (msg_done) or more bytes are needed. */
size_t np__hin_take(hin *in, void *buf, size_t len);

/* An output buffer (the writer's side of a connection). */
typedef struct hout {
    char *buf;
    size_t len, cap;
} hout;
/* Make room for n more bytes; append n bytes; append printf's output. -1/ENOMEM. */
int np__hout_grow(hout *o, size_t n);
int np__hout_put(hout *o, const void *p, size_t n);
int np__hout_printf(hout *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int np__hout_vprintf(hout *o, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Write cnt buffers to fd, or through tls when it is not NULL. The count or -1/errno. */
ssize_t np__http_writev(int fd, np_tls *tls, const struct iovec *iov, int cnt);
/* Write it all to fd (or tls) with data after it (data may be NULL). 0 or -1/errno. */
int np__hout_flush(hout *o, int fd, np_tls *tls, const void *data, size_t n);

/* The current "Date: ...\r\n" line (cached per thread, per second). */
const char *np__http_date(size_t *len);
/* v in base 10 or 16, written backwards to end (the digits end there); their start. */
char *np__http_num(char *end, uint64_t v, unsigned base);
/* Case-insensitive equality of ASCII strings. */
bool np__http_eq(const char *a, const char *b);
/* A deadline that moves only when it must: set fd's read (write: w) deadline to
 * now + timeout unless the one set (*cur) is at most slack earlier. */
void np__http_deadline(int fd, bool w, int64_t *cur, int64_t timeout);
/* ---- server ------------------------------------------------------------------------ */
typedef struct hroute {
    char *pat;
    size_t len;
    bool prefix;                 /* pattern ends in '/': matches the paths under it */
    np_http_handler h;
    void *arg;
} hroute;

/* A connection's state, as np_http_shutdown sees it: it closes the idle ones (CAS
 * IDLE -> CLOSING, then a read deadline in the past); the connection moves IDLE ->
 * ACTIVE by CAS too when a request starts, so each idle wait ends one way or the other. */
enum { C_ACTIVE, C_IDLE, C_CLOSING };

typedef struct hconn hconn;

struct np_http_server {
    np_http_opts o;              /* with the defaults filled in */
    hroute *routes;              /* longest pattern first */
    int nroutes;
    np_mutex mu;                 /* guards conns (the list), taken on connect and close */
    hconn *conns;
    _Atomic int64_t nconns;
    _Atomic bool shutting;
    _Atomic bool forced;         /* the shutdown's deadline passed: the connections' reads
                                  * and writes fail from now on (no deadline is moved) */
    _Atomic int ln;              /* the listening socket while np_http_serve runs, or -1 */
    np_chan *gone;               /* cap 1: the last connection ended during a shutdown */
    np_wg wg;                    /* connections alive and np_http_serve calls running
                                  * (np_http_server_free waits for them) */
};

struct np_http_req {
    hconn *c;
    const char *method, *path, *query;
    int minor;
    int64_t clen;                /* Content-Length, -1 chunked */
    bool expect_continue;        /* "Expect: 100-continue" not answered yet */
    int err;                     /* the body reader's failure, sticky */
};

struct np_http_rw {
    hconn *c;
    int status;
    hout hdrs;                   /* the handler's header lines, "Name: value\r\n" */
    hout pre;                    /* body written before the headers were sent */
    int64_t clen;                /* Content-Length set by the handler, or -1 */
    int64_t written;             /* body bytes the handler wrote */
    bool sent;                   /* status line and headers are out (in c->out) */
    bool chunked, close, head;   /* framing; close the connection after; HEAD request */
    int err;                     /* a write failed: sticky errno */
};

struct hconn {
    np_http_server *s;
    hconn *prev, *next;          /* in s->conns (s->mu) */
    _Atomic int state;           /* C_* */
    int fd;
    np_tls *tls;                 /* HTTPS (np_http_serve_tls), owning fd; else NULL */
    hin in;
    hout out;                    /* responses not written yet (pipelined ones coalesce) */
    hout arena;                  /* the request's path and query when it has a query */
    int64_t rd, wd;              /* the read and write deadlines set (np__http_deadline) */
    bool linger;                 /* closing with the client's bytes unread: read them first */
    struct sockaddr_storage peer;
    char remote[64];             /* peer as text, made when first asked for */
    np_http_req req;
    np_http_rw rw;
};

/* The writer's side (rw.c): start a response, finish it after the handler, send
 * out's bytes (with the write deadline). */
void np__rw_begin(hconn *c, bool head);
int np__rw_finish(np_http_rw *w);
int np__conn_flush(hconn *c);
/* Move c's read (w: write) deadline to now + timeout (np__http_deadline), unless a
 * forced shutdown has put it in the past for good. */
void np__conn_deadline(hconn *c, bool w, int64_t timeout);
/* A connection's coroutine (server.c). Not static, so that traces and dumps of a
 * program linked with -rdynamic name it. */
void np__http_conn(void *arg);

#endif
