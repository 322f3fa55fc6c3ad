/* Channels that time fills: np_after and np_ticker (tick.c). Internal to np. */
#ifndef NP_TICK_H
#define NP_TICK_H
#include <stdbool.h>

struct np__tsrc;

/* The source is a ticker's (its channel is freed by np_ticker_free only). */
bool np__tsrc_ticker(const struct np__tsrc *s);
/* Stop s's timer, wait until no callback of it runs on another thread, free s. For
 * np__chan_free of s's channel (which it frees next). */
void np__tsrc_free(struct np__tsrc *s);

#endif
