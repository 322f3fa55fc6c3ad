/* Run queues: per-P bounded lock-free ring (owner puts, anyone takes by CAS on head),
 * a runnext slot, and the global queue under the scheduler lock. */
#ifndef NP_RUNQ_H
#define NP_RUNQ_H
#include "sched.h"

void np__runqput(np_p *p, np_g *g, bool next);
np_g *np__runqget(np_p *p);
/* One P: put the coroutines of list (linked by schedlink) on p's ring while there is
 * room; returns those left over. */
np_g *np__runqputlist_solo(np_p *p, np_g *list);
bool np__runqempty(np_p *p);
np_g *np__runqsteal(np_p *p, np_p *victim);
/* Global queue; lock held. */
void np__globrunqput(np_g *g);
void np__globrunqputbatch(np_g *head, np_g *tail, int32_t n);
np_g *np__globrunqget(np_p *p, int32_t max);

#endif
