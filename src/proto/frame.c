/* RFC 6455 §5 frame codec: header collection across calls, the framing
 * rules of §5.2-5.5, in-place unmasking a word at a time, header encoding. */
#include "proto/frame.h"

#include <string.h>

enum { ST_HEADER, ST_PAYLOAD, ST_END, ST_ERROR };

#define CLOSE_PROTOCOL 1002
#define CLOSE_TOO_BIG 1009

/* The errors, by number, so that a parser keeps one byte to report its
 * error again, not a code and a pointer. */
enum {
  E_NONE,
  E_RESERVED_OPCODE,
  E_UNMASKED,
  E_MASKED,
  E_RSV,
  E_RSV1_CONTROL,
  E_FRAGMENTED_CONTROL,
  E_CONTROL_TOO_LONG,
  E_STRAY_CONTINUATION,
  E_RSV1_CONTINUATION,
  E_NESTED_MESSAGE,
  E_NON_MINIMAL,
  E_HIGH_BIT,
  E_FRAME_TOO_BIG,
  E_MESSAGE_TOO_BIG
};

static const struct {
  uint16_t code;
  const char *reason;
} errors[] = {
    [E_RESERVED_OPCODE] = {CLOSE_PROTOCOL, "reserved opcode"},
    /* §5.1: a client masks every frame, a server none. */
    [E_UNMASKED] = {CLOSE_PROTOCOL, "unmasked client frame"},
    [E_MASKED] = {CLOSE_PROTOCOL, "masked server frame"},
    [E_RSV] = {CLOSE_PROTOCOL, "RSV bits without extension"},
    /* RFC 7692 §6: RSV1 marks a compressed message, never a control
     * frame. */
    [E_RSV1_CONTROL] = {CLOSE_PROTOCOL, "RSV1 on a control frame"},
    [E_FRAGMENTED_CONTROL] = {CLOSE_PROTOCOL, "fragmented control frame"},
    [E_CONTROL_TOO_LONG] = {CLOSE_PROTOCOL, "control frame over 125 bytes"},
    [E_STRAY_CONTINUATION] = {CLOSE_PROTOCOL, "continuation without a message"},
    [E_RSV1_CONTINUATION] = {CLOSE_PROTOCOL, "RSV1 on a continuation frame"},
    [E_NESTED_MESSAGE] = {CLOSE_PROTOCOL,
                          "new message inside a fragmented message"},
    /* §5.2: "the minimal number of bytes MUST be used to encode the
     * length", and the most significant bit of the 64-bit form MUST be
     * 0. */
    [E_NON_MINIMAL] = {CLOSE_PROTOCOL, "non-minimal length"},
    [E_HIGH_BIT] = {CLOSE_PROTOCOL, "64-bit length with the high bit set"},
    [E_FRAME_TOO_BIG] = {CLOSE_TOO_BIG, "frame too big"},
    [E_MESSAGE_TOO_BIG] = {CLOSE_TOO_BIG, "message too big"},
};

/* What a parser has before its limits are set: none. */
static const wsl_frame_limits_t no_limits = {0, 0};

void wsl_frame_parser_init(wsl_frame_parser_t *p, wsl_role_t role) {
  memset(p, 0, sizeof *p);
  p->limits = &no_limits;
  p->small_ok = 1;
  p->role = role;
  p->state = ST_HEADER;
  p->hdr_need = 2;
}

/* A limit of 0 is none; any other passes a frame of n bytes if n is not
 * above it. */
static int within(uint64_t limit, uint64_t n) {
  return limit == 0 || n <= limit;
}

void wsl_frame_parser_limit(wsl_frame_parser_t *p,
                            const wsl_frame_limits_t *limits) {
  p->limits = limits ? limits : &no_limits;
  /* parse_small takes frames of at most 125 bytes: with this it need not
   * look at the limits themselves. */
  p->small_ok =
      within(p->limits->max_frame, 125) && within(p->limits->max_message, 125);
}

/* Enters the error state, which every later call reports again. */
static size_t fail(wsl_frame_parser_t *p, wsl_frame_event_t *ev, int err,
                   size_t used) {
  p->state = ST_ERROR;
  p->err = (uint8_t)err;
  ev->kind = WSL_FRAME_ERROR;
  ev->close_code = errors[err].code;
  ev->reason = errors[err].reason;
  return used;
}

/* The rules the first two bytes decide (§5.2, §5.4, §5.5); returns the
 * broken rule (a protocol error), or E_NONE. */
static int check_start(const wsl_frame_parser_t *p, uint8_t b0, uint8_t b1) {
  int op = b0 & 0x0F, rsv = b0 & 0x70, fin = b0 >> 7, masked = b1 >> 7;
  if ((op > WSL_OP_BINARY && op < WSL_OP_CLOSE) || op > WSL_OP_PONG)
    return E_RESERVED_OPCODE;
  if (p->role == WSL_ROLE_SERVER && !masked)
    return E_UNMASKED;
  if (p->role == WSL_ROLE_CLIENT && masked)
    return E_MASKED;
  if (rsv & ~(p->allowed_rsv & WSL_RSV1))
    return E_RSV;
  if (WSL_OP_IS_CONTROL(op)) {
    if (rsv)
      return E_RSV1_CONTROL;
    if (!fin)
      return E_FRAGMENTED_CONTROL;
    if ((b1 & 0x7F) > WSL_FRAME_CONTROL_MAX)
      return E_CONTROL_TOO_LONG;
  } else if (op == WSL_OP_CONT) {
    if (!p->in_message)
      return E_STRAY_CONTINUATION;
    if (rsv)
      return E_RSV1_CONTINUATION;
  } else if (p->in_message) {
    return E_NESTED_MESSAGE;
  }
  return E_NONE;
}

/* Header size once the second byte is known: extended length and key. */
static unsigned header_size(uint8_t b1) {
  unsigned len7 = b1 & 0x7F;
  return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}

/* Applies the length rules to a data frame and moves the message state on;
 * returns the broken rule (a 1009), or E_NONE. */
static int account_data(wsl_frame_parser_t *p, wsl_frame_header_t *h) {
  int first = h->opcode != WSL_OP_CONT;
  uint64_t before = first ? 0 : p->msg_bytes;
  uint64_t total = before + h->length;
  if (total < before)
    total = UINT64_MAX;
  if (!within(p->limits->max_frame, h->length))
    return E_FRAME_TOO_BIG;
  if (!within(p->limits->max_message, total))
    return E_MESSAGE_TOO_BIG;
  if (first) {
    p->msg_opcode = h->opcode;
    p->msg_compressed = (h->rsv & WSL_RSV1) != 0;
  }
  p->msg_bytes = total;
  p->in_message = !h->fin;
  h->message_opcode = p->msg_opcode;
  h->first = first;
  h->compressed = p->msg_compressed;
  return E_NONE;
}

/* Decodes the complete header in p->hdr and reports it. */
static size_t finish_header(wsl_frame_parser_t *p, wsl_frame_event_t *ev,
                            size_t used) {
  const uint8_t *b = p->hdr;
  wsl_frame_header_t h;
  unsigned at = 2;
  memset(&h, 0, sizeof h);
  h.fin = b[0] >> 7;
  h.rsv = b[0] & 0x70;
  h.opcode = b[0] & 0x0F;
  h.masked = b[1] >> 7;
  h.length = b[1] & 0x7F;
  p->hdr_len = 0;
  p->hdr_need = 2;
  if (h.length == 126) {
    h.length = (uint64_t)b[2] << 8 | b[3];
    at = 4;
    if (h.length < 126)
      return fail(p, ev, E_NON_MINIMAL, used);
  } else if (h.length == 127) {
    h.length = 0;
    for (at = 2; at < 10; at++)
      h.length = h.length << 8 | b[at];
    if (h.length >> 63)
      return fail(p, ev, E_HIGH_BIT, used);
    if (h.length <= 0xFFFF)
      return fail(p, ev, E_NON_MINIMAL, used);
  }
  if (h.masked)
    memcpy(h.mask, b + at, 4);
  if (!WSL_OP_IS_CONTROL(h.opcode)) {
    int err = account_data(p, &h);
    if (err)
      return fail(p, ev, err, used);
  }
  /* Over the header bytes (b), which are no longer needed. */
  p->cur = h;
  p->pos = 0;
  p->state = h.length ? ST_PAYLOAD : ST_END;
  ev->kind = WSL_FRAME_HEADER;
  ev->header = h;
  return used;
}

/* Collects header bytes, which may come one call at a time. */
static size_t parse_header(wsl_frame_parser_t *p, const uint8_t *buf,
                           size_t len, wsl_frame_event_t *ev) {
  size_t used = 0;
  while (used < len) {
    p->hdr[p->hdr_len++] = buf[used++];
    if (p->hdr_len == 2) {
      int err = check_start(p, p->hdr[0], p->hdr[1]);
      if (err)
        return fail(p, ev, err, used);
      p->hdr_need = header_size(p->hdr[1]);
    }
    if (p->hdr_len == p->hdr_need)
      return finish_header(p, ev, used);
  }
  ev->kind = WSL_FRAME_NEED_MORE;
  return used;
}

/* Hands out as much of the current payload as buf holds, unmasked. */
static size_t parse_payload(wsl_frame_parser_t *p, uint8_t *buf, size_t len,
                            wsl_frame_event_t *ev) {
  uint64_t left = p->cur.length - p->pos;
  size_t n = left < len ? (size_t)left : len;
  if (n == 0) {
    ev->kind = WSL_FRAME_NEED_MORE;
    return 0;
  }
  if (p->cur.masked)
    wsl_frame_mask(buf, n, p->cur.mask, (size_t)(p->pos & 3));
  p->pos += n;
  if (p->pos == p->cur.length)
    p->state = ST_END;
  ev->kind = WSL_FRAME_PAYLOAD;
  ev->header = p->cur;
  ev->data = buf;
  ev->len = n;
  return n;
}

size_t wsl_frame_parse(wsl_frame_parser_t *p, uint8_t *buf, size_t len,
                       wsl_frame_event_t *ev) {
  memset(ev, 0, sizeof *ev);
  switch (p->state) {
  case ST_ERROR:
    return fail(p, ev, p->err, 0);
  case ST_END:
    p->state = ST_HEADER;
    ev->kind = WSL_FRAME_END;
    ev->header = p->cur;
    return 0;
  case ST_PAYLOAD:
    return parse_payload(p, buf, len, ev);
  default:
    return parse_header(p, buf, len, ev);
  }
}

/* The frame most messages are: a client's small (under 126 bytes) text or
 * binary message in one masked frame, no RSV bit, outside a fragmented
 * message, all of it in buf. Decoded without the general path's steps (it
 * is on every message's path); the rules it passes are those check_start
 * and account_data apply. Returns 0 when the frame is anything else. */
static void set_small_header(wsl_frame_header_t *h, size_t n,
                             const uint8_t *mask, int opcode) {
  h->length = n;
  memcpy(h->mask, mask, 4);
  h->fin = 1;
  h->rsv = 0;
  h->opcode = h->message_opcode = (uint8_t)opcode;
  h->masked = 1;
  h->first = 1;
  h->compressed = 0;
}

static size_t parse_small(wsl_frame_parser_t *p, uint8_t *buf, size_t len,
                          wsl_frame_event_t *ev) {
  uint8_t b0 = buf[0], b1 = buf[1];
  size_t n = b1 & 0x7F;
  if ((b0 != (0x80 | WSL_OP_TEXT) && b0 != (0x80 | WSL_OP_BINARY)) ||
      !(b1 & 0x80) || n >= 126 || len < 6 + n || p->role != WSL_ROLE_SERVER ||
      p->in_message || !p->small_ok)
    return 0;
  int opcode = b0 & 0x0F;
  ev->kind = WSL_FRAME_WHOLE;
  /* Field by field in both: a copy of one to the other read back what was
   * just stored a byte at a time, and stalled the store buffer. */
  set_small_header(&ev->header, n, buf + 2, opcode);
  set_small_header(&p->cur, n, buf + 2, opcode);
  p->msg_opcode = (uint8_t)opcode;
  p->msg_compressed = 0;
  p->msg_bytes = n;
  p->pos = n;
  if (n)
    wsl_frame_mask(buf + 6, n, buf + 2, 0);
  ev->data = buf + 6;
  ev->len = n;
  return 6 + n;
}

size_t wsl_frame_parse_whole(wsl_frame_parser_t *p, uint8_t *buf, size_t len,
                             wsl_frame_event_t *ev) {
  size_t small;
  if (p->state == ST_HEADER && p->hdr_len == 0 && len >= 6 &&
      (small = parse_small(p, buf, len, ev)) != 0)
    return small;
  if (p->state != ST_HEADER || p->hdr_len != 0 || len < 2 ||
      len < header_size(buf[1]))
    return wsl_frame_parse(p, buf, len, ev);
  /* The whole header is here: decoded at once, not a byte at a time. */
  memset(ev, 0, sizeof *ev);
  int err = check_start(p, buf[0], buf[1]);
  if (err)
    return fail(p, ev, err, 2);
  size_t used = header_size(buf[1]);
  memcpy(p->hdr, buf, used);
  used = finish_header(p, ev, used);
  if (ev->kind != WSL_FRAME_HEADER || p->cur.length > len - used)
    return used; /* an error, or the payload follows in pieces */
  size_t n = (size_t)p->cur.length;
  if (n && p->cur.masked)
    wsl_frame_mask(buf + used, n, p->cur.mask, 0);
  p->pos = n;
  p->state = ST_HEADER;
  ev->kind = WSL_FRAME_WHOLE;
  ev->data = buf + used;
  ev->len = n;
  return used + n;
}

size_t wsl_frame_header_encode(uint8_t out[WSL_FRAME_HEADER_MAX], int fin,
                               int rsv, int opcode, uint64_t length,
                               const uint8_t *mask) {
  size_t n;
  uint8_t m = mask ? 0x80 : 0;
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 0x70) | (opcode & 0x0F));
  if (length < 126) {
    out[1] = (uint8_t)(m | length);
    n = 2;
  } else if (length <= 0xFFFF) {
    out[1] = m | 126;
    out[2] = (uint8_t)(length >> 8);
    out[3] = (uint8_t)length;
    n = 4;
  } else {
    out[1] = m | 127;
    for (n = 2; n < 10; n++)
      out[n] = (uint8_t)(length >> (8 * (9 - n)));
  }
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

void wsl_frame_mask(uint8_t *data, size_t len, const uint8_t mask[4],
                    size_t offset) {
  /* Eight bytes at a time with the key repeated twice, from where offset
   * puts it. memcpy keeps the word accesses free of aliasing and alignment
   * assumptions; compilers turn it into plain (unaligned) loads and
   * stores, which cost no more than aligned ones on the machines we run
   * on, so there is no byte loop up to an 8-byte boundary. The key is
   * made in a register: built a byte at a time in memory and read back as
   * a word, it stalled the store buffer, most of this function's time. */
  uint32_t m;
  memcpy(&m, mask, 4);
  /* The key's byte j is mask[(offset + j) & 3]: a rotation of the four
   * bytes, read in the machine's byte order. */
  unsigned shift = 8 * (unsigned)(offset & 3);
  if (shift) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    m = (m << shift) | (m >> (32 - shift));
#else
    m = (m >> shift) | (m << (32 - shift));
#endif
  }
  uint64_t k = (uint64_t)m | (uint64_t)m << 32, w;
  size_t i = 0;
  for (; len - i >= 8; i += 8) {
    memcpy(&w, data + i, 8);
    w ^= k;
    memcpy(data + i, &w, 8);
  }
  if (i < len) {
    uint8_t key[8];
    memcpy(key, &k, 8);
    for (; i < len; i++)
      data[i] ^= key[i & 7]; /* key[j] is mask[(offset + j) & 3] */
  }
}
