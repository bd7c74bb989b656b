/* loadgen_util: the clock, the masking-key generator and fatal errors of
 * bench/loadgen. */
#define _GNU_SOURCE
#include "loadgen_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

static uint64_t rng_state[2];

uint64_t lg_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void lg_rng_seed(void) {
  if (getrandom(rng_state, sizeof rng_state, 0) != sizeof rng_state)
    lg_die("getrandom");
  rng_state[0] |= 1;
}

/* xoroshiro128+ seeded from getrandom: masking keys must be unpredictable to
 * the server (RFC 6455 §5.3); this is a load generator, not a browser, so a
 * fast generator with a random seed is enough. */
uint64_t lg_rng_next(void) {
  uint64_t s0 = rng_state[0], s1 = rng_state[1], r = s0 + s1;
  s1 ^= s0;
  rng_state[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
  rng_state[1] = (s1 << 37) | (s1 >> 27);
  return r;
}

void lg_die(const char *msg) {
  fprintf(stderr, "loadgen: %s\n", msg);
  exit(2);
}

void lg_grow(unsigned char **p, size_t *cap, size_t need, size_t first) {
  size_t n = *cap ? *cap : first;
  while (n < need)
    n *= 2;
  *p = realloc(*p, n);
  if (!*p)
    lg_die("out of memory");
  *cap = n;
}

void *lg_xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p)
    lg_die("out of memory");
  return p;
}
