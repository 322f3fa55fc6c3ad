/* Address strings: "host:port", "[v6]:port", ":port", names, unix paths. */
#include "addr.h"
#include <arpa/inet.h>
#include <errno.h>
#include <np.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

int np__net_parse(const char *network, np_net *net)
{
    static const struct { const char *name; int family, type; } nets[] = {
        {"tcp", AF_UNSPEC, SOCK_STREAM}, {"tcp4", AF_INET, SOCK_STREAM},
        {"tcp6", AF_INET6, SOCK_STREAM}, {"udp", AF_UNSPEC, SOCK_DGRAM},
        {"udp4", AF_INET, SOCK_DGRAM},   {"udp6", AF_INET6, SOCK_DGRAM},
        {"unix", AF_UNIX, SOCK_STREAM},
    };
    for (size_t i = 0; network && i < sizeof nets / sizeof nets[0]; i++)
        if (strcmp(network, nets[i].name) == 0) {
            net->family = nets[i].family;
            net->socktype = nets[i].type;
            return 0;
        }
    errno = EINVAL;
    return -1;
}

static int einval(void)
{
    errno = EINVAL;
    return -1;
}

/* Split "host:port" / "[host]:port" into host (possibly empty) and a port number. */
static int split(const char *address, char *host, size_t hostsz, unsigned *port)
{
    const char *colon, *h = address;
    size_t hl;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (!close || close[1] != ':')
            return einval();
        h = address + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(address, ':');
        if (!colon || memchr(address, ':', (size_t)(colon - address)))
            return einval(); /* none, or a bare IPv6 literal without brackets */
        hl = (size_t)(colon - address);
    }
    if (hl >= hostsz)
        return einval();
    memcpy(host, h, hl);
    host[hl] = 0;
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5)
        return einval();
    unsigned v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return einval();
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > 65535)
        return einval();
    *port = v;
    return 0;
}

static void add(np_addrs *o, const void *sa, socklen_t len)
{
    if (o->n < 16) {
        memcpy(&o->a[o->n], sa, len);
        o->len[o->n++] = len;
    }
}

static void add4(np_addrs *o, const struct in_addr *ip, unsigned port)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = *ip};
    add(o, &s, sizeof s);
}

static void add6(np_addrs *o, const struct in6_addr *ip, unsigned port)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = *ip};
    add(o, &s, sizeof s);
}

struct gai { const char *host; struct addrinfo hints, *res; int rc; };
static void *gai_run(void *a)
{
    struct gai *g = a;
    g->rc = getaddrinfo(g->host, NULL, &g->hints, &g->res);
    return NULL;
}

int np__addr_resolve(const np_net *net, const char *address, bool passive, np_addrs *out)
{
    out->n = 0;
    if (!address)
        return einval();
    if (net->family == AF_UNIX) {
        struct sockaddr_un u = {.sun_family = AF_UNIX};
        size_t l = strlen(address);
        if (l == 0 || l >= sizeof u.sun_path)
            return einval();
        memcpy(u.sun_path, address, l);
        if (address[0] == '@')
            u.sun_path[0] = 0; /* abstract namespace */
        add(out, &u, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l + (address[0] != '@')));
        return 0;
    }
    char host[256];
    unsigned port = 0;
    if (split(address, host, sizeof host, &port) != 0)
        return -1;
    struct in_addr a4;
    struct in6_addr a6;
    if (!*host) {
        if (!passive) { /* dialing ":port" means this host */
            if (net->family != AF_INET6) {
                inet_pton(AF_INET, "127.0.0.1", &a4);
                add4(out, &a4, port);
            }
            if (net->family != AF_INET)
                add6(out, &in6addr_loopback, port);
        } else if (net->family == AF_INET) {
            a4.s_addr = htonl(INADDR_ANY);
            add4(out, &a4, port);
        } else {
            add6(out, &in6addr_any, port); /* dual-stack for "tcp"/"udp" */
            if (net->family == AF_UNSPEC) {
                a4.s_addr = htonl(INADDR_ANY);
                add4(out, &a4, port); /* fallback where IPv6 is off */
            }
        }
        return 0;
    }
    if (inet_pton(AF_INET, host, &a4) == 1) {
        if (net->family == AF_INET6)
            return einval();
        add4(out, &a4, port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (net->family == AF_INET)
            return einval();
        add6(out, &a6, port);
        return 0;
    }
    for (const char *c = host; *c; c++)
        if (!(*c == '-' || *c == '.' || *c == '_' || (*c >= '0' && *c <= '9') ||
              ((*c | 32) >= 'a' && (*c | 32) <= 'z')))
            return einval();
    struct gai g = {.host = host};
    g.hints.ai_family = net->family;
    g.hints.ai_socktype = net->socktype;
    np_blocking(gai_run, &g);
    if (g.rc != 0) {
        errno = g.rc == EAI_MEMORY ? ENOMEM : g.rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
        return -1;
    }
    /* IPv4 first, as most dialers expect of "localhost" */
    for (int pass = 0; pass < 2; pass++)
        for (struct addrinfo *r = g.res; r; r = r->ai_next) {
            if (pass == 0 && r->ai_family == AF_INET)
                add4(out, &((struct sockaddr_in *)r->ai_addr)->sin_addr, port);
            if (pass == 1 && r->ai_family == AF_INET6)
                add6(out, &((struct sockaddr_in6 *)r->ai_addr)->sin6_addr, port);
        }
    freeaddrinfo(g.res);
    if (out->n == 0) {
        errno = EHOSTUNREACH;
        return -1;
    }
    return 0;
}
