/* np_tls.h — TLS on np's sockets, over OpenSSL 3: blocking-style encrypted connections
 * for coroutines, as Go's crypto/tls. Part of libnp (which links libssl and libcrypto);
 * include after <np.h>.
 *
 * A connection wraps a socket registered with np (np_dial, np_accept, np_fd_open). Its
 * calls park the coroutine, never the thread: OpenSSL is driven non-blocking, no OpenSSL
 * call is in progress across a park, and OpenSSL's per-thread error queue is cleared and
 * read on the same thread around each call, so a coroutine may resume on any thread.
 * One reader and one writer may use a connection at the same time (as Go's tls.Conn);
 * np_tls_close may be called from any coroutine and wakes them. Deadlines are the
 * socket's: np_set_deadline(np_tls_fd(t), ...) bounds the handshake, reads and writes
 * (ETIMEDOUT).
 *
 * Errors are -1/errno, with a message in np_tls_error(t): EKEYREJECTED the peer's
 * certificate failed verification (unknown CA, wrong host name, ...), EKEYEXPIRED it has
 * expired (or is not yet valid), EPROTO a protocol failure (garbage, no common version
 * or cipher, an alert from the peer), ECONNRESET the peer closed the connection without
 * close_notify, ETIMEDOUT a deadline passed, EBADF the connection was closed. */
#ifndef NP_TLS_H
#define NP_TLS_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

typedef struct np_tls_config np_tls_config; /* shared settings (an SSL_CTX) */
typedef struct np_tls np_tls;               /* one connection */

#define NP_TLS_1_2 0x0303
#define NP_TLS_1_3 0x0304

/* Settings of np_tls_config_new; a field left 0/NULL takes its default (in brackets). */
typedef struct np_tls_opts {
    const char *cert_file;    /* PEM certificate chain: the server's (required), or a
                               * client certificate [none] */
    const char *key_file;     /* PEM private key of cert_file [cert_file] */
    const char *ca_file;      /* PEM CA certificates to verify the peer with [the system's
                               * store, when ca_dir is NULL too] */
    const char *ca_dir;       /* a hashed directory of CA certificates (openssl rehash) */
    int insecure_skip_verify; /* client: accept any server certificate (tests only) [0] */
    int verify_client;        /* server: require a client certificate valid for ca_* [0] */
    const char *alpn;         /* protocols, comma-separated, preferred first ("h2,http/1.1");
                               * a server picks its first one the client offers [none] */
    int min_version;          /* NP_TLS_1_2 or NP_TLS_1_3 [NP_TLS_1_2] */
    int max_version;          /* [NP_TLS_1_3] */
    const char *ciphers;      /* TLS 1.2 cipher list, OpenSSL's syntax [OpenSSL's default] */
    const char *ciphersuites; /* TLS 1.3 cipher suites [OpenSSL's default] */
    int no_resumption;        /* server: no session tickets; client: no session reuse [0] */
    int no_ktls;              /* never hand the record layer to the kernel [0: kTLS is used
                               * when the kernel has the tls ULP] */
} np_tls_opts;

/* Settings for servers (server != 0) or clients; opts may be NULL for a client. NULL
 * with errno (EINVAL, ENOENT, ENOMEM) and, if err is not NULL, a message in err[errlen].
 * A client verifies the server's certificate and host name unless told not to. */
np_tls_config *np_tls_config_new(int server, const np_tls_opts *opts, char *err, size_t errlen);

/* Drop the caller's reference; connections keep theirs until they are closed. */
void np_tls_config_free(np_tls_config *cfg);

/* A client connection over socket fd, for server name servername (SNI and the name its
 * certificate must match; an IP address is matched against the certificate's IPs and
 * sends no SNI; NULL: no SNI, and verification must be skipped). The handshake runs at
 * the first call (or np_tls_handshake). Sessions are reused per servername. NULL/errno
 * (ENOMEM, EINVAL). The connection owns fd from here on (np_tls_close closes it). */
np_tls *np_tls_client(int fd, np_tls_config *cfg, const char *servername);

/* A server connection over socket fd (accepted); as np_tls_client. */
np_tls *np_tls_server(int fd, np_tls_config *cfg);

/* Run the handshake if it has not run. 0, or -1/errno (see the top; a failed handshake
 * fails every later call the same way). */
int np_tls_handshake(np_tls *t);

/* Read up to len decrypted bytes, parking until some arrive. The count, 0 at the end
 * (the peer's close_notify), or -1/errno. */
ssize_t np_tls_read(np_tls *t, void *buf, size_t len);

/* Write all len bytes (in records of up to 16 KiB), parking as needed. len, or -1/errno
 * (what was sent before an error is not reported). */
ssize_t np_tls_write(np_tls *t, const void *buf, size_t len);

/* np_tls_write of iovcnt buffers; small ones are gathered into one record. */
ssize_t np_tls_writev(np_tls *t, const struct iovec *iov, int iovcnt);

/* Send close_notify (once), waiting as long as the write deadline allows; the peer's
 * reads then end with 0. The socket stays open. 0 or -1/errno. */
int np_tls_shutdown(np_tls *t);

/* Close: close_notify if it can go out at once, then the socket (blocked calls on t wake
 * with EBADF), then free t once they have left. Returns 0 (-1/EINVAL for NULL). */
int np_tls_close(np_tls *t);

/* The socket (for deadlines, np_shutdown, addresses). Do not read or write it. */
int np_tls_fd(const np_tls *t);

/* The message of t's last failure ("" if none). */
const char *np_tls_error(const np_tls *t);

/* After the handshake: the protocol ALPN chose (NULL if none), "TLSv1.2" or "TLSv1.3",
 * the cipher's OpenSSL name, the server name (the client's SNI on a server; NULL if none),
 * whether the session was resumed, and where records are made: bit 0 sending and bit 1
 * receiving in the kernel (kTLS). */
const char *np_tls_alpn(const np_tls *t);
const char *np_tls_version(const np_tls *t);
const char *np_tls_cipher(const np_tls *t);
const char *np_tls_servername(const np_tls *t);
int np_tls_resumed(const np_tls *t);
int np_tls_ktls(const np_tls *t);

/* TLS totals since start-up. */
typedef struct np_tls_stats {
    int64_t open;            /* connections not yet closed */
    int64_t handshakes;      /* completed */
    int64_t resumed;         /* of which resumed a session */
    int64_t failed;          /* handshakes that failed */
    int64_t ktls_tx, ktls_rx; /* connections whose sending / receiving the kernel did */
    int ktls_available;      /* the kernel offers the tls ULP (tcp_available_ulp) */
} np_tls_stats;

/* Fill *s. Returns 0. */
int np_tls_stats_get(np_tls_stats *s);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif
#endif
