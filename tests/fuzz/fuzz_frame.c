/* libFuzzer target: the RFC 6455 frame parser, server and client role, with
 * fuzzer-chosen limits and extension bits, fed the stream whole and again in
 * fuzzer-chosen pieces. Checks the calling contract (consumed <= len,
 * NEED_MORE only when all is consumed, payload inside the buffer given,
 * HEADER/PAYLOAD/END in order, a sticky ERROR), that both feeds report the
 * same frames, payloads and error (the pieces go to wsl_frame_parse_whole,
 * which reports a frame all in one piece as one WHOLE event), that every header
 * re-encodes to the bytes it came from (the parser accepts minimal lengths
 * only) and that the payload is the input unmasked. Each piece is a heap block
 * of exactly its size, so ASan sees any read outside it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/buf.h"
#include "proto/frame.h"

typedef struct {
  wsl_frame_header_t h;
  size_t hdr_off; /* whole feed only: where the header starts in the stream */
  size_t hdr_len;
  size_t pay_off; /* where its payload starts in the stream */
  uint64_t got;   /* payload bytes delivered */
  int ended;
} frame_t;

typedef struct {
  frame_t *f;
  size_t n, cap;
  wsl_buf_t payload; /* every payload byte delivered, in order */
  int err_code;
  const char *err_reason;
} transcript_t;

static void free_transcript(transcript_t *t) {
  free(t->f);
  wsl_buf_free(&t->payload);
}

static frame_t *push_frame(transcript_t *t) {
  if (t->n == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 8;
    t->f = realloc(t->f, t->cap * sizeof *t->f);
    FUZZ_CHECK(t->f != NULL);
  }
  memset(&t->f[t->n], 0, sizeof t->f[0]);
  return &t->f[t->n++];
}

static int header_eq(const wsl_frame_header_t *a, const wsl_frame_header_t *b) {
  return a->fin == b->fin && a->rsv == b->rsv && a->opcode == b->opcode &&
         a->masked == b->masked && memcmp(a->mask, b->mask, 4) == 0 &&
         a->length == b->length && a->message_opcode == b->message_opcode &&
         a->first == b->first && a->compressed == b->compressed;
}

typedef size_t (*parse_fn)(wsl_frame_parser_t *, uint8_t *, size_t,
                           wsl_frame_event_t *);

/* Feeds one piece to parse; stream_off is where buf[0] sits in the whole
 * stream. Returns 0 once the parser has reported an error. */
static int feed(parse_fn parse, wsl_frame_parser_t *p, transcript_t *t,
                uint8_t *buf, size_t len, size_t stream_off) {
  wsl_frame_event_t ev;
  size_t at = 0;
  for (;;) {
    size_t left = len - at;
    size_t n = parse(p, buf + at, left, &ev);
    frame_t *cur = t->n ? &t->f[t->n - 1] : NULL;
    FUZZ_CHECK(n <= left);
    switch (ev.kind) {
    case WSL_FRAME_NEED_MORE:
      FUZZ_CHECK(n == left);
      return 1;
    case WSL_FRAME_HEADER:
      FUZZ_CHECK(n > 0);
      FUZZ_CHECK(cur == NULL || cur->ended);
      cur = push_frame(t);
      cur->h = ev.header;
      /* In a whole feed the header's bytes all come in this call. */
      cur->hdr_off = stream_off + at + n;
      cur->hdr_len = n;
      cur->pay_off = stream_off + at + n;
      break;
    case WSL_FRAME_PAYLOAD:
      FUZZ_CHECK(cur != NULL && !cur->ended);
      FUZZ_CHECK(header_eq(&ev.header, &cur->h));
      FUZZ_CHECK(ev.len > 0 && ev.len == n);
      FUZZ_CHECK(ev.data == buf + at);
      FUZZ_CHECK(cur->got + ev.len <= cur->h.length);
      cur->got += ev.len;
      FUZZ_CHECK(wsl_buf_append(&t->payload, ev.data, ev.len) == 0);
      break;
    case WSL_FRAME_WHOLE:
      FUZZ_CHECK(cur == NULL || cur->ended);
      FUZZ_CHECK(ev.len == ev.header.length && n >= ev.len + 2);
      FUZZ_CHECK(ev.data + ev.len == buf + at + n);
      cur = push_frame(t);
      cur->h = ev.header;
      cur->hdr_len = n - ev.len;
      cur->hdr_off = stream_off + at + cur->hdr_len;
      cur->pay_off = cur->hdr_off;
      cur->got = ev.len;
      cur->ended = 1;
      FUZZ_CHECK(wsl_buf_append(&t->payload, ev.data, ev.len) == 0);
      break;
    case WSL_FRAME_END:
      FUZZ_CHECK(n == 0);
      FUZZ_CHECK(cur != NULL && !cur->ended);
      FUZZ_CHECK(header_eq(&ev.header, &cur->h));
      FUZZ_CHECK(cur->got == cur->h.length);
      cur->ended = 1;
      break;
    case WSL_FRAME_ERROR:
      FUZZ_CHECK(ev.close_code == 1002 || ev.close_code == 1009);
      FUZZ_CHECK(ev.reason != NULL);
      t->err_code = ev.close_code;
      t->err_reason = ev.reason;
      /* Sticky: the same error again, nothing consumed. */
      n = parse(p, buf + at + n, left - n, &ev);
      FUZZ_CHECK(ev.kind == WSL_FRAME_ERROR && n == 0);
      FUZZ_CHECK(ev.close_code == t->err_code && ev.reason == t->err_reason);
      return 0;
    }
    at += n;
  }
}

/* The frames must obey the rules the parser promises to enforce. */
static void check_rules(const transcript_t *t, const wsl_frame_parser_t *cfg,
                        const wsl_frame_limits_t *lim) {
  int in_message = 0;
  uint64_t msg_bytes = 0;
  for (size_t i = 0; i < t->n; i++) {
    const wsl_frame_header_t *h = &t->f[i].h;
    FUZZ_CHECK(h->masked == (cfg->role == WSL_ROLE_SERVER));
    FUZZ_CHECK((h->rsv & ~cfg->allowed_rsv) == 0);
    if (WSL_OP_IS_CONTROL(h->opcode)) {
      FUZZ_CHECK(h->opcode <= WSL_OP_PONG);
      FUZZ_CHECK(h->fin && h->rsv == 0 && h->length <= WSL_FRAME_CONTROL_MAX);
      FUZZ_CHECK(h->message_opcode == 0);
      continue;
    }
    FUZZ_CHECK(h->opcode <= WSL_OP_BINARY);
    if (h->opcode == WSL_OP_CONT) {
      FUZZ_CHECK(in_message && h->rsv == 0 && !h->first);
    } else {
      FUZZ_CHECK(!in_message && h->first && h->message_opcode == h->opcode);
      msg_bytes = 0;
    }
    FUZZ_CHECK(lim->max_frame == 0 || h->length <= lim->max_frame);
    msg_bytes += h->length;
    FUZZ_CHECK(lim->max_message == 0 || msg_bytes <= lim->max_message);
    in_message = !h->fin;
  }
}

static uint64_t limit_of(unsigned choice, uint8_t b) {
  switch (choice & 3) {
  case 1:
    return b + 1;
  case 2:
    return (uint64_t)b * 256 + 1;
  case 3:
    return WSL_FRAME_CONTROL_MAX;
  default:
    return 0;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in_t in = {data, size};
  uint8_t c0 = fuzz_byte(&in), c1 = fuzz_byte(&in), c2 = fuzz_byte(&in);
  fuzz_splits_t splits;
  wsl_frame_parser_t whole, split;
  wsl_frame_limits_t lim;
  transcript_t tw, ts;
  size_t off = 0;
  uint8_t *buf;

  fuzz_splits_read(&in, &splits);
  wsl_frame_parser_init(&whole, c0 & 1 ? WSL_ROLE_CLIENT : WSL_ROLE_SERVER);
  whole.allowed_rsv = c0 & 2 ? WSL_RSV1 : 0;
  lim.max_frame = limit_of(c0 >> 2, c1);
  lim.max_message = limit_of(c0 >> 4, c2);
  wsl_frame_parser_limit(&whole, &lim);
  split = whole;
  memset(&tw, 0, sizeof tw);
  memset(&ts, 0, sizeof ts);

  /* Whole: one call sequence over one block. */
  buf = fuzz_dup(in.p, in.left);
  feed(wsl_frame_parse, &whole, &tw, buf, in.left, 0);
  free(buf);
  check_rules(&tw, &whole, &lim);

  /* Header bytes re-encode exactly; payload is the input unmasked. */
  for (size_t i = 0; i < tw.n; i++) {
    const frame_t *f = &tw.f[i];
    uint8_t enc[WSL_FRAME_HEADER_MAX];
    size_t hdr_start = f->hdr_off - f->hdr_len;
    size_t n =
        wsl_frame_header_encode(enc, f->h.fin, f->h.rsv, f->h.opcode,
                                f->h.length, f->h.masked ? f->h.mask : NULL);
    FUZZ_CHECK(n == f->hdr_len);
    FUZZ_CHECK(memcmp(enc, in.p + hdr_start, n) == 0);
  }
  {
    size_t at = 0;
    for (size_t i = 0; i < tw.n; i++) {
      const frame_t *f = &tw.f[i];
      for (uint64_t k = 0; k < f->got; k++) {
        uint8_t m = f->h.masked ? f->h.mask[k & 3] : 0;
        FUZZ_CHECK((uint8_t)tw.payload.data[at + k] ==
                   (uint8_t)(in.p[f->pay_off + k] ^ m));
      }
      at += (size_t)f->got;
    }
  }

  /* Split: the same stream in fuzzer-chosen pieces, each its own block. */
  while (off < in.left) {
    size_t n = fuzz_splits_next(&splits, in.left - off);
    int go_on;
    buf = fuzz_dup(in.p + off, n);
    go_on = feed(wsl_frame_parse_whole, &split, &ts, buf, n, off);
    free(buf);
    off += n;
    if (!go_on)
      break;
  }

  FUZZ_CHECK(ts.n == tw.n);
  for (size_t i = 0; i < tw.n; i++) {
    FUZZ_CHECK(header_eq(&ts.f[i].h, &tw.f[i].h));
    FUZZ_CHECK(ts.f[i].got == tw.f[i].got);
    FUZZ_CHECK(ts.f[i].ended == tw.f[i].ended);
  }
  FUZZ_CHECK(ts.payload.len == tw.payload.len);
  FUZZ_CHECK(tw.payload.len == 0 ||
             memcmp(ts.payload.data, tw.payload.data, tw.payload.len) == 0);
  FUZZ_CHECK(ts.err_code == tw.err_code);
  FUZZ_CHECK(ts.err_reason == tw.err_reason);

  free_transcript(&tw);
  free_transcript(&ts);
  return 0;
}
