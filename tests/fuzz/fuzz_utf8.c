/* libFuzzer target: the incremental UTF-8 validator against a plain
 * reference written here from RFC 3629 (decode each sequence to its code
 * point, then check the range its length allows). Checked: the verdict on
 * the whole input, the state after each fuzzer-chosen piece (REJECT exactly
 * when no continuation could make the bytes so far valid, ACCEPT exactly
 * when they are complete and valid), and that REJECT is sticky. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/utf8.h"

/* The code points a sequence of n bytes may encode (RFC 3629 §3, §4): not
 * overlong, not a surrogate, at most U+10FFFF. */
static int cp_ok(uint32_t cp, int n) {
  static const uint32_t lo[5] = {0, 0, 0x80, 0x800, 0x10000};
  static const uint32_t hi[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  return cp >= lo[n] && cp <= hi[n] && !(cp >= 0xD800 && cp <= 0xDFFF);
}

/* Whether [a, b] holds any code point a sequence of n bytes may encode:
 * it meets the range of that length and is not all surrogates. */
static int range_ok(uint32_t a, uint32_t b, int n) {
  static const uint32_t lo[5] = {0, 0, 0x80, 0x800, 0x10000};
  static const uint32_t hi[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  uint32_t x = a > lo[n] ? a : lo[n], y = b < hi[n] ? b : hi[n];
  return x <= y && !(x >= 0xD800 && y <= 0xDFFF);
}

/* The sequence length a lead byte announces, or 0 if it cannot lead. */
static int seq_len(uint8_t c) {
  if (c < 0x80)
    return 1;
  if (c >= 0xC0 && c < 0xE0)
    return 2;
  if (c >= 0xE0 && c < 0xF0)
    return 3;
  if (c >= 0xF0 && c < 0xF8)
    return 4;
  return 0;
}

/* 1: s[0..n) is complete valid UTF-8; 2: it is valid but ends inside a
 * sequence that some continuation could complete; 0: neither. */
static int reference(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    int len = seq_len(s[i]);
    uint32_t cp;
    size_t have, k;
    if (len == 0)
      return 0;
    cp = len == 1 ? s[i] : (uint32_t)(s[i] & (0x7F >> len));
    have = n - i < (size_t)len ? n - i : (size_t)len;
    for (k = 1; k < have; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if (have < (size_t)len) {
      /* Truncated: the completions span one interval of code points. */
      uint32_t missing = (uint32_t)(len - (int)have) * 6;
      uint32_t a = cp << missing, b = a | ((1u << missing) - 1);
      return range_ok(a, b, len) ? 2 : 0;
    }
    if (!cp_ok(cp, len))
      return 0;
    i += (size_t)len;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in_t in = {data, size};
  fuzz_splits_t splits;
  uint32_t state = WSL_UTF8_ACCEPT;
  size_t off = 0;
  int ref;
  uint8_t *buf;

  fuzz_splits_read(&in, &splits);
  ref = reference(in.p, in.left);
  buf = fuzz_dup(in.p, in.left);
  FUZZ_CHECK(wsl_utf8_valid(buf, in.left) == (ref == 1));
  free(buf);

  while (off < in.left) {
    size_t n = fuzz_splits_next(&splits, in.left - off);
    int prefix;
    buf = fuzz_dup(in.p + off, n);
    state = wsl_utf8_feed(state, buf, n);
    free(buf);
    off += n;
    prefix = reference(in.p, off);
    FUZZ_CHECK((state == WSL_UTF8_REJECT) == (prefix == 0));
    FUZZ_CHECK((state == WSL_UTF8_ACCEPT) == (prefix == 1));
  }
  FUZZ_CHECK((state == WSL_UTF8_ACCEPT) == (ref == 1));
  if (state == WSL_UTF8_REJECT) {
    static const uint8_t ascii[8] = "abcdefgh";
    FUZZ_CHECK(wsl_utf8_feed(state, ascii, sizeof ascii) == WSL_UTF8_REJECT);
  }
  return 0;
}
