/* loadgen_util: the clock, the masking-key generator and fatal errors of
 * bench/loadgen. */
#ifndef LOADGEN_UTIL_H
#define LOADGEN_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t lg_now_ns(void);

/* Seeds lg_rng_next from getrandom; called once before any connection. */
void lg_rng_seed(void);

/* The next 64 random bits (xoroshiro128+). */
uint64_t lg_rng_next(void);

/* Prints "loadgen: msg" and exits with status 2: a load generator that
 * cannot set itself up has nothing to measure. */
void lg_die(const char *msg);

/* Grows the buffer *p of capacity *cap (`first` bytes when it has none
 * yet) by doubling until it holds `need` bytes, keeping its contents. Dies
 * when out of memory. */
void lg_grow(unsigned char **p, size_t *cap, size_t need, size_t first);

/* malloc that dies instead of returning NULL. */
void *lg_xmalloc(size_t n);

#endif
