/* np-echo [PORT]: echo server, one coroutine per connection, a 4 KiB buffer, read then
 * write back (the shape of the yardstick's go_echo). NP_PROCS sets the processors. */
#include <np.h>
#include <stdio.h>
#include <stdlib.h>

static void serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = np_read(fd, buf, sizeof buf)) > 0)
        if (np_write(fd, buf, (size_t)n) < 0)
            break;
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
