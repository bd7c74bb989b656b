/* Incremental UTF-8 validation: a small state machine with an ASCII fast
 * path that checks a machine word at a time. */
#include "proto/utf8.h"

#include <string.h>

/* States past ACCEPT and REJECT: how many continuation bytes are still
 * needed, and whether the next one has a narrowed range (RFC 3629 §4). */
enum {
  NEED1 = 2, /* one more 80..BF */
  NEED2,     /* two more 80..BF */
  NEED3,     /* three more 80..BF */
  AFTER_E0,  /* A0..BF, then NEED1: shorter forms would be overlong */
  AFTER_ED,  /* 80..9F, then NEED1: A0..BF would encode surrogates */
  AFTER_F0,  /* 90..BF, then NEED2: shorter forms would be overlong */
  AFTER_F4,  /* 80..8F, then NEED2: 90..BF would pass U+10FFFF */
  NSTATES
};

/* For each state inside a sequence: the range the next byte must be in and
 * the state that byte leads to. */
static const uint8_t next_lo[NSTATES] = {0,    0,    0x80, 0x80, 0x80,
                                         0xA0, 0x80, 0x90, 0x80};
static const uint8_t next_hi[NSTATES] = {0,    0,    0xBF, 0xBF, 0xBF,
                                         0xBF, 0x9F, 0xBF, 0x8F};
static const uint8_t next_state[NSTATES] = {
    0, 0, WSL_UTF8_ACCEPT, NEED1, NEED2, NEED1, NEED1, NEED2, NEED2};

#define HIGH_BITS UINT64_C(0x8080808080808080)

/* The state after a lead byte c >= 0x80 seen in state ACCEPT. */
static uint32_t lead_state(uint8_t c) {
  if (c < 0xC2)
    return WSL_UTF8_REJECT; /* a stray continuation, or overlong C0/C1 */
  if (c < 0xE0)
    return NEED1;
  if (c == 0xE0)
    return AFTER_E0;
  if (c == 0xED)
    return AFTER_ED;
  if (c < 0xF0)
    return NEED2;
  if (c == 0xF0)
    return AFTER_F0;
  if (c < 0xF4)
    return NEED3;
  if (c == 0xF4)
    return AFTER_F4;
  return WSL_UTF8_REJECT; /* F5..FF would pass U+10FFFF */
}

uint32_t wsl_utf8_feed(uint32_t state, const uint8_t *s, size_t n) {
  size_t i = 0;
  if (state >= NSTATES)
    return WSL_UTF8_REJECT;
  while (i < n) {
    if (state == WSL_UTF8_REJECT)
      return WSL_UTF8_REJECT;
    if (state == WSL_UTF8_ACCEPT) {
      /* memcpy, not a cast: no unaligned or type-punned reads. */
      while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & HIGH_BITS)
          break;
        i += 8;
      }
      while (i < n && s[i] < 0x80)
        i++;
      if (i == n)
        break;
      state = lead_state(s[i++]);
      continue;
    }
    uint8_t c = s[i++];
    if (c < next_lo[state] || c > next_hi[state])
      return WSL_UTF8_REJECT;
    state = next_state[state];
  }
  return state;
}

int wsl_utf8_valid(const uint8_t *s, size_t n) {
  return wsl_utf8_feed(WSL_UTF8_ACCEPT, s, n) == WSL_UTF8_ACCEPT;
}
