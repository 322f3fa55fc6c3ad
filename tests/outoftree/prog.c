/* A program outside np's tree, as a user would write it: built by tests/install.sh in a
 * temporary directory with `pkg-config --cflags --libs np` against an installed np
 * (shared, then static). Exit status 0 when every check held. */
#include <np.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int failed;
#define EXPECT(c) \
    do { if (!(c)) { fprintf(stderr, "prog.c:%d: %s failed (errno %d)\n", __LINE__, #c, errno); failed = 1; } } while (0)

static np_wg served = NP_WG_INIT;

static void serve(void *arg)
{
    int l = (int)(intptr_t)arg, c = np_accept(l, NULL, NULL);
    char buf[64];
    ssize_t n;
    EXPECT(c >= 0);
    while (c >= 0 && (n = np_read(c, buf, sizeof buf)) > 0)
        EXPECT(np_write(c, buf, (size_t)n) == n);
    np_close(c);
    np_wg_done(&served);
}

static void counter(void *arg)
{
    np_chan *ch = arg;
    for (int i = 1; i <= 100; i++)
        np_chan_send(ch, &i);
    np_chan_close(ch);
}

static void main_co(void *arg)
{
    (void)arg;
    np_chan *ch = np_chan_new(sizeof(int), 4);
    np_go(counter, ch);
    int v, sum = 0;
    while (np_chan_recv(ch, &v) == 1)
        sum += v;
    EXPECT(sum == 5050);
    np_chan_free(ch);

    int l = np_listen("tcp", "127.0.0.1:0");
    EXPECT(l >= 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    EXPECT(getsockname(l, (struct sockaddr *)&sa, &sl) == 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    np_wg_add(&served, 1);
    np_go(serve, (void *)(intptr_t)l);
    int c = np_dial("tcp", addr, 5000000000LL);
    EXPECT(c >= 0);
    char back[16] = {0};
    EXPECT(np_write(c, "hello, np", 9) == 9);
    EXPECT(np_read(c, back, sizeof back) == 9 && memcmp(back, "hello, np", 9) == 0);
    np_close(c);
    np_wg_wait(&served);
    np_close(l);
}

int main(void)
{
    if (strcmp(np_version(), NP_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", NP_VERSION_STRING, np_version());
        return 1;
    }
    if (np_run(main_co, NULL) != 0)
        return 1;
    if (!failed)
        printf("prog: np %s ok\n", np_version());
    return failed;
}
