/* permessage-deflate (RFC 7692) on a connection: the compressors a
 * connection uses, inflating what arrives, compressing what leaves. The
 * codec and the negotiation are proto/deflate.c.
 *
 * Memory, in three modes: a compressor that keeps context between messages
 * is the connection's own (best ratio, ~270 KB once used); one that keeps
 * none is shared by every such connection of the thread with the same
 * settings (costs nothing per connection). An inflater for a peer that
 * keeps no context is the thread's too for a message that came whole in
 * one read; one that spans reads (or frames) gets an inflater of its own
 * for as long as it lasts. An idle connection then holds no zlib memory
 * and no inflater at all. */
#include "net/conn_internal.h"

#include <stdlib.h>
#include <string.h>

#include "net/log.h"
#include "proto/utf8.h"

/* One shared deflater per thread and setting (window bits, level, memory
 * level): no_context_takeover resets it after every message. */
typedef struct {
  int key;
  wsl_deflater_t *deflater;
} shared_deflater_t;

static _Thread_local shared_deflater_t shared_deflaters[8];
static _Thread_local int shared_count;

static int settings_key(int level, int mem_level, int window_bits) {
  return (window_bits << 8) | ((level + 1) << 4) | mem_level;
}

static wsl_deflater_t *shared_deflater(int level, int mem_level,
                                       int window_bits) {
  int key = settings_key(level, mem_level, window_bits);
  for (int i = 0; i < shared_count; i++)
    if (shared_deflaters[i].key == key)
      return shared_deflaters[i].deflater;
  if (shared_count == 8)
    return NULL; /* unusual settings: the connection gets its own */
  wsl_deflater_t *d = wsl_deflater_new(level, mem_level, window_bits, 1);
  if (d) {
    shared_deflaters[shared_count].key = key;
    shared_deflaters[shared_count].deflater = d;
    shared_count++;
  }
  return d;
}

/* One shared inflater per thread and window size (9..15, as zlib is given
 * it), kept live between messages: zlib's state is reset after each one,
 * not freed and made again. busy: one is inflating a message whose pieces
 * go to an owner, who might make a message of another connection inflate
 * before it returns; that one then gets an inflater of its own. */
static _Thread_local wsl_inflater_t *shared_inflaters[16];
static _Thread_local int shared_inflater_busy;

/* The peer's window, which a connection's inflater needs. */
static int peer_window_bits(const wsl_conn_t *c) {
  const wsl_deflate_params_t *p = &c->ws->deflate_params;
  int bits = c->role == WSL_ROLE_SERVER ? p->client_max_window_bits
                                        : p->server_max_window_bits;
  return bits < 9 ? 9 : bits; /* wsl_inflater_new inflates 8 with 9 */
}

/* The thread's inflater for c's peer's window, or NULL when it is busy or
 * memory ran out. */
static wsl_inflater_t *shared_inflater(const wsl_conn_t *c) {
  if (shared_inflater_busy)
    return NULL;
  int bits = peer_window_bits(c);
  if (shared_inflaters[bits] == NULL)
    shared_inflaters[bits] = wsl_inflater_new(bits, 1);
  return shared_inflaters[bits];
}

void wsl_conn_thread_exit(void) {
  wsl_cork_thread_exit();
  for (int i = 0; i < shared_count; i++)
    wsl_deflater_free(shared_deflaters[i].deflater);
  shared_count = 0;
  for (int i = 0; i < 16; i++) {
    wsl_inflater_free(shared_inflaters[i]);
    shared_inflaters[i] = NULL;
  }
}

int wsl__compress_open(wsl_conn_t *c, const wsl_ws_options_t *o) {
  if (!o->deflate)
    return 0;
  const wsl_deflate_params_t *p = &o->deflate_params;
  const wsl_deflate_config_t *cfg = &o->deflate_config;
  int server = c->role == WSL_ROLE_SERVER;
  /* Our deflater follows our side's parameters, the inflater the peer's. */
  int our_bits = server ? p->server_max_window_bits : p->client_max_window_bits;
  int our_reset =
      server ? p->server_no_context_takeover : p->client_no_context_takeover;
  int peer_bits =
      server ? p->client_max_window_bits : p->server_max_window_bits;
  int peer_reset =
      server ? p->client_no_context_takeover : p->server_no_context_takeover;
  /* The thread's deflater is found again by its settings at each message:
   * the connection keeps no pointer to it. */
  if (our_reset)
    c->deflater_shared =
        shared_deflater(cfg->level, cfg->mem_level, our_bits) != NULL;
  /* A peer that keeps no context needs no inflater between messages
   * (wsl__compress_whole, wsl__compress_inflate). */
  c->inflate_no_context = peer_reset != 0;
  if (!c->deflater_shared || !peer_reset) {
    /* A compressor of its own, in the extra part. */
    wsl_conn_extra_t *x = wsl__conn_extra(c);
    if (x && !c->deflater_shared)
      x->deflater =
          wsl_deflater_new(cfg->level, cfg->mem_level, our_bits, our_reset);
    if (x && !peer_reset)
      x->inflater = wsl_inflater_new(peer_bits, 0);
    if (x == NULL || (!c->deflater_shared && x->deflater == NULL) ||
        (!peer_reset && x->inflater == NULL)) {
      wsl__compress_free(c);
      return -1;
    }
  }
  c->compress = 1;
  c->frames.allowed_rsv = WSL_RSV1;
  return 0;
}

void wsl__compress_frame_limits(wsl_frame_limits_t *l) {
  /* The limits are on the inflated message (checked while inflating); the
   * compressed bytes of an incompressible message are slightly more than
   * the message itself (stored blocks), so the raw limits get room. */
  l->max_frame += l->max_frame / 16 + 1024;
  l->max_message += l->max_message / 16 + 1024;
}

void wsl__compress_free(wsl_conn_t *c) {
  wsl_conn_extra_t *x = c->extra;
  if (x) {
    wsl_deflater_free(x->deflater);
    wsl_inflater_free(x->inflater);
    x->deflater = NULL;
    x->inflater = NULL;
    wsl__conn_extra_trim(c);
  }
  c->compress = 0;
  c->deflater_shared = 0;
}

/* Our deflater's window, by role. */
static int our_window_bits(const wsl_conn_t *c) {
  const wsl_deflate_params_t *p = &c->ws->deflate_params;
  return c->role == WSL_ROLE_SERVER ? p->server_max_window_bits
                                    : p->client_max_window_bits;
}

/* The deflater of a compressing connection: the thread's (made at its
 * open, so found), or its own; NULL only if memory ran out. */
static wsl_deflater_t *deflater_of(const wsl_conn_t *c) {
  if (!c->deflater_shared)
    return c->extra ? c->extra->deflater : NULL;
  const wsl_deflate_config_t *cfg = &c->ws->deflate_config;
  return shared_deflater(cfg->level, cfg->mem_level, our_window_bits(c));
}

/* The inflater of a no-context connection's message that the thread's
 * cannot take; NULL when memory ran out. */
static wsl_inflater_t *own_inflater(wsl_conn_t *c) {
  wsl_conn_extra_t *x = wsl__conn_extra(c);
  if (x == NULL)
    return NULL;
  x->inflater = wsl_inflater_new(peer_window_bits(c), 1);
  if (x->inflater == NULL)
    wsl__conn_extra_trim(c);
  return x->inflater;
}

static int on_inflated(void *ud, const uint8_t *data, size_t len) {
  wsl_conn_t *c = ud;
  if (c->msg_opcode == WSL_OP_TEXT) {
    c->utf8 = wsl_utf8_feed(c->utf8, data, len);
    if (c->utf8 == WSL_UTF8_REJECT) {
      wsl__conn_fail(c, 1007, "text message is not valid UTF-8");
      return 1;
    }
  }
  wsl__ws_deliver(c, data, len, 0);
  return c->handles_closing || c->close_after_flush ? 1 : 0;
}

/* A no-context connection's own inflater goes at the end of the message
 * that needed it; a kept context stays. */
static void drop_inflater(wsl_conn_t *c) {
  if (c->inflate_no_context && c->extra) {
    wsl_inflater_free(c->extra->inflater);
    c->extra->inflater = NULL;
    wsl__conn_extra_trim(c);
  }
}

/* Fails the connection for what the inflater reported (not 0); returns
 * -1. */
static int inflate_failed(wsl_conn_t *c, int r) {
  if (r == WSL_DEFLATE_TOO_BIG)
    wsl__conn_fail(c, 1009, "inflated message too big");
  else if (r == WSL_DEFLATE_BAD_DATA)
    wsl__conn_fail(c, 1007, "invalid compressed data");
  else if (r == WSL_DEFLATE_NO_MEMORY)
    wsl__conn_fail(c, 1011, "out of memory inflating");
  /* else the sink stopped: the connection failed already */
  return -1;
}

/* A compressed message whose one frame came whole in a read is inflated
 * at once, into this buffer while it fits: it then goes to the owner as a
 * whole message (the loop turn's, conn_ws.c), not as pieces that the Lua
 * layer puts together again. Past the buffer it goes on as pieces. */
#define WHOLE_MAX (16 * 1024)

static _Thread_local struct {
  wsl_conn_t *c; /* collecting for c, or NULL */
  size_t len;
  uint8_t buf[WHOLE_MAX];
} whole;

static int on_whole_inflated(void *ud, const uint8_t *data, size_t len) {
  wsl_conn_t *c = ud;
  if (whole.c == c) {
    if (len <= WHOLE_MAX - whole.len) {
      memcpy(whole.buf + whole.len, data, len);
      whole.len += len;
      return 0;
    }
    /* Too large: what came so far is its first piece. */
    whole.c = NULL;
    if (whole.len && on_inflated(c, whole.buf, whole.len) != 0)
      return 1;
  }
  return on_inflated(c, data, len);
}

int wsl__compress_whole(wsl_conn_t *c, const uint8_t *data, size_t len) {
  /* The connection's own when it keeps a context, else the thread's. */
  wsl_inflater_t *inf = c->extra ? c->extra->inflater : NULL;
  int shared = 0;
  if (inf == NULL) {
    inf = shared_inflater(c);
    shared = inf != NULL;
    if (inf == NULL && (inf = own_inflater(c)) == NULL)
      return inflate_failed(c, WSL_DEFLATE_NO_MEMORY);
  }
  if (shared)
    shared_inflater_busy = 1;
  whole.c = c;
  whole.len = 0;
  int r = wsl_inflater_feed(inf, data, len, 1, c->ws->max_message,
                            on_whole_inflated, c);
  int collected = whole.c == c;
  whole.c = NULL;
  /* The feed reset the stream, whatever its outcome. */
  if (shared)
    shared_inflater_busy = 0;
  else
    drop_inflater(c);
  if (r != 0)
    return inflate_failed(c, r);
  if (collected) {
    if (c->msg_opcode == WSL_OP_TEXT &&
        wsl_utf8_feed(WSL_UTF8_ACCEPT, whole.buf, whole.len) !=
            WSL_UTF8_ACCEPT) {
      wsl__conn_fail(c, 1007, "text message is not valid UTF-8");
      return -1;
    }
    wsl__ws_whole(c, whole.buf, whole.len);
    return 0;
  }
  /* Delivered as pieces: the end, as for any message in pieces. */
  if (c->msg_opcode == WSL_OP_TEXT && c->utf8 != WSL_UTF8_ACCEPT) {
    wsl__conn_fail(c, 1007, "text message is not valid UTF-8");
    return -1;
  }
  wsl__ws_deliver(c, NULL, 0, 1);
  wsl__ws_end_message(c);
  return 0;
}

int wsl__compress_inflate(wsl_conn_t *c, const uint8_t *data, size_t len,
                          int fin) {
  wsl_inflater_t *inf = c->extra ? c->extra->inflater : NULL;
  if (inf == NULL) {
    /* No context kept, and nothing of this message inflated yet: an empty
     * message needs no inflater; a message with bytes gets one of its own
     * until its end, since its pieces come over several reads. */
    if (len == 0)
      return 0;
    if ((inf = own_inflater(c)) == NULL)
      return inflate_failed(c, WSL_DEFLATE_NO_MEMORY);
  }
  /* The inflater stays while the owner gets the pieces: the extra part
   * is trimmed only of what is no longer in use. */
  int r = wsl_inflater_feed(inf, data, len, fin, c->ws->max_message,
                            on_inflated, c);
  if (r != 0 || fin)
    drop_inflater(c);
  return r != 0 ? inflate_failed(c, r) : 0;
}

int wsl__compress_message(wsl_conn_t *c, const void *data, size_t len,
                          wsl_buf_t *out) {
  if (!c->compress || len < c->ws->deflate_config.threshold)
    return 0;
  wsl_deflater_t *d = deflater_of(c);
  if (d == NULL || wsl_deflater_compress(d, data, len, out) != 0)
    return -1;
  if (!c->deflater_shared)
    wsl_deflater_release(d);
  return 1;
}

int wsl__compress_share_key(const wsl_conn_t *c) {
  if (!c->deflater_shared)
    return 0;
  const wsl_deflate_config_t *cfg = &c->ws->deflate_config;
  const wsl_deflate_params_t *p = &c->ws->deflate_params;
  return settings_key(cfg->level, cfg->mem_level, p->server_max_window_bits);
}
