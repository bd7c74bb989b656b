/* loadgen_payload: the messages bench/loadgen sends, made once before the
 * run, and with deflate their compressed forms. */
#include "loadgen_payload.h"

#include <stdio.h>
#include <string.h>

#include <zlib.h>

#include "loadgen_util.h"

unsigned char *lg_plain[LG_NVARIANTS];
size_t lg_plain_len[LG_NVARIANTS];
unsigned char *lg_zipped[LG_NVARIANTS];
size_t lg_zipped_len[LG_NVARIANTS];
int lg_nvariants = 1;

static const char *words[] = {
    "hello", "there",  "the",    "meeting", "is",    "at",      "noon",
    "see",   "you",    "later",  "thanks",  "for",   "sharing", "this",
    "link",  "we",     "should", "ship",    "today", "sounds",  "good",
    "lunch", "deploy", "review", "merged",  "ok",    "lol",     "great"};

/* A JSON chat message of about `size` bytes, made of words. */
static size_t make_json(unsigned char *p, size_t size, int variant) {
  char text[65536];
  size_t tl = 0, want = size > 96 ? size - 96 : 8;
  if (want >= sizeof text)
    want = sizeof text - 16;
  while (tl < want) {
    const char *w = words[lg_rng_next() % (sizeof words / sizeof words[0])];
    tl += (size_t)snprintf(text + tl, sizeof text - tl, "%s ", w);
  }
  text[want] = 0;
  int n = snprintf((char *)p, size + 256,
                   "{\"type\":\"message\",\"room\":\"general\",\"user\":"
                   "\"user%03d\",\"id\":%d,\"ts\":1700000%03d,\"text\":\"%s\"}",
                   variant % 997, variant, variant, text);
  return (size_t)n;
}

void lg_payload_make(size_t size, int binary, int json, int zip) {
  lg_nvariants = zip || json ? LG_NVARIANTS : 1;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (zip && deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
                          Z_DEFAULT_STRATEGY) != Z_OK)
    lg_die("deflateInit2");
  for (int v = 0; v < lg_nvariants; v++) {
    lg_plain[v] = lg_xmalloc(size + 256);
    if (json) {
      lg_plain_len[v] = make_json(lg_plain[v], size, v);
    } else {
      for (size_t i = 0; i < size; i++)
        lg_plain[v][i] = binary ? (unsigned char)lg_rng_next()
                                : (unsigned char)('a' + i % 26);
      lg_plain_len[v] = size;
    }
    if (zip) {
      /* Each message compressed on its own (client_no_context_takeover is
       * always allowed to a sender), the 00 00 ff ff tail removed (RFC 7692
       * §7.2.1). */
      size_t cap = deflateBound(&z, lg_plain_len[v]) + 16;
      lg_zipped[v] = lg_xmalloc(cap);
      deflateReset(&z);
      z.next_in = lg_plain[v];
      z.avail_in = (uInt)lg_plain_len[v];
      z.next_out = lg_zipped[v];
      z.avail_out = (uInt)cap;
      if (deflate(&z, Z_SYNC_FLUSH) != Z_OK)
        lg_die("deflate");
      lg_zipped_len[v] = cap - z.avail_out - 4;
    }
  }
  if (zip)
    deflateEnd(&z);
}
