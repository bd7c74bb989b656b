/* libFuzzer target: the permessage-deflate inflater with a small limit.
 * Two modes, by the first byte:
 *  - raw: fuzzer-made compressed messages, fed in fuzzer-chosen pieces with
 *    fuzzer-chosen fin flags; the sink may stop the feed. However hostile the
 *    bytes, no message delivers more than the limit, no piece is empty or
 *    above WSL_INFLATE_CHUNK, the result is one of the documented codes,
 *    and after any failure the next message starts afresh.
 *  - round trip: the rest of the input, cut in two messages, is compressed
 *    with our deflater (fuzzer-chosen level, window, context takeover) and
 *    inflated back in pieces: the same bytes come out when they fit the
 *    limit, else WSL_DEFLATE_TOO_BIG with at most the limit delivered. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/buf.h"
#include "proto/deflate.h"

#define SINK_STOP 7

typedef struct {
  uint64_t limit;
  uint64_t delivered;  /* this message */
  unsigned calls_left; /* the sink says stop when this reaches 0; 0 never */
  wsl_buf_t out;
} sink_t;

static int sink(void *ud, const uint8_t *data, size_t len) {
  sink_t *s = ud;
  FUZZ_CHECK(len > 0 && len <= WSL_INFLATE_CHUNK);
  s->delivered += len;
  FUZZ_CHECK(s->limit == 0 || s->delivered <= s->limit);
  FUZZ_CHECK(wsl_buf_append(&s->out, data, len) == 0);
  if (s->calls_left > 0 && --s->calls_left == 0)
    return SINK_STOP;
  return 0;
}

static int known(int r) {
  return r == 0 || r == WSL_DEFLATE_TOO_BIG || r == WSL_DEFLATE_BAD_DATA ||
         r == SINK_STOP;
}

/* A small limit: 1..4096, or none for a quarter of the inputs. */
static uint64_t limit_of(uint8_t b) {
  return b < 64 ? 0 : (uint64_t)(b - 63) * 21;
}

static void raw_mode(fuzz_in_t *in) {
  uint8_t cfg = fuzz_byte(in);
  sink_t s;
  wsl_inflater_t *inf = wsl_inflater_new(8 + (cfg & 7), cfg & 8);
  FUZZ_CHECK(inf != NULL);
  memset(&s, 0, sizeof s);
  s.limit = limit_of(fuzz_byte(in));
  while (in->left > 0) {
    uint8_t len = fuzz_byte(in), flags = fuzz_byte(in);
    size_t n = len < in->left ? len : in->left;
    uint8_t *buf = fuzz_dup(in->p, n);
    int fin = flags & 1;
    int r;
    s.calls_left = flags >> 4;
    r = wsl_inflater_feed(inf, buf, n, fin, s.limit, sink, &s);
    free(buf);
    in->p += n;
    in->left -= n;
    FUZZ_CHECK(known(r));
    if (r != 0 || fin) {
      s.delivered = 0; /* a new message starts */
      s.out.len = 0;
    }
    if (flags & 2)
      wsl_inflater_release(inf);
  }
  wsl_inflater_free(inf);
  wsl_buf_free(&s.out);
}

/* Inflates one compressed message in pieces; returns the result. */
static int inflate_pieces(wsl_inflater_t *inf, const wsl_buf_t *z,
                          fuzz_splits_t *splits, sink_t *s) {
  size_t off = 0;
  do {
    size_t n = fuzz_splits_next(splits, z->len - off);
    uint8_t *buf = fuzz_dup((const uint8_t *)z->data + off, n);
    int r;
    off += n;
    r = wsl_inflater_feed(inf, buf, n, off == z->len, s->limit, sink, s);
    free(buf);
    if (r != 0)
      return r;
  } while (off < z->len);
  return 0;
}

static void round_trip(fuzz_in_t *in) {
  uint8_t cfg = fuzz_byte(in), cut = fuzz_byte(in);
  int window = 9 + (cfg & 7) % 7, nct = (cfg >> 3) & 1;
  int level = (cfg >> 4) % 10;
  fuzz_splits_t splits;
  sink_t s;
  wsl_deflater_t *d = wsl_deflater_new(level, 8, window, nct);
  wsl_inflater_t *inf = wsl_inflater_new(window, nct);
  size_t first;
  FUZZ_CHECK(d != NULL && inf != NULL);
  memset(&s, 0, sizeof s);
  s.limit = limit_of(fuzz_byte(in));
  fuzz_splits_read(in, &splits);
  first = in->left ? cut % (in->left + 1) : 0;

  for (int m = 0; m < 2; m++) {
    const uint8_t *msg = m == 0 ? in->p : in->p + first;
    size_t len = m == 0 ? first : in->left - first;
    wsl_buf_t z = WSL_BUF_INIT;
    int r;
    FUZZ_CHECK(wsl_deflater_compress(d, msg, len, &z) == 0);
    FUZZ_CHECK(z.len > 0);
    s.delivered = 0;
    s.out.len = 0;
    r = inflate_pieces(inf, &z, &splits, &s);
    wsl_buf_free(&z);
    if (s.limit == 0 || len <= s.limit) {
      FUZZ_CHECK(r == 0);
      FUZZ_CHECK(s.out.len == len);
      FUZZ_CHECK(len == 0 || memcmp(s.out.data, msg, len) == 0);
    } else {
      FUZZ_CHECK(r == WSL_DEFLATE_TOO_BIG);
      FUZZ_CHECK(s.out.len <= s.limit);
      FUZZ_CHECK(s.out.len == 0 || memcmp(s.out.data, msg, s.out.len) == 0);
      break; /* the stream is reset: a taken-over context is lost */
    }
    wsl_deflater_release(d);
    wsl_inflater_release(inf);
  }
  wsl_deflater_free(d);
  wsl_inflater_free(inf);
  wsl_buf_free(&s.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in_t in = {data, size};
  if (fuzz_byte(&in) & 1)
    round_trip(&in);
  else
    raw_mode(&in);
  return 0;
}
