/* Shared by the libFuzzer targets: a check that crashes the run (so the
 * fuzzer keeps the input), and a reader that takes fuzzer-chosen settings
 * and split points from the front of the input. */
#ifndef WSL_FUZZ_H
#define WSL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__,    \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

typedef struct {
  const uint8_t *p;
  size_t left;
} fuzz_in_t;

/* The next byte, or 0 once the input is used up. */
static inline uint8_t fuzz_byte(fuzz_in_t *in) {
  if (in->left == 0)
    return 0;
  in->left--;
  return *in->p++;
}

/* A copy of n bytes in a heap block of exactly that size, so that ASan
 * catches a read one byte beyond. n may be 0 (a 1-byte block is made, but
 * none of it is given as input). */
static inline uint8_t *fuzz_dup(const uint8_t *src, size_t n) {
  uint8_t *b = malloc(n ? n : 1);
  FUZZ_CHECK(b != NULL);
  if (n)
    memcpy(b, src, n);
  return b;
}

/* Split points: a list of chunk sizes the fuzzer picks, read from the input
 * as a count byte then one byte per size (0 means "the rest"); the sizes
 * repeat in turn over the whole stream. */
typedef struct {
  uint8_t size[16];
  unsigned n, at;
} fuzz_splits_t;

static inline void fuzz_splits_read(fuzz_in_t *in, fuzz_splits_t *s) {
  s->n = fuzz_byte(in) % 17;
  s->at = 0;
  for (unsigned i = 0; i < s->n; i++)
    s->size[i] = fuzz_byte(in);
}

/* The size of the next chunk of a stream with left bytes to go. */
static inline size_t fuzz_splits_next(fuzz_splits_t *s, size_t left) {
  size_t n;
  if (s->n == 0)
    return left;
  n = s->size[s->at++ % s->n];
  if (n == 0 || n > left)
    n = left;
  return n;
}

#endif
