/* NP_HOT: the functions every echoed message runs through (fd calls, parking, the
 * poller, the switch). They are placed side by side so that the path spans a few code
 * pages, not a dozen: on a host where every system call evicts the TLB (the
 * paravirtualized VMs benchmarks run on), each page touched after one costs a walk. */
#ifndef NP_HOT_H
#define NP_HOT_H
#define NP_HOT __attribute__((section(".text.hot.np")))
#endif
