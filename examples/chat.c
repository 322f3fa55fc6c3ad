/* np-chat [PORT]: a broadcast chat server. Each client has a reader coroutine that
 * sends its lines to a hub channel and a writer coroutine fed by its own channel; the
 * hub coroutine forwards every line to every client. Slow clients lose lines rather
 * than stall the room. */
#include <np.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXLINE 512
#define MAXCLIENTS 1024

typedef struct msg { int kind; int fd; np_chan *out; char text[MAXLINE + 16]; } msg;
enum { JOIN, LEAVE, LINE };

static np_chan *hub;

static void writer(void *arg)
{
    np_chan *out = arg;
    msg m;
    int fd = -1;
    while (np_chan_recv(out, &m) == 1) {
        fd = m.fd;
        if (np_write(m.fd, m.text, strlen(m.text)) < 0)
            break;
    }
    (void)fd;
    np_chan_free(out);
}

static void reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    msg m = {JOIN, fd, np_chan_new(sizeof(msg), 64), ""};
    np_chan *out = m.out;
    np_go(writer, out);
    np_chan_send(hub, &m);
    char buf[MAXLINE], line[MAXLINE];
    size_t len = 0;
    ssize_t n;
    while ((n = np_read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (len < sizeof line - 2)
                line[len++] = buf[i];
            if (buf[i] == '\n' || len == sizeof line - 2) {
                if (line[len - 1] != '\n')
                    line[len++] = '\n';
                line[len] = 0;
                msg l = {LINE, fd, out, ""};
                snprintf(l.text, sizeof l.text, "%d: %s", fd, line);
                np_chan_send(hub, &l);
                len = 0;
            }
        }
    }
    msg bye = {LEAVE, fd, out, ""};
    np_chan_send(hub, &bye);
}

static void hubloop(void *arg)
{
    static msg clients[MAXCLIENTS];
    int n = 0;
    msg m;
    while (np_chan_recv(hub, &m) == 1) {
        if (m.kind == JOIN && n < MAXCLIENTS) {
            clients[n++] = m;
        } else if (m.kind == LEAVE) {
            for (int i = 0; i < n; i++)
                if (clients[i].fd == m.fd) {
                    np_chan_close(clients[i].out); /* its writer ends */
                    clients[i] = clients[--n];
                    break;
                }
            np_close(m.fd);
        } else if (m.kind == LINE) {
            for (int i = 0; i < n; i++) {
                msg o = m;
                o.fd = clients[i].fd;
                np_chan_trysend(clients[i].out, &o); /* full: that client misses it */
            }
        }
    }
}

static void run(void *arg)
{
    char addr[32];
    snprintf(addr, sizeof addr, ":%s", (const char *)arg);
    int ln = np_listen("tcp", addr);
    if (ln < 0) {
        perror("np-chat: listen");
        exit(1);
    }
    hub = np_chan_new(sizeof(msg), 256);
    np_go(hubloop, NULL);
    for (;;) {
        int c = np_accept(ln, NULL, NULL);
        if (c >= 0)
            np_go(reader, (void *)(intptr_t)c);
    }
}

int main(int argc, char **argv)
{
    const char *port = argc > 1 ? argv[argc - 1] : "7001";
    return np_run(run, (void *)port) == 0 ? 0 : 1;
}
