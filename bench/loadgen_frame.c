/* loadgen_frame: WebSocket frames as bench/loadgen writes them (masked,
 * RFC 6455 §5.3) and reads them back: the parser, permessage-deflate's
 * inflate (RFC 7692), the check of each echo against what was sent, and
 * what each mode does when a message or a control frame arrives. */
#include "loadgen_frame.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "loadgen.h"
#include "loadgen_fanout.h"
#include "loadgen_payload.h"
#include "loadgen_util.h"

/* The inflated message, grown as needed and kept for the next one. */
static unsigned char *inflate_buf;
static size_t inflate_cap;

/* XORs n bytes of src with the key, starting at key phase `phase`. */
static void mask_copy(unsigned char *dst_, const unsigned char *src, size_t n,
                      const unsigned char key[4], size_t phase) {
  unsigned char k[8];
  for (int i = 0; i < 8; i++)
    k[i] = key[(phase + (size_t)i) & 3];
  uint64_t kw;
  memcpy(&kw, k, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, src + i, 8);
    w ^= kw;
    memcpy(dst_ + i, &w, 8);
  }
  for (; i < n; i++)
    dst_[i] = src[i] ^ k[i & 7];
}

/* Appends one masked frame (client to server, RFC 6455 §5.2). */
void lg_put_frame(lg_conn_t *c, int op, int rsv1, const unsigned char *p,
                  size_t n) {
  unsigned char h[14];
  size_t hl = 2;
  h[0] = (unsigned char)(0x80 | (rsv1 ? 0x40 : 0) | op);
  if (n < 126) {
    h[1] = (unsigned char)(0x80 | n);
  } else if (n < 65536) {
    h[1] = 0x80 | 126;
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    hl = 4;
  } else {
    h[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++)
      h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    hl = 10;
  }
  uint32_t key = (uint32_t)lg_rng_next();
  memcpy(h + hl, &key, 4);
  lg_out_reserve(c, hl + 4 + n);
  memcpy(c->out + c->out_len, h, hl + 4);
  mask_copy(c->out + c->out_len + hl + 4, p, n, h + hl, 0);
  c->out_len += hl + 4 + n;
}

void lg_send_message(lg_conn_t *c, uint64_t t) {
  int v = (int)(c->next_var++ % (uint64_t)lg_nvariants);
  int op = lg_opt.binary ? 2 : 1;
  if (c->pmd)
    lg_put_frame(c, op, 1, lg_zipped[v], lg_zipped_len[v]);
  else
    lg_put_frame(c, op, 0, lg_plain[v], lg_plain_len[v]);
  int slot = (c->head + c->count) % lg_opt.inflight;
  c->sent_ns[slot] = t;
  c->sent_var[slot] = (uint16_t)v;
  c->count++;
}

static void cbuf_append(lg_conn_t *c, const unsigned char *p, size_t n) {
  if (c->clen + n > c->ccap)
    lg_grow(&c->cbuf, &c->ccap, c->clen + n, 1024);
  memcpy(c->cbuf + c->clen, p, n);
  c->clen += n;
}

/* Checks a piece of the echoed message against what was sent. */
static int check_piece(lg_conn_t *c, const unsigned char *p, size_t n) {
  int v = c->sent_var[c->head];
  if (c->msg_pos + n > lg_plain_len[v] ||
      memcmp(lg_plain[v] + c->msg_pos, p, n) != 0)
    return -1;
  c->msg_pos += n;
  return 0;
}

static int inflate_message(lg_conn_t *c) {
  static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
  cbuf_append(c, tail, 4);
  z_stream *z = c->inf;
  z->next_in = c->cbuf;
  z->avail_in = (uInt)c->clen;
  size_t got = 0;
  for (;;) {
    if (got == inflate_cap)
      lg_grow(&inflate_buf, &inflate_cap, got + 1, 65536);
    z->next_out = inflate_buf + got;
    z->avail_out = (uInt)(inflate_cap - got);
    int r = inflate(z, Z_SYNC_FLUSH);
    got = inflate_cap - z->avail_out;
    if (r != Z_OK && r != Z_BUF_ERROR)
      return -1;
    if (z->avail_in == 0 && z->avail_out > 0)
      break;
  }
  c->clen = 0;
  if (c->server_reset)
    inflateReset(z);
  return check_piece(c, inflate_buf, got);
}

/* A whole data message came back. */
static void on_message(lg_conn_t *c, uint64_t t) {
  int v = c->sent_var[c->head];
  if (c->msg_pos != lg_plain_len[v]) {
    lg_conn_kill(c, 1);
    return;
  }
  if (lg_opt.mode == LG_MODE_FANOUT) {
    lg_fanout_deliver(c);
    return;
  }
  uint64_t sent = c->sent_ns[c->head];
  c->head = (c->head + 1) % lg_opt.inflight;
  c->count--;
  if (lg_run.measuring) {
    if (lg_opt.mode != LG_MODE_HANDSHAKE)
      lg_hist_add(&lg_run.hist, t - sent);
    lg_run.msgs++;
    lg_run.bytes_in += lg_plain_len[v];
  }
  if (lg_opt.mode == LG_MODE_HANDSHAKE) {
    /* The session's one echo: close as a client does (status 1000). */
    static const unsigned char code[2] = {0x03, 0xe8};
    c->echoed = 1;
    lg_put_frame(c, 8, 0, code, 2);
    c->state = LG_ST_CLOSING;
  } else {
    lg_send_message(c, t);
  }
}

void lg_session_done(lg_conn_t *c, uint64_t t) {
  if (lg_run.measuring) {
    lg_run.sessions++;
    lg_hist_add(&lg_run.hist, t - c->t_start);
  }
  lg_conn_kill(c, 0);
}

static void on_control(lg_conn_t *c, uint64_t t) {
  if (c->f_op == 9) {
    lg_put_frame(c, 10, 0, c->cbuf, c->clen);
  } else if (c->f_op == 8) {
    if (lg_opt.mode == LG_MODE_HANDSHAKE && c->echoed) {
      /* The server closes TCP first (RFC 6455 §7.1.1), so TIME_WAIT stays
       * on its side and does not use up our ports; raw: nobody will. */
      c->got_close = 1;
      c->t_close = t;
      if (lg_opt.raw)
        lg_session_done(c, t);
      c->clen = 0;
      return;
    }
    lg_conn_kill(c, 1);
    return;
  }
  c->clen = 0;
}

/* Feeds bytes received on an open connection to the frame parser. */
int lg_on_frames(lg_conn_t *c, const unsigned char *p, size_t n, uint64_t t) {
  while (n > 0 && c->state >= LG_ST_OPEN && c->state != LG_ST_DEAD) {
    if (c->fh_len < c->fh_need) {
      size_t k = (size_t)(c->fh_need - c->fh_len);
      if (k > n)
        k = n;
      memcpy(c->fh + c->fh_len, p, k);
      c->fh_len += (int)k;
      p += k;
      n -= k;
      if (c->fh_len < c->fh_need)
        return 0;
      if (c->fh_len == 2) {
        int len7 = c->fh[1] & 0x7f;
        c->f_masked = c->fh[1] >> 7;
        c->fh_need = 2 +
                     (len7 == 126   ? 2
                      : len7 == 127 ? 8
                                    : 0) +
                     (c->f_masked ? 4 : 0);
        if (c->f_masked && !lg_opt.raw)
          return -1; /* a server must not mask (RFC 6455 §5.1) */
        if (c->fh_len < c->fh_need)
          continue;
      }
      /* Header complete. */
      int len7 = c->fh[1] & 0x7f, off = 2;
      if (len7 == 126) {
        c->f_left = (uint64_t)c->fh[2] << 8 | c->fh[3];
        off = 4;
      } else if (len7 == 127) {
        c->f_left = 0;
        for (int i = 0; i < 8; i++)
          c->f_left = c->f_left << 8 | c->fh[2 + i];
        off = 10;
      } else {
        c->f_left = (uint64_t)len7;
      }
      if (c->f_masked)
        memcpy(c->f_mask, c->fh + off, 4);
      c->f_op = c->fh[0] & 0x0f;
      c->f_fin = c->fh[0] >> 7;
      c->f_rsv1 = (c->fh[0] >> 6) & 1;
      c->f_pos = 0;
      if (c->f_op >= 8) {
        if (!c->f_fin || c->f_left > 125)
          return -1;
        c->clen = 0;
      } else if (c->f_op == 0) {
        if (!c->msg_op)
          return -1;
      } else {
        if (c->msg_op || c->f_op > 2 ||
            (c->count == 0 && lg_opt.mode != LG_MODE_FANOUT))
          return -1;
        /* With deflate, a server may still send a message uncompressed
         * (ws does below its threshold); without, RSV1 is an error. */
        if (c->f_op != (lg_opt.binary ? 2 : 1) || (c->f_rsv1 && !c->pmd))
          return -1;
        if (c->f_rsv1 && lg_run.measuring)
          lg_run.zmsgs++;
        c->msg_op = c->f_op;
        c->msg_rsv1 = c->f_rsv1;
        c->msg_pos = 0;
        c->clen = 0;
      }
    }
    size_t k = c->f_left < n ? (size_t)c->f_left : n;
    const unsigned char *q = p;
    if (c->f_masked && k > 0) {
      /* Raw mode: our own masked frame came back; unmask it in place. */
      mask_copy((unsigned char *)p, p, k, c->f_mask, (size_t)(c->f_pos & 3));
    }
    if (c->f_op >= 8 || c->msg_rsv1) {
      cbuf_append(c, q, k);
    } else if (k > 0 && check_piece(c, q, k) < 0) {
      return -1;
    }
    c->f_left -= k;
    c->f_pos += k;
    p += k;
    n -= k;
    if (c->f_left == 0) {
      c->fh_len = 0;
      c->fh_need = 2;
      if (c->f_op >= 8) {
        on_control(c, t);
      } else if (c->f_fin) {
        if (c->msg_rsv1 && inflate_message(c) < 0)
          return -1;
        c->msg_op = 0;
        on_message(c, t);
      }
    }
  }
  return 0;
}
