/* Network names and address strings -> socket addresses. */
#ifndef NP_ADDR_H
#define NP_ADDR_H
#include <netdb.h>
#include <stdbool.h>
#include <sys/socket.h>

typedef struct np_net {
    int family;   /* AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC for "tcp"/"udp" */
    int socktype; /* SOCK_STREAM or SOCK_DGRAM */
} np_net;

typedef struct np_addrs {
    struct sockaddr_storage a[16];
    socklen_t len[16];
    int n;
} np_addrs;

/* 0, or -1/EINVAL for an unknown network. */
int np__net_parse(const char *network, np_net *net);
/* Resolve address for net; passive: for listening (empty host = every address).
 * Host names go through getaddrinfo in np_blocking. 0, or -1/errno (EINVAL when
 * malformed, EHOSTUNREACH/ENOENT when a name does not resolve). */
int np__addr_resolve(const np_net *net, const char *address, bool passive, np_addrs *out);

#endif
