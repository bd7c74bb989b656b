/* loadgen_stats: what bench/loadgen measures besides counts, the latency
 * histogram and the busy time of a core. */
#include "loadgen_stats.h"

#include <stdio.h>
#include <string.h>

void lg_hist_add(lg_hist_t *h, uint64_t v) {
  size_t i;
  if (v < 64) {
    i = v;
  } else {
    int e = 63 - __builtin_clzll(v);
    if (e > 41)
      e = 41, v = (1ull << 42) - 1;
    i = 64 + (size_t)(e - 6) * 32 + ((v >> (e - 5)) & 31);
  }
  h->buckets[i]++;
  h->n++;
}

/* The value at quantile q, as the middle of its bucket. */
double lg_hist_quantile(const lg_hist_t *h, double q) {
  uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
  for (size_t i = 0; i < sizeof h->buckets / sizeof h->buckets[0]; i++) {
    seen += h->buckets[i];
    if (h->n && seen > want) {
      if (i < 64)
        return (double)i;
      int e = (int)((i - 64) / 32) + 6;
      uint64_t m = (i - 64) % 32;
      double lo = (double)((32 + m) << (e - 5));
      return lo + (double)(1ull << (e - 5)) / 2;
    }
  }
  return 0;
}

/* Server core busy time in ticks from /proc/stat, for one cpu. */
uint64_t lg_cpu_busy_ticks(int cpu, uint64_t *total) {
  FILE *f = fopen("/proc/stat", "r");
  char line[512], name[16];
  uint64_t busy = 0;
  *total = 0;
  if (!f)
    return 0;
  if (cpu == -2)
    snprintf(name, sizeof name, "cpu  ");
  else
    snprintf(name, sizeof name, "cpu%d ", cpu);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, name, strlen(name)) == 0) {
      unsigned long long v[10] = {0};
      sscanf(line + strlen(name), "%llu %llu %llu %llu %llu %llu %llu %llu",
             &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
      busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
      *total = busy + v[3] + v[4];
      break;
    }
  }
  fclose(f);
  return busy;
}
