/* Name lookups: glibc's resolver blocks in its own, unhooked, calls (and may read files,
 * or load NSS modules): in a coroutine the lookup runs through np_blocking, so the P
 * serves other coroutines meanwhile (Go's cgo resolver does the same with a thread).
 * gethostbyname's result lives in libc's static storage: the call and the copy-out both
 * happen on the thread np_blocking runs the lookup on, before the coroutine resumes. */
#undef _FORTIFY_SOURCE /* these define the functions glibc's fortify wrappers inline */
#include "hook.h"
#include <netdb.h>
#include <sys/socket.h>

/* No system call does these. In a fully static program libc.a's own definitions are
 * strong and these weak ones give way (no hook: the lookup blocks its thread); anywhere
 * else the program's definition comes first, weak or not. */
#define REAL(name, type) NP_REAL(type, name, NULL)
#define NP_HOOK_WEAK NP_HOOK __attribute__((weak))

/* fn(arg) through np_blocking in a coroutine, directly elsewhere. */
static void lookup(void *(*fn)(void *), void *arg)
{
    if (np__hook_in_coroutine())
        np_blocking(fn, arg);
    else
        fn(arg);
}

struct gai {
    const char *node, *service;
    const struct addrinfo *hints;
    struct addrinfo **res;
    int r;
};
static void *gai_run(void *a)
{
    struct gai *x = a;
    x->r = REAL(getaddrinfo, int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))(
        x->node, x->service, x->hints, x->res);
    return NULL;
}

NP_HOOK_WEAK int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    struct gai x = {node, service, hints, res, 0};
    lookup(gai_run, &x);
    return x.r;
}

struct gni {
    const struct sockaddr *sa;
    socklen_t salen;
    char *host;
    socklen_t hostlen;
    char *serv;
    socklen_t servlen;
    int flags, r;
};
static void *gni_run(void *a)
{
    struct gni *x = a;
    x->r = REAL(getnameinfo, int (*)(const struct sockaddr *, socklen_t, char *, socklen_t, char *, socklen_t, int))(
        x->sa, x->salen, x->host, x->hostlen, x->serv, x->servlen, x->flags);
    return NULL;
}

NP_HOOK_WEAK int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen, char *serv,
                        socklen_t servlen, int flags)
{
    struct gni x = {sa, salen, host, hostlen, serv, servlen, flags, 0};
    lookup(gni_run, &x);
    return x.r;
}

struct ghbn {
    const char *name;
    struct hostent *ret, **result;
    char *buf;
    size_t buflen;
    int *err, r;
};
static void *ghbn_run(void *a)
{
    struct ghbn *x = a;
    x->ret = REAL(gethostbyname, struct hostent *(*)(const char *))(x->name);
    return NULL;
}

NP_HOOK_WEAK struct hostent *gethostbyname(const char *name)
{
    struct ghbn x = {.name = name};
    lookup(ghbn_run, &x);
    return x.ret;
}

static void *ghbnr_run(void *a)
{
    struct ghbn *x = a;
    x->r = REAL(gethostbyname_r, int (*)(const char *, struct hostent *, char *, size_t, struct hostent **, int *))(
        x->name, x->ret, x->buf, x->buflen, x->result, x->err);
    return NULL;
}

NP_HOOK_WEAK int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen, struct hostent **result,
                            int *h_errnop)
{
    struct ghbn x = {name, ret, result, buf, buflen, h_errnop, 0};
    lookup(ghbnr_run, &x);
    return x.r;
}
