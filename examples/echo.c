/* np-echo [PORT]: echo server, one coroutine per connection, a 4 KiB buffer, read then
 * write back (the shape of the yardstick's go_echo). NP_PROCS sets the processors.
 *
 * The buffer lives in echo_some's frame, which exists only while there is data: an
 * idle connection's coroutine waits in np_wait_readable with a shallow stack, and the
 * runtime gives the pages the buffer used back after a while (NP_STACK_TRIM). */
#include <np.h>
#include <stdio.h>
#include <stdlib.h>

/* Echo what is there: until a read comes back short (the socket is empty). 0, or -1
 * at end of file or on an error. */
static __attribute__((noinline)) int echo_some(int fd)
{
    char buf[4096];
    ssize_t n;
    do {
        if ((n = np_read(fd, buf, sizeof buf)) <= 0 || np_write(fd, buf, (size_t)n) < 0)
            return -1;
    } while (n == (ssize_t)sizeof buf);
    return 0;
}

static void serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    while (np_wait_readable(fd) == 0 && echo_some(fd) == 0)
        ;
    np_close(fd);
}

static void run(void *arg)
{
    char addr[32];
    snprintf(addr, sizeof addr, ":%s", (const char *)arg);
    int ln = np_listen("tcp", addr);
    if (ln < 0) {
        perror("np-echo: listen");
        exit(1);
    }
    for (;;) {
        int c = np_accept(ln, NULL, NULL);
        if (c >= 0)
            np_go(serve, (void *)(intptr_t)c);
    }
}

int main(int argc, char **argv)
{
    const char *port = argc > 1 ? argv[argc - 1] : "7000";
    if (np_run(run, (void *)port) != 0) {
        perror("np-echo");
        return 1;
    }
    return 0;
}
