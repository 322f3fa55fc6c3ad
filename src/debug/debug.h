/* Seeing inside: dump, fatal signals, netlog. Internal to np. */
#ifndef NP_DEBUG_H
#define NP_DEBUG_H
#include "../sched/sched.h"
#include <stddef.h>

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
#define NP_NOTSAN __attribute__((no_sanitize("thread")))
#else
#define NP_NOTSAN
#endif

/* An output: a line buffer written with write(2) to fd (if >= 0) and, line by line,
 * to the netlog (if netlog). Async-signal-safe. err: the first write error (errno),
 * after which nothing more is written to fd. */
typedef struct np_out { int fd; bool netlog; int err; size_t n; char b[600]; } np_out;
void np__out_str(np_out *o, const char *s);
void np__out_dec(np_out *o, int64_t v);
void np__out_hex(np_out *o, uintptr_t v);
void np__out_flush(np_out *o);

/* The dump itself; ctx: the interrupted context of the calling thread (signal
 * handlers), or NULL. */
void np__dump_to(np_out *o, const void *ctx);

/* A wait reason's name (W_*), as the dump shows it. */
const char *np__wait_name(int r);

void np__signals_install(void);
void np__signals_restore(void);

/* netlog: queue or send one message (no newline needed); async-signal-safe. */
void np__netlog_send(const char *msg, size_t len);
bool np__netlog_on(void);
void np__netlog_flush(void);
int np__netlog_start(void); /* at np_run: NP_NETLOG */
void np__netlog_stop(void);

#endif
