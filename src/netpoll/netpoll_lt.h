/* Shared registry of the level-triggered back ends (poll, select): the descriptors,
 * what each waits for, and the wake-up descriptor. Interest in a direction is armed
 * when a coroutine waits and dropped once reported, so a ready descriptor nobody
 * waits on does not spin the poller. */
#ifndef NP_NETPOLL_LT_H
#define NP_NETPOLL_LT_H
#include "netpoll.h"
#include "../sched/poll.h"

typedef struct np_lt_ent { int fd; int mode; np_pd *pd; uint32_t tag; } np_lt_ent;

int np__lt_init(void);
void np__lt_fini(void);
int np__lt_open(int fd, np_pd *pd);
void np__lt_close(int fd, np_pd *pd);
void np__lt_arm(np_pd *pd, int mode);
/* A copy of the armed entries (caller frees *out); *wakefd is put first as fd -1's
 * stand-in: entry 0 is always the wake-up descriptor. blocking marks a poll that
 * np__lt_arm must interrupt. Returns the count, or -1. */
int np__lt_snapshot(np_lt_ent **out, bool blocking);
void np__lt_done(bool blocking);
/* Report what fired for entry e of a snapshot (mode PD_R|PD_W, err: error only). */
void np__lt_fired(const np_lt_ent *e, int mode, bool err, np_ready *rd);
/* Drain the wake-up descriptor (entry 0 fired in a blocking poll). */
void np__lt_drain(void);
void np__lt_wake(void);

#endif
