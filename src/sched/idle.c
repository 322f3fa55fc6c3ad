/* The idle wait used while no poller back end is present: the one idle M that watches
 * the timers sleeps on a note, which np__netpoll_break wakes. */
#include "poll.h"

bool np__netpoll_waiters(void) { return false; }

np_g *np__netpoll(int64_t delay)
{
    if (delay < 0)
        np_note_sleep(&np__sched.pollnote);
    else if (delay > 0)
        np_note_tsleep(&np__sched.pollnote, delay);
    np_note_clear(&np__sched.pollnote);
    return NULL;
}

void np__netpoll_break(void) { np_note_wakeup(&np__sched.pollnote); }
