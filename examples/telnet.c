/* np-telnet HOST PORT: the seeds' telnet case. One coroutine copies standard input to
 * the connection, another the connection to standard output; both are written as
 * plain blocking loops and run on one runtime. Ends when the server closes. */
#include <np.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *host, *port;
static int conn;
static np_chan *done;

static void copy(int from, int to)
{
    char buf[4096];
    ssize_t n;
    while ((n = np_read(from, buf, sizeof buf)) > 0)
        if (np_write(to, buf, (size_t)n) < 0)
            break;
}

static void stdin_to_net(void *arg)
{
    copy(0, conn);
    np_shutdown(conn, SHUT_WR); /* end of input: half-close, keep reading replies */
}

static void net_to_stdout(void *arg)
{
    copy(conn, 1);
    int one = 1;
    np_chan_send(done, &one);
}

static void run(void *arg)
{
    char addr[300];
    snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    conn = np_dial("tcp", addr, 10LL * 1000000000);
    if (conn < 0) {
        perror("np-telnet: dial");
        exit(1);
    }
    if (np_fd_open(0) != 0 || np_fd_open(1) != 0) {
        perror("np-telnet: stdio");
        exit(1);
    }
    done = np_chan_new(sizeof(int), 1);
    np_go(stdin_to_net, NULL);
    np_go(net_to_stdout, NULL);
    int v;
    np_chan_recv(done, &v);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: np-telnet HOST PORT\n");
        return 2;
    }
    host = argv[1];
    port = argv[2];
    return np_run(run, NULL) == 0 ? 0 : 1;
}
