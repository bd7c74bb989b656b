/* Tests for src/proto/frame.c: the RFC 6455 §5.7 examples byte for byte in
 * both roles, every framing rule with its close code, limits, control frames
 * between fragments, encode/parse round trips and masking offsets; each
 * stream fed whole, split at every point and one byte at a time. */
#include "proto/frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/buf.h"
#include "test.h"

typedef struct {
  wsl_role_t role;
  int allowed_rsv;
  uint64_t max_frame;
  uint64_t max_message;
} cfg_t;

static const cfg_t as_client = {WSL_ROLE_CLIENT, 0, 0, 0};
static const cfg_t as_server = {WSL_ROLE_SERVER, 0, 0, 0};

/* The masking key of the RFC examples. */
static const uint8_t rfc_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* What a run of the parser reported: the frames it announced, their payload
 * as delivered, and the error it ended with, if any. */
enum { MAX_FRAMES = 16 };

typedef struct {
  wsl_frame_header_t h;
  size_t off; /* payload start within the transcript's buffer */
  size_t len; /* payload bytes delivered */
  int ended;
} seen_frame_t;

typedef struct {
  seen_frame_t f[MAX_FRAMES];
  size_t n;
  int open; /* f[n - 1] announced, not yet ended */
  wsl_buf_t payload;
  int err_code;
  const char *err_reason;
  const char *broken; /* the first breach of the calling contract seen */
} transcript_t;

/* For comparing a reason that may be NULL. */
static const char *str(const char *s) {
  return s ? s : "(none)";
}

static int header_eq(const wsl_frame_header_t *a, const wsl_frame_header_t *b) {
  return a->fin == b->fin && a->rsv == b->rsv && a->opcode == b->opcode &&
         a->masked == b->masked && memcmp(a->mask, b->mask, 4) == 0 &&
         a->length == b->length && a->message_opcode == b->message_opcode &&
         a->first == b->first && a->compressed == b->compressed;
}

static int breach(transcript_t *t, const char *what) {
  if (t->broken == NULL)
    t->broken = what;
  return 0;
}

/* Records one event, checking it against the contract: `at` is where the
 * unconsumed bytes began, `left` how many there were, `used` the return. */
static int record(transcript_t *t, const wsl_frame_event_t *ev,
                  const uint8_t *at, size_t left, size_t used) {
  seen_frame_t *f = t->n ? &t->f[t->n - 1] : NULL;
  if (used > left)
    return breach(t, "consumed more than given");
  switch (ev->kind) {
  case WSL_FRAME_NEED_MORE:
    return used == left ? 1 : breach(t, "NEED_MORE with bytes left");
  case WSL_FRAME_HEADER:
    if (t->open || t->n == MAX_FRAMES || used == 0)
      return breach(t, "HEADER inside a frame or from no bytes");
    f = &t->f[t->n++];
    f->h = ev->header;
    f->off = t->payload.len;
    f->len = 0;
    f->ended = 0;
    t->open = 1;
    return 1;
  case WSL_FRAME_PAYLOAD:
    if (!t->open || ev->len == 0 || ev->len != used || ev->data != at ||
        !header_eq(&ev->header, &f->h))
      return breach(t, "PAYLOAD outside a frame, empty or not in place");
    f->len += ev->len;
    if (f->len > f->h.length)
      return breach(t, "more payload than the length");
    wsl_buf_append(&t->payload, ev->data, ev->len);
    return 1;
  case WSL_FRAME_WHOLE:
    if (t->open || t->n == MAX_FRAMES || ev->len != ev->header.length ||
        ev->data + ev->len != at + used || ev->data < at)
      return breach(t, "WHOLE inside a frame or not the whole frame in place");
    f = &t->f[t->n++];
    f->h = ev->header;
    f->off = t->payload.len;
    f->len = ev->len;
    f->ended = 1;
    wsl_buf_append(&t->payload, ev->data, ev->len);
    return 1;
  case WSL_FRAME_END:
    if (!t->open || used != 0 || !header_eq(&ev->header, &f->h) ||
        f->len != f->h.length)
      return breach(t, "END outside a frame, early, or with another header");
    f->ended = 1;
    t->open = 0;
    return 1;
  case WSL_FRAME_ERROR:
    if (ev->reason == NULL)
      return breach(t, "ERROR without a reason");
    t->err_code = ev->close_code;
    t->err_reason = ev->reason;
    return 1;
  }
  return breach(t, "unknown event");
}

/* The parse function the runs use: wsl_frame_parse, or
 * wsl_frame_parse_whole, which must report the same frames. */
static size_t (*parse)(wsl_frame_parser_t *, uint8_t *, size_t,
                       wsl_frame_event_t *) = wsl_frame_parse;

/* Runs the parser over one chunk the way a caller must: until NEED_MORE or
 * ERROR. Returns 1 when the run is over (an error or a breach). */
static int feed(wsl_frame_parser_t *p, uint8_t *b, size_t len,
                transcript_t *t) {
  size_t guard = 4 * len + 8;
  while (guard--) {
    wsl_frame_event_t ev;
    size_t used = parse(p, b, len, &ev);
    if (!record(t, &ev, b, len, used))
      return 1;
    b += used;
    len -= used;
    if (ev.kind == WSL_FRAME_NEED_MORE)
      return 0;
    if (ev.kind == WSL_FRAME_ERROR) {
      /* The error is sticky, with or without more bytes. */
      wsl_frame_event_t again;
      if (parse(p, b, len, &again) != 0 || again.kind != WSL_FRAME_ERROR ||
          again.close_code != ev.close_code || again.reason != ev.reason ||
          parse(p, b, 0, &again) != 0 || again.kind != WSL_FRAME_ERROR)
        breach(t, "error not sticky");
      return 1;
    }
  }
  return breach(t, "no NEED_MORE"), 1;
}

/* lim holds c's limits for as long as p is used. */
static void parser_setup(wsl_frame_parser_t *p, const cfg_t *c,
                         wsl_frame_limits_t *lim) {
  wsl_frame_parser_init(p, c->role);
  p->allowed_rsv = c->allowed_rsv;
  lim->max_frame = c->max_frame;
  lim->max_message = c->max_message;
  wsl_frame_parser_limit(p, lim);
}

/* Feeds in[0..n) in the chunks that end at the given cut points (ascending),
 * each chunk a fresh heap copy of exactly its size. */
static void drive(const cfg_t *c, const uint8_t *in, size_t n,
                  const size_t *cuts, size_t ncuts, transcript_t *t) {
  wsl_frame_parser_t p;
  wsl_frame_limits_t lim;
  size_t start = 0;
  parser_setup(&p, c, &lim);
  memset(t, 0, sizeof *t);
  for (size_t k = 0; k <= ncuts; k++) {
    size_t end = k < ncuts ? cuts[k] : n, len = end - start;
    uint8_t *chunk = malloc(len ? len : 1);
    if (len)
      memcpy(chunk, in + start, len);
    int over = feed(&p, chunk, len, t);
    free(chunk);
    start = end;
    if (over)
      break;
  }
}

static void transcript_free(transcript_t *t) {
  wsl_buf_free(&t->payload);
}

/* NULL when two runs reported the same thing, else what differs. */
static const char *transcript_diff(const transcript_t *a,
                                   const transcript_t *b) {
  if (a->broken || b->broken)
    return a->broken ? a->broken : b->broken;
  if (a->n != b->n || a->open != b->open)
    return "frame count";
  for (size_t i = 0; i < a->n; i++) {
    const seen_frame_t *x = &a->f[i], *y = &b->f[i];
    if (!header_eq(&x->h, &y->h) || x->len != y->len || x->ended != y->ended)
      return "frame header or length";
    if (x->len &&
        memcmp(a->payload.data + x->off, b->payload.data + y->off, x->len) != 0)
      return "payload";
  }
  if (a->err_code != b->err_code || a->err_reason != b->err_reason)
    return "error";
  return NULL;
}

static void check_same(const transcript_t *whole, const transcript_t *t,
                       const char *how, size_t i, size_t j) {
  const char *diff = transcript_diff(whole, t);
  CHECK(diff == NULL);
  if (diff)
    fprintf(stderr, "  fed %s (%zu, %zu): %s\n", how, i, j, diff);
}

/* Feeds a stream whole (the transcript returned in *whole), then split at
 * every point, at every pair of points when short, and one byte at a time:
 * each must report the same. */
static void check_splits(const cfg_t *c, const uint8_t *in, size_t n,
                         transcript_t *whole) {
  transcript_t t;
  drive(c, in, n, NULL, 0, whole);
  CHECK(whole->broken == NULL);
  if (whole->broken)
    fprintf(stderr, "  fed whole: %s\n", whole->broken);
  for (size_t i = 0; i <= n; i++) {
    drive(c, in, n, &i, 1, &t);
    check_same(whole, &t, "split at", i, 0);
    transcript_free(&t);
    for (size_t j = i; n <= 48 && j <= n; j++) {
      size_t cuts[2] = {i, j};
      drive(c, in, n, cuts, 2, &t);
      check_same(whole, &t, "split at", i, j);
      transcript_free(&t);
    }
  }
  size_t *cuts = malloc((n ? n : 1) * sizeof *cuts);
  for (size_t i = 0; i + 1 < n; i++)
    cuts[i] = i + 1;
  drive(c, in, n, cuts, n ? n - 1 : 0, &t);
  check_same(whole, &t, "byte by byte", 0, 0);
  transcript_free(&t);
  /* wsl_frame_parse_whole, fed whole, split at every point and byte by
   * byte, reports the same frames. */
  parse = wsl_frame_parse_whole;
  drive(c, in, n, NULL, 0, &t);
  check_same(whole, &t, "whole frames, whole", 0, 0);
  transcript_free(&t);
  for (size_t i = 0; i <= n; i++) {
    drive(c, in, n, &i, 1, &t);
    check_same(whole, &t, "whole frames, split at", i, 0);
    transcript_free(&t);
  }
  drive(c, in, n, cuts, n ? n - 1 : 0, &t);
  check_same(whole, &t, "whole frames, byte by byte", 0, 0);
  transcript_free(&t);
  parse = wsl_frame_parse;
  free(cuts);
}

/* ---- Expected frames. */

typedef struct {
  int fin;
  int opcode;
  const uint8_t *payload;
  size_t len;
  int message_opcode;
  int first;
} want_t;

static void check_frame(const transcript_t *t, size_t i, const want_t *w,
                        int masked, const uint8_t *key) {
  CHECK(i < t->n);
  if (i >= t->n)
    return;
  const seen_frame_t *f = &t->f[i];
  CHECK_EQ_INT(f->h.fin, w->fin);
  CHECK_EQ_INT(f->h.rsv, 0);
  CHECK_EQ_INT(f->h.opcode, w->opcode);
  CHECK_EQ_INT(f->h.masked, masked);
  if (masked)
    CHECK_MEM(f->h.mask, key, 4);
  CHECK_EQ_INT(f->h.length, w->len);
  CHECK_EQ_INT(f->h.message_opcode, w->message_opcode);
  CHECK_EQ_INT(f->h.first, w->first);
  CHECK_EQ_INT(f->h.compressed, 0);
  CHECK(f->ended);
  CHECK_EQ_INT(f->len, w->len);
  if (f->len == w->len && w->len)
    CHECK_MEM(t->payload.data + f->off, w->payload, w->len);
}

/* Frames w[0..nw) encoded with the encoder, masked with key unless NULL. */
static size_t build(uint8_t *out, const want_t *w, size_t nw,
                    const uint8_t *key) {
  size_t n = 0;
  for (size_t i = 0; i < nw; i++) {
    n += wsl_frame_header_encode(out + n, w[i].fin, 0, w[i].opcode, w[i].len,
                                 key);
    if (w[i].len)
      memcpy(out + n, w[i].payload, w[i].len);
    if (key)
      wsl_frame_mask(out + n, w[i].len, key, 0);
    n += w[i].len;
  }
  return n;
}

/* One RFC example: the encoder reproduces it byte for byte; it parses in the
 * role whose masking rule it meets, at every split; the other role refuses
 * it with 1002; and re-masked the other way it parses in the other role. */
static void check_example(const uint8_t *rfc, size_t n, int rfc_masked,
                          const want_t *w, size_t nw) {
  size_t cap = n + 64;
  uint8_t *other = malloc(cap), *same = malloc(cap);
  transcript_t t;
  const cfg_t *native = rfc_masked ? &as_server : &as_client;
  const cfg_t *wrong = rfc_masked ? &as_client : &as_server;

  CHECK_EQ_INT(build(same, w, nw, rfc_masked ? rfc_key : NULL), n);
  CHECK_MEM(same, rfc, n);

  check_splits(native, rfc, n, &t);
  CHECK_EQ_INT(t.n, nw);
  CHECK_EQ_INT(t.err_code, 0);
  CHECK(!t.open);
  for (size_t i = 0; i < nw; i++)
    check_frame(&t, i, &w[i], rfc_masked, rfc_key);
  transcript_free(&t);

  check_splits(wrong, rfc, n, &t);
  CHECK_EQ_INT(t.n, 0);
  CHECK_EQ_INT(t.err_code, 1002);
  CHECK_STR(str(t.err_reason),
            rfc_masked ? "masked server frame" : "unmasked client frame");
  transcript_free(&t);

  size_t m = build(other, w, nw, rfc_masked ? NULL : rfc_key);
  CHECK_EQ_INT(m, n + (rfc_masked ? -4 : 4) * (long)nw);
  check_splits(wrong, other, m, &t);
  CHECK_EQ_INT(t.n, nw);
  CHECK_EQ_INT(t.err_code, 0);
  for (size_t i = 0; i < nw; i++)
    check_frame(&t, i, &w[i], !rfc_masked, rfc_key);
  transcript_free(&t);
  free(other);
  free(same);
}

#define HELLO ((const uint8_t *)"Hello")

/* RFC 6455 §5.7. */
static void test_rfc_examples(void) {
  static const uint8_t text[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
  static const uint8_t masked_text[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                        0x7f, 0x9f, 0x4d, 0x51, 0x58};
  static const uint8_t fragments[] = {0x01, 0x03, 'H', 'e', 'l',
                                      0x80, 0x02, 'l', 'o'};
  static const uint8_t ping[] = {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'};
  static const uint8_t masked_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                        0x7f, 0x9f, 0x4d, 0x51, 0x58};
  const want_t w_text = {1, WSL_OP_TEXT, HELLO, 5, WSL_OP_TEXT, 1};
  const want_t w_frag[2] = {{0, WSL_OP_TEXT, HELLO, 3, WSL_OP_TEXT, 1},
                            {1, WSL_OP_CONT, HELLO + 3, 2, WSL_OP_TEXT, 0}};
  const want_t w_ping = {1, WSL_OP_PING, HELLO, 5, 0, 0};
  const want_t w_pong = {1, WSL_OP_PONG, HELLO, 5, 0, 0};

  check_example(text, sizeof text, 0, &w_text, 1);
  check_example(masked_text, sizeof masked_text, 1, &w_text, 1);
  check_example(fragments, sizeof fragments, 0, w_frag, 2);
  check_example(ping, sizeof ping, 0, &w_ping, 1);
  check_example(masked_pong, sizeof masked_pong, 1, &w_pong, 1);

  /* 256 bytes and 64 KiB of binary data in a single unmasked frame. */
  static const uint8_t h256[] = {0x82, 0x7E, 0x01, 0x00};
  static const uint8_t h64k[] = {0x82, 0x7F, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x01, 0x00, 0x00};
  size_t big = 65536;
  uint8_t *data = malloc(big), *frame = malloc(big + sizeof h64k);
  for (size_t i = 0; i < big; i++)
    data[i] = (uint8_t)(i * 7 + i / 251);
  want_t w_bin = {1, WSL_OP_BINARY, data, 256, WSL_OP_BINARY, 1};
  memcpy(frame, h256, sizeof h256);
  memcpy(frame + sizeof h256, data, 256);
  check_example(frame, sizeof h256 + 256, 0, &w_bin, 1);
  w_bin.len = big;
  memcpy(frame, h64k, sizeof h64k);
  memcpy(frame + sizeof h64k, data, big);
  check_example(frame, sizeof h64k + big, 0, &w_bin, 1);
  free(frame);
  free(data);
}

/* ---- The rules, each with the code and reason it must give. */

typedef struct {
  const char *bytes;
  size_t n;
  cfg_t cfg;
  int code; /* 0: the stream is valid */
  const char *reason;
  size_t frames; /* frames announced before the error, or in all */
} rule_t;

#define B(lit) lit, sizeof(lit) - 1
#define CLIENT(rsv, mf, mm)                                                    \
  { WSL_ROLE_CLIENT, rsv, mf, mm }
#define SERVER(rsv, mf, mm)                                                    \
  { WSL_ROLE_SERVER, rsv, mf, mm }
#define PLAIN CLIENT(0, 0, 0)

/* Inputs stop where the rule can first be decided, so a parser that waited
 * for more (the rest of the header, the payload) would fail them. */
static const rule_t rules[] = {
    /* §5.1 masking, decided at the second byte. */
    {B("\x81\x05"), SERVER(0, 0, 0), 1002, "unmasked client frame", 0},
    {B("\x81\x85"), PLAIN, 1002, "masked server frame", 0},
    {B("\x82\x85\0\0\0\0abcde"), SERVER(0, 0, 0), 0, NULL, 1},
    {B("\x81\x01"
       "a\x81\x81"),
     PLAIN, 1002, "masked server frame", 1},

    /* §5.2 reserved opcodes (the rest of 3-7 and B-F in test_opcodes). */
    {B("\x83\x00"), PLAIN, 1002, "reserved opcode", 0},
    {B("\x0B\x00"), PLAIN, 1002, "reserved opcode", 0},

    /* §5.2 RSV bits. */
    {B("\xC1\x01"), PLAIN, 1002, "RSV bits without extension", 0},
    {B("\xA1\x01"), PLAIN, 1002, "RSV bits without extension", 0},
    {B("\x91\x01"), PLAIN, 1002, "RSV bits without extension", 0},
    {B("\xA1\x01"), CLIENT(WSL_RSV1, 0, 0), 1002, "RSV bits without extension",
     0},
    {B("\xE1\x01"), CLIENT(WSL_RSV1, 0, 0), 1002, "RSV bits without extension",
     0},
    {B("\x91\x01"), CLIENT(0x70, 0, 0), 1002, "RSV bits without extension", 0},
    {B("\xC1\x01"), CLIENT(WSL_RSV1, 0, 0), 0, NULL, 1},
    {B("\xC9\x00"), CLIENT(WSL_RSV1, 0, 0), 1002, "RSV1 on a control frame", 0},
    {B("\xC8\x00"), CLIENT(WSL_RSV1, 0, 0), 1002, "RSV1 on a control frame", 0},
    {B("\x41\x01"
       "a\xC0\x01"),
     CLIENT(WSL_RSV1, 0, 0), 1002, "RSV1 on a continuation frame", 1},
    {B("\xC1\x01"
       "a\x41\x01"
       "b\x80\x01"
       "c"),
     CLIENT(WSL_RSV1, 0, 0), 0, NULL, 3},

    /* §5.5 control frames. */
    {B("\x09\x00"), PLAIN, 1002, "fragmented control frame", 0},
    {B("\x08\x02"), PLAIN, 1002, "fragmented control frame", 0},
    {B("\x0A\x7E"), PLAIN, 1002, "fragmented control frame", 0},
    {B("\x89\x7E"), PLAIN, 1002, "control frame over 125 bytes", 0},
    {B("\x8A\x7F"), PLAIN, 1002, "control frame over 125 bytes", 0},
    {B("\x88\xFE"), SERVER(0, 0, 0), 1002, "control frame over 125 bytes", 0},
    {B("\x01\x01"
       "a\x89\x7E"),
     PLAIN, 1002, "control frame over 125 bytes", 1},

    /* §5.4 fragmentation. */
    {B("\x80\x01"), PLAIN, 1002, "continuation without a message", 0},
    {B("\x00\x01"), PLAIN, 1002, "continuation without a message", 0},
    {B("\x81\x01"
       "a\x80\x01"),
     PLAIN, 1002, "continuation without a message", 1},
    {B("\x01\x01"
       "a\x80\x01"
       "b\x00\x01"),
     PLAIN, 1002, "continuation without a message", 2},
    {B("\x01\x01"
       "a\x89\x00\x80\x01"
       "b\x80\x00"),
     PLAIN, 1002, "continuation without a message", 3},
    {B("\x01\x01"
       "a\x81\x01"),
     PLAIN, 1002, "new message inside a fragmented message", 1},
    {B("\x01\x01"
       "a\x02\x01"),
     PLAIN, 1002, "new message inside a fragmented message", 1},
    {B("\x02\x00\x00\x01"
       "a\x8A\x00\x82\x00"),
     PLAIN, 1002, "new message inside a fragmented message", 3},
    {B("\x01\x01"
       "a\x00\x01"
       "b\x80\x01"
       "c\x82\x00"),
     PLAIN, 0, NULL, 4},

    /* §5.2 length encoding, decided once the header is whole. */
    {B("\x82\x7E\x00\x7D"), PLAIN, 1002, "non-minimal length", 0},
    {B("\x82\x7E\x00\x00"), PLAIN, 1002, "non-minimal length", 0},
    {B("\x82\x7F\0\0\0\0\0\0\xFF\xFF"), PLAIN, 1002, "non-minimal length", 0},
    {B("\x82\x7F\0\0\0\0\0\0\0\x05"), PLAIN, 1002, "non-minimal length", 0},
    {B("\x82\xFE\x00\x7D\1\2\3\4"), SERVER(0, 0, 0), 1002, "non-minimal length",
     0},
    {B("\x82\x7F\x80\0\0\0\0\0\0\0"), PLAIN, 1002,
     "64-bit length with the high bit set", 0},
    {B("\x82\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF"), PLAIN, 1002,
     "64-bit length with the high bit set", 0},
    {B("\x82\x7F\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF"), PLAIN, 0, NULL, 1},
    {B("\x82\x7F\0\0\0\0\0\x01\0\0"), PLAIN, 0, NULL, 1},
    {B("\x82\x7E\x00\x7E"), PLAIN, 0, NULL, 1},

    /* Limits: 1009 at the header, before any payload. */
    {B("\x82\x0B"), CLIENT(0, 10, 0), 1009, "frame too big", 0},
    {B("\x82\x0A"
       "0123456789"),
     CLIENT(0, 10, 0), 0, NULL, 1},
    {B("\x02\x05"
       "abcde\x80\x0B"),
     CLIENT(0, 10, 0), 1009, "frame too big", 1},
    {B("\x82\x7F\0\0\x01\0\0\0\0\0"), CLIENT(0, 10, 0), 1009, "frame too big",
     0},
    {B("\x89\x14"
       "01234567890123456789"),
     CLIENT(0, 10, 0), 0, NULL, 1},
    {B("\x82\x0B"), CLIENT(0, 0, 10), 1009, "message too big", 0},
    {B("\x02\x05"
       "abcde\x00\x05"
       "fghij\x80\x01"),
     CLIENT(0, 0, 10), 1009, "message too big", 2},
    {B("\x02\x05"
       "abcde\x89\x05"
       "hello\x80\x05"
       "fghij\x82\x0A"
       "0123456789"),
     CLIENT(0, 0, 10), 0, NULL, 4},
    {B("\x82\x7F\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF"), CLIENT(0, 0, 10), 1009,
     "message too big", 0},
    {B("\x02\x05"
       "abcde\x80\x06"),
     CLIENT(0, 6, 10), 1009, "message too big", 1},
    /* Small masked frames to a server, which parse_small would take whole
     * if the limits let every such frame pass. */
    {B("\x82\x8B\0\0\0\0"
       "0123456789a"),
     SERVER(0, 10, 0), 1009, "frame too big", 0},
    {B("\x82\x8A\0\0\0\0"
       "0123456789"),
     SERVER(0, 10, 0), 0, NULL, 1},
    {B("\x81\x8B\0\0\0\0"
       "0123456789a"),
     SERVER(0, 0, 10), 1009, "message too big", 0},
    {B("\x81\xFD\0\0\0\0"), SERVER(0, 125, 125), 0, NULL, 1},
};

static void check_rule(const rule_t *r, size_t index) {
  transcript_t t;
  check_splits(&r->cfg, (const uint8_t *)r->bytes, r->n, &t);
  CHECK_EQ_INT(t.err_code, r->code);
  CHECK_STR(str(t.err_reason), str(r->reason));
  CHECK_EQ_INT(t.n, r->frames);
  if (t.err_code != r->code || t.n != r->frames)
    fprintf(stderr, "  in rule %zu (%s)\n", index, r->reason);
  transcript_free(&t);
}

static void test_rules(void) {
  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
    check_rule(&rules[i], i);
}

/* Every opcode: the six defined ones pass, the ten reserved ones are 1002,
 * with fin set or not. */
static void test_opcodes(void) {
  for (int op = 0; op < 16; op++) {
    for (int fin = 0; fin < 2; fin++) {
      int defined = op <= 2 || (op >= 8 && op <= 10);
      int control = op >= 8;
      uint8_t in[2] = {(uint8_t)(fin << 7 | op), 0};
      transcript_t t;
      drive(&as_client, in, 2, NULL, 0, &t);
      CHECK(t.broken == NULL);
      if (!defined) {
        CHECK_EQ_INT(t.err_code, 1002);
        CHECK_STR(str(t.err_reason), "reserved opcode");
      } else if (op == WSL_OP_CONT) {
        CHECK_STR(str(t.err_reason), "continuation without a message");
      } else if (control && !fin) {
        CHECK_STR(str(t.err_reason), "fragmented control frame");
      } else {
        CHECK_EQ_INT(t.err_code, 0);
        CHECK_EQ_INT(t.n, 1);
      }
      transcript_free(&t);
    }
  }
}

/* Control frames of every kind between the fragments of a message, which
 * keep the message's opcode; then a new message may begin. */
static void test_control_between_fragments(void) {
  static const char in[] = "\x01\x03Hel"
                           "\x89\x00"
                           "\x8A\x02pq"
                           "\x00\x01l"
                           "\x88\x02\x03\xE8"
                           "\x80\x01o"
                           "\x82\x01z";
  static const struct {
    int opcode, message_opcode, first, fin;
    const char *payload;
  } want[] = {
      {WSL_OP_TEXT, WSL_OP_TEXT, 1, 0, "Hel"},
      {WSL_OP_PING, 0, 0, 1, ""},
      {WSL_OP_PONG, 0, 0, 1, "pq"},
      {WSL_OP_CONT, WSL_OP_TEXT, 0, 0, "l"},
      {WSL_OP_CLOSE, 0, 0, 1, "\x03\xE8"},
      {WSL_OP_CONT, WSL_OP_TEXT, 0, 1, "o"},
      {WSL_OP_BINARY, WSL_OP_BINARY, 1, 1, "z"},
  };
  transcript_t t;
  check_splits(&as_client, (const uint8_t *)in, sizeof in - 1, &t);
  CHECK_EQ_INT(t.err_code, 0);
  CHECK_EQ_INT(t.n, 7);
  for (size_t i = 0; i < 7 && i < t.n; i++) {
    const seen_frame_t *f = &t.f[i];
    size_t len = strlen(want[i].payload);
    CHECK_EQ_INT(f->h.opcode, want[i].opcode);
    CHECK_EQ_INT(f->h.message_opcode, want[i].message_opcode);
    CHECK_EQ_INT(f->h.first, want[i].first);
    CHECK_EQ_INT(f->h.fin, want[i].fin);
    CHECK_EQ_INT(f->h.length, len);
    CHECK_EQ_INT(f->len, len);
    CHECK(f->ended);
    if (f->len == len)
      CHECK_MEM(t.payload.data + f->off, want[i].payload, len);
  }
  transcript_free(&t);
}

/* With permessage-deflate, RSV1 on a message's first frame marks the whole
 * message compressed, continuations included, and nothing else. */
static void test_compressed_flag(void) {
  static const char in[] = "\x41\x01"
                           "a"
                           "\x89\x00"
                           "\x00\x01"
                           "b"
                           "\x80\x01"
                           "c"
                           "\x82\x01"
                           "d"
                           "\xC2\x01"
                           "e";
  static const int compressed[] = {1, 0, 1, 1, 0, 1};
  static const int rsv[] = {WSL_RSV1, 0, 0, 0, 0, WSL_RSV1};
  const cfg_t c = CLIENT(WSL_RSV1, 0, 0);
  transcript_t t;
  check_splits(&c, (const uint8_t *)in, sizeof in - 1, &t);
  CHECK_EQ_INT(t.err_code, 0);
  CHECK_EQ_INT(t.n, 6);
  for (size_t i = 0; i < 6 && i < t.n; i++) {
    CHECK_EQ_INT(t.f[i].h.compressed, compressed[i]);
    CHECK_EQ_INT(t.f[i].h.rsv, rsv[i]);
  }
  transcript_free(&t);
}

/* The exact event sequence for a few streams fed whole, including the
 * zero-length frame (HEADER then END, no PAYLOAD) and the END that follows
 * the last payload piece once every byte is consumed. */
static void test_event_sequence(void) {
  wsl_frame_parser_t p;
  wsl_frame_event_t ev;
  uint8_t empty[] = {0x82, 0x00};
  uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                      0x7f, 0x9f, 0x4d, 0x51, 0x58};

  wsl_frame_parser_init(&p, WSL_ROLE_CLIENT);
  CHECK_EQ_INT(wsl_frame_parse(&p, empty, 0, &ev), 0);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_NEED_MORE);
  CHECK_EQ_INT(wsl_frame_parse(&p, empty, 2, &ev), 2);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_HEADER);
  CHECK_EQ_INT(ev.header.length, 0);
  CHECK_EQ_INT(wsl_frame_parse(&p, empty + 2, 0, &ev), 0);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_END);
  CHECK_EQ_INT(ev.header.opcode, WSL_OP_BINARY);
  CHECK_EQ_INT(wsl_frame_parse(&p, empty + 2, 0, &ev), 0);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_NEED_MORE);

  wsl_frame_parser_init(&p, WSL_ROLE_SERVER);
  CHECK_EQ_INT(wsl_frame_parse(&p, masked, sizeof masked, &ev), 6);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_HEADER);
  CHECK_EQ_INT(wsl_frame_parse(&p, masked + 6, 5, &ev), 5);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_PAYLOAD);
  CHECK(ev.data == masked + 6);
  CHECK_EQ_INT(ev.len, 5);
  CHECK_MEM(masked + 6, "Hello", 5); /* unmasked in place */
  CHECK_EQ_INT(wsl_frame_parse(&p, masked + 11, 0, &ev), 0);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_END);
  CHECK_EQ_INT(ev.header.length, 5);
  CHECK_EQ_INT(wsl_frame_parse(&p, masked + 11, 0, &ev), 0);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_NEED_MORE);

  /* A payload piece that stops short of the frame leaves the rest for the
   * next call, which continues the mask where it left off. */
  uint8_t again[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
  wsl_frame_parser_init(&p, WSL_ROLE_SERVER);
  CHECK_EQ_INT(wsl_frame_parse(&p, again, 9, &ev), 6);
  CHECK_EQ_INT(wsl_frame_parse(&p, again + 6, 3, &ev), 3);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_PAYLOAD);
  CHECK_EQ_INT(wsl_frame_parse(&p, again + 9, 0, &ev), 0);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_NEED_MORE);
  CHECK_EQ_INT(wsl_frame_parse(&p, again + 9, 2, &ev), 2);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_PAYLOAD);
  CHECK_MEM(again + 6, "Hello", 5);
}

/* ---- Encoding. */

/* Header then payload, masked in uneven pieces through the offset argument,
 * parsed back in the matching role at every split. */
static void check_round_trip(uint64_t len, const uint8_t *key, int opcode) {
  size_t n = (size_t)len;
  uint8_t *frame = malloc(n + WSL_FRAME_HEADER_MAX), *data = malloc(n + 1);
  size_t want_size = (len < 126 ? 2 : len < 65536 ? 4 : 10) + (key ? 4 : 0);
  for (size_t i = 0; i < n; i++)
    data[i] = (uint8_t)(i ^ (i >> 8) ^ 0x5A);
  size_t h = wsl_frame_header_encode(frame, 1, 0, opcode, len, key);
  CHECK_EQ_INT(h, want_size);
  CHECK_EQ_INT(frame[0], 0x80 | opcode);
  CHECK_EQ_INT(frame[1] & 0x80, key ? 0x80 : 0);
  if (key)
    CHECK_MEM(frame + h - 4, key, 4);
  memcpy(frame + h, data, n);
  if (key)
    for (size_t at = 0, piece = 1; at < n; at += piece, piece = piece % 13 + 1)
      wsl_frame_mask(frame + h + at, at + piece <= n ? piece : n - at, key, at);

  transcript_t t;
  check_splits(key ? &as_server : &as_client, frame, h + n, &t);
  CHECK_EQ_INT(t.err_code, 0);
  CHECK_EQ_INT(t.n, 1);
  if (t.n == 1) {
    CHECK_EQ_INT(t.f[0].h.length, len);
    CHECK_EQ_INT(t.f[0].h.opcode, opcode);
    CHECK_EQ_INT(t.f[0].h.masked, key != NULL);
    CHECK(t.f[0].ended);
    CHECK_EQ_INT(t.payload.len, n);
    if (n && t.payload.len == n)
      CHECK_MEM(t.payload.data, data, n);
  }
  transcript_free(&t);
  free(frame);
  free(data);
}

static void test_round_trips(void) {
  static const uint64_t lens[] = {0, 1, 7, 8, 9, 125, 126, 127, 65535, 65536};
  static const uint8_t key[4] = {0xA1, 0x00, 0xFF, 0x3C};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    check_round_trip(lens[i], NULL, WSL_OP_BINARY);
    check_round_trip(lens[i], key, WSL_OP_TEXT);
    if (lens[i] <= 125)
      check_round_trip(lens[i], key, WSL_OP_PING);
  }
}

/* The length field byte for byte at each encoding's edges, and the first
 * byte's bits. */
static void test_encode_bytes(void) {
  uint8_t out[WSL_FRAME_HEADER_MAX];
  static const uint8_t key[4] = {1, 2, 3, 4};
  static const struct {
    uint64_t len;
    size_t size;
    const char *bytes;
  } v[] = {
      {0, 2, "\x82\x00"},
      {125, 2, "\x82\x7D"},
      {126, 4, "\x82\x7E\x00\x7E"},
      {65535, 4, "\x82\x7E\xFF\xFF"},
      {65536, 10, "\x82\x7F\0\0\0\0\0\x01\0\0"},
      {UINT64_C(0x0123456789ABCDEF), 10,
       "\x82\x7F\x01\x23\x45\x67\x89\xAB"
       "\xCD\xEF"},
      {INT64_MAX, 10, "\x82\x7F\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    CHECK_EQ_INT(
        wsl_frame_header_encode(out, 1, 0, WSL_OP_BINARY, v[i].len, NULL),
        v[i].size);
    CHECK_MEM(out, v[i].bytes, v[i].size);
    CHECK_EQ_INT(
        wsl_frame_header_encode(out, 1, 0, WSL_OP_BINARY, v[i].len, key),
        v[i].size + 4);
    CHECK_EQ_INT(out[1], (uint8_t)v[i].bytes[1] | 0x80);
    CHECK_MEM(out + 2, v[i].bytes + 2, v[i].size - 2);
    CHECK_MEM(out + v[i].size, key, 4);
  }
  wsl_frame_header_encode(out, 0, WSL_RSV1, WSL_OP_TEXT, 5, NULL);
  CHECK_EQ_INT(out[0], 0x41);
  wsl_frame_header_encode(out, 1, WSL_RSV1 | WSL_RSV2 | WSL_RSV3, WSL_OP_PONG,
                          0, NULL);
  CHECK_EQ_INT(out[0], 0xFA);
  wsl_frame_header_encode(out, 0, 0, WSL_OP_CONT, 0, NULL);
  CHECK_EQ_INT(out[0], 0x00);

  /* The largest length parses back (the header alone: HEADER, then the
   * parser waits for payload). */
  wsl_frame_parser_t p;
  wsl_frame_event_t ev;
  size_t h = wsl_frame_header_encode(out, 1, 0, WSL_OP_BINARY, INT64_MAX, key);
  wsl_frame_parser_init(&p, WSL_ROLE_SERVER);
  CHECK_EQ_INT(wsl_frame_parse(&p, out, h, &ev), h);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_HEADER);
  CHECK(ev.header.length == (uint64_t)INT64_MAX);
  CHECK_EQ_INT(wsl_frame_parse(&p, out + h, 0, &ev), 0);
  CHECK_EQ_INT(ev.kind, WSL_FRAME_NEED_MORE);
}

/* Masking against the definition (§5.3: octet i XOR key[i mod 4]), for every
 * length up to 64, offset and alignment, touching nothing outside; in two
 * pieces at every split; and twice is the identity. */
static void test_mask(void) {
  static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  uint8_t raw[64], want[64], buf[64 + 16];
  for (size_t i = 0; i < 64; i++)
    raw[i] = (uint8_t)(i * 31 + 7);
  for (size_t len = 0; len <= 64; len++) {
    for (size_t off = 0; off < 8; off++) {
      for (size_t i = 0; i < len; i++)
        want[i] = raw[i] ^ key[(off + i) % 4];
      for (size_t align = 0; align < 8; align++) {
        memset(buf, 0xEE, sizeof buf);
        memcpy(buf + align + 1, raw, len);
        wsl_frame_mask(buf + align + 1, len, key, off);
        CHECK_MEM(buf + align + 1, want, len);
        CHECK_EQ_INT(buf[align], 0xEE);
        CHECK_EQ_INT(buf[align + 1 + len], 0xEE);
        wsl_frame_mask(buf + align + 1, len, key, off);
        CHECK_MEM(buf + align + 1, raw, len);
      }
      for (size_t s = 0; s <= len; s++) {
        memcpy(buf, raw, len);
        wsl_frame_mask(buf, s, key, off);
        wsl_frame_mask(buf + s, len - s, key, off + s);
        CHECK_MEM(buf, want, len);
      }
      /* Only the offset modulo 4 matters, however large. */
      memcpy(buf, raw, len);
      wsl_frame_mask(buf, len, key, off + (SIZE_MAX - 3));
      CHECK_MEM(buf, want, len);
    }
  }
}

int main(void) {
  test_rfc_examples();
  test_rules();
  test_opcodes();
  test_control_between_fragments();
  test_compressed_flag();
  test_event_sequence();
  test_encode_bytes();
  test_round_trips();
  test_mask();
  return TEST_REPORT();
}
