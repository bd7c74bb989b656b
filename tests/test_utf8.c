/* Tests for src/proto/utf8.c: boundary tables fed at every split point, the
 * ASCII fast path at every position, and a differential check against a
 * plain decoder on pseudo-random strings. */
#include "proto/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define VALID (-1)      /* complete and valid: ends in ACCEPT */
#define INCOMPLETE (-2) /* valid so far, but cut inside a sequence */

/* expect is VALID, INCOMPLETE, or the index of the byte at which the
 * validator must reject (the first byte no continuation can make valid). */
typedef struct {
  const char *s;
  size_t n;
  int expect;
} utf8_case_t;

#define C(lit, expect)                                                         \
  { lit, sizeof(lit) - 1, expect }

static const utf8_case_t cases[] = {
    C("", VALID),
    C("Hello", VALID),
    C("\0", VALID),
    C("\x7F", VALID),
    C("\xC2\x80", VALID),         /* U+0080, smallest 2-byte */
    C("\xDF\xBF", VALID),         /* U+07FF, largest 2-byte */
    C("\xE0\xA0\x80", VALID),     /* U+0800, smallest 3-byte */
    C("\xE1\x80\x80", VALID),     /* U+1000 */
    C("\xEC\xBF\xBF", VALID),     /* U+CFFF */
    C("\xED\x80\x80", VALID),     /* U+D000 */
    C("\xED\x9F\xBF", VALID),     /* U+D7FF, just below the surrogates */
    C("\xEE\x80\x80", VALID),     /* U+E000, just above the surrogates */
    C("\xEF\xBB\xBF", VALID),     /* BOM */
    C("\xEF\xBF\xBF", VALID),     /* U+FFFF, largest 3-byte */
    C("\xF0\x90\x80\x80", VALID), /* U+10000, smallest 4-byte */
    C("\xF1\x80\x80\x80", VALID), /* U+40000 */
    C("\xF3\xBF\xBF\xBF", VALID), /* U+FFFFF */
    C("\xF4\x80\x80\x80", VALID), /* U+100000 */
    C("\xF4\x8F\xBF\xBF", VALID), /* U+10FFFF, the largest code point */
    C("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", VALID), /* kosme */
    C("Hello-\xC2\xA9-world, longer than a word \xF0\x9F\x98\x80 or two.",
      VALID),
    C("0123456789abcdef\xE2\x82\xAC"
      "0123456789abcdef",
      VALID),

    C("\x80", 0), /* a lone continuation byte */
    C("\xBF", 0),
    C("\xC0\x80", 0), /* C0 and C1 can only start overlong forms */
    C("\xC0\xAF", 0),
    C("\xC1\xBF", 0),
    C("\xF5\x80\x80\x80", 0), /* F5..FF would pass U+10FFFF */
    C("\xF7\xBF\xBF\xBF", 0),
    C("\xF8\x88\x80\x80\x80", 0),
    C("\xFC\x84\x80\x80\x80\x80", 0),
    C("\xFE", 0),
    C("\xFF", 0),
    C("\xE0\x80\x80", 1), /* overlong 3-byte forms */
    C("\xE0\x80\xAF", 1),
    C("\xE0\x9F\xBF", 1), /* U+07FF overlong */
    C("\xED\xA0\x80", 1), /* U+D800 */
    C("\xED\xAD\xBF", 1),
    C("\xED\xB0\x80", 1),
    C("\xED\xBF\xBF", 1),             /* U+DFFF */
    C("\xED\xA0\x80\xED\xB0\x80", 1), /* a CESU-8 surrogate pair */
    C("\xF0\x80\x80\x80", 1),         /* overlong 4-byte forms */
    C("\xF0\x80\x80\xAF", 1),
    C("\xF0\x8F\xBF\xBF", 1), /* U+FFFF overlong */
    C("\xF4\x90\x80\x80", 1), /* U+110000 */
    C("\xF4\xBF\xBF\xBF", 1),
    C("\xC2\x41", 1), /* a lead byte not followed by a continuation */
    C("\xC2\xC2\x80", 1),
    C("\xC2\xC0", 1),
    C("\xE1\x41\x80", 1),
    C("\xE1\x80\x41", 2),
    C("\xE0\xA0\xC0", 2),
    C("\xF1\x80\x80\xC0", 3),
    C("\xF0\x90\x80\x7F", 3),
    C("\xF4\x8F\xBF\xC0", 3),
    C("a\x80", 1),
    C("\xC2\x80\x80", 2), /* one continuation too many */
    C("\xEF\xBF\xBF\xBF", 3),
    C("\xF4\x8F\xBF\xBF\x80", 4),
    C("\xED\x9F\xBF\xED\xA0\x80", 4),
    C("abcdefgh\xC0", 8), /* after a fast-path word */
    C("abcdefg\xFF", 7),
    C("0123456789abcdef\x80"
      "abc",
      16),
    C("0123456789abcde\xC3\xA9\xC3"
      "abcdefgh",
      18),

    C("\xC2", INCOMPLETE),
    C("\xDF", INCOMPLETE),
    C("\xE0", INCOMPLETE),
    C("\xE0\xA0", INCOMPLETE),
    C("\xED", INCOMPLETE),
    C("\xED\x9F", INCOMPLETE),
    C("\xEF\xBF", INCOMPLETE),
    C("\xF0", INCOMPLETE),
    C("\xF0\x90", INCOMPLETE),
    C("\xF0\x90\x80", INCOMPLETE),
    C("\xF4\x8F\xBF", INCOMPLETE),
    C("\xF3\xBF\xBF", INCOMPLETE),
    C("0123456789abcdef\xE2\x82", INCOMPLETE),
};

/* A copy of exactly n bytes on the heap, so that a read past the end shows
 * up under a memory checker. */
static uint8_t *dup_bytes(const void *s, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (n)
    memcpy(d, s, n);
  return d;
}

/* Checks a final state against the expectation. */
static void check_final(uint32_t state, int expect) {
  if (expect == VALID)
    CHECK_EQ_INT(state, WSL_UTF8_ACCEPT);
  else if (expect == INCOMPLETE)
    CHECK(state != WSL_UTF8_ACCEPT && state != WSL_UTF8_REJECT);
  else
    CHECK_EQ_INT(state, WSL_UTF8_REJECT);
}

/* Feeds one input whole, split at every point and at every pair of points,
 * and one byte at a time, checking the result each way. */
static void check_case(const uint8_t *s, size_t n, int expect) {
  check_final(wsl_utf8_feed(WSL_UTF8_ACCEPT, s, n), expect);
  CHECK_EQ_INT(wsl_utf8_valid(s, n), expect == VALID);
  for (size_t i = 0; i <= n; i++) {
    uint32_t st = wsl_utf8_feed(WSL_UTF8_ACCEPT, s, i);
    check_final(wsl_utf8_feed(st, s + i, n - i), expect);
    for (size_t j = i; j <= n; j++) {
      uint32_t st2 = wsl_utf8_feed(st, s + i, j - i);
      check_final(wsl_utf8_feed(st2, s + j, n - j), expect);
    }
  }
  /* Byte by byte: the state turns REJECT exactly at the expected byte and
   * never before; an empty feed changes nothing. */
  uint32_t st = WSL_UTF8_ACCEPT;
  long rejected_at = -1;
  for (size_t i = 0; i < n; i++) {
    CHECK_EQ_INT(wsl_utf8_feed(st, s + i, 0), st);
    st = wsl_utf8_feed(st, s + i, 1);
    if (st == WSL_UTF8_REJECT && rejected_at < 0)
      rejected_at = (long)i;
  }
  check_final(st, expect);
  CHECK_EQ_INT(rejected_at, expect >= 0 ? expect : -1);
}

static void test_table(void) {
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    uint8_t *s = dup_bytes(cases[k].s, cases[k].n);
    check_case(s, cases[k].n, cases[k].expect);
    free(s);
  }
}

static void test_sticky(void) {
  CHECK_EQ_INT(wsl_utf8_feed(WSL_UTF8_REJECT, (const uint8_t *)"abc", 3),
               WSL_UTF8_REJECT);
  CHECK_EQ_INT(wsl_utf8_feed(WSL_UTF8_REJECT, (const uint8_t *)"", 0),
               WSL_UTF8_REJECT);
  CHECK_EQ_INT(
      wsl_utf8_feed(WSL_UTF8_REJECT, (const uint8_t *)"0123456789abcdef", 16),
      WSL_UTF8_REJECT);
  CHECK_EQ_INT(wsl_utf8_feed(WSL_UTF8_ACCEPT, (const uint8_t *)"", 0),
               WSL_UTF8_ACCEPT);
}

/* A non-ASCII byte or character at every position of an ASCII run, from
 * every starting alignment, so the word-at-a-time path is checked at each
 * of its boundaries. */
static void test_fast_path(void) {
  enum { N = 40 };
  uint8_t base[N + 8];
  for (size_t a = 0; a < 8; a++) {
    for (size_t p = 0; p < N; p++) {
      uint8_t *s = base + a;
      memset(s, 'x', N);
      s[p] = 0x80;
      check_case(s, N, (int)p);
      s[p] = 0xC3; /* a truncated character, or one cut by the next 'x' */
      check_case(s, N, p == N - 1 ? INCOMPLETE : (int)p + 1);
      if (p + 1 < N) {
        s[p + 1] = 0xA9;
        check_case(s, N, VALID);
      }
    }
  }
}

/* The reference: a plain decoder, written from the definition (RFC 3629
 * §3-4) and sharing nothing with the state machine. */
static int ref_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t c = s[i], min;
    size_t len;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, c &= 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, c &= 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, c &= 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (n - i < len)
      return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
      c = (c << 6) | (s[i + k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}

/* Whether s[0..n) (n <= 64) is valid, or can be made valid by appending up
 * to three bytes. Every range a next byte may need contains 80, 90 or A0, so
 * trying those is enough. */
static int ref_viable(const uint8_t *s, size_t n) {
  static const uint8_t tries[3] = {0x80, 0x90, 0xA0};
  uint8_t t[64 + 3];
  memcpy(t, s, n);
  if (ref_valid(t, n))
    return 1;
  for (size_t extra = 1; extra <= 3; extra++) {
    for (unsigned combo = 0; combo < 27; combo++) {
      unsigned c = combo;
      for (size_t k = 0; k < extra; k++, c /= 3)
        t[n + k] = tries[c % 3];
      if (ref_valid(t, n + extra))
        return 1;
    }
  }
  return 0;
}

static uint32_t rng_state = 0x2545F491u;

static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

/* Appends a UTF-8 encoding of c (not checked: c may be a surrogate). */
static size_t encode(uint8_t *out, uint32_t c) {
  if (c < 0x80) {
    out[0] = (uint8_t)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (uint8_t)(0xC0 | (c >> 6));
    out[1] = (uint8_t)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (uint8_t)(0xE0 | (c >> 12));
    out[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    out[2] = (uint8_t)(0x80 | (c & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | (c >> 18));
  out[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
  out[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
  out[3] = (uint8_t)(0x80 | (c & 0x3F));
  return 4;
}

/* Random strings built from pieces that hit the interesting cases often:
 * ASCII runs, boundary bytes, continuation bytes, encoded code points near
 * the edges, and plain random bytes. */
static size_t random_string(uint8_t *s, size_t cap) {
  static const uint8_t edges[] = {
      0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
      0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
  static const uint32_t points[] = {0x80,    0x7FF,   0x800,    0xD7FF,
                                    0xD800,  0xDFFF,  0xE000,   0xFFFF,
                                    0x10000, 0xFFFFF, 0x10FFFF, 0x110000};
  size_t n = 0, pieces = rng() % 12;
  while (pieces-- && n + 16 <= cap) {
    switch (rng() % 6) {
    case 0:
      for (size_t k = rng() % 16; k; k--)
        s[n++] = (uint8_t)(0x20 + rng() % 95);
      break;
    case 1:
      s[n++] = edges[rng() % sizeof edges];
      break;
    case 2:
      s[n++] = (uint8_t)(0x80 + rng() % 64);
      break;
    case 3:
      n += encode(s + n, rng() % 0x110000);
      break;
    case 4:
      n += encode(s + n, points[rng() % (sizeof points / sizeof points[0])]);
      break;
    default:
      s[n++] = (uint8_t)rng();
      break;
    }
  }
  return n;
}

static void test_differential(void) {
  uint8_t s[64];
  int valid = 0, incomplete = 0, rejected = 0;
  for (int iter = 0; iter < 5000; iter++) {
    size_t n = random_string(s, sizeof s);
    uint8_t *d = dup_bytes(s, n);
    /* The first prefix no completion can save; viability is monotone, so a
     * binary search finds it. */
    int expect;
    if (ref_valid(d, n)) {
      expect = VALID, valid++;
    } else if (ref_viable(d, n)) {
      expect = INCOMPLETE, incomplete++;
    } else {
      size_t lo = 0, hi = n; /* prefix lo is viable, prefix hi is not */
      while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ref_viable(d, mid))
          lo = mid;
        else
          hi = mid;
      }
      expect = (int)hi - 1, rejected++;
    }
    uint32_t whole = wsl_utf8_feed(WSL_UTF8_ACCEPT, d, n);
    check_final(whole, expect);
    CHECK_EQ_INT(wsl_utf8_valid(d, n), ref_valid(d, n));
    size_t cut = n ? rng() % (n + 1) : 0;
    check_final(
        wsl_utf8_feed(wsl_utf8_feed(WSL_UTF8_ACCEPT, d, cut), d + cut, n - cut),
        expect);
    uint32_t st = WSL_UTF8_ACCEPT;
    long rejected_at = -1;
    for (size_t i = 0; i < n; i++) {
      st = wsl_utf8_feed(st, d + i, 1);
      if (st == WSL_UTF8_REJECT && rejected_at < 0)
        rejected_at = (long)i;
    }
    CHECK_EQ_INT(st, whole);
    CHECK_EQ_INT(rejected_at, expect >= 0 ? expect : -1);
    free(d);
  }
  /* The generator must reach all three outcomes often, or the check above
   * proves little. */
  CHECK(valid > 500);
  CHECK(incomplete > 100);
  CHECK(rejected > 500);
}

int main(void) {
  test_table();
  test_sticky();
  test_fast_path();
  test_differential();
  return TEST_REPORT();
}
