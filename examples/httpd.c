/* np-httpd [-d DIR] [--tls CERT KEY] [PORT]: an HTTP/1.1 server on np, HTTPS with
 * --tls (PEM certificate chain and key; TLS 1.2 and 1.3, ALPN http/1.1). Routes:
 *   /             "hello, world\n" (the benchmark's page)
 *   /echo         the request body back (streamed: chunked when long)
 *   /static/      files from DIR (default: the current directory), GET and HEAD
 *   /debug/np/    the runtime live (np_http_debug)
 * NP_PROCS sets the processors. SIGTERM or SIGINT: graceful shutdown (5 s at most). */
#include <np.h>
#include <np_http.h>
#include <np_tls.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dir = ".";
static const char *port = "8080";
static np_http_server *srv;
static const char *cert, *key; /* --tls */

static void hello(np_http_req *r, np_http_rw *w, void *arg)
{
    (void)arg;
    if (strcmp(np_http_req_path(r), "/") != 0) {
        np_http_error(w, 404);
        return;
    }
    static const char msg[] = "hello, world\n";
    np_http_reply(w, 200, "text/plain", msg, sizeof msg - 1);
}

static void echo(np_http_req *r, np_http_rw *w, void *arg)
{
    (void)arg;
    char buf[16384];
    ssize_t n;
    const char *ct = np_http_req_header(r, "Content-Type");
    np_http_set_header(w, "Content-Type", ct ? ct : "application/octet-stream");
    while ((n = np_http_req_read(r, buf, sizeof buf)) > 0)
        if (np_http_write(w, buf, (size_t)n) < 0)
            return;
}

static const char *ctype(const char *path)
{
    static const char *const map[][2] = {
        {".html", "text/html; charset=utf-8"}, {".txt", "text/plain; charset=utf-8"},
        {".css", "text/css"}, {".js", "text/javascript"}, {".json", "application/json"},
        {".png", "image/png"}, {".jpg", "image/jpeg"}, {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(dot, map[i][0]) == 0)
            return map[i][1];
    return "application/octet-stream";
}

/* Reads of a regular file do not wait on the poller: they run on the thread, which
 * for a page cache hit is what nginx does too. */
static void files(np_http_req *r, np_http_rw *w, void *arg)
{
    (void)arg;
    const char *m = np_http_req_method(r);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        np_http_set_header(w, "Allow", "GET, HEAD");
        np_http_error(w, 405);
        return;
    }
    const char *rel = np_http_req_path(r) + strlen("/static/");
    if (strstr(rel, "..") || strchr(rel, '\\')) {
        np_http_error(w, 403);
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, *rel ? rel : "index.html");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        np_http_error(w, errno == EACCES ? 403 : 404);
        return;
    }
    char len[32];
    snprintf(len, sizeof len, "%lld", (long long)st.st_size);
    np_http_set_header(w, "Content-Type", ctype(path));
    np_http_set_header(w, "Content-Length", len);
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (np_http_write(w, buf, (size_t)n) < 0)
            break;
    close(fd);
}

/* SIGTERM/SIGINT arrive on a signalfd that a coroutine reads: then a graceful stop. */
static void signals(void *arg)
{
    int sfd = (int)(intptr_t)arg;
    struct signalfd_siginfo si;
    if (np_read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        fprintf(stderr, "np-httpd: signal %u, shutting down\n", si.ssi_signo);
        if (np_http_shutdown(srv, np_now() + 5000000000LL) < 0)
            fprintf(stderr, "np-httpd: connections still open after 5 s were cut\n");
    }
}

static void run(void *arg)
{
    (void)arg;
    char addr[64];
    snprintf(addr, sizeof addr, strchr(port, ':') ? "%s" : "127.0.0.1:%s", port);
    int ln = np_listen("tcp", addr);
    if (ln < 0) {
        fprintf(stderr, "np-httpd: listen %s: %s\n", addr, strerror(errno));
        exit(1);
    }
    np_tls_config *tls = NULL;
    if (cert) {
        char err[256];
        np_tls_opts o = {.cert_file = cert, .key_file = key, .alpn = "http/1.1"};
        if (!(tls = np_tls_config_new(1, &o, err, sizeof err))) {
            fprintf(stderr, "np-httpd: --tls: %s\n", err);
            exit(1);
        }
    }
    srv = np_http_server_new(NULL);
    np_http_handle(srv, "/", hello, NULL);
    np_http_handle(srv, "/echo", echo, NULL);
    np_http_handle(srv, "/static/", files, NULL);
    np_http_handle(srv, "/debug/np/", np_http_debug, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd >= 0 && np_fd_open(sfd) == 0)
        np_go(signals, (void *)(intptr_t)sfd);
    const char *scheme = tls ? "https" : "http";
    printf("np-httpd: serving %s://%s/ (files from %s under /static/)\n", scheme, addr, dir);
    printf("np-httpd: the runtime live: %s://%s/debug/np/\n", scheme, addr);
    fflush(stdout);
    if ((tls ? np_http_serve_tls(srv, ln, tls) : np_http_serve(srv, ln)) < 0)
        fprintf(stderr, "np-httpd: serve: %s\n", strerror(errno));
    np_http_server_free(srv);
    np_tls_config_free(tls);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--tls") == 0 && i + 2 < argc)
            cert = argv[++i], key = argv[++i];
        else if (argv[i][0] != '-')
            port = argv[i];
        else {
            fprintf(stderr, "usage: np-httpd [-d DIR] [--tls CERT KEY] [PORT | HOST:PORT]\n");
            return 2;
        }
    }
    /* the signals np-httpd stops on are taken from a signalfd: blocked in every thread */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (np_run(run, NULL) != 0) {
        perror("np-httpd");
        return 1;
    }
    return 0;
}
