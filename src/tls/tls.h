/* TLS over OpenSSL 3 (np_tls.h): the settings (config.c) and the connections (conn.c).
 *
 * The rule that keeps OpenSSL correct under np's scheduler: an SSL object is only ever
 * called from inside one np__fd_io operation (src/fd), under the connection's spin lock,
 * non-blocking, with the thread's error queue cleared before and read after the call.
 * No OpenSSL call spans a park, so a coroutine that moves to another thread leaves
 * nothing of OpenSSL's per-thread state behind; and since the calls run inside the fd
 * layer's operations, np_close waits for them to leave before the descriptor number can
 * be reused. */
#ifndef NP_TLS_INT_H
#define NP_TLS_INT_H
#include <np.h>
#include <np_tls.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define SESS_MAX 64 /* client sessions kept per config (one per server name and port) */

struct np_tls_config {
    SSL_CTX *ctx;             /* immutable after np_tls_config_new */
    bool server;
    bool verify;              /* client: the server's certificate and name are checked */
    _Atomic int refs;         /* the creator's and one per connection */
    unsigned char *alpn;      /* wire format (length-prefixed names); NULL: none */
    unsigned alpn_len;
    pthread_mutex_t smu;      /* guards sess[] (taken inside OpenSSL callbacks: no park) */
    struct sess {
        char key[160];        /* "servername/port" */
        SSL_SESSION *s;       /* one reference, NULL: empty slot */
        uint64_t used;        /* smu's clock when stored: the oldest is replaced */
    } sess[SESS_MAX];
    uint64_t clock;
};

struct np_tls {
    SSL *ssl;                 /* called only under lk (see the top) */
    int fd;
    np_tls_config *cfg;       /* one reference */
    _Atomic int32_t lk;       /* one OpenSSL call at a time on ssl: the reader and the
                               * writer may be on two threads; never held across a park */
    np_mutex hs;              /* held through the whole handshake (parks inside) */
    _Atomic int hs_state;     /* 0 not done, 1 done, -errno failed (sticky); set under hs */
    bool fatal;               /* an SSL call failed fatally: no SSL_shutdown (under lk) */
    bool shut;                /* close_notify sent or given up (under lk) */
    _Atomic int closed;       /* np_tls_close ran: every call fails with EBADF */
    _Atomic int calls;        /* public calls in progress: np_tls_close frees t after them */
    int ktls;                 /* bit 0 send, bit 1 receive (after the handshake) */
    bool own_bio;             /* np's BIO (bio.c) rather than OpenSSL's socket BIO (kTLS) */
    bool rshort;              /* np's BIO: a raw read of this SSL call came back short
                               * or empty (under lk; cleared before each call) */
    bool reof;                /* np's BIO: a raw read returned end of file */
    char alpn[32];            /* after the handshake, "" if none */
    char skey[160];           /* client: the session cache's key; "" on a server */
    char err[240];            /* last failure's message (under lk, or the failing call) */
};

/* bio.c: a BIO over fd for t (recv and send, MSG_NOSIGNAL), which tells t when a read
 * drained the socket. NULL/ENOMEM. */
BIO *np__tls_bio(np_tls *t);
/* config.c */
int np__tls_ktls_wanted(void);
int np__tls_ktls_available(void);
void np__tls_config_ref(np_tls_config *c);
SSL_SESSION *np__tls_session_get(np_tls_config *c, const char *key); /* a reference or NULL */
/* The stats counters (conn.c). */
extern _Atomic int64_t np__tls_open, np__tls_hs, np__tls_resumed, np__tls_failed,
    np__tls_ktls_tx, np__tls_ktls_rx;

#endif
