/* np-netlog [-o FILE] [PORT]: the collector for np's netlog. Prints what arrives,
 * reassembled, with sender and time; counts messages lost on the way (gaps in a
 * sender's numbering). Typing "dump" on standard input asks every sender heard from
 * for a coroutine dump. Default port 6666. */
#include <np.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXSENDERS 64
#define MAXMSG 65536

typedef struct sender {
    struct sockaddr_storage a;
    socklen_t alen;
    unsigned long long last; /* number of the last datagram received */
    unsigned long long cur;  /* number of the first datagram of the message being built */
    size_t len, nextfrag;
    char buf[MAXMSG];
} sender;

static sender senders[MAXSENDERS];
static int nsenders, sock = -1;
static FILE *out;
static unsigned long long lost;

static sender *find(struct sockaddr_storage *a, socklen_t l)
{
    for (int i = 0; i < nsenders; i++)
        if (senders[i].alen == l && memcmp(&senders[i].a, a, l) == 0)
            return &senders[i];
    if (nsenders == MAXSENDERS)
        return NULL;
    sender *s = &senders[nsenders++];
    memset(s, 0, sizeof *s);
    memcpy(&s->a, a, l);
    s->alen = l;
    return s;
}

static void name(sender *s, char *b, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (s->a.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&s->a;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (s->a.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->a;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(b, n, "%s:%d", ip, port);
}

static void emit(sender *s, const char *text, size_t len)
{
    char who[80], ts[32];
    name(s, who, sizeof who);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    struct tm tm;
    localtime_r(&t.tv_sec, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    fprintf(out, "%s.%03ld %s #%llu %.*s\n", ts, t.tv_nsec / 1000000, who, s->cur, (int)len, text);
    fflush(out);
}

static void receiver(void *arg)
{
    char d[2048];
    for (;;) {
        struct sockaddr_storage a;
        socklen_t l = sizeof a;
        ssize_t n = np_recvfrom(sock, d, sizeof d - 1, 0, (struct sockaddr *)&a, &l);
        if (n < 0)
            continue;
        d[n] = 0;
        unsigned long long id;
        unsigned k, nf;
        int off = 0;
        if (sscanf(d, "np %llu %u/%u %n", &id, &k, &nf, &off) != 3 || off == 0 || k == 0 || k > nf)
            continue;
        sender *s = find(&a, l);
        if (!s)
            continue;
        if (id <= s->last && s->last != 0)
            continue; /* duplicate */
        if (id > s->last + 1 && s->last != 0) {
            lost += id - s->last - 1;
            fprintf(out, "-- %llu lost from ", id - s->last - 1);
            char who[80];
            name(s, who, sizeof who);
            fprintf(out, "%s --\n", who);
        }
        s->last = id;
        if (k == 1) {
            s->cur = id;
            s->len = 0;
            s->nextfrag = 1;
        }
        if (id != s->cur + (k - 1) || k != s->nextfrag)
            continue; /* a fragment of a message whose start was lost */
        size_t c = (size_t)n - (size_t)off;
        if (s->len + c <= MAXMSG) {
            memcpy(s->buf + s->len, d + off, c);
            s->len += c;
        }
        s->nextfrag++;
        if (k == nf)
            emit(s, s->buf, s->len);
    }
}

static void console(void *arg)
{
    char b[128];
    ssize_t n;
    while ((n = np_read(0, b, sizeof b)) > 0) {
        if (n >= 4 && memcmp(b, "dump", 4) == 0)
            for (int i = 0; i < nsenders; i++)
                np_sendto(sock, "dump", 4, 0, (struct sockaddr *)&senders[i].a, senders[i].alen);
        else if (n >= 4 && memcmp(b, "lost", 4) == 0)
            fprintf(out, "-- %llu lost in all --\n", lost), fflush(out);
    }
}

static void run(void *arg)
{
    char addr[32];
    snprintf(addr, sizeof addr, ":%s", (const char *)arg);
    sock = np_listen("udp", addr);
    if (sock < 0) {
        perror("np-netlog: listen");
        exit(1);
    }
    fprintf(stderr, "np-netlog: listening on udp port %s\n", (const char *)arg);
    if (np_fd_open(0) == 0)
        np_go(console, NULL);
    receiver(NULL);
}

int main(int argc, char **argv)
{
    const char *port = "6666";
    out = stdout;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            out = fopen(argv[++i], "a");
            if (!out) {
                perror(argv[i]);
                return 1;
            }
        } else {
            port = argv[i];
        }
    }
    return np_run(run, (void *)port) == 0 ? 0 : 1;
}
