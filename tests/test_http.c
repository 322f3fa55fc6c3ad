/* np_http end to end over loopback: the server against raw sockets that send exactly the
 * bytes a case needs (keep-alive, pipelining compared byte for byte, chunked both ways,
 * a streamed upload with bounded memory, slowloris, limits, request smuggling, 100-
 * continue, HTTP/1.0, graceful shutdown with requests in flight), and the client
 * against the server (reuse, retry, HEAD, chunked, timeouts) and, when NP_HTTP_NGINX
 * names one (tests/servers.sh), against nginx. */
#include "t.h"
#include <np_http.h>

#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>

#define MS 1000000LL
#define SEC 1000000000LL

/* ---- a server with the test routes -------------------------------------------------- */
typedef struct srv {
    np_http_server *s;
    int ln, port;
    char url[64];
    np_wg done;          /* np_http_serve returned */
    int serve_ret;
    np_tls_config *tls;  /* srv_start_tls: np_http_serve_tls */
} srv;

static np_chan *entered; /* /wait: a handler is in */
static np_chan *release; /* /wait: closed to let them answer */

static void hello(np_http_req *r, np_http_rw *w, void *a)
{
    (void)r, (void)a;
    np_http_reply(w, 200, "text/plain", "hello, world\n", 13);
}

/* The body back (Content-Length when short, chunked when long), its length in X-Len. */
static void echo(np_http_req *r, np_http_rw *w, void *a)
{
    (void)a;
    char *all = NULL;
    size_t n = 0;
    char buf[4096];
    ssize_t k;
    while ((k = np_http_req_read(r, buf, sizeof buf)) > 0) {
        all = realloc(all, n + (size_t)k);
        memcpy(all + n, buf, (size_t)k);
        n += (size_t)k;
    }
    if (k < 0) {
        free(all);
        return; /* the server answers 413 / closes */
    }
    char len[24];
    snprintf(len, sizeof len, "%zu", n);
    np_http_set_header(w, "X-Len", len);
    np_http_write(w, all, n);
    free(all);
}

/* Count and checksum the body, streamed in 64 KiB reads: "N SUM". */
static void count(np_http_req *r, np_http_rw *w, void *a)
{
    (void)a;
    enum { SZ = 65536 };
    char *buf = malloc(SZ); /* (not thread-local: the coroutine may change threads) */
    uint64_t n = 0, sum = 0;
    ssize_t k;
    while ((k = np_http_req_read(r, buf, SZ)) > 0)
        for (ssize_t i = 0; i < k; i++, n++)
            sum += (uint8_t)buf[i] * (n % 7 + 1);
    free(buf);
    if (k < 0)
        return;
    np_http_printf(w, "%llu %llu", (unsigned long long)n, (unsigned long long)sum);
}

static uint8_t pat(uint64_t i) { return (uint8_t)((i * 31 + 7) % 251); }

/* ?N bytes of pat() in 1000-byte writes: chunked. */
static void chunks(np_http_req *r, np_http_rw *w, void *a)
{
    (void)a;
    long n = atol(np_http_req_query(r));
    char buf[1000];
    for (long i = 0; i < n;) {
        size_t k = n - i < 1000 ? (size_t)(n - i) : 1000;
        for (size_t j = 0; j < k; j++)
            buf[j] = (char)pat((uint64_t)i + j);
        CHECK_EQ(np_http_write(w, buf, k), (ssize_t)k);
        i += (long)k;
    }
}

static void waiter(np_http_req *r, np_http_rw *w, void *a)
{
    (void)r, (void)a;
    char one = 1;
    np_chan_send(entered, &one);
    np_chan_recv(release, &one);
    np_http_reply(w, 200, "text/plain", "done\n", 5);
}

/* Answers without reading the body. */
static void nobody(np_http_req *r, np_http_rw *w, void *a)
{
    (void)r, (void)a;
    np_http_reply(w, 200, NULL, "ok", 2);
}

/* What the request looked like, one line per item. */
static void info(np_http_req *r, np_http_rw *w, void *a)
{
    (void)a;
    np_http_printf(w, "method=%s\ntarget=%s\npath=%s\nquery=%s\nminor=%d\n", np_http_req_method(r),
                   np_http_req_target(r), np_http_req_path(r), np_http_req_query(r),
                   np_http_req_minor(r));
    const char *v = np_http_req_header(r, "x-MiXeD");
    np_http_printf(w, "x-mixed=%s\nheaders=%d\n", v ? v : "(none)", np_http_req_header_count(r));
    const char *n, *val;
    CHECK_EQ(np_http_req_header_at(r, 0, &n, &val), 0);
    np_http_printf(w, "first=%s: %s\nremote=%.10s\n", n, val, np_http_req_remote(r));
    CHECK_ERR(np_http_req_header_at(r, 99, &n, &val), EINVAL);
    np_tls *t = np_http_req_tls(r);
    if (t)
        np_http_printf(w, "tls=%s sni=%s alpn=%s\n", np_tls_version(t), np_tls_servername(t),
                       np_tls_alpn(t));
}

static void flusher(np_http_req *r, np_http_rw *w, void *a)
{
    (void)r, (void)a;
    np_http_write(w, "a", 1);
    CHECK_EQ(np_http_flush(w), 0);
    CHECK(np_http_headers_sent(w));
    CHECK_ERR(np_http_set_status(w, 500), EALREADY);
    CHECK_ERR(np_http_set_header(w, "X", "y"), EALREADY);
    np_http_write(w, "b", 1);
}

/* 64 MB to a client that does not read: the write's error, once it comes. */
static _Atomic int big_err;
static void big(np_http_req *r, np_http_rw *w, void *a)
{
    (void)r, (void)a;
    char *buf = calloc(1, 1 << 20);
    int e = 0;
    for (int i = 0; i < 64 && !e; i++)
        if (np_http_write(w, buf, 1 << 20) < 0)
            e = t_errno();
    free(buf);
    atomic_store(&big_err, e ? e : -1);
}

static void serve_co(void *a)
{
    srv *v = a;
    v->serve_ret = v->tls ? np_http_serve_tls(v->s, v->ln, v->tls) : np_http_serve(v->s, v->ln);
    np_wg_done(&v->done);
}

/* Serve the test routes on a new listener, over TLS with tls (NULL: plain HTTP). */
static void srv_start_tls(srv *v, const np_http_opts *o, np_tls_config *tls)
{
    memset(v, 0, sizeof *v);
    v->tls = tls;
    CHECK((v->s = np_http_server_new(o)) != NULL);
    CHECK_EQ(np_http_handle(v->s, "/hello", hello, NULL), 0);
    CHECK_EQ(np_http_handle(v->s, "/echo", echo, NULL), 0);
    CHECK_EQ(np_http_handle(v->s, "/count", count, NULL), 0);
    CHECK_EQ(np_http_handle(v->s, "/chunks", chunks, NULL), 0);
    CHECK_EQ(np_http_handle(v->s, "/wait", waiter, NULL), 0);
    CHECK_EQ(np_http_handle(v->s, "/nobody", nobody, NULL), 0);
    CHECK_EQ(np_http_handle(v->s, "/info/", info, NULL), 0);
    CHECK_EQ(np_http_handle(v->s, "/flush", flusher, NULL), 0);
    CHECK_EQ(np_http_handle(v->s, "/big", big, NULL), 0);
    CHECK_EQ(np_http_handle(v->s, "/debug/np/", np_http_debug, NULL), 0);
    CHECK_ERR(np_http_handle(v->s, "/hello", hello, NULL), EEXIST);
    CHECK_ERR(np_http_handle(v->s, "nope", hello, NULL), EINVAL);
    CHECK((v->ln = np_listen("tcp", "127.0.0.1:0")) >= 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    CHECK_EQ(getsockname(v->ln, (struct sockaddr *)&sa, &sl), 0);
    v->port = ntohs(sa.sin_port);
    snprintf(v->url, sizeof v->url, "%s://127.0.0.1:%d", tls ? "https" : "http", v->port);
    np_wg_add(&v->done, 1);
    CHECK(np_go(serve_co, v) > 0);
}

static void srv_start(srv *v, const np_http_opts *o) { srv_start_tls(v, o, NULL); }

static void srv_stop(srv *v)
{
    CHECK_EQ(np_http_shutdown(v->s, np_now() + 10 * SEC), 0);
    np_wg_wait(&v->done);
    CHECK_EQ(v->serve_ret, 0);
    np_http_server_free(v->s);
}

/* Wait (yielding, bounded) until the server holds n connections: a connection's end is
 * seen by its client (the close) a moment before the server has counted it. */
static void wait_conns(np_http_server *s, int64_t n)
{
    int64_t t0 = np_now();
    while (np_http_server_conns(s) != n) {
        if (np_now() - t0 > 10 * SEC * (t_scale_v() > 1 ? 3 : 1)) {
            np_dump(2); /* where the connections' coroutines wait */
            FAILF("the server holds %lld connections, want %lld", (long long)np_http_server_conns(s),
                  (long long)n);
        }
        np_yield();
    }
}

/* ---- raw client helpers ------------------------------------------------------------- */
static int dial(const srv *v)
{
    char a[32];
    snprintf(a, sizeof a, "127.0.0.1:%d", v->port);
    int fd = np_dial("tcp", a, 5 * SEC);
    CHECK(fd >= 0);
    np_set_deadline(fd, np_now() + 20 * SEC * (t_scale_v() > 1 ? 3 : 1));
    return fd;
}

static void put(int fd, const char *s)
{
    CHECK_EQ(np_write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Everything until the server closes (at most cap - 1 bytes, NUL-terminated). */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t k;
    while (n < cap - 1 && (k = np_read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    CHECK(n < cap - 1);
    buf[n] = 0;
    return n;
}

/* One response: the head, then Content-Length bytes or a chunked body up to "0\r\n\r\n"
 * (the test responses have no trailers). NUL-terminated; returns its length. */
static size_t read_resp(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    char *he;
    for (;;) {
        buf[n] = 0;
        if ((he = strstr(buf, "\r\n\r\n")))
            break;
        ssize_t k = np_read(fd, buf + n, 1);
        if (k <= 0)
            FAILF("connection ended in a head: \"%s\" (%zd, errno %d)", buf, k, t_errno());
        n += (size_t)k;
    }
    size_t head = (size_t)(he + 4 - buf);
    const char *cl = strstr(buf, "Content-Length: ");
    if (cl && cl < he) {
        size_t want = head + (size_t)atol(cl + 16);
        CHECK(want < cap);
        while (n < want) {
            ssize_t k = np_read(fd, buf + n, want - n);
            CHECK(k > 0);
            n += (size_t)k;
        }
    } else if (strstr(buf, "Transfer-Encoding: chunked")) {
        for (;;) {
            buf[n] = 0;
            if (n >= head + 5 && memcmp(buf + n - 5, "0\r\n\r\n", 5) == 0 &&
                (n == head + 5 || buf[n - 6] == '\n'))
                break;
            CHECK(n < cap - 1);
            ssize_t k = np_read(fd, buf + n, 1);
            CHECK(k > 0);
            n += (size_t)k;
        }
    }
    buf[n] = 0;
    return n;
}

/* The Date header's value replaced by "D" (the only byte that changes between runs). */
static void undate(char *s)
{
    char *d = s;
    while ((d = strstr(d, "\r\nDate: "))) {
        char *v = d + 8, *e = strstr(v, "\r\n");
        if (!e)
            break;
        *v = 'D';
        memmove(v + 1, e, strlen(e) + 1);
        d = v;
    }
}

static const char HELLO[] = "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nhello, world\n";
static const char HELLO_CLOSE[] = "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: 13\r\nConnection: close\r\n\r\nhello, world\n";

static int64_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int64_t v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %" SCNd64, &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/* ---- cases -------------------------------------------------------------------------- */
static void m_hello_keepalive(void *a)
{
    (void)a;
    srv v;
    srv_start(&v, NULL);
    int fd = dial(&v);
    char buf[4096];
    for (int i = 0; i < 3; i++) {
        put(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        read_resp(fd, buf, sizeof buf);
        undate(buf);
        CHECK_EQ(strcmp(buf, HELLO), 0);
    }
    CHECK_EQ(np_http_server_conns(v.s), 1);
    put(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    read_all(fd, buf, sizeof buf);
    undate(buf);
    CHECK_EQ(strcmp(buf, HELLO_CLOSE), 0);
    np_close(fd);
    /* 404, and the redirect of a prefix route's bare name */
    fd = dial(&v);
    put(fd, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\nGET /info?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    read_all(fd, buf, sizeof buf);
    undate(buf);
    CHECK(strstr(buf, "HTTP/1.1 404 Not Found\r\n") == buf);
    CHECK(strstr(buf, "404 Not Found\n"));
    CHECK(strstr(buf, "HTTP/1.1 301 Moved Permanently\r\n"));
    CHECK(strstr(buf, "\r\nLocation: /info/?x=1\r\n"));
    np_close(fd);
    srv_stop(&v);
}
static void t_hello_keepalive_404_redirect(void) { T_RUN(m_hello_keepalive, NULL); }

static void m_request_fields(void *a)
{
    (void)a;
    srv v;
    srv_start(&v, NULL);
    int fd = dial(&v);
    char buf[4096];
    put(fd, "PUT /info/a%20b?q=1&r=2 HTTP/1.1\r\nHost: h\r\nX-Mixed:   spaced value  \r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n");
    read_all(fd, buf, sizeof buf);
    const char *body = strstr(buf, "\r\n\r\n") + 4;
    CHECK_EQ(strcmp(body, "method=PUT\ntarget=/info/a%20b?q=1&r=2\npath=/info/a%20b\nquery=q=1&r=2\n"
                          "minor=1\nx-mixed=spaced value\nheaders=4\nfirst=Host: h\nremote=127.0.0.1:\n"),
             0);
    np_close(fd);
    srv_stop(&v);
}
static void t_request_method_target_query_headers(void) { T_RUN(m_request_fields, NULL); }

/* 16 requests in one write (GETs, bodies with Content-Length, a chunked one, the last
 * with Connection: close): 16 responses in order, byte for byte, in one segment. */
static void m_pipelining(void *a)
{
    (void)a;
    srv v;
    srv_start(&v, NULL);
    char req[8192] = "", want[16384] = "";
    for (int i = 0; i < 16; i++) {
        char body[32], r[256], w[512];
        int bl = snprintf(body, sizeof body, "body-%02d", i);
        const char *conn = i == 15 ? "Connection: close\r\n" : "";
        const char *cw = i == 15 ? "Connection: close\r\n" : "";
        if (i % 4 == 0) {
            snprintf(r, sizeof r, "GET /hello HTTP/1.1\r\nHost: x\r\n%s\r\n", conn);
            snprintf(w, sizeof w, "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 13\r\n%s\r\nhello, world\n", cw);
        } else if (i % 4 == 3) {
            snprintf(r, sizeof r, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n%s\r\n"
                     "3\r\n%.3s\r\n%x\r\n%s\r\n0\r\n\r\n", conn, body, bl - 3, body + 3);
            snprintf(w, sizeof w, "HTTP/1.1 200 OK\r\nDate: D\r\nX-Len: %d\r\nContent-Length: %d\r\n%s\r\n%s",
                     bl, bl, cw, body);
        } else {
            snprintf(r, sizeof r, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s",
                     bl, conn, body);
            snprintf(w, sizeof w, "HTTP/1.1 200 OK\r\nDate: D\r\nX-Len: %d\r\nContent-Length: %d\r\n%s\r\n%s",
                     bl, bl, cw, body);
        }
        strcat(req, r);
        strcat(want, w);
    }
    int fd = dial(&v);
    put(fd, req);
    char got[16384];
    read_all(fd, got, sizeof got);
    undate(got);
    if (strcmp(got, want) != 0)
    {
        fprintf(stderr, "--- got\n%s\n--- want\n%s\n", got, want);
        FAILF("pipelined responses differ (above)");
    }
    /* the sixteen responses came in one write: one data segment on loopback */
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && tl >= offsetof(struct tcp_info, tcpi_data_segs_out))
        CHECK_EQ(ti.tcpi_data_segs_in, 1);
    np_close(fd);
    srv_stop(&v);
}
static void t_pipelining_in_order_byte_exact_one_write(void) { T_RUN(m_pipelining, NULL); }

/* Chunked upload (sizes around the buffer), chunked download through the client, and a
 * flush in the middle of a response. */
static void m_chunked(void *a)
{
    (void)a;
    srv v;
    srv_start(&v, NULL);
    int fd = dial(&v);
    static char buf[1 << 20];
    /* upload: 300 chunks of 0..299 bytes of pat() */
    uint64_t n = 0, sum = 0;
    put(fd, "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int c = 1; c < 300; c++) {
        char hdr[16], data[300];
        for (int j = 0; j < c; j++, n++) {
            data[j] = (char)pat(n);
            sum += pat(n) * (n % 7 + 1);
        }
        snprintf(hdr, sizeof hdr, "%x\r\n", c);
        put(fd, hdr);
        CHECK_EQ(np_write(fd, data, (size_t)c), c);
        put(fd, "\r\n");
    }
    put(fd, "0\r\n\r\n");
    read_resp(fd, buf, sizeof buf);
    char want[64];
    snprintf(want, sizeof want, "%llu %llu", (unsigned long long)n, (unsigned long long)sum);
    CHECK(strstr(buf, "\r\n\r\n") && strcmp(strstr(buf, "\r\n\r\n") + 4, want) == 0);
    /* download: 100,000 bytes in 1000-byte writes go out chunked */
    put(fd, "GET /chunks?100000 HTTP/1.1\r\nHost: x\r\n\r\n");
    size_t got = read_resp(fd, buf, sizeof buf);
    CHECK(strstr(buf, "\r\nTransfer-Encoding: chunked\r\n"));
    CHECK(!strstr(buf, "Content-Length"));
    CHECK(got > 100000);
    /* flush: "a" in a chunk of its own, then "b" */
    put(fd, "GET /flush HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(fd, buf, sizeof buf);
    CHECK(strstr(buf, "\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n"));
    np_close(fd);
    /* the client de-chunks */
    np_http_client *c = np_http_client_new(NULL);
    char url[128];
    snprintf(url, sizeof url, "%s/chunks?123457", v.url);
    np_http_resp *r = np_http_get(c, url);
    CHECK(r != NULL);
    CHECK_EQ(np_http_resp_status(r), 200);
    CHECK_EQ(strcmp(np_http_resp_header(r, "transfer-encoding"), "chunked"), 0);
    size_t total = 0;
    ssize_t k;
    while ((k = np_http_resp_read(r, buf, 777)) > 0) {
        for (ssize_t i = 0; i < k; i++)
            if ((uint8_t)buf[i] != pat(total + (size_t)i))
                FAILF("byte %zu differs", total + (size_t)i);
        total += (size_t)k;
    }
    CHECK_EQ(k, 0);
    CHECK_EQ(total, 123457);
    np_http_resp_close(r);
    np_http_client_free(c);
    srv_stop(&v);
}
static void t_chunked_upload_download_flush(void) { T_RUN(m_chunked, NULL); }

/* 100 MB (divided by NP_TEST_SCALE) streamed to a handler that counts it: the server's
 * memory does not grow with the body. */
typedef struct up { srv *v; uint64_t size; int64_t rss0, rss_max; np_wg done; } up;
static void uploader(void *a)
{
    up *u = a;
    int fd = dial(u->v);
    char head[128];
    snprintf(head, sizeof head, "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: %llu\r\n\r\n",
             (unsigned long long)u->size);
    put(fd, head);
    static char chunk[65536];
    uint64_t sum = 0;
    for (uint64_t at = 0; at < u->size;) {
        size_t k = u->size - at < sizeof chunk ? (size_t)(u->size - at) : sizeof chunk;
        for (size_t j = 0; j < k; j++) {
            chunk[j] = (char)pat(at + j);
            sum += pat(at + j) * ((at + j) % 7 + 1);
        }
        CHECK_EQ(np_write(fd, chunk, k), (ssize_t)k);
        at += k;
        if ((at & ((1 << 22) - 1)) == 0) {
            int64_t r = rss_kib();
            if (r > u->rss_max)
                u->rss_max = r;
        }
    }
    char buf[4096], want[64];
    read_resp(fd, buf, sizeof buf);
    snprintf(want, sizeof want, "%llu %llu", (unsigned long long)u->size, (unsigned long long)sum);
    CHECK_EQ(strcmp(strstr(buf, "\r\n\r\n") + 4, want), 0);
    np_close(fd);
    np_wg_done(&u->done);
}
static void m_upload(void *a)
{
    (void)a;
    srv v;
    np_http_opts o = {.max_body_bytes = -1};
    srv_start(&v, &o);
    up u = {.v = &v, .size = (uint64_t)t_scaled(100) * 1000000};
    u.rss0 = rss_kib();
    np_wg_add(&u.done, 1);
    np_go(uploader, &u);
    np_wg_wait(&u.done);
    int64_t grew = u.rss_max - u.rss0;
    printf("note: %llu MB streamed; RSS grew by %lld KiB at most\n",
           (unsigned long long)(u.size / 1000000), (long long)grew);
    CHECK(grew < 16 * 1024);
    srv_stop(&v);
}
static void t_upload_100mb_streamed_bounded_memory(void) { T_RUN(m_upload, NULL); }

/* A head trickled in past read_header_timeout: closed; a neighbour's requests go on. */
static np_chan *neighbour_done;
static void neighbour(void *a)
{
    srv *v = a;
    int fd = dial(v);
    char buf[4096];
    for (int i = 0; i < 10; i++) {
        put(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        read_resp(fd, buf, sizeof buf);
        undate(buf);
        CHECK_EQ(strcmp(buf, HELLO), 0);
        np_sleep(20 * MS);
    }
    np_close(fd);
    char one = 1;
    np_chan_send(neighbour_done, &one);
}
static void m_slowloris(void *a)
{
    (void)a;
    srv v;
    np_http_opts o = {.read_header_timeout_ns = 300 * MS};
    srv_start(&v, &o);
    neighbour_done = np_chan_new(1, 1);
    int fd = dial(&v);
    int64_t t0 = np_now();
    put(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    np_go(neighbour, &v);
    int64_t closed = 0;
    for (int i = 0; i < 200 && !closed; i++) {
        np_sleep(50 * MS);
        if (np_write(fd, "X-Slow: 1\r\n", 11) < 0) {
            closed = np_now();
            break;
        }
        /* has the server closed? (a read with a deadline already past does not wait) */
        char c;
        ssize_t k = recv(fd, &c, 1, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && t_errno() != EAGAIN))
            closed = np_now();
    }
    CHECK(closed);
    int64_t took = closed - t0;
    printf("note: trickled head closed after %lld ms (read_header_timeout 300 ms)\n",
           (long long)(took / MS));
    CHECK(took >= 300 * MS);
    CHECK(took < 3 * SEC * (t_scale_v() > 1 ? 3 : 1));
    char one;
    np_chan_recv(neighbour_done, &one);
    np_close(fd);
    srv_stop(&v);
    np_chan_free(neighbour_done);
}
static void t_slowloris_closed_neighbour_unaffected(void) { T_RUN(m_slowloris, NULL); }

/* Heads over max_header_bytes: 431 (one within the buffer, one far beyond); within: 200. */
static void m_limits(void *a)
{
    (void)a;
    srv v;
    np_http_opts o = {.max_header_bytes = 4096, .max_body_bytes = 1000};
    srv_start(&v, &o);
    static char req[200000], buf[8192];
    size_t sizes[] = {5000, 150000};
    for (int i = 0; i < 2; i++) {
        int fd = dial(&v);
        int n = snprintf(req, sizeof req, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
        memset(req + n, 'a', sizes[i]);
        strcpy(req + n + sizes[i], "\r\n\r\n");
        /* the server may answer and close before taking it all */
        np_write(fd, req, strlen(req));
        read_all(fd, buf, sizeof buf);
        CHECK(strstr(buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n") == buf);
        CHECK(strstr(buf, "\r\nConnection: close\r\n"));
        np_close(fd);
    }
    /* 60 headers, 3 KB: fine */
    int fd = dial(&v);
    strcpy(req, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 60; i++)
        sprintf(req + strlen(req), "X-H%02d: %040d\r\n", i, i);
    strcat(req, "Connection: close\r\n\r\n");
    put(fd, req);
    read_all(fd, buf, sizeof buf);
    CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    np_close(fd);
    /* bodies over max_body_bytes: 413, by Content-Length or while reading chunks */
    fd = dial(&v);
    put(fd, "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n");
    read_all(fd, buf, sizeof buf);
    CHECK(strstr(buf, "HTTP/1.1 413 Request Entity Too Large\r\n") == buf);
    np_close(fd);
    fd = dial(&v);
    put(fd, "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        memset(req, 'z', 600);
        sprintf(req + 600, "\r\n");
        put(fd, "258\r\n"); /* 600 */
        np_write(fd, req, 602);
    }
    put(fd, "0\r\n\r\n");
    read_all(fd, buf, sizeof buf);
    CHECK(strstr(buf, "HTTP/1.1 413 Request Entity Too Large\r\n") == buf);
    np_close(fd);
    srv_stop(&v);
}
static void t_limits_431_413(void) { T_RUN(m_limits, NULL); }

/* Content-Length together with Transfer-Encoding (either order), a malformed line, an
 * unknown version: 400 and the connection closed, nothing else answered. */
static void m_smuggling(void *a)
{
    (void)a;
    srv v;
    srv_start(&v, NULL);
    const char *bad[] = {
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost x\r\n\r\n",
        "GET /hello HTTP/7.1\r\nHost: x\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = dial(&v);
        char buf[4096];
        np_write(fd, bad[i], strlen(bad[i]));
        read_all(fd, buf, sizeof buf);
        if (strstr(buf, "HTTP/1.1 400 Bad Request\r\n") != buf)
            FAILF("request %zu: got \"%.150s\"", i, buf);
        CHECK(strstr(buf, "\r\nConnection: close\r\n"));
        CHECK(!strstr(buf + 1, "HTTP/1.1")); /* one response only */
        np_close(fd);
    }
    srv_stop(&v);
}
static void t_content_length_with_transfer_encoding_400(void) { T_RUN(m_smuggling, NULL); }

/* Expect: 100-continue: "100 Continue" when the handler reads, then the response; a
 * handler that does not read answers without it and closes. HTTP/1.0 closes unless
 * asked to keep alive. */
static void m_continue_http10(void *a)
{
    (void)a;
    srv v;
    srv_start(&v, NULL);
    static char buf[16384];
    int fd = dial(&v);
    put(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    size_t n = 0;
    while (n < 25) {
        ssize_t k = np_read(fd, buf + n, 25 - n);
        CHECK(k > 0);
        n += (size_t)k;
    }
    buf[n] = 0;
    CHECK_EQ(strcmp(buf, "HTTP/1.1 100 Continue\r\n\r\n"), 0);
    put(fd, "hello");
    read_resp(fd, buf, sizeof buf);
    CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    CHECK_EQ(strcmp(strstr(buf, "\r\n\r\n") + 4, "hello"), 0);
    put(fd, "POST /nobody HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    read_all(fd, buf, sizeof buf);
    CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    CHECK(strstr(buf, "\r\nConnection: close\r\n"));
    CHECK(!strstr(buf, "100 Continue"));
    np_close(fd);
    fd = dial(&v);
    put(fd, "GET /hello HTTP/1.0\r\n\r\n");
    read_all(fd, buf, sizeof buf);
    undate(buf);
    CHECK_EQ(strcmp(buf, HELLO_CLOSE), 0);
    np_close(fd);
    fd = dial(&v);
    put(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    read_resp(fd, buf, sizeof buf);
    CHECK(strstr(buf, "\r\nConnection: keep-alive\r\n"));
    put(fd, "GET /chunks?5000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    n = read_all(fd, buf, sizeof buf); /* no chunking in 1.0: the end of the connection */
    CHECK(strstr(buf, "\r\nConnection: close\r\n"));
    CHECK_EQ(n - (size_t)(strstr(buf, "\r\n\r\n") + 4 - buf), 5000); /* (bytes of pat(): NULs too) */
    np_close(fd);
    srv_stop(&v);
}
static void t_expect_continue_and_http10(void) { T_RUN(m_continue_http10, NULL); }

/* A body the handler did not read: dropped within drain_bytes (the connection goes on),
 * beyond it the connection closes. */
static void m_drain(void *a)
{
    (void)a;
    srv v;
    np_http_opts o = {.drain_bytes = 100000};
    srv_start(&v, &o);
    static char body[300000], buf[4096];
    memset(body, 'q', sizeof body);
    int fd = dial(&v);
    put(fd, "POST /nobody HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n");
    CHECK_EQ(np_write(fd, body, 50000), 50000);
    read_resp(fd, buf, sizeof buf);
    CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    put(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(fd, buf, sizeof buf);
    undate(buf);
    CHECK_EQ(strcmp(buf, HELLO), 0);
    put(fd, "POST /nobody HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n");
    np_write(fd, body, sizeof body); /* may fail: the server closes */
    read_all(fd, buf, sizeof buf);
    CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    np_close(fd);
    srv_stop(&v);
}
static void t_unread_body_drained_or_closed(void) { T_RUN(m_drain, NULL); }

/* Graceful shutdown: 100 requests in handlers and 5 idle connections. The idle ones are
 * closed, the listener stops, each of the 100 is answered, then shutdown returns. */
typedef struct inflight { srv *v; _Atomic int answered; np_wg done; } inflight;
static void inflight_client(void *a)
{
    inflight *f = a;
    int fd = dial(f->v);
    char buf[4096];
    put(fd, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    read_all(fd, buf, sizeof buf);
    if (strstr(buf, "HTTP/1.1 200 OK\r\n") == buf && strstr(buf, "\r\nConnection: close\r\n") &&
        strcmp(strstr(buf, "\r\n\r\n") + 4, "done\n") == 0)
        atomic_fetch_add(&f->answered, 1);
    np_close(fd);
    np_wg_done(&f->done);
}
typedef struct sd { srv *v; int ret; _Atomic bool finished; np_wg done; } sd;
static void shutdown_co(void *a)
{
    sd *s = a;
    s->ret = np_http_shutdown(s->v->s, np_now() + 30 * SEC);
    atomic_store(&s->finished, true);
    np_wg_done(&s->done);
}
static void m_shutdown(void *a)
{
    (void)a;
    srv v;
    srv_start(&v, NULL);
    entered = np_chan_new(1, 0);
    release = np_chan_new(1, 0);
    int idle[5];
    char buf[4096];
    for (int i = 0; i < 5; i++) {
        idle[i] = dial(&v);
        put(idle[i], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        read_resp(idle[i], buf, sizeof buf);
    }
    inflight f = {.v = &v};
    int n = (int)t_coroutines(100);
    np_wg_add(&f.done, n);
    for (int i = 0; i < n; i++)
        np_go(inflight_client, &f);
    char one;
    for (int i = 0; i < n; i++)
        np_chan_recv(entered, &one);
    CHECK_EQ(np_http_server_conns(v.s), n + 5);
    sd s = {.v = &v};
    np_wg_add(&s.done, 1);
    np_go(shutdown_co, &s);
    /* the listener goes, then the idle connections end */
    np_wg_wait(&v.done);
    CHECK_EQ(v.serve_ret, 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", v.port);
    CHECK_ERR(np_dial("tcp", addr, SEC), ECONNREFUSED);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(np_read(idle[i], buf, sizeof buf), 0);
        np_close(idle[i]);
    }
    CHECK_EQ(atomic_load(&f.answered), 0);
    wait_conns(v.s, n);
    CHECK(!atomic_load(&s.finished)); /* the requests in progress hold it */
    np_chan_close(release);
    np_wg_wait(&f.done);
    np_wg_wait(&s.done);
    CHECK_EQ(s.ret, 0);
    CHECK_EQ(atomic_load(&f.answered), n);
    wait_conns(v.s, 0);
    np_http_server_free(v.s);
    np_chan_free(entered);
    np_chan_free(release);
}
static void t_graceful_shutdown_100_in_flight_answered(void) { T_RUN(m_shutdown, NULL); }

/* A deadline that passes with a handler still in: ETIMEDOUT, the connection is cut. */
static void m_shutdown_deadline(void *a)
{
    (void)a;
    srv v;
    srv_start(&v, NULL);
    entered = np_chan_new(1, 0);
    release = np_chan_new(1, 0);
    int fd = dial(&v);
    put(fd, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    char one;
    np_chan_recv(entered, &one);
    int64_t t0 = np_now();
    CHECK_ERR(np_http_shutdown(v.s, np_now() + 200 * MS), ETIMEDOUT);
    CHECK(np_now() - t0 >= 200 * MS);
    np_chan_close(release);
    char buf[4096];
    CHECK_EQ(read_all(fd, buf, sizeof buf), 0); /* the connection was cut: no answer */
    np_close(fd);
    np_wg_wait(&v.done);
    np_http_server_free(v.s);
    np_chan_free(entered);
    np_chan_free(release);
}
static void t_shutdown_deadline_etimedout(void) { T_RUN(m_shutdown_deadline, NULL); }

/* Idle keep-alive connections end after idle_timeout. */
static void m_idle(void *a)
{
    (void)a;
    srv v;
    np_http_opts o = {.idle_timeout_ns = 200 * MS};
    srv_start(&v, &o);
    int fd = dial(&v);
    char buf[4096];
    put(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(fd, buf, sizeof buf);
    int64_t t0 = np_now();
    CHECK_EQ(np_read(fd, buf, sizeof buf), 0);
    CHECK(np_now() - t0 >= 150 * MS);
    np_close(fd);
    srv_stop(&v);
}
static void t_idle_timeout_closes(void) { T_RUN(m_idle, NULL); }

/* A client that stops reading: the response's write fails after write_timeout and the
 * connection is closed. */
static void m_write_timeout(void *a)
{
    (void)a;
    srv v;
    np_http_opts o = {.write_timeout_ns = 300 * MS};
    srv_start(&v, &o);
    int fd = dial(&v);
    int64_t t0 = np_now();
    put(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    while (!atomic_load(&big_err)) {
        if (np_now() - t0 > 20 * SEC)
            FAILF("the handler's writes neither failed nor finished");
        np_yield();
    }
    int64_t took = np_now() - t0;
    CHECK_EQ(atomic_load(&big_err), ETIMEDOUT);
    CHECK(took >= 300 * MS);
    printf("note: a client that does not read: the write failed after %lld ms (write_timeout 300 ms)\n",
           (long long)(took / MS));
    wait_conns(v.s, 0);
    np_close(fd);
    srv_stop(&v);
}
static void t_write_timeout_client_not_reading(void) { T_RUN(m_write_timeout, NULL); }

/* The client: connections reused, HEAD, a body sent, errors, the retry of a request on
 * a kept connection the server has closed meanwhile, a server that never answers. */
static void m_client(void *a)
{
    (void)a;
    srv v;
    np_http_opts o = {.idle_timeout_ns = 300 * MS};
    srv_start(&v, &o);
    np_http_client *c = np_http_client_new(NULL);
    char url[128], buf[4096];
    snprintf(url, sizeof url, "%s/hello", v.url);
    for (int i = 0; i < 20; i++) {
        np_http_resp *r = np_http_get(c, url);
        CHECK(r != NULL);
        CHECK_EQ(np_http_resp_status(r), 200);
        CHECK_EQ(strcmp(np_http_resp_header(r, "content-type"), "text/plain"), 0);
        CHECK_EQ(np_http_resp_read(r, buf, sizeof buf), 13);
        CHECK_EQ(np_http_resp_read(r, buf + 13, sizeof buf), 0);
        CHECK_EQ(memcmp(buf, "hello, world\n", 13), 0);
        np_http_resp_close(r);
    }
    CHECK_EQ(np_http_server_conns(v.s), 1);
    np_http_resp *r = np_http_do(c, "HEAD", url, NULL, NULL, 0);
    CHECK(r != NULL);
    CHECK_EQ(strcmp(np_http_resp_header(r, "Content-Length"), "13"), 0);
    CHECK_EQ(np_http_resp_read(r, buf, sizeof buf), 0);
    np_http_resp_close(r);
    snprintf(url, sizeof url, "%s/echo", v.url);
    const char *hdrs[] = {"X-Test", "1", NULL};
    r = np_http_do(c, "POST", url, hdrs, "payload", 7);
    CHECK(r != NULL);
    CHECK_EQ(strcmp(np_http_resp_header(r, "X-Len"), "7"), 0);
    CHECK_EQ(np_http_resp_read(r, buf, sizeof buf), 7);
    np_http_resp_close(r);
    CHECK_EQ(np_http_server_conns(v.s), 1);
    /* the server drops the kept connection (idle timeout); the next request is retried */
    wait_conns(v.s, 0);
    int64_t t0;
    snprintf(url, sizeof url, "%s/hello", v.url);
    r = np_http_get(c, url);
    CHECK(r != NULL);
    CHECK_EQ(np_http_resp_status(r), 200);
    np_http_resp_close(r);
    /* a URL with a query and no path, and a fragment (not sent) */
    snprintf(url, sizeof url, "%s?a=1#frag", v.url);
    r = np_http_get(c, url);
    CHECK(r && np_http_resp_status(r) == 404);
    np_http_resp_close(r);
    snprintf(url, sizeof url, "%s/info/x?b=2#frag", v.url);
    r = np_http_get(c, url);
    CHECK(r && np_http_resp_status(r) == 200);
    ssize_t got = np_http_resp_read(r, buf, sizeof buf - 1);
    CHECK(got > 0);
    buf[got] = 0;
    CHECK(strstr(buf, "target=/info/x?b=2\n"));
    np_http_resp_close(r);
    /* bad URLs */
    CHECK(np_http_get(c, "ftp://x/") == NULL && t_errno() == EINVAL);
    CHECK(np_http_get(c, "http:///x") == NULL && t_errno() == EINVAL);
    CHECK(np_http_get(c, "http://127.0.0.1:x/") == NULL && t_errno() == EINVAL);
    np_http_client_free(c);
    /* a server that accepts and never answers: the client's timeout */
    int ln = np_listen("tcp", "127.0.0.1:0");
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getsockname(ln, (struct sockaddr *)&sa, &sl);
    np_http_client_opts co = {.timeout_ns = 200 * MS};
    c = np_http_client_new(&co);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(sa.sin_port));
    t0 = np_now();
    CHECK(np_http_get(c, url) == NULL);
    CHECK_EQ(t_errno(), ETIMEDOUT);
    CHECK(np_now() - t0 >= 200 * MS);
    np_http_client_free(c);
    np_close(ln);
    srv_stop(&v);
}
static void t_client_reuse_head_retry_timeout(void) { T_RUN(m_client, NULL); }

/* GET base + path with c: 200, a Content-Type starting with ctype, the body into buf
 * (NUL-terminated). */
static void get_all(np_http_client *c, const char *base, const char *path, char *buf, size_t cap,
                    const char *ctype)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    np_http_resp *r = np_http_get(c, url);
    CHECK(r && np_http_resp_status(r) == 200);
    const char *ct = np_http_resp_header(r, "Content-Type");
    CHECK(ct && strncmp(ct, ctype, strlen(ctype)) == 0);
    size_t n = 0;
    ssize_t k;
    while ((k = np_http_resp_read(r, buf + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    CHECK_EQ(k, 0);
    buf[n] = 0;
    np_http_resp_close(r);
}

/* The debug pages: the HTML, the JSON (against np_stats), the dump. */
static void m_debug(void *a)
{
    (void)a;
    srv v;
    srv_start(&v, NULL);
    np_http_client *c = np_http_client_new(NULL);
    static char buf[1 << 16];
    get_all(c, v.url, "/debug/np/", buf, sizeof buf, "text/html");
    CHECK(strstr(buf, "id=\"v-coroutines\""));
    CHECK(strstr(buf, "setInterval(tick,1000)"));
    get_all(c, v.url, "/debug/np/vars", buf, sizeof buf, "application/json");
    np_stats s;
    CHECK_EQ(np_stats_get(&s), 0);
    char want[64];
    snprintf(want, sizeof want, "\"procs\":%lld,", (long long)s.procs);
    CHECK(strstr(buf, want));
    /* this coroutine, the server's, the connection's: at least 3, all counted */
    const char *co = strstr(buf, "\"coroutines\":");
    CHECK(co && atol(co + 13) >= 3);
    get_all(c, v.url, "/debug/np/goroutines", buf, sizeof buf, "text/plain");
    CHECK(strstr(buf, "coroutine dump"));
    CHECK(strstr(buf, "np_http_serve"));
    np_http_client_free(c);
    srv_stop(&v);
}
static void t_debug_pages_html_vars_goroutines(void) { T_RUN(m_debug, NULL); }

/* The client against nginx (tests/servers.sh sets NP_HTTP_NGINX to its base URL). */
static void m_nginx(void *a)
{
    const char *base = a;
    np_http_client *c = np_http_client_new(NULL);
    char url[256];
    static char buf[1 << 21];
    for (int i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "%s/hello.txt", base);
        np_http_resp *r = np_http_get(c, url);
        CHECK(r && np_http_resp_status(r) == 200);
        CHECK_EQ(np_http_resp_read(r, buf, sizeof buf), 17);
        CHECK_EQ(memcmp(buf, "hello from nginx\n", 17), 0);
        np_http_resp_close(r);
    }
    snprintf(url, sizeof url, "%s/big.bin", base);
    np_http_resp *r = np_http_get(c, url);
    CHECK(r && np_http_resp_status(r) == 200);
    size_t n = 0;
    ssize_t k;
    while ((k = np_http_resp_read(r, buf + n, sizeof buf - n)) > 0)
        n += (size_t)k;
    CHECK_EQ(k, 0);
    CHECK_EQ(n, 1048576);
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)buf[i] != pat(i))
            FAILF("byte %zu from nginx differs", i);
    np_http_resp_close(r);
    snprintf(url, sizeof url, "%s/missing", base);
    r = np_http_get(c, url);
    CHECK(r && np_http_resp_status(r) == 404);
    np_http_resp_close(r);
    np_http_client_free(c);
}
static void t_client_against_nginx(void)
{
    const char *base = getenv("NP_HTTP_NGINX");
    if (!base)
        T_SKIP("NP_HTTP_NGINX not set (tests/servers.sh runs this case against nginx)");
    T_RUN(m_nginx, (void *)base);
}

/* HTTPS: np_http_serve_tls and the client's https:// (keep-alive over one TLS
 * connection, a 1 MiB body both ways, the handler sees the TLS connection), the
 * client's default config (the system's CA store) refusing the test CA, and a plain
 * HTTP request to the HTTPS port getting no HTTP answer. */
/* A response body into buf (up to cap): its length, or -1. */
static ssize_t resp_all(np_http_resp *r, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t k = 0;
    while (got < cap && (k = np_http_resp_read(r, buf + got, cap - got)) > 0)
        got += (size_t)k;
    return k < 0 ? -1 : (ssize_t)got;
}

static void m_https(void *a)
{
    (void)a;
    char err[256];
    np_tls_opts so = {.cert_file = t_cert("server.pem"), .key_file = t_cert("server.key"),
                      .alpn = "http/1.1"};
    np_tls_config *scfg = np_tls_config_new(1, &so, err, sizeof err);
    if (!scfg)
        FAILF("%s", err);
    srv v;
    srv_start_tls(&v, &(np_http_opts){.read_header_timeout_ns = 500 * MS}, scfg);
    np_http_client *c = np_http_client_new(NULL);
    np_tls_config *cc = np_tls_config_new(0, &(np_tls_opts){.ca_file = t_cert("ca.pem"), .alpn = "http/1.1"},
                                          err, sizeof err);
    CHECK(cc != NULL);
    CHECK_EQ(np_http_client_set_tls(c, cc), 0);
    np_tls_config_free(cc); /* the client holds its own reference */
    char url[96], buf[256];
    for (int i = 0; i < 20; i++) {
        snprintf(url, sizeof url, "https://localhost:%d/info/x?i=%d", v.port, i);
        np_http_resp *r = np_http_get(c, url);
        if (!r)
            FAILF("GET %s: %s", url, strerror(t_errno()));
        CHECK_EQ(np_http_resp_status(r), 200);
        ssize_t n = resp_all(r, buf, sizeof buf - 1);
        CHECK(n > 0);
        buf[n] = 0;
        CHECK(strstr(buf, "tls=TLSv1.3 sni=localhost alpn=http/1.1") != NULL);
        np_http_resp_close(r);
        CHECK_EQ(np_http_server_conns(v.s), 1); /* one TLS connection kept alive */
    }
    size_t len = 1 << 20;
    char *body = malloc(len), *back = malloc(len);
    for (size_t i = 0; i < len; i++)
        body[i] = (char)(i * 7 + (i >> 9));
    snprintf(url, sizeof url, "https://127.0.0.1:%d/echo", v.port);
    np_http_resp *r = np_http_do(c, "POST", url, NULL, body, len);
    CHECK(r != NULL);
    CHECK_EQ(np_http_resp_status(r), 200);
    CHECK_EQ(resp_all(r, back, len), (ssize_t)len);
    CHECK(memcmp(body, back, len) == 0);
    np_http_resp_close(r);
    free(body), free(back);
    /* the TLS counters in /debug/np/vars (over HTTPS too) */
    snprintf(url, sizeof url, "https://localhost:%d/debug/np/vars", v.port);
    static char js[8192];
    CHECK((r = np_http_get(c, url)) != NULL);
    CHECK(resp_all(r, js, sizeof js - 1) > 0);
    np_http_resp_close(r);
    np_tls_stats ts;
    np_tls_stats_get(&ts);
    const char *h = strstr(js, "\"tls\":{\"open\":");
    CHECK(h && strstr(h, "\"handshakes\":") && strstr(h, "\"ktls_available\":"));
    CHECK_EQ(atol(h + 14), ts.open); /* two kept connections: the client's and the server's sides */
    CHECK_EQ(ts.open, 4);
    CHECK(atol(strstr(h, "\"handshakes\":") + 13) >= 2);
    np_http_client_free(c);
    /* the default config: the system's store does not know the test CA */
    c = np_http_client_new(NULL);
    snprintf(url, sizeof url, "https://localhost:%d/hello", v.port);
    CHECK(np_http_get(c, url) == NULL);
    CHECK_EQ(t_errno(), EKEYREJECTED);
    np_http_client_free(c);
    /* a client that connects and never starts its handshake: closed after the
     * read-header timeout */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", v.port);
    int fd = np_dial("tcp", addr, 5 * SEC);
    int64_t t0 = np_now();
    CHECK_EQ(np_read(fd, buf, sizeof buf), 0);
    int64_t took = np_now() - t0;
    CHECK(took >= 500 * MS && took < 5 * SEC);
    np_close(fd);
    /* plain HTTP to the HTTPS port: the handshake fails, no HTTP answer */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hello", v.port);
    c = np_http_client_new(NULL);
    CHECK(np_http_get(c, url) == NULL);
    np_http_client_free(c);
    srv_stop(&v);
    np_tls_config_free(scfg);
}

static void t_https(void) { T_RUN(m_https, NULL); }

static const t_case cases[] = {
    T(t_https),
    T(t_hello_keepalive_404_redirect),
    T(t_request_method_target_query_headers),
    T(t_pipelining_in_order_byte_exact_one_write),
    T(t_chunked_upload_download_flush),
    T(t_upload_100mb_streamed_bounded_memory),
    T(t_slowloris_closed_neighbour_unaffected),
    T(t_limits_431_413),
    T(t_content_length_with_transfer_encoding_400),
    T(t_expect_continue_and_http10),
    T(t_unread_body_drained_or_closed),
    T(t_graceful_shutdown_100_in_flight_answered),
    T(t_shutdown_deadline_etimedout),
    T(t_idle_timeout_closes),
    T(t_write_timeout_client_not_reading),
    T(t_client_reuse_head_retry_timeout),
    T(t_debug_pages_html_vars_goroutines),
    T(t_client_against_nginx),
    {0},
};
T_MAIN(cases)
