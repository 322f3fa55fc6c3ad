/* netlog: np's netconsole. Log lines and dumps go out as UDP datagrams to a collector.
 *
 * Like the kernel's netpoll, the send path must work when nothing else does (from a
 * signal handler, with the scheduler wedged, with a lock held by a dead thread): it
 * allocates nothing, takes no lock and never waits. A message takes a ticket (the order
 * on the wire), is written into that ticket's slot of a fixed ring, and whoever wins a
 * try-lock sends the ready slots in ticket order; with nothing queued that is the
 * sender itself, at once. What the socket refuses (EAGAIN) stays queued, in order, for
 * the netlog thread to retry (the kernel's txq and tx_work); with the ring full a
 * message is dropped and counted; the count goes out as "np: netlog dropped N messages
 * (ring full; T in all)", T the running total since np_netlog_open, so a report lost
 * on the way leaves no loss uncounted once a later one arrives, and np_netlog_close
 * ends the stream with "np: netlog closed (T dropped in all, R drop reports)". A
 * flusher that died holding the try-lock is replaced after a while. The thread also
 * listens: a datagram "dump" from the collector's address (the socket is connected to
 * it, so the kernel delivers nothing from anywhere else) makes it send
 * "np: dump requested by ADDRESS:PORT" (the sender, as recvfrom saw it), then a
 * coroutine dump.
 *
 * Datagram: "np <number> <fragment>/<fragments> <text>"; numbers count datagrams, so a
 * gap tells how many were lost. */
#include "debug.h"
#include "../net/addr.h"
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RING 1024
#define DGRAM 1400
#define HDR 48
#define TEXT (DGRAM - HDR)

typedef struct slot {
    _Atomic uint64_t ready; /* ticket + 1 once written, 0 when free */
    uint16_t len;
    char d[DGRAM];
} slot;

static struct {
    _Atomic int fd; /* -1: closed */
    slot *ring;
    _Atomic uint64_t head, tail, dropped, reported, reports;
    _Atomic uintptr_t flusher; /* 0 or the owner's tag */
    _Atomic bool stop, owned_by_run;
    _Atomic bool full; /* the socket said EAGAIN: the thread waits for POLLOUT */
    pthread_t thread;
    bool thread_on;
} nl_ = {.fd = -1};

static _Thread_local char nl_tag; /* its address identifies the calling thread */

bool np__netlog_on(void) { return atomic_load_explicit(&nl_.fd, memory_order_acquire) >= 0; }

static size_t put_dec(char *b, uint64_t v)
{
    char d[24];
    size_t n = 0, k = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while (v /= 10);
    while (n)
        b[k++] = d[--n];
    return k;
}

/* Send ready slots in ticket order while we hold the try-lock. */
static void flush_locked(void)
{
    int fd = atomic_load(&nl_.fd);
    for (;;) {
        uint64_t t = atomic_load_explicit(&nl_.tail, memory_order_relaxed);
        slot *s = &nl_.ring[t % RING];
        if (atomic_load_explicit(&s->ready, memory_order_acquire) != t + 1)
            return;
        ssize_t w = send(fd, s->d, s->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        /* (ENOBUFS may come after the datagram went out: counting it as sent risks a
         * loss, which the numbering shows, rather than a duplicate) */
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            atomic_store_explicit(&nl_.full, true, memory_order_relaxed);
            return; /* the netlog thread retries */
        }
        atomic_store_explicit(&nl_.full, false, memory_order_relaxed);
        /* Sent, or refused for good (no collector: ECONNREFUSED): next. By CAS, in case
         * a flusher presumed dead was not: the slot and the tail move on once. */
        uint64_t r = t + 1;
        atomic_compare_exchange_strong(&s->ready, &r, 0);
        if (!atomic_compare_exchange_strong(&nl_.tail, &t, t + 1))
            return;
    }
}

/* Try to flush; never waits. */
static void try_flush(void)
{
    uintptr_t me = (uintptr_t)&nl_tag;
    for (;;) {
        uintptr_t z = 0;
        if (!atomic_compare_exchange_strong(&nl_.flusher, &z, me) && z != me)
            return; /* someone else sends (or a report interrupted our own flush) */
        flush_locked();
        atomic_store(&nl_.flusher, 0);
        uint64_t t = atomic_load(&nl_.tail);
        if (atomic_load(&nl_.ring[t % RING].ready) != t + 1)
            return;
    }
}

/* Reserve n consecutive tickets (a message's fragments stay together and in order). */
static bool reserve(uint64_t n, uint64_t *first)
{
    uint64_t h = atomic_load(&nl_.head);
    do {
        if (h + n - atomic_load(&nl_.tail) > RING) {
            atomic_fetch_add(&nl_.dropped, 1);
            return false;
        }
    } while (!atomic_compare_exchange_weak(&nl_.head, &h, h + n));
    *first = h;
    return true;
}

void np__netlog_send(const char *msg, size_t len)
{
    if (!np__netlog_on())
        return;
    size_t nfrag = len ? (len + TEXT - 1) / TEXT : 1;
    uint64_t t0;
    if (nfrag > RING / 4 || !reserve(nfrag, &t0))
        return;
    for (size_t k = 0; k < nfrag; k++) {
        slot *s = &nl_.ring[(t0 + k) % RING];
        char *d = s->d;
        size_t n = 3;
        memcpy(d, "np ", 3);
        n += put_dec(d + n, t0 + k + 1); /* the datagram's number: wire order */
        d[n++] = ' ';
        n += put_dec(d + n, k + 1);
        d[n++] = '/';
        n += put_dec(d + n, nfrag);
        d[n++] = ' ';
        size_t c = len - k * TEXT < TEXT ? len - k * TEXT : TEXT;
        memcpy(d + n, msg + k * TEXT, c);
        s->len = (uint16_t)(n + c);
        atomic_store_explicit(&s->ready, t0 + k + 1, memory_order_release);
    }
    try_flush();
}

void np__netlog_flush(void)
{
    /* At a crash: give the socket a little time for what is queued. */
    for (int i = 0; i < 50 && np__netlog_on(); i++) {
        try_flush();
        if (atomic_load(&nl_.tail) == atomic_load(&nl_.head))
            return;
        struct pollfd p = {atomic_load(&nl_.fd), POLLOUT, 0};
        poll(&p, 1, 2);
    }
}

/* Report new drops, with the running total (a report may itself be dropped, and
 * counted: the next one tells). */
static void report_drops(void)
{
    uint64_t d = atomic_load(&nl_.dropped), r = atomic_load(&nl_.reported);
    if (d != r && atomic_load(&nl_.head) - atomic_load(&nl_.tail) < RING / 2 &&
        atomic_compare_exchange_strong(&nl_.reported, &r, d)) {
        char b[128];
        int n = snprintf(b, sizeof b, "np: netlog dropped %llu messages (ring full; %llu in all)",
                         (unsigned long long)(d - r), (unsigned long long)d);
        atomic_fetch_add(&nl_.reports, 1);
        np__netlog_send(b, (size_t)n);
    }
}

/* "np: dump requested by 127.0.0.1:PORT" ("[::1]:PORT"), from recvfrom's address. */
static void say_requester(const struct sockaddr_storage *from, socklen_t fl)
{
    char host[INET6_ADDRSTRLEN] = "?", b[128];
    int port = 0;
    bool v6 = false;
    if (from->ss_family == AF_INET && fl >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const void *)from;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (from->ss_family == AF_INET6 && fl >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const void *)from;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        v6 = true;
    }
    int n = snprintf(b, sizeof b, "np: dump requested by %s%s%s:%d", v6 ? "[" : "", host,
                     v6 ? "]" : "", port);
    np__netlog_send(b, (size_t)n);
}

/* The netlog thread: retries what is queued, replaces a flusher that stopped making
 * progress, and answers "dump" from the collector. */
static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *nl_thread(void *arg)
{
    (void)arg;
    uint64_t seen_tail = atomic_load(&nl_.tail);
    int64_t progress = mono();
    while (!atomic_load(&nl_.stop)) {
        struct pollfd p = {atomic_load(&nl_.fd), POLLIN, 0};
        if (atomic_load(&nl_.full))
            p.events |= POLLOUT;
        int r = poll(&p, 1, 10);
        if (r > 0 && (p.revents & POLLIN)) {
            char b[64];
            struct sockaddr_storage from;
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(p.fd, b, sizeof b - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
            if (n >= 4 && memcmp(b, "dump", 4) == 0 && np__look_begin()) {
                say_requester(&from, fl);
                np_out o = {.fd = -1, .netlog = true};
                np__dump_to(&o, NULL);
                np__look_end();
            }
        }
        int64_t now = mono();
        uint64_t t = atomic_load(&nl_.tail);
        uintptr_t f = atomic_load(&nl_.flusher);
        if (t != seen_tail || t == atomic_load(&nl_.head) || !f) {
            seen_tail = t;
            progress = now;
        } else if (now - progress > 500000000) {
            /* Half a second holding the try-lock without sending a thing: its holder
             * died (a crashed thread). Take the lock away. */
            atomic_compare_exchange_strong(&nl_.flusher, &f, 0);
            progress = now;
        }
        try_flush();
        report_drops();
    }
    return NULL;
}

int np_netlog_open(const char *url)
{
    if (!url || strncmp(url, "udp://", 6) != 0) {
        errno = EINVAL;
        return -1;
    }
    if (np__netlog_on()) {
        errno = EBUSY;
        return -1;
    }
    np_net net = {AF_UNSPEC, SOCK_DGRAM};
    np_addrs as;
    if (np__addr_resolve(&net, url + 6, false, &as) != 0)
        return -1;
    int fd = socket(as.a[0].ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int big = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (connect(fd, (struct sockaddr *)&as.a[0], as.len[0]) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (!nl_.ring) {
        void *m = mmap(NULL, RING * sizeof(slot), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return -1;
        }
        nl_.ring = m;
    }
    atomic_store(&nl_.head, 0);
    atomic_store(&nl_.tail, 0);
    atomic_store(&nl_.flusher, 0);
    atomic_store(&nl_.dropped, 0);
    atomic_store(&nl_.reported, 0);
    atomic_store(&nl_.reports, 0);
    atomic_store(&nl_.stop, false);
    atomic_store(&nl_.fd, fd);
    if (pthread_create(&nl_.thread, NULL, nl_thread, NULL) != 0) {
        atomic_store(&nl_.fd, -1);
        close(fd);
        errno = EAGAIN;
        return -1;
    }
    nl_.thread_on = true;
    return 0;
}

void np_netlog_close(void)
{
    if (!np__netlog_on())
        return;
    np__netlog_flush();
    atomic_store(&nl_.stop, true);
    if (nl_.thread_on)
        pthread_join(nl_.thread, NULL);
    nl_.thread_on = false;
    report_drops(); /* what was dropped since the last report */
    char b[128];
    int n = snprintf(b, sizeof b, "np: netlog closed (%llu dropped in all, %llu drop reports)",
                     (unsigned long long)atomic_load(&nl_.dropped),
                     (unsigned long long)atomic_load(&nl_.reports));
    np__netlog_send(b, (size_t)n);
    np__netlog_flush();
    int fd = atomic_exchange(&nl_.fd, -1);
    close(fd);
    atomic_store(&nl_.owned_by_run, false);
}

int np__netlog_start(void)
{
    const char *u = getenv("NP_NETLOG");
    if (!u || !*u || np__netlog_on())
        return 0;
    if (np_netlog_open(u) != 0)
        return -1;
    atomic_store(&nl_.owned_by_run, true);
    return 0;
}

void np__netlog_stop(void)
{
    if (atomic_load(&nl_.owned_by_run))
        np_netlog_close();
}

void np_log(const char *fmt, ...)
{
    char b[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof b - 2)
        n = (int)sizeof b - 2;
    np__netlog_send(b, (size_t)n);
    b[n] = '\n';
    if (write(2, b, (size_t)n + 1) < 0) {
    }
}
