/* np_http — HTTP/1.1 on np: a server with one coroutine per connection and
 * blocking-style handlers (Go's net/http is the model), a client with keep-alive
 * connection reuse, and live debug pages for the runtime. Requests and responses are
 * parsed by llhttp (Node's HTTP/1.x parser). Part of libnp; include after <np.h>.
 *
 * Errors follow np's convention: -1 (or NULL) and errno. Every call that may block
 * must be made from a coroutine. */
#ifndef NP_HTTP_H
#define NP_HTTP_H

#include <np.h>
#include <np_tls.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---- server --------------------------------------------------------------------------
 * A server answers each connection in a coroutine of its own: it reads a request head,
 * calls the handler whose pattern matches the path, writes the response, and goes on
 * with the next request (keep-alive, pipelining) until either side closes. */
typedef struct np_http_server np_http_server;
typedef struct np_http_req np_http_req;   /* the request being served (server side) */
typedef struct np_http_rw np_http_rw;     /* its response writer */
typedef void (*np_http_handler)(np_http_req *req, np_http_rw *w, void *arg);

/* Limits and timeouts of a server; a field left 0 takes its default (in brackets). */
typedef struct np_http_opts {
    size_t max_header_bytes;   /* request line + headers; over it: 431 [64 KiB] */
    int64_t max_body_bytes;    /* request body; over it: 413 [64 MiB]; < 0: no limit */
    int64_t drain_bytes;       /* unread body read and dropped after the handler to keep
                                * the connection; a longer one closes it [256 KiB] */
    int64_t read_header_timeout_ns; /* a request head, from its first byte [10 s] */
    int64_t read_timeout_ns;   /* each wait for body bytes [60 s] */
    int64_t write_timeout_ns;  /* each wait to write the response [60 s] */
    int64_t idle_timeout_ns;   /* a kept-alive connection waiting for its next request [120 s] */
} np_http_opts;

/* A server with no routes; opts may be NULL (all defaults). NULL/errno: ENOMEM. */
np_http_server *np_http_server_new(const np_http_opts *opts);

/* Route requests to h: pattern "/x/" (ending in '/') matches every path under it,
 * "/x" that path only; the longest matching pattern wins; nothing matches: 404. Routes
 * are set up before np_http_serve. Returns 0, or -1/errno: EINVAL (pattern not starting
 * with '/'), EEXIST, ENOMEM. */
int np_http_handle(np_http_server *s, const char *pattern, np_http_handler h, void *arg);

/* Serve the connections of listening socket ln (np_listen) until np_http_shutdown;
 * closes ln on return. Returns 0 after a shutdown, or -1/errno of accept. */
int np_http_serve(np_http_server *s, int ln);

/* np_http_serve over TLS (HTTPS) with a server config (np_tls_config_new(1, ...), ALPN
 * "http/1.1" if any); it must stay valid while this runs. Each connection's handshake
 * runs in its coroutine under the read-header timeout. -1/EINVAL for a NULL cfg. */
int np_http_serve_tls(np_http_server *s, int ln, np_tls_config *cfg);

/* Graceful shutdown: stop accepting, close idle connections, let the requests in
 * progress finish and close their connections after them. Waits until every connection
 * has ended or until deadline_abs_ns (np_now clock; 0: no limit), when the remaining
 * connections' reads and writes are made to fail. 0, or -1/ETIMEDOUT. */
int np_http_shutdown(np_http_server *s, int64_t deadline_abs_ns);

/* Free a server (after np_http_shutdown, or before it served): waits for np_http_serve
 * to return and for the connections to end. */
void np_http_server_free(np_http_server *s);

/* Connections the server holds open now (idle ones included). */
int64_t np_http_server_conns(np_http_server *s);

/* ---- the request (valid during the handler) ---------------------------------------- */
/* Method ("GET"), target as sent ("/p?q=1"), path ("/p") and query ("q=1", or ""). */
const char *np_http_req_method(const np_http_req *r);
const char *np_http_req_target(const np_http_req *r);
const char *np_http_req_path(const np_http_req *r);
const char *np_http_req_query(const np_http_req *r);
/* Minor version of HTTP/1.x: 0 or 1. */
int np_http_req_minor(const np_http_req *r);

/* First value of header name (case-insensitive), or NULL. */
const char *np_http_req_header(const np_http_req *r, const char *name);

/* Number of header lines, and line i's name and value (0 <= i < count). */
int np_http_req_header_count(const np_http_req *r);
int np_http_req_header_at(const np_http_req *r, int i, const char **name, const char **value);

/* Content-Length of the body, or -1 when chunked (or 0: no body). */
int64_t np_http_req_content_length(const np_http_req *r);

/* Read up to len bytes of the body (de-chunked); parks for more. Returns the count, 0
 * at its end, or -1/errno: EFBIG past max_body_bytes (the response becomes 413 if not
 * started), ETIMEDOUT, ECONNRESET (the peer closed early), EPROTO (malformed). Sends
 * "100 Continue" first when the client asked for it. */
ssize_t np_http_req_read(np_http_req *r, void *buf, size_t len);

/* The peer's address as "IP:PORT". */
const char *np_http_req_remote(const np_http_req *r);

/* The request's TLS connection (SNI, ALPN, version), or NULL over plain HTTP. */
np_tls *np_http_req_tls(const np_http_req *r);

/* ---- the response writer ------------------------------------------------------------
 * Status and headers may be set until the first byte of the response is sent. Body
 * bytes are buffered: a response that ends within the buffer gets a Content-Length,
 * a longer one is sent chunked (HTTP/1.1) or ends with the connection (1.0), unless
 * the handler set Content-Length itself. Date is added. */
/* Set the status (100-999; default 200). -1/EINVAL, or EALREADY once headers are sent. */
int np_http_set_status(np_http_rw *w, int code);

/* Set header name to value, replacing earlier values; value NULL deletes it. "Content-
 * Length" fixes the body's length (a handler writing another count closes the
 * connection). -1/errno: EALREADY (headers sent), EINVAL (CR or LF in name or value). */
int np_http_set_header(np_http_rw *w, const char *name, const char *value);

/* Add a line for header name (keeps earlier ones). Errors as np_http_set_header. */
int np_http_add_header(np_http_rw *w, const char *name, const char *value);

/* Write body bytes. Returns len, or -1/errno (EPIPE, ETIMEDOUT, ...; the connection is
 * then closed after the handler). A HEAD request's body is counted but not sent. */
ssize_t np_http_write(np_http_rw *w, const void *buf, size_t len);

/* printf into the body. Returns the count written, or -1/errno. */
int np_http_printf(np_http_rw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send the headers and what is buffered now (the response goes on, chunked if no
 * Content-Length). 0, or -1/errno. */
int np_http_flush(np_http_rw *w);

/* A whole response: status, Content-Type ctype (NULL: none) and body. 0 or -1/errno. */
int np_http_reply(np_http_rw *w, int code, const char *ctype, const void *body, size_t len);

/* A plain-text error page "CODE Reason\n" (as Go's http.Error). 0 or -1/errno. */
int np_http_error(np_http_rw *w, int code);

/* Whether the status line has been sent. */
int np_http_headers_sent(const np_http_rw *w);

/* The reason phrase of a status code ("Not Found"), or "" if unknown. */
const char *np_http_status_text(int code);

/* ---- client ----------------------------------------------------------------------------
 * URLs: "http://HOST[:PORT][/PATH[?QUERY]]" (HOST a name, an IPv4 address or [IPv6]).
 * Connections are kept per HOST:PORT and reused by later requests. */
typedef struct np_http_client np_http_client;
typedef struct np_http_resp np_http_resp;   /* a response being received (client side) */

typedef struct np_http_client_opts {
    int64_t connect_timeout_ns;   /* [10 s] */
    int64_t timeout_ns;           /* each wait for the server's bytes, or to send [30 s] */
    int max_idle_per_host;        /* idle connections kept per HOST:PORT [8] */
} np_http_client_opts;

/* A client; opts may be NULL. NULL/ENOMEM. Safe for many coroutines at once. */
np_http_client *np_http_client_new(const np_http_client_opts *opts);

/* Close the idle connections and free the client (no response of it may be open). */
void np_http_client_free(np_http_client *c);

/* The TLS settings for https:// URLs (a client config; the client keeps a reference).
 * Without this call the first https:// request makes one: the system's CA store, ALPN
 * "http/1.1". Call before the client is used. 0, or -1/EINVAL (NULL or a server's). */
int np_http_client_set_tls(np_http_client *c, np_tls_config *cfg);

/* Send a request and receive the response's head. headers: NULL or "Name", "value", ...
 * pairs ending with NULL; body of len bytes (Content-Length) or NULL. A request on a
 * reused connection that the server had closed is retried once on a new one. Returns
 * the response, or NULL/errno: EINVAL (bad URL), EPROTO (malformed response),
 * ECONNRESET, ETIMEDOUT, or dial's error. */
np_http_resp *np_http_do(np_http_client *c, const char *method, const char *url,
                         const char *const *headers, const void *body, size_t len);

/* np_http_do(c, "GET", url, NULL, NULL, 0). */
np_http_resp *np_http_get(np_http_client *c, const char *url);

/* Status code; header lookup (case-insensitive, first value, or NULL). */
int np_http_resp_status(const np_http_resp *r);
const char *np_http_resp_header(const np_http_resp *r, const char *name);

/* Read up to len bytes of the response body. Count, 0 at its end, or -1/errno. */
ssize_t np_http_resp_read(np_http_resp *r, void *buf, size_t len);

/* Finish with a response: a connection whose body was read to its end (or is drained
 * within 256 KiB) goes back to the client's pool, another is closed. Frees r. */
void np_http_resp_close(np_http_resp *r);

/* ---- debug pages -----------------------------------------------------------------------
 * Go's net/http/pprof and expvar for np. Register under "/debug/np/":
 *   /debug/np/            an HTML page showing the runtime live (refreshed every second)
 *   /debug/np/goroutines  the coroutine dump as text (as SIGQUIT prints it)
 *   /debug/np/vars        np_stats as JSON                                          */
void np_http_debug(np_http_req *req, np_http_rw *w, void *arg);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif
#endif
