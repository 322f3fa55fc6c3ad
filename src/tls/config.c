/* TLS settings: one SSL_CTX per np_tls_config with np's defaults (TLS 1.2 minimum,
 * verification on for clients, no renegotiation), ALPN, session resumption (server
 * tickets; a client cache of the latest session per server name and port) and the kTLS
 * detection. */
#include "tls.h"
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The tls ULP is listed once its module is loaded. Asking OpenSSL for kTLS without it
 * costs a failing setsockopt per connection (and the kernel's module request), so np
 * asks only when it is there; NP_TLS_KTLS=1 asks anyway (to test OpenSSL's fallback),
 * NP_TLS_KTLS=0 never. */
static int ktls_avail = -1;
static pthread_once_t ktls_once = PTHREAD_ONCE_INIT;
static int ktls_force = -1;

static void ktls_probe(void)
{
    char buf[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = 0;
        fclose(f);
    }
    int avail = 0;
    for (char *p = strtok(buf, " \n"); p; p = strtok(NULL, " \n"))
        avail |= strcmp(p, "tls") == 0;
    ktls_avail = avail;
    const char *e = getenv("NP_TLS_KTLS");
    ktls_force = e && *e ? atoi(e) != 0 : -1;
}

int np__tls_ktls_available(void)
{
    pthread_once(&ktls_once, ktls_probe);
    return ktls_avail;
}

int np__tls_ktls_wanted(void)
{
    np__tls_ktls_available();
    return ktls_force >= 0 ? ktls_force : ktls_avail;
}

static void seterr(char *err, size_t errlen, const char *what)
{
    if (!err || !errlen)
        return;
    unsigned long e = ERR_peek_last_error();
    if (e) {
        char m[200];
        ERR_error_string_n(e, m, sizeof m);
        snprintf(err, errlen, "%s: %s", what, m);
    } else {
        snprintf(err, errlen, "%s", what);
    }
}

/* "a,b" → wire format ("\1a\1b"). NULL on a name of 0 or over 255 bytes. */
static unsigned char *alpn_wire(const char *list, unsigned *len)
{
    size_t n = strlen(list);
    unsigned char *w = malloc(n + 1), *o = w;
    if (!w)
        return NULL;
    for (const char *p = list;;) {
        const char *q = strchr(p, ',');
        size_t l = q ? (size_t)(q - p) : strlen(p);
        if (l == 0 || l > 255) {
            free(w);
            return NULL;
        }
        *o++ = (unsigned char)l;
        memcpy(o, p, l);
        o += l;
        if (!q)
            break;
        p = q + 1;
    }
    *len = (unsigned)(o - w);
    return w;
}

/* Server: the first of its own protocols that the client offers; none in common: no
 * ALPN (the handshake goes on, as Go's does for a client that offers nothing we know). */
static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    (void)s;
    np_tls_config *c = arg;
    for (unsigned i = 0; i < c->alpn_len; i += 1u + c->alpn[i])
        for (unsigned j = 0; j < inlen; j += 1u + in[j])
            if (in[j] == c->alpn[i] && j + 1u + in[j] <= inlen &&
                memcmp(in + j + 1, c->alpn + i + 1, in[j]) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Client: keep the newest resumable session per key (TLS 1.3 tickets come after the
 * handshake, inside SSL_read: still under the connection's lock, on its thread). */
static int new_session(SSL *s, SSL_SESSION *sess)
{
    np_tls *t = SSL_get_app_data(s);
    if (!t || !t->skey[0] || !SSL_SESSION_is_resumable(sess))
        return 0;
    np_tls_config *c = t->cfg;
    pthread_mutex_lock(&c->smu);
    struct sess *slot = NULL, *old = &c->sess[0];
    for (int i = 0; i < SESS_MAX && !slot; i++) {
        if (c->sess[i].s && strcmp(c->sess[i].key, t->skey) == 0)
            slot = &c->sess[i];
        else if (!c->sess[i].s || (old->s && c->sess[i].used < old->used))
            old = &c->sess[i];
    }
    if (!slot)
        slot = old;
    if (slot->s)
        SSL_SESSION_free(slot->s);
    slot->s = sess; /* returning 1 hands us the reference */
    snprintf(slot->key, sizeof slot->key, "%s", t->skey);
    slot->used = ++c->clock;
    pthread_mutex_unlock(&c->smu);
    return 1;
}

SSL_SESSION *np__tls_session_get(np_tls_config *c, const char *key)
{
    SSL_SESSION *s = NULL;
    pthread_mutex_lock(&c->smu);
    for (int i = 0; i < SESS_MAX; i++)
        if (c->sess[i].s && strcmp(c->sess[i].key, key) == 0) {
            s = c->sess[i].s;
            SSL_SESSION_up_ref(s);
            break;
        }
    pthread_mutex_unlock(&c->smu);
    return s;
}

static int version_of(int v, int dflt)
{
    if (v == 0)
        return dflt;
    return v == NP_TLS_1_2 ? TLS1_2_VERSION : v == NP_TLS_1_3 ? TLS1_3_VERSION : -1;
}

static void config_drop(np_tls_config *c)
{
    for (int i = 0; i < SESS_MAX; i++)
        if (c->sess[i].s)
            SSL_SESSION_free(c->sess[i].s);
    SSL_CTX_free(c->ctx);
    pthread_mutex_destroy(&c->smu);
    free(c->alpn);
    free(c);
}

static np_tls_config *fail(np_tls_config *c, int en, char *err, size_t errlen, const char *what)
{
    seterr(err, errlen, what);
    ERR_clear_error();
    if (c)
        config_drop(c);
    errno = en;
    return NULL;
}

/* A file option that names no readable file: ENOENT (or its own errno) up front, with a
 * message that names it, rather than OpenSSL's parse of nothing. */
static int unreadable(const char *path, char *err, size_t errlen, const char *what)
{
    if (!path || access(path, R_OK) == 0)
        return 0;
    int en = errno;
    if (err && errlen)
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(en));
    return en;
}

np_tls_config *np_tls_config_new(int server, const np_tls_opts *opts, char *err, size_t errlen)
{
    static const np_tls_opts none;
    const np_tls_opts *o = opts ? opts : &none;
    if (err && errlen)
        err[0] = 0;
    ERR_clear_error();
    int lo = version_of(o->min_version, TLS1_2_VERSION);
    int hi = version_of(o->max_version, TLS1_3_VERSION);
    if (lo < 0 || hi < 0 || lo > hi)
        return fail(NULL, EINVAL, err, errlen, "min_version/max_version: NP_TLS_1_2 or NP_TLS_1_3, min <= max");
    if (server && !o->cert_file)
        return fail(NULL, EINVAL, err, errlen, "a server needs cert_file");
    int en;
    if ((en = unreadable(o->cert_file, err, errlen, "cert_file")) ||
        (en = unreadable(o->key_file, err, errlen, "key_file")) ||
        (en = unreadable(o->ca_file, err, errlen, "ca_file")) ||
        (en = unreadable(o->ca_dir, err, errlen, "ca_dir"))) {
        errno = en;
        return NULL;
    }
    np_tls_config *c = calloc(1, sizeof *c);
    if (!c)
        return fail(NULL, ENOMEM, err, errlen, "out of memory");
    pthread_mutex_init(&c->smu, NULL);
    atomic_init(&c->refs, 1);
    c->server = server != 0;
    c->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c->ctx)
        return fail(c, ENOMEM, err, errlen, "SSL_CTX_new");
    SSL_CTX *x = c->ctx;
    SSL_CTX_set_min_proto_version(x, lo);
    SSL_CTX_set_max_proto_version(x, hi);
    SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (np__tls_ktls_wanted() && !o->no_ktls)
        SSL_CTX_set_options(x, SSL_OP_ENABLE_KTLS);
    /* Writes go on from where a partial one stopped (np_tls_write loops); idle
     * connections give their record buffers back; reads take what the socket has (one
     * read(2) for a record's header and body, and for pipelined records). */
    SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(x, 1);
    if (o->ciphers && !SSL_CTX_set_cipher_list(x, o->ciphers))
        return fail(c, EINVAL, err, errlen, "ciphers");
    if (o->ciphersuites && !SSL_CTX_set_ciphersuites(x, o->ciphersuites))
        return fail(c, EINVAL, err, errlen, "ciphersuites");
    if (o->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(x, o->cert_file) != 1)
            return fail(c, EINVAL, err, errlen, "cert_file");
        const char *kf = o->key_file ? o->key_file : o->cert_file;
        if (SSL_CTX_use_PrivateKey_file(x, kf, SSL_FILETYPE_PEM) != 1)
            return fail(c, EINVAL, err, errlen, "key_file");
        if (SSL_CTX_check_private_key(x) != 1)
            return fail(c, EINVAL, err, errlen, "key_file does not match cert_file");
    }
    bool verify = server ? o->verify_client != 0 : !o->insecure_skip_verify;
    if (verify) {
        if (o->ca_file || o->ca_dir) {
            if (SSL_CTX_load_verify_locations(x, o->ca_file, o->ca_dir) != 1)
                return fail(c, EINVAL, err, errlen, "ca_file/ca_dir");
        } else if (SSL_CTX_set_default_verify_paths(x) != 1) {
            return fail(c, EINVAL, err, errlen, "the system's CA store");
        }
        SSL_CTX_set_verify(x, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    } else {
        SSL_CTX_set_verify(x, SSL_VERIFY_NONE, NULL);
    }
    c->verify = verify;
    if (o->alpn) {
        if (!(c->alpn = alpn_wire(o->alpn, &c->alpn_len)))
            return fail(c, EINVAL, err, errlen, "alpn: names of 1 to 255 bytes, comma-separated");
        if (server)
            SSL_CTX_set_alpn_select_cb(x, alpn_select, c);
        else if (SSL_CTX_set_alpn_protos(x, c->alpn, c->alpn_len) != 0)
            return fail(c, ENOMEM, err, errlen, "alpn");
    }
    if (server) {
        static const unsigned char sid[] = "np";
        SSL_CTX_set_session_id_context(x, sid, sizeof sid - 1);
        if (o->no_resumption) {
            SSL_CTX_set_options(x, SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(x, 0);
            SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
        }
    } else if (!o->no_resumption) {
        SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(x, new_session);
    } else {
        SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
    }
    ERR_clear_error();
    return c;
}

void np__tls_config_ref(np_tls_config *c) { atomic_fetch_add(&c->refs, 1); }

void np_tls_config_free(np_tls_config *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1)
        config_drop(c);
}
