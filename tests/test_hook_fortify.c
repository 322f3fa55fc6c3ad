/* libnp-hook under -D_FORTIFY_SOURCE=2 -O2, as Debian builds its libraries: read, recv,
 * recvfrom and poll on buffers of known size compile to glibc's __read_chk, __recv_chk,
 * __recvfrom_chk and __poll_chk (the Makefile checks that this binary calls them), which
 * call the kernel past libc's own entry points. The hook's versions park instead. */
#include "t.h"
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int sp[2];
/* A length the compiler cannot see: glibc's wrappers call the plain function when it can
 * prove the call safe, the _chk one otherwise. */
static volatile size_t len_ = 16;
static np_wg wg = NP_WG_INIT;

/* Writes once the reader has parked in its next _chk call. */
static void writer(void *arg)
{
    wait_blocked(NP_WAIT_IO, 1);
    CHECK_EQ(write(sp[1], "abcd", 4), 4);
    np_wg_done(&wg);
}

static void later(void)
{
    np_wg_add(&wg, 1);
    CHECK(np_go(writer, NULL) > 0);
}

static void fortified_main(void *arg)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    char buf[16];
    later();
    CHECK_EQ(read(sp[0], buf, len_), 4); /* __read_chk */
    np_wg_wait(&wg);
    later();
    CHECK_EQ(recv(sp[0], buf, len_, 0), 4); /* __recv_chk */
    np_wg_wait(&wg);
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    later();
    CHECK_EQ(recvfrom(sp[0], buf, len_, 0, (struct sockaddr *)&from, &fl), 4); /* __recvfrom_chk */
    np_wg_wait(&wg);
    struct pollfd pf[2] = {{sp[0], POLLIN, 0}, {-1, 0, 0}};
    later();
    CHECK_EQ(poll(pf, len_ / 8, 5000), 1); /* __poll_chk */
    CHECK_EQ(pf[0].revents, POLLIN);
    CHECK_EQ(read(sp[0], buf, sizeof buf), 4);
    np_wg_wait(&wg);
    close(sp[0]);
    close(sp[1]);
}

static void t_fortified_calls_park(void)
{
    t_procs(1);
    T_RUN(fortified_main, NULL);
}

static const t_case cases[] = {
    T(t_fortified_calls_park),
    {0},
};
T_MAIN(cases)
