/* np_tls over loopback: np's client and server against each other and against real
 * peers (openssl s_server and s_client, TLS 1.2 and 1.3, several ciphers), resumption,
 * ALPN and SNI; certificate verification failures (self-signed, wrong host, expired,
 * unknown CA) and a protocol mismatch; garbage, a truncated record, a stalled handshake
 * and read deadlines; close waking a blocked reader and writer; one reader and one
 * writer at once on two threads; 1,000 connections echoing on 2 Ps with every byte
 * checked while coroutines move between threads; the kTLS detection and fallback. The
 * certificates are made by tests/certs.sh (openssl req) into build/test-certs. */
#include "t.h"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation" /* messages may be cut short */
#endif
#include <np_tls.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#define MS 1000000LL
#define SEC 1000000000LL

extern char **environ;

/* ---- certificates and peers ------------------------------------------------------- */
#define cdir t_cert_dir
#define cf t_cert

/* A port for a peer to listen on: free now, and below the ephemeral range (32768-60999),
 * which any connection's local end may take before the peer binds. */
static int free_port(void)
{
    static uint64_t seed;
    if (!seed)
        seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    for (;;) {
        int p = 10000 + (int)(t_rand(&seed) % 22000);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        if (ok)
            return p;
    }
}

static int port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
    return ntohs(a.sin_port);
}

/* Start argv with stdin from in_fd (-1: /dev/null) and stdout+stderr to out_fd. */
static pid_t spawn(char *const argv[], int in_fd, int out_fd)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (in_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
    pid_t pid;
    int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0)
        FAILF("spawn %s: %s", argv[0], strerror(r));
    return pid;
}

static void need_openssl(void)
{
    if (system("openssl version >/dev/null 2>&1") != 0)
        T_SKIP("no openssl command");
}

/* openssl s_server -rev (each line back reversed) for one connection; returns once it
 * has printed ACCEPT (it listens). *out: a FILE on its output. */
static pid_t s_server(int port, const char *const *extra, FILE **out)
{
    char acc[32];
    snprintf(acc, sizeof acc, "127.0.0.1:%d", port);
    char *argv[32] = {"openssl", "s_server", "-accept", acc, "-cert", (char *)cf("server.pem"),
                      "-key", (char *)cf("server.key"), "-rev", "-naccept", "1"};
    int n = 11;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = spawn(argv, -1, p[1]);
    close(p[1]);
    *out = fdopen(p[0], "r");
    char line[512];
    while (fgets(line, sizeof line, *out))
        if (strncmp(line, "ACCEPT", 6) == 0)
            return pid;
    FAILF("s_server ended before ACCEPT");
    return -1;
}

/* ---- configs ---------------------------------------------------------------------- */
static np_tls_config *server_cfg(const char *cert, const np_tls_opts *base)
{
    np_tls_opts o = base ? *base : (np_tls_opts){0};
    char c[64], k[64];
    snprintf(c, sizeof c, "%s.pem", cert);
    snprintf(k, sizeof k, "%s.key", cert);
    o.cert_file = cf(c);
    o.key_file = cf(k);
    char err[256];
    np_tls_config *cfg = np_tls_config_new(1, &o, err, sizeof err);
    if (!cfg)
        FAILF("server config: %s", err);
    return cfg;
}

static np_tls_config *client_cfg(const np_tls_opts *base)
{
    np_tls_opts o = base ? *base : (np_tls_opts){0};
    if (!o.ca_file && !o.insecure_skip_verify && !o.ca_dir)
        o.ca_file = cf("ca.pem");
    char err[256];
    np_tls_config *cfg = np_tls_config_new(0, &o, err, sizeof err);
    if (!cfg)
        FAILF("client config: %s", err);
    return cfg;
}

/* ---- an in-process TLS server: accepts n connections, runs fn on each -------------- */
typedef struct srv {
    int ln, port, n;
    np_tls_config *cfg;
    void (*fn)(np_tls *t, void *arg);
    void *arg;
    np_wg wg; /* the accept loop and every connection */
} srv;

typedef struct sconn { srv *s; np_tls *t; } sconn;

static void sconn_main(void *a)
{
    sconn *c = a;
    c->s->fn(c->t, c->s->arg);
    np_tls_close(c->t);
    np_wg_done(&c->s->wg);
    free(c);
}

static void accept_loop(void *a)
{
    srv *s = a;
    for (int i = 0; i < s->n; i++) {
        int fd = np_accept(s->ln, NULL, NULL);
        CHECK(fd >= 0);
        sconn *c = malloc(sizeof *c);
        c->s = s;
        CHECK((c->t = np_tls_server(fd, s->cfg)) != NULL);
        np_wg_add(&s->wg, 1);
        CHECK(np_go(sconn_main, c) > 0);
    }
    np_close(s->ln);
    np_wg_done(&s->wg);
}

static void srv_start(srv *s, np_tls_config *cfg, int n, void (*fn)(np_tls *, void *), void *arg)
{
    memset(s, 0, sizeof *s);
    CHECK((s->ln = np_listen("tcp", "127.0.0.1:0")) >= 0);
    s->port = port_of(s->ln);
    s->n = n, s->cfg = cfg, s->fn = fn, s->arg = arg;
    np_wg_add(&s->wg, 1);
    CHECK(np_go(accept_loop, s) > 0);
}

/* Wait for the server's connections, then drop its config. */
static void srv_end(srv *s)
{
    np_wg_wait(&s->wg);
    np_tls_config_free(s->cfg);
}

static np_tls *dial(int port, np_tls_config *cfg, const char *name)
{
    char a[32];
    snprintf(a, sizeof a, "127.0.0.1:%d", port);
    int fd = np_dial("tcp", a, 5 * SEC);
    CHECK(fd >= 0);
    np_tls *t = np_tls_client(fd, cfg, name);
    CHECK(t != NULL);
    return t;
}

/* Echo until end or error. */
static void echo(np_tls *t, void *arg)
{
    (void)arg;
    char buf[16384];
    ssize_t n;
    while ((n = np_tls_read(t, buf, sizeof buf)) > 0)
        if (np_tls_write(t, buf, (size_t)n) != n)
            break;
}

static ssize_t read_full(np_tls *t, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = np_tls_read(t, (char *)buf + got, len - got);
        if (n <= 0)
            return n < 0 ? -1 : (ssize_t)got;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static unsigned char pat(uint64_t seed, size_t i) { return (unsigned char)((i * 2654435761u + seed) >> 7); }

/* ---- round trips, ALPN, SNI, resumption, shutdown ----------------------------------- */
typedef struct rt { char sni[64]; char alpn[32]; int resumed; ssize_t last; int err; } rt;

static void rt_server(np_tls *t, void *arg)
{
    rt *r = arg;
    CHECK_EQ(np_tls_handshake(t), 0);
    snprintf(r->sni, sizeof r->sni, "%s", np_tls_servername(t) ? np_tls_servername(t) : "");
    snprintf(r->alpn, sizeof r->alpn, "%s", np_tls_alpn(t) ? np_tls_alpn(t) : "");
    r->resumed = np_tls_resumed(t);
    char buf[65536];
    ssize_t n;
    while ((n = np_tls_read(t, buf, sizeof buf)) > 0)
        CHECK_EQ(np_tls_write(t, buf, (size_t)n), n);
    r->last = n;
    r->err = n < 0 ? t_errno() : 0;
}

static void roundtrip_main(void *a)
{
    (void)a;
    rt r[3];
    memset(r, 0, sizeof r);
    np_tls_opts so = {.alpn = "h2,http/1.1"};
    np_tls_config *cc = client_cfg(&(np_tls_opts){.alpn = "http/1.1"});
    np_tls_stats s0, s1;
    np_tls_stats_get(&s0);
    for (int i = 0; i < 3; i++) {
        srv s;
        srv_start(&s, server_cfg("server", &so), 1, rt_server, &r[i]);
        np_tls *t = dial(s.port, cc, "localhost");
        CHECK_EQ(np_tls_handshake(t), 0);
        CHECK(strcmp(np_tls_version(t), "TLSv1.3") == 0);
        CHECK(np_tls_alpn(t) && strcmp(np_tls_alpn(t), "http/1.1") == 0);
        CHECK_EQ(np_tls_resumed(t), 0); /* each server has fresh ticket keys */
        CHECK_EQ(np_tls_error(t)[0], 0);
        /* 1 MiB each way, checked */
        size_t len = 1 << 20;
        unsigned char *out = malloc(len), *in = malloc(len);
        for (size_t k = 0; k < len; k++)
            out[k] = pat((uint64_t)i, k);
        CHECK_EQ(np_tls_write(t, out, 1000), 1000); /* round trip first: tickets arrive */
        CHECK_EQ(read_full(t, in, 1000), 1000);
        struct iovec iov[3] = {{out + 1000, 10}, {out + 1010, 3000}, {out + 4010, len - 4010}};
        CHECK_EQ(np_tls_writev(t, iov, 3), (ssize_t)(len - 1000));
        CHECK_EQ(read_full(t, in + 1000, len - 1000), (ssize_t)(len - 1000));
        CHECK(memcmp(in, out, len) == 0);
        free(out), free(in);
        CHECK_EQ(np_tls_shutdown(t), 0); /* the server reads 0, not an error */
        CHECK_EQ(np_tls_read(t, &len, 1), 0); /* its close_notify */
        CHECK_EQ(np_tls_close(t), 0);
        srv_end(&s);
        CHECK(strcmp(r[i].sni, "localhost") == 0);
        CHECK(strcmp(r[i].alpn, "http/1.1") == 0);
        CHECK_EQ(r[i].last, 0);
    }
    /* resumption: one server (its ticket keys, its port), three clients in turn: the
     * 2nd and 3rd resume the session the one before got */
    rt q = {0};
    np_tls_config *scfg = server_cfg("server", &so);
    srv s;
    srv_start(&s, scfg, 3, rt_server, &q);
    for (int i = 0; i < 3; i++) {
        np_tls *t = dial(s.port, cc, "localhost");
        char b[4] = "abc";
        CHECK_EQ(np_tls_write(t, b, 3), 3);
        CHECK_EQ(read_full(t, b, 3), 3);
        CHECK_EQ(np_tls_resumed(t), i > 0);
        CHECK_EQ(np_tls_close(t), 0);
    }
    np_wg_wait(&s.wg);
    CHECK_EQ(q.resumed, 1);
    np_tls_config_free(scfg);
    np_tls_config_free(cc);
    np_tls_stats_get(&s1);
    CHECK_EQ(s1.handshakes - s0.handshakes, 12);
    CHECK_EQ(s1.resumed - s0.resumed, 4);
    CHECK_EQ(s1.failed - s0.failed, 0);
    CHECK_EQ(s1.open, s0.open);
}

static void t_roundtrip(void) { T_RUN(roundtrip_main, NULL); }

/* ---- versions and ciphers, np against np ---------------------------------------- */
static void versions_main(void *a)
{
    (void)a;
    static const struct { int v; const char *c12, *c13, *want_v, *want_c; } k[] = {
        {NP_TLS_1_2, "ECDHE-ECDSA-AES128-GCM-SHA256", NULL, "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"},
        {NP_TLS_1_2, "ECDHE-ECDSA-AES256-GCM-SHA384", NULL, "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"},
        {NP_TLS_1_2, "ECDHE-ECDSA-CHACHA20-POLY1305", NULL, "TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"},
        {NP_TLS_1_3, NULL, "TLS_AES_128_GCM_SHA256", "TLSv1.3", "TLS_AES_128_GCM_SHA256"},
        {NP_TLS_1_3, NULL, "TLS_AES_256_GCM_SHA384", "TLSv1.3", "TLS_AES_256_GCM_SHA384"},
        {NP_TLS_1_3, NULL, "TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        np_tls_opts so = {.min_version = k[i].v, .max_version = k[i].v, .ciphers = k[i].c12,
                          .ciphersuites = k[i].c13};
        np_tls_config *cc = client_cfg(NULL);
        np_tls_config *sc = server_cfg("server", &so);
        srv s;
        srv_start(&s, sc, 2, echo, NULL);
        for (int j = 0; j < 2; j++) { /* the second resumes (1.2: a ticket too) */
            np_tls *t = dial(s.port, cc, "127.0.0.1"); /* an IP: matched against the SAN */
            char b[100];
            for (int m = 0; m < 100; m++)
                b[m] = (char)m;
            CHECK_EQ(np_tls_write(t, b, 100), 100);
            memset(b, 0, sizeof b);
            CHECK_EQ(read_full(t, b, 100), 100);
            for (int m = 0; m < 100; m++)
                CHECK_EQ(b[m], m);
            if (strcmp(np_tls_version(t), k[i].want_v) || strcmp(np_tls_cipher(t), k[i].want_c))
                FAILF("case %zu: %s %s", i, np_tls_version(t), np_tls_cipher(t));
            CHECK_EQ(np_tls_resumed(t), j);
            CHECK_EQ(np_tls_servername(t), NULL); /* no SNI for an IP */
            np_tls_close(t);
        }
        srv_end(&s);
        np_tls_config_free(cc);
    }
}

static void t_versions_ciphers(void) { T_RUN(versions_main, NULL); }

/* ---- np's client against openssl s_server ------------------------------------------ */
typedef struct ssarg { int port; const char *ver; const char *cipher; } ssarg;

static void s_server_client(void *a)
{
    ssarg *x = a;
    np_tls_config *cc = client_cfg(&(np_tls_opts){.alpn = "h2,http/1.1"});
    np_tls *t = dial(x->port, cc, "localhost");
    const char *msg = "hello from np\n";
    CHECK_EQ(np_tls_write(t, msg, strlen(msg)), (ssize_t)strlen(msg));
    char b[64];
    size_t got = 0;
    while (got < strlen(msg)) {
        ssize_t n = np_tls_read(t, b + got, sizeof b - got);
        if (n <= 0)
            FAILF("read %zd: %s (%s)", n, strerror(t_errno()), np_tls_error(t));
        got += (size_t)n;
    }
    CHECK(memcmp(b, "pn morf olleh\n", 14) == 0);
    CHECK(strcmp(np_tls_version(t), x->ver) == 0);
    if (strcmp(np_tls_cipher(t), x->cipher) != 0)
        FAILF("cipher %s, want %s", np_tls_cipher(t), x->cipher);
    CHECK(np_tls_alpn(t) && strcmp(np_tls_alpn(t), "http/1.1") == 0);
    np_tls_close(t);
    np_tls_config_free(cc);
}

static void t_against_s_server(void)
{
    need_openssl();
    cdir();
    static const char *v12[] = {"-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384", "-alpn", "http/1.1", NULL};
    static const char *v12b[] = {"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305", "-alpn", "http/1.1", NULL};
    static const char *v13[] = {"-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256", "-alpn", "http/1.1", NULL};
    static const char *v13b[] = {"-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256", "-alpn", "http/1.1", NULL};
    const char *const *args[] = {v12, v12b, v13, v13b};
    for (int i = 0; i < 4; i++) {
        ssarg x = {free_port(), args[i][0][6] == '2' ? "TLSv1.2" : "TLSv1.3", args[i][2]};
        FILE *out;
        pid_t pid = s_server(x.port, args[i], &out);
        T_RUN(s_server_client, &x);
        int st;
        kill(pid, SIGTERM);
        CHECK(waitpid(pid, &st, 0) == pid);
        fclose(out);
    }
}

/* ---- openssl s_client against np's server -------------------------------------------- */
static void upper_once(np_tls *t, void *arg)
{
    (void)arg;
    char b[256];
    size_t got = 0;
    while (got == 0 || b[got - 1] != '\n') {
        ssize_t n = np_tls_read(t, b + got, sizeof b - got);
        if (n <= 0)
            return; /* the client that fails verification */
        got += (size_t)n;
    }
    for (size_t i = 0; i < got; i++)
        b[i] = (char)toupper((unsigned char)b[i]);
    CHECK_EQ(np_tls_write(t, b, got), (ssize_t)got);
    CHECK_EQ(np_tls_shutdown(t), 0);
}

typedef struct scarg { const char *ver; char out[3][8192]; } scarg;

static void *run_s_client(void *a)
{
    char **argv = a;
    int in[2];
    CHECK(pipe(in) == 0);
    char path[] = "/tmp/np-tls-sc.XXXXXX";
    int out = mkstemp(path);
    CHECK(out >= 0);
    unlink(path);
    pid_t pid = spawn(argv, in[0], out);
    close(in[0]);
    CHECK_EQ(write(in[1], "hello tls\n", 10), 10);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    close(in[1]);
    char *buf = calloc(1, 16384);
    CHECK(pread(out, buf, 16383, 0) >= 0);
    close(out);
    return buf;
}

static void s_client_main(void *a)
{
    scarg *x = a;
    srv s;
    srv_start(&s, server_cfg("server", &(np_tls_opts){.alpn = "http/1.1"}), 3, upper_once, NULL);
    char conn[32], sess[64];
    snprintf(conn, sizeof conn, "127.0.0.1:%d", s.port);
    snprintf(sess, sizeof sess, "%s/sess%s", cdir(), x->ver);
    for (int i = 0; i < 3; i++) {
        /* 0: verified, saves its session; 1: resumes it; 2: no CA: verification fails */
        char *argv[24] = {"openssl", "s_client", "-connect", conn, "-servername", "localhost",
                          "-verify_return_error", "-ign_eof", "-alpn", "http/1.1",
                          (char *)x->ver};
        int n = 11;
        if (i < 2) {
            argv[n++] = "-CAfile";
            argv[n++] = (char *)cf("ca.pem");
            argv[n++] = i == 0 ? "-sess_out" : "-sess_in";
            argv[n++] = sess;
        } else {
            argv[n++] = "-CAfile";
            argv[n++] = (char *)cf("self.pem");
        }
        char *o = np_blocking(run_s_client, argv);
        snprintf(x->out[i], sizeof x->out[i], "%s", o);
        free(o);
    }
    np_wg_wait(&s.wg);
    np_tls_config_free(s.cfg);
}

static void t_against_s_client(void)
{
    need_openssl();
    cdir();
    const char *vers[] = {"-tls1_2", "-tls1_3"};
    for (int v = 0; v < 2; v++) {
        scarg *x = calloc(1, sizeof *x);
        x->ver = vers[v];
        T_RUN(s_client_main, x);
        const char *want = v ? "TLSv1.3" : "TLSv1.2";
        for (int i = 0; i < 2; i++) {
            if (!strstr(x->out[i], "HELLO TLS") || !strstr(x->out[i], "Verify return code: 0 (ok)") ||
                !strstr(x->out[i], want) || !strstr(x->out[i], "ALPN protocol: http/1.1"))
                FAILF("s_client %s run %d:\n%s", vers[v], i, x->out[i]);
        }
        if (!strstr(x->out[0], "New, TLSv1") || !strstr(x->out[1], "Reused, TLSv1"))
            FAILF("s_client %s resumption:\n%s\n----\n%s", vers[v], x->out[0], x->out[1]);
        if (strstr(x->out[2], "HELLO TLS") || !strstr(x->out[2], "verify error"))
            FAILF("s_client %s without the CA:\n%s", vers[v], x->out[2]);
        free(x);
    }
}

/* ---- verification failures and a protocol mismatch --------------------------------- */
typedef struct hsres { int r, err; char msg[240]; } hsres;

static void hs_server(np_tls *t, void *arg)
{
    hsres *h = arg;
    np_set_deadline(np_tls_fd(t), np_now() + 10 * SEC);
    h->r = np_tls_handshake(t);
    h->err = h->r < 0 ? t_errno() : 0;
    snprintf(h->msg, sizeof h->msg, "%s", np_tls_error(t));
    if (h->r == 0) { /* the client may have given up after its own checks */
        char b[8];
        np_tls_read(t, b, sizeof b);
    }
}

/* A client with copts against a server with cert and sopts: the client's handshake
 * result, errno and message (and the server's, in *sv). */
static int try_hs(const char *cert, const np_tls_opts *sopts, const np_tls_opts *copts,
                  const char *name, hsres *sv, char *msg, size_t msglen)
{
    srv s;
    memset(sv, 0, sizeof *sv);
    srv_start(&s, server_cfg(cert, sopts), 1, hs_server, sv);
    np_tls_config *cc = client_cfg(copts);
    np_tls *t = dial(s.port, cc, name);
    np_set_deadline(np_tls_fd(t), np_now() + 10 * SEC);
    int r = np_tls_handshake(t);
    int en = r < 0 ? t_errno() : 0;
    snprintf(msg, msglen, "%s", np_tls_error(t));
    if (r < 0) { /* sticky: the next call fails the same way, without a new attempt */
        char b[4];
        CHECK_ERR(np_tls_read(t, b, 4), en);
        CHECK_ERR(np_tls_write(t, b, 4), en);
    }
    np_tls_close(t);
    srv_end(&s);
    np_tls_config_free(cc);
    return r < 0 ? en : 0;
}

static void verify_main(void *a)
{
    (void)a;
    static const struct {
        const char *cert, *name, *want;
        int err, system_store, max, srv_min;
    } k[] = {
        {"self", "localhost", "self-signed certificate", EKEYREJECTED, 0, 0, 0},
        {"server", "example.com", "hostname mismatch", EKEYREJECTED, 0, 0, 0},
        {"server", "10.1.2.3", "IP address mismatch", EKEYREJECTED, 0, 0, 0},
        {"expired", "localhost", "certificate has expired", EKEYEXPIRED, 0, 0, 0},
        {"server", "localhost", "unable to get local issuer certificate", EKEYREJECTED, 1, 0, 0},
        {"server", "localhost", "protocol version", EPROTO, 0, NP_TLS_1_2, NP_TLS_1_3},
    };
    np_tls_stats s0, s1;
    np_tls_stats_get(&s0);
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        np_tls_opts co = {.max_version = k[i].max};
        if (k[i].system_store)
            co.ca_dir = "/nonexistent-np"; /* replaced below: the system store */
        np_tls_opts so = {.min_version = k[i].srv_min};
        hsres sv;
        char msg[240];
        int en;
        if (k[i].system_store) {
            /* no ca_file: the system's store, which does not know the test CA */
            np_tls_config *cc = np_tls_config_new(0, &(np_tls_opts){0}, NULL, 0);
            CHECK(cc != NULL);
            srv s;
            srv_start(&s, server_cfg(k[i].cert, &so), 1, hs_server, &sv);
            np_tls *t = dial(s.port, cc, k[i].name);
            en = np_tls_handshake(t) < 0 ? t_errno() : 0;
            snprintf(msg, sizeof msg, "%s", np_tls_error(t));
            np_tls_close(t);
            srv_end(&s);
            np_tls_config_free(cc);
        } else {
            en = try_hs(k[i].cert, &so, &co, k[i].name, &sv, msg, sizeof msg);
        }
        if (en != k[i].err || !strstr(msg, k[i].want))
            FAILF("case %zu: errno %d (%s) message \"%s\"; want %d and \"%s\"", i, en,
                  strerror(en), msg, k[i].err, k[i].want);
        /* the server hears of it as an alert (or a version it cannot speak) */
        if (sv.r != -1 || sv.err != EPROTO || !sv.msg[0])
            FAILF("case %zu: server %d errno %d \"%s\"", i, sv.r, sv.err, sv.msg);
    }
    np_tls_stats_get(&s1);
    CHECK_EQ(s1.failed - s0.failed, 12); /* each failure on both sides */
    /* the same cases pass when told what to trust, or to trust anything */
    hsres sv;
    char msg[240];
    CHECK_EQ(try_hs("self", NULL, &(np_tls_opts){.ca_file = cf("self.pem")}, "localhost", &sv, msg, sizeof msg), 0);
    CHECK_EQ(try_hs("expired", NULL, &(np_tls_opts){.insecure_skip_verify = 1}, "localhost", &sv, msg, sizeof msg), 0);
    CHECK_EQ(try_hs("server", NULL, NULL, "::1", &sv, msg, sizeof msg), 0 * 0);
}

static void t_verify_failures(void) { T_RUN(verify_main, NULL); }

/* Config errors: a clear errno and message, nothing half made. */
static void t_config_errors(void)
{
    char err[256];
    np_tls_opts o = {.cert_file = "/nonexistent/cert.pem"};
    CHECK(np_tls_config_new(1, &o, err, sizeof err) == NULL);
    CHECK_EQ(t_errno(), ENOENT);
    CHECK(strstr(err, "/nonexistent/cert.pem") != NULL);
    CHECK(np_tls_config_new(1, NULL, err, sizeof err) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    o = (np_tls_opts){.cert_file = cf("server.pem"), .key_file = cf("self.key")};
    CHECK(np_tls_config_new(1, &o, err, sizeof err) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    if (!strstr(err, "key_file") || !strstr(err, "mismatch"))
        FAILF("message: %s", err);
    o = (np_tls_opts){.cert_file = cf("ca.key")}; /* a key is no certificate */
    CHECK(np_tls_config_new(1, &o, err, sizeof err) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    CHECK(strstr(err, "cert_file") != NULL);
    o = (np_tls_opts){.alpn = "h2,,http/1.1"};
    CHECK(np_tls_config_new(0, &o, err, sizeof err) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    o = (np_tls_opts){.ciphers = "NO-SUCH-CIPHER"};
    CHECK(np_tls_config_new(0, &o, err, sizeof err) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    o = (np_tls_opts){.min_version = NP_TLS_1_3, .max_version = NP_TLS_1_2};
    CHECK(np_tls_config_new(0, &o, err, sizeof err) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    o = (np_tls_opts){.min_version = 0x0301}; /* TLS 1.0: not offered */
    CHECK(np_tls_config_new(0, &o, err, sizeof err) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    /* a client that verifies needs a name; a server config is no client's */
    np_tls_config *cc = np_tls_config_new(0, NULL, err, sizeof err);
    CHECK(cc != NULL);
    CHECK(np_tls_client(0, cc, NULL) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    CHECK(np_tls_server(0, cc) == NULL);
    CHECK_EQ(t_errno(), EINVAL);
    np_tls_config_free(cc);
    CHECK_ERR(np_tls_close(NULL), EINVAL);
}

/* ---- garbage, a truncated record, a stalled handshake, deadlines --------------------- */
static void garbage_main(void *a)
{
    (void)a;
    /* a client that speaks HTTP to the TLS server */
    hsres sv;
    srv s;
    srv_start(&s, server_cfg("server", NULL), 1, hs_server, &sv);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);
    int fd = np_dial("tcp", addr, 5 * SEC);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ(np_write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char b[256];
    while (np_read(fd, b, sizeof b) > 0) /* an alert, then the end */
        ;
    np_close(fd);
    srv_end(&s);
    CHECK_EQ(sv.r, -1);
    CHECK_EQ(sv.err, EPROTO);
    CHECK(strstr(sv.msg, "http request") || strstr(sv.msg, "wrong version"));
    /* a "server" that answers the ClientHello with garbage */
    int ln = np_listen("tcp", "127.0.0.1:0");
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port_of(ln));
    np_tls_config *cc = client_cfg(NULL);
    int cfd = np_dial("tcp", addr, 5 * SEC);
    int sfd = np_accept(ln, NULL, NULL);
    CHECK(sfd >= 0);
    const char *resp = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    CHECK_EQ(np_write(sfd, resp, strlen(resp)), (ssize_t)strlen(resp));
    np_tls *t = np_tls_client(cfd, cc, "localhost");
    CHECK_ERR(np_tls_handshake(t), EPROTO);
    CHECK(np_tls_error(t)[0] != 0);
    np_tls_close(t);
    np_close(sfd);
    np_close(ln);
    np_tls_config_free(cc);
}

static void t_garbage(void) { T_RUN(garbage_main, NULL); }

/* A proxy between a client and the server that forwards the handshake, then only the
 * first half of the client's first data record, and hangs up. */
typedef struct trunc { int cfd, sfd; np_chan *go; } trunc_t;

static void pump(void *a)
{
    trunc_t *x = a; /* server to client, until either end closes */
    char b[16384];
    ssize_t n;
    while ((n = np_read(x->sfd, b, sizeof b)) > 0)
        if (np_write(x->cfd, b, (size_t)n) != n)
            break;
}

static void trunc_server(np_tls *t, void *arg)
{
    hsres *h = arg;
    char b[256];
    CHECK_EQ(np_tls_handshake(t), 0);
    h->r = (int)np_tls_read(t, b, sizeof b);
    h->err = h->r < 0 ? t_errno() : 0;
    snprintf(h->msg, sizeof h->msg, "%s", np_tls_error(t));
}

static void truncated_main(void *a)
{
    (void)a;
    hsres sv = {0};
    srv s;
    srv_start(&s, server_cfg("server", NULL), 1, trunc_server, &sv);
    int pln = np_listen("tcp", "127.0.0.1:0");
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port_of(pln));
    np_tls_config *cc = client_cfg(&(np_tls_opts){.max_version = NP_TLS_1_2}); /* the client speaks last in 1.2: its Finished */
    np_tls *t = dial(port_of(pln), cc, "localhost");
    trunc_t x;
    CHECK((x.cfd = np_accept(pln, NULL, NULL)) >= 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);
    CHECK((x.sfd = np_dial("tcp", addr, 5 * SEC)) >= 0);
    np_go(pump, &x);
    /* forward the client's handshake records until its handshake is done */
    np_chan *done = np_chan_new(sizeof(int), 1);
    struct hsarg { np_tls *t; np_chan *done; } ha = {t, done};
    void hs_client(void *);
    np_go(hs_client, &ha);
    char b[16384];
    int ok = 0;
    for (;;) {
        np_set_read_deadline(x.cfd, np_now() + 20 * MS);
        ssize_t n = np_read(x.cfd, b, sizeof b);
        if (n > 0) {
            CHECK_EQ(np_write(x.sfd, b, (size_t)n), n);
            continue;
        }
        CHECK_EQ(t_errno(), ETIMEDOUT);
        if (np_chan_len(done) > 0)
            break;
    }
    CHECK_EQ(np_chan_recv(done, &ok), 1);
    CHECK_EQ(ok, 0);
    np_set_read_deadline(x.cfd, 0);
    /* one data record of 200 bytes; half of it goes on */
    char msg[200];
    memset(msg, 'x', sizeof msg);
    CHECK_EQ(np_tls_write(t, msg, sizeof msg), 200);
    size_t got = 0;
    while (got < 60) {
        ssize_t n = np_read(x.cfd, b + got, sizeof b - got);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK(got > 200);
    CHECK_EQ(np_write(x.sfd, b, got / 2), (ssize_t)(got / 2));
    np_close(x.sfd); /* no close_notify: the end, mid-record */
    srv_end(&s);
    CHECK_EQ(sv.r, -1);
    CHECK_EQ(sv.err, ECONNRESET);
    CHECK(strstr(sv.msg, "close_notify") != NULL);
    np_tls_close(t);
    np_close(x.cfd);
    np_close(pln);
    np_tls_config_free(cc);
    np_chan_free(done);
}

void hs_client(void *a)
{
    struct hsarg { np_tls *t; np_chan *done; } *h = a;
    int r = np_tls_handshake(h->t);
    np_chan_send(h->done, &r);
}

static void t_truncated_record(void) { T_RUN(truncated_main, NULL); }

static void stall_main(void *a)
{
    (void)a;
    /* a client that sends a third of a ClientHello and stops: the server's handshake
     * deadline ends it */
    hsres sv = {0};
    srv s;
    void stall_server(np_tls *, void *);
    srv_start(&s, server_cfg("server", NULL), 1, stall_server, &sv);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);
    int fd = np_dial("tcp", addr, 5 * SEC);
    static const unsigned char part[] = {0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03};
    CHECK_EQ(np_write(fd, part, sizeof part), (ssize_t)sizeof part);
    srv_end(&s);
    CHECK_EQ(sv.r, -1);
    CHECK_EQ(sv.err, ETIMEDOUT);
    CHECK(strstr(sv.msg, "timed out") != NULL);
    np_close(fd);
    /* a server that accepts and never answers: the client's deadline */
    int ln = np_listen("tcp", "127.0.0.1:0");
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port_of(ln));
    np_tls_config *cc = client_cfg(NULL);
    np_tls *t = np_tls_client(np_dial("tcp", addr, 5 * SEC), cc, "localhost");
    int sfd = np_accept(ln, NULL, NULL);
    int64_t t0 = np_now();
    np_set_deadline(np_tls_fd(t), t0 + 200 * MS);
    CHECK_ERR(np_tls_handshake(t), ETIMEDOUT);
    int64_t took = np_now() - t0;
    CHECK(took >= 200 * MS && took < 5 * SEC);
    np_tls_close(t);
    np_close(sfd);
    np_close(ln);
    np_tls_config_free(cc);
}

void stall_server(np_tls *t, void *arg)
{
    hsres *h = arg;
    int64_t t0 = np_now();
    np_set_deadline(np_tls_fd(t), t0 + 300 * MS);
    h->r = np_tls_handshake(t);
    h->err = h->r < 0 ? t_errno() : 0;
    int64_t took = np_now() - t0;
    CHECK(took >= 300 * MS && took < 5 * SEC);
    snprintf(h->msg, sizeof h->msg, "%s", np_tls_error(t));
}

static void t_stalled_handshake(void) { T_RUN(stall_main, NULL); }

/* A read deadline after the handshake: ETIMEDOUT, and the connection goes on after it
 * (no OpenSSL call was cut short: the timeout came while parked). */
static void quiet_then_echo(np_tls *t, void *arg)
{
    np_chan *go = arg;
    int v;
    CHECK_EQ(np_tls_handshake(t), 0);
    np_chan_recv(go, &v);
    echo(t, NULL);
}

static void deadline_main(void *a)
{
    (void)a;
    np_chan *go = np_chan_new(sizeof(int), 0);
    srv s;
    srv_start(&s, server_cfg("server", NULL), 1, quiet_then_echo, go);
    np_tls_config *cc = client_cfg(NULL);
    np_tls *t = dial(s.port, cc, "localhost");
    CHECK_EQ(np_tls_handshake(t), 0);
    char b[16];
    int64_t t0 = np_now();
    np_set_read_deadline(np_tls_fd(t), t0 + 100 * MS);
    CHECK_ERR(np_tls_read(t, b, sizeof b), ETIMEDOUT);
    CHECK(np_now() - t0 >= 100 * MS);
    np_set_read_deadline(np_tls_fd(t), 0);
    int v = 1;
    np_chan_send(go, &v);
    CHECK_EQ(np_tls_write(t, "again", 5), 5);
    CHECK_EQ(read_full(t, b, 5), 5);
    CHECK(memcmp(b, "again", 5) == 0);
    np_tls_close(t);
    srv_end(&s);
    np_tls_config_free(cc);
    np_chan_free(go);
}

static void t_read_deadline(void) { T_RUN(deadline_main, NULL); }

/* ---- records that arrive together: one raw read takes them all, OpenSSL hands them
 * out one per read, and the socket is empty meanwhile: the reads after the first must
 * not wait for the socket ---------------------------------------------------------- */
static void pipelined_main(void *a)
{
    (void)a;
    srv s;
    srv_start(&s, server_cfg("server", NULL), 1, echo, NULL);
    np_tls_config *cc = client_cfg(NULL);
    np_tls *t = dial(s.port, cc, "localhost");
    CHECK_EQ(np_tls_handshake(t), 0);
    char b[64];
    CHECK_EQ(np_tls_write(t, "ping", 4), 4); /* a round trip: the server is past its handshake */
    CHECK_EQ(read_full(t, b, 4), 4);
    /* three records in a row, with no park between them (one P): they are all in the
     * server's socket before it runs */
    CHECK_EQ(np_tls_write(t, "one.", 4), 4);
    CHECK_EQ(np_tls_write(t, "two.", 4), 4);
    CHECK_EQ(np_tls_write(t, "three", 5), 5);
    np_set_read_deadline(np_tls_fd(t), np_now() + 5 * SEC);
    CHECK_EQ(read_full(t, b, 13), 13);
    CHECK(memcmp(b, "one.two.three", 13) == 0);
    np_tls_close(t);
    srv_end(&s);
    np_tls_config_free(cc);
}

static void t_pipelined_records(void)
{
    t_procs(1);
    T_RUN(pipelined_main, NULL);
}

/* ---- close wakes a blocked reader and a blocked writer ------------------------------- */
typedef struct cw { np_tls *t; ssize_t r; int err; np_wg wg; } cw;

static void blocked_reader(void *a)
{
    cw *c = a;
    char b[64];
    c->r = np_tls_read(c->t, b, sizeof b);
    c->err = t_errno();
    np_wg_done(&c->wg);
}

static void blocked_writer(void *a)
{
    cw *c = a;
    size_t len = 64 << 20;
    char *b = calloc(1, len);
    c->r = np_tls_write(c->t, b, len); /* the server never reads: the socket fills */
    c->err = t_errno();
    free(b);
    np_wg_done(&c->wg);
}

static void never_read(np_tls *t, void *arg)
{
    np_chan *go = arg;
    CHECK_EQ(np_tls_handshake(t), 0);
    int v;
    np_chan_recv(go, &v);
}

static void closewake_main(void *a)
{
    (void)a;
    np_chan *go = np_chan_new(sizeof(int), 0);
    srv s;
    srv_start(&s, server_cfg("server", NULL), 1, never_read, go);
    np_tls_config *cc = client_cfg(NULL);
    np_tls *t = dial(s.port, cc, "localhost");
    CHECK_EQ(np_tls_handshake(t), 0);
    cw r = {.t = t}, w = {.t = t};
    np_wg_add(&r.wg, 1);
    np_wg_add(&w.wg, 1);
    /* the server past its handshake (in TLS 1.3 it ends after the client's), waiting on
     * go: from then on the only coroutines parked on sockets are these two */
    wait_blocked(NP_WAIT_CHAN_RECV, 1);
    np_go(blocked_reader, &r);
    np_go(blocked_writer, &w);
    wait_blocked(NP_WAIT_IO, 2); /* both parked on the socket */
    CHECK_EQ(np_tls_close(t), 0);
    np_wg_wait(&r.wg);
    np_wg_wait(&w.wg);
    CHECK_EQ(r.r, -1);
    CHECK_EQ(r.err, EBADF);
    CHECK_EQ(w.r, -1);
    CHECK_EQ(w.err, EBADF);
    int v = 1;
    np_chan_send(go, &v);
    srv_end(&s);
    np_tls_config_free(cc);
    np_chan_free(go);
}

static void t_close_wakes(void) { T_RUN(closewake_main, NULL); }

/* ---- one reader and one writer at once, on two threads -------------------------------- */
typedef struct dup { np_tls *t; size_t len; int64_t moves; np_wg wg; } dup_t;

static long tid(void) { return syscall(SYS_gettid); }

static void dup_writer(void *a)
{
    dup_t *d = a;
    unsigned char b[8192];
    for (size_t o = 0; o < d->len; o += sizeof b) {
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = pat(7, o + i);
        long before = tid();
        CHECK_EQ(np_tls_write(d->t, b, sizeof b), (ssize_t)sizeof b);
        d->moves += tid() != before;
    }
    np_wg_done(&d->wg);
}

static void duplex_main(void *a)
{
    (void)a;
    srv s;
    srv_start(&s, server_cfg("server", NULL), 1, echo, NULL);
    np_tls_config *cc = client_cfg(NULL);
    dup_t d = {.t = dial(s.port, cc, "localhost"), .len = (size_t)t_scaled(32) << 20};
    d.len -= d.len % 8192;
    np_wg_add(&d.wg, 1);
    np_go(dup_writer, &d); /* the writer, while this coroutine reads */
    unsigned char b[16384];
    size_t got = 0;
    int64_t moves = 0;
    while (got < d.len) {
        long before = tid();
        ssize_t n = np_tls_read(d.t, b, sizeof b);
        moves += tid() != before;
        if (n <= 0)
            FAILF("read %zd at %zu: %s (%s)", n, got, strerror(t_errno()), np_tls_error(d.t));
        for (ssize_t i = 0; i < n; i++)
            if (b[i] != pat(7, got + (size_t)i))
                FAILF("byte %zu differs", got + (size_t)i);
        got += (size_t)n;
    }
    np_wg_wait(&d.wg);
    np_tls_close(d.t);
    srv_end(&s);
    np_tls_config_free(cc);
    printf("    %zu MiB each way; the reader moved %lld times, the writer %lld\n", d.len >> 20,
           (long long)moves, (long long)d.moves);
}

static void t_duplex_two_threads(void)
{
    t_procs(2);
    T_RUN(duplex_main, NULL);
}

/* ---- 1,000 connections on 2 Ps, every byte checked, coroutines moving ------------------ */
typedef struct stress { int port; np_tls_config *cc; int rounds; _Atomic int64_t moves, bytes; np_wg wg; } stress;

static void stress_client(void *a)
{
    stress *x = a;
    uint64_t seed = (uint64_t)np_id() * 0x9E3779B97F4A7C15ull;
    np_tls *t = dial(x->port, x->cc, "localhost");
    unsigned char out[6000], in[6000];
    int64_t moves = 0;
    for (int r = 0; r < x->rounds; r++) {
        size_t len = 1 + (size_t)(t_rand(&seed) % sizeof out);
        for (size_t i = 0; i < len; i++)
            out[i] = (unsigned char)t_rand(&seed);
        long before = tid();
        if (np_tls_write(t, out, len) != (ssize_t)len)
            FAILF("write: %s (%s)", strerror(t_errno()), np_tls_error(t));
        moves += tid() != before;
        before = tid();
        if (read_full(t, in, len) != (ssize_t)len)
            FAILF("read: %s (%s)", strerror(t_errno()), np_tls_error(t));
        moves += tid() != before;
        CHECK(memcmp(in, out, len) == 0);
        atomic_fetch_add(&x->bytes, (int64_t)len);
    }
    np_tls_close(t);
    atomic_fetch_add(&x->moves, moves);
    np_wg_done(&x->wg);
}

static void stress_main(void *a)
{
    (void)a;
    int n = (int)t_coroutines(1000);
    srv s;
    srv_start(&s, server_cfg("server", NULL), n, echo, NULL);
    stress *x = calloc(1, sizeof *x);
    x->port = s.port;
    x->cc = client_cfg(&(np_tls_opts){.no_resumption = 1}); /* full handshakes */
    x->rounds = 20;
    np_wg_add(&x->wg, n);
    for (int i = 0; i < n; i++)
        CHECK(np_go(stress_client, x) > 0);
    np_wg_wait(&x->wg);
    srv_end(&s);
    np_tls_config_free(x->cc);
    np_tls_stats st;
    np_tls_stats_get(&st);
    CHECK_EQ(st.open, 0);
    printf("    %d connections, %lld bytes echoed and checked, %lld migrations\n", n,
           (long long)x->bytes, (long long)x->moves);
    CHECK(x->moves >= n); /* thousands with 1,000 connections */
    free(x);
}

static void t_stress_1000_two_procs(void)
{
    t_procs(2);
    T_RUN(stress_main, NULL);
}

/* ---- kTLS: detection, and OpenSSL's fallback when np asks without the tls ULP -------- */
static int ulp_listed(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    char b[256] = "";
    if (f) {
        if (!fgets(b, sizeof b, f))
            b[0] = 0;
        fclose(f);
    }
    for (char *p = strtok(b, " \n"); p; p = strtok(NULL, " \n"))
        if (strcmp(p, "tls") == 0)
            return 1;
    return 0;
}

static void ktls_main(void *a)
{
    (void)a;
    np_tls_stats st;
    np_tls_stats_get(&st);
    CHECK_EQ(st.ktls_available, ulp_listed());
    srv s;
    np_tls_opts o = {.max_version = NP_TLS_1_2, .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"};
    srv_start(&s, server_cfg("server", &o), 1, echo, NULL);
    np_tls_config *cc = client_cfg(NULL);
    np_tls *t = dial(s.port, cc, "localhost");
    char b[4096];
    memset(b, 'k', sizeof b);
    CHECK_EQ(np_tls_write(t, b, sizeof b), (ssize_t)sizeof b);
    CHECK_EQ(read_full(t, b, sizeof b), (ssize_t)sizeof b);
    for (size_t i = 0; i < sizeof b; i++)
        CHECK_EQ(b[i], 'k');
    if (st.ktls_available)
        CHECK(np_tls_ktls(t) != 0); /* AES-GCM in TLS 1.2: the kernel takes it */
    else
        CHECK_EQ(np_tls_ktls(t), 0);
    np_tls_close(t);
    srv_end(&s);
    np_tls_config_free(cc);
    np_tls_stats_get(&st);
    printf("    tls ULP %s; kTLS send/receive on %lld/%lld connections\n",
           st.ktls_available ? "available" : "not available", (long long)st.ktls_tx,
           (long long)st.ktls_rx);
}

static void t_ktls_detect(void) { T_RUN(ktls_main, NULL); }

/* NP_TLS_KTLS=1 asks OpenSSL for kTLS even without the ULP: its setsockopt fails and
 * the connection goes on in user space. */
static void t_ktls_fallback(void)
{
    setenv("NP_TLS_KTLS", "1", 1);
    if (ulp_listed())
        T_SKIP("the kernel has the tls ULP: no fallback to see");
    T_RUN(ktls_main, NULL);
}

static const t_case cases[] = {
    T(t_verify_failures),
    T(t_config_errors),
    T(t_garbage),
    T(t_truncated_record),
    T(t_stalled_handshake),
    T(t_read_deadline),
    T(t_pipelined_records),
    T(t_close_wakes),
    T(t_duplex_two_threads),
    T(t_stress_1000_two_procs),
    T(t_ktls_detect),
    T(t_ktls_fallback),
    T(t_roundtrip),
    T(t_versions_ciphers),
    T(t_against_s_server),
    T(t_against_s_client),
    {0},
};
T_MAIN(cases)
