/* errno across parks. A coroutine may resume on another thread, and compilers keep
 * errno's (thread-local) address in a register across calls. Code that touches errno
 * after something that may park goes through these out-of-line functions, which look
 * the address up afresh. */
#include <errno.h>

__attribute__((noinline)) int np__errno(void) { return errno; }
__attribute__((noinline)) void np__seterrno(int e) { errno = e; }
