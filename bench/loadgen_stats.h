/* loadgen_stats: what bench/loadgen measures besides counts, the latency
 * histogram and the busy time of a core. */
#ifndef LOADGEN_STATS_H
#define LOADGEN_STATS_H

#include <stdint.h>

/* Latencies in nanoseconds: exact below 64, then 32 buckets per power of
 * two (about 3% wide) up to 2^42 ns; larger values count in the last. */
typedef struct {
  uint64_t buckets[64 + 36 * 32];
  uint64_t n;
} lg_hist_t;

void lg_hist_add(lg_hist_t *h, uint64_t v);

/* The value at quantile q (0..1), as the middle of its bucket; 0 when the
 * histogram is empty. */
double lg_hist_quantile(const lg_hist_t *h, double q);

/* Busy ticks of cpu N from /proc/stat (cpu -2: the "cpu" line, every core),
 * with busy plus idle ticks in *total; 0 and 0 when it cannot be read. */
uint64_t lg_cpu_busy_ticks(int cpu, uint64_t *total);

#endif
