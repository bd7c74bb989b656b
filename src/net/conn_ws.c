/* The WebSocket session of a connection (RFC 6455 §5-7): frames in, message
 * pieces out to the owner, control frames answered, the closing handshake,
 * and keepalive. */
#include "net/conn_internal.h"

#include <stdlib.h>
#include <string.h>

#include "net/log.h"
#include "proto/close.h"
#include "proto/utf8.h"

/* --- options ------------------------------------------------------------ */

void wsl_ws_options_default(wsl_ws_options_t *o) {
  o->max_message = 1 << 20;
  o->max_frame = 0;
  o->idle_timeout_ms = 120000;
  o->close_timeout_ms = 3000;
  o->max_backpressure = 1 << 20;
  o->backpressure_drop = 0;
  o->low_water = 0;
  o->ping_interval_ms = 0;
  /* Compression, when asked for, keeps no context between messages by
   * default: a connection then costs almost nothing while idle. */
  o->deflate = 0;
  wsl_deflate_config_default(&o->deflate_config);
  o->deflate_config.server_no_context_takeover = 1;
  o->deflate_config.client_no_context_takeover = 1;
  o->deflate_config.threshold = 32;
  memset(&o->deflate_params, 0, sizeof o->deflate_params);
}

static uv_once_t defaults_once = UV_ONCE_INIT;
static wsl_ws_options_t defaults;

static void init_defaults(void) {
  wsl_ws_options_default(&defaults);
}

const wsl_ws_options_t *wsl__ws_options_default(void) {
  uv_once(&defaults_once, init_defaults);
  return &defaults;
}

/* The option sets in use by this thread's sessions: most servers have a
 * handful (one per endpoint and negotiated compression), so 10,000
 * connections hold 10,000 pointers, not 10,000 copies. A thread's
 * connections are opened and freed on its own loop: no lock. */
typedef struct shared_options {
  wsl_ws_options_t o; /* first: a connection's c->ws points here */
  /* What the frame parsers of these connections check, without and with
   * compression (the limits are on the raw frames). */
  wsl_frame_limits_t limits[2];
  size_t refs;
  struct shared_options *next;
} shared_options_t;

static _Thread_local shared_options_t *shared_options;

/* Field by field into zeroed memory, so that padding never tells two equal
 * option sets apart when they are compared whole. A field added to
 * wsl_ws_options_t must be copied here too: the size check below is there
 * to say so. */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(wsl_ws_options_t) == 120,
               "wsl_ws_options_t changed: update normalize()");
#endif
static void normalize(wsl_ws_options_t *out, const wsl_ws_options_t *in) {
  memset(out, 0, sizeof *out);
  out->max_message = in->max_message;
  out->max_frame = in->max_frame;
  out->idle_timeout_ms = in->idle_timeout_ms;
  out->close_timeout_ms = in->close_timeout_ms;
  out->max_backpressure = in->max_backpressure;
  out->backpressure_drop = in->backpressure_drop;
  out->low_water = in->low_water ? in->low_water : in->max_backpressure / 2;
  out->ping_interval_ms = in->ping_interval_ms;
  out->deflate = in->deflate;
  out->deflate_config = in->deflate_config;
  out->deflate_params = in->deflate_params;
}

/* A shared copy of options, or NULL when memory ran out. */
static const wsl_ws_options_t *share_options(const wsl_ws_options_t *in) {
  wsl_ws_options_t key;
  normalize(&key, in);
  for (shared_options_t *s = shared_options; s; s = s->next)
    if (memcmp(&s->o, &key, sizeof key) == 0) {
      s->refs++;
      return &s->o;
    }
  shared_options_t *s = malloc(sizeof *s);
  if (s == NULL)
    return NULL;
  s->o = key;
  s->limits[0].max_message = key.max_message;
  s->limits[0].max_frame = key.max_frame ? key.max_frame : key.max_message;
  s->limits[1] = s->limits[0];
  wsl__compress_frame_limits(&s->limits[1]);
  s->refs = 1;
  s->next = shared_options;
  shared_options = s;
  return &s->o;
}

void wsl__ws_options_release(wsl_conn_t *c) {
  if (!c->ws_shared)
    return;
  c->ws_shared = 0;
  shared_options_t *s = (shared_options_t *)c->ws;
  c->ws = wsl__ws_options_default();
  if (--s->refs > 0)
    return;
  shared_options_t **p = &shared_options;
  while (*p != s)
    p = &(*p)->next;
  *p = s->next;
  free(s);
}

/* --- session ------------------------------------------------------------ */

void wsl__ws_open(wsl_conn_t *c, const wsl_ws_options_t *options) {
  /* The session's bytes start here, after the handshake: nothing after the
   * request (or the response, client role) has been parsed yet. */
  c->stats.bytes_in = c->stats.bytes_out = 0;
  const wsl_ws_options_t *shared = share_options(options ? options : c->ws);
  if (shared == NULL) {
    wsl__conn_fail(c, 1011, "out of memory");
    return;
  }
  c->ws = shared;
  c->ws_shared = 1;
  wsl_frame_parser_init(&c->frames, c->role);
  if (wsl__compress_open(c, c->ws) != 0)
    wsl_log(WSL_LOG_WARN, "%s: no memory for compression, closing",
            wsl_conn_remote_addr(c));
  wsl_frame_parser_limit(
      &c->frames, &((const shared_options_t *)shared)->limits[c->compress]);
  c->last_read_ms = uv_now(c->tcp.loop);
  if (c->ws->ping_interval_ms) {
    wsl_conn_extra_t *x = wsl__conn_extra(c);
    if (x == NULL) {
      wsl__conn_fail(c, 1011, "out of memory");
      return;
    }
    x->next_ping_ms = c->last_read_ms + c->ws->ping_interval_ms;
  }
  c->state = WSL_CONN_OPEN;
  wsl__ws_arm_keepalive(c);
}

static void send_close_frame(wsl_conn_t *c, int code, const char *reason,
                             size_t len) {
  uint8_t payload[125];
  size_t n = wsl_close_encode(payload, code, reason, len);
  if (!c->close_received && !c->close_sent)
    c->closer = WSL_CLOSER_LOCAL;
  c->close_sent = 1;
  wsl__conn_write_frame(c, WSL_OP_CLOSE, 0, payload, n);
}

/* A reason longer is cut for on_close (the frame itself carries 123). */
#define CLOSE_REASON_MAX 124

/* The reason is kept (for on_close) only once a close is under way, so an
 * open connection holds no room for one. Out of memory, it is left out. */
static void remember_close(wsl_conn_t *c, int code, const char *reason,
                           size_t len) {
  c->close_code = code;
  if (len > CLOSE_REASON_MAX)
    len = CLOSE_REASON_MAX;
  c->close_reason_len = 0;
  if (len == 0 && c->rare == NULL)
    return;
  wsl_conn_rare_t *r = wsl__conn_rare(c);
  if (r == NULL)
    return;
  free(r->close_reason);
  r->close_reason = len ? malloc(len) : NULL;
  c->close_reason_len = r->close_reason ? len : 0;
  if (r->close_reason)
    memcpy(r->close_reason, reason, len);
}

/* --- whole messages ---------------------------------------------------- */

/* Whole messages waiting for the owner's on_messages: pointers into the
 * bytes of the read being parsed, which stay put until wsl__ws_input
 * returns. Handed over when it returns, when full, and before any other
 * event of the connection reaches the owner or the peer, so that order is
 * what the peer sent. A read that brought only a few small ones leaves
 * them to the loop turn's instead (turn.c): they go with the other
 * connections', one setup for all. */
#define BATCH_MAX 64
#define TURN_READ_MAX 4 /* messages of a read that the turn takes */

typedef struct batch {
  wsl_conn_t *c;
  size_t n;
  wsl_message_t m[BATCH_MAX];
  struct batch *outer;
} batch_t;

/* The batch of the innermost wsl__ws_input on this thread: an owner's call
 * may feed another connection's bytes (pipelined HTTP). */
static _Thread_local batch_t *batch;

/* Hands the read's batch to the owner, after what waits in the turn (c's
 * messages there came before). */
static void flush_batch(wsl_conn_t *c) {
  batch_t *b = batch;
  if (b == NULL || b->c != c || b->n == 0)
    return;
  wsl__turn_run();
  size_t n = b->n;
  b->n = 0;
  if (c->state == WSL_CONN_OPEN)
    c->handler->on_messages(b->m, n);
}

/* Before anything but a whole message of c reaches its owner or its peer:
 * the whole messages that came before it are handed over. */
static void sync_messages(wsl_conn_t *c) {
  wsl__turn_run();
  flush_batch(c);
}

/* At the end of a read: a few small messages join the turn, others go to
 * the owner now. */
static int all_small(const batch_t *b) {
  for (size_t i = 0; i < b->n; i++)
    if (b->m[i].len > WSL_TURN_MESSAGE_MAX)
      return 0;
  return 1;
}

static void end_batch(wsl_conn_t *c) {
  batch_t *b = batch;
  size_t taken = 0;
  if (b->n <= TURN_READ_MAX && all_small(b))
    while (taken < b->n && wsl__turn_add(&b->m[taken]))
      taken++;
  if (taken == b->n) {
    b->n = 0;
    return;
  }
  /* Not all of them: the rest go now, in order after those taken. */
  memmove(b->m, b->m + taken, (b->n - taken) * sizeof *b->m);
  b->n -= taken;
  flush_batch(c);
}

void wsl__ws_whole(wsl_conn_t *c, const uint8_t *data, size_t len) {
  if (c->handler->on_messages == NULL) {
    wsl__ws_deliver(c, data, len, 1);
  } else {
    wsl_message_t m = {c, (const char *)data, len, c->msg_opcode};
    c->stats.messages_in++;
    flush_batch(c); /* a connection's messages are never in both */
    if (len > WSL_TURN_MESSAGE_MAX || !wsl__turn_add(&m)) {
      wsl__turn_run();
      if (c->state == WSL_CONN_OPEN)
        c->handler->on_messages(&m, 1);
    }
  }
  wsl__ws_end_message(c);
}

/* 1 when the message (all of it in data) joined the batch. */
static int batch_message(wsl_conn_t *c, const uint8_t *data, size_t len) {
  batch_t *b = batch;
  if (b == NULL || b->c != c || c->handler->on_messages == NULL)
    return 0;
  c->msg_delivered = c->msg_done = 1;
  c->stats.messages_in++;
  b->m[b->n++] = (wsl_message_t){c, (const char *)data, len, c->msg_opcode};
  if (b->n == BATCH_MAX)
    flush_batch(c);
  return 1;
}

/* _Fail the WebSocket Connection_ (§7.1.7): a close frame naming the code,
 * then TCP closed once it is sent. */
void wsl__conn_fail(wsl_conn_t *c, int code, const char *why) {
  if (c->handles_closing)
    return;
  sync_messages(c); /* what came before the fault is answered first */
  wsl_log(WSL_LOG_INFO, "%s: closing with %d: %s", wsl_conn_remote_addr(c),
          code, why);
  if (!c->close_sent)
    send_close_frame(c, code, why, strlen(why));
  remember_close(c, code, why, strlen(why));
  if (c->error == NULL && code != 1000 && code != 1001)
    c->error = why;
  c->state = WSL_CONN_CLOSING;
  wsl_conn_abort(c, 1);
}

int wsl_conn_close(wsl_conn_t *c, int code, const char *reason, size_t len) {
  if (c->state != WSL_CONN_OPEN)
    return UV_ECANCELED;
  send_close_frame(c, code, reason, len);
  remember_close(c, code, reason, len);
  c->state = WSL_CONN_CLOSING;
  wsl__conn_arm_timer(c, c->ws->close_timeout_ms);
  return 0;
}

static void on_close_frame(wsl_conn_t *c, const uint8_t *payload, size_t len) {
  int code;
  const uint8_t *reason;
  size_t reason_len;
  int bad = wsl_close_parse(payload, len, &code, &reason, &reason_len);
  if (bad) {
    wsl__conn_fail(c, bad,
                   bad == 1007 ? "close reason is not UTF-8"
                               : "invalid close code or payload");
    return;
  }
  c->close_received = 1;
  if (!c->close_sent) {
    c->closer = WSL_CLOSER_PEER;
    /* Echo the peer's code (§5.5.1); 1005 means an empty close payload. */
    remember_close(c, code, (const char *)reason, reason_len);
    send_close_frame(c, code, NULL, 0);
  }
  /* Both closes exchanged: the server closes TCP first (§7.1.1). */
  c->state = WSL_CONN_CLOSING;
  wsl__conn_end(c);
}

/* A control frame, its payload all in payload[0..len). */
static void on_control_frame(wsl_conn_t *c, int opcode, const uint8_t *payload,
                             size_t len) {
  sync_messages(c);
  switch (opcode) {
  case WSL_OP_PING:
    if (c->state == WSL_CONN_OPEN)
      wsl__conn_write_frame(c, WSL_OP_PONG, 0, payload, len);
    break;
  case WSL_OP_PONG:
    break; /* unsolicited pongs are allowed and ignored (§5.5.3) */
  case WSL_OP_CLOSE:
    on_close_frame(c, payload, len);
    break;
  }
}

void wsl__ws_deliver(wsl_conn_t *c, const uint8_t *data, size_t len, int last) {
  sync_messages(c);
  int first = !c->msg_delivered;
  c->msg_delivered = 1;
  if (last) {
    c->msg_done = 1;
    c->stats.messages_in++;
  }
  if (c->state == WSL_CONN_OPEN && c->handler->on_data)
    c->handler->on_data(c, c->msg_opcode, (const char *)data, len, first, last);
}

/* A data frame's header: the first of a message starts it. */
static void on_data_header(wsl_conn_t *c, const wsl_frame_header_t *h) {
  if (h->first) {
    c->msg_opcode = h->message_opcode;
    c->msg_compressed = h->compressed;
    c->utf8 = WSL_UTF8_ACCEPT;
  }
}

/* A piece of a data frame's payload. Returns 0 to go on, -1 when the
 * connection failed. */
static int on_data_payload(wsl_conn_t *c, const wsl_frame_header_t *h,
                           uint8_t *data, size_t len) {
  if (c->msg_compressed)
    return wsl__compress_inflate(c, data, len, 0); /* ends at the frame end */
  /* The parser counts the frame's payload delivered so far, this piece
   * included. */
  int last = h->fin && c->frames.pos == h->length;
  if (c->msg_opcode == WSL_OP_TEXT) {
    c->utf8 = wsl_utf8_feed(c->utf8, data, len);
    if (c->utf8 == WSL_UTF8_REJECT || (last && c->utf8 != WSL_UTF8_ACCEPT)) {
      wsl__conn_fail(c, 1007, "text message is not valid UTF-8");
      return -1;
    }
  }
  if (last && !c->msg_delivered && batch_message(c, data, len))
    return 0;
  wsl__ws_deliver(c, data, len, last);
  return 0;
}

/* A data frame's end. Returns 0 to go on, -1 when the connection failed. */
static int on_data_end(wsl_conn_t *c, const wsl_frame_header_t *h) {
  if (!h->fin)
    return 0;
  if (c->msg_compressed && wsl__compress_inflate(c, NULL, 0, 1) != 0)
    return -1;
  if (!c->msg_done) {
    if (c->msg_opcode == WSL_OP_TEXT && c->utf8 != WSL_UTF8_ACCEPT) {
      wsl__conn_fail(c, 1007, "text message is not valid UTF-8");
      return -1;
    }
    wsl__ws_deliver(c, NULL, 0, 1);
  }
  wsl__ws_end_message(c);
  return 0;
}

void wsl__ws_end_message(wsl_conn_t *c) {
  c->msg_opcode = 0;
  c->msg_delivered = c->msg_done = 0;
}

/* The events of a frame that comes over several reads (a whole one is
 * parse_input's). A control frame's payload is kept until its end, in a
 * buffer made at its header; the frame parser has checked its length (125
 * at most). Each returns 0 to go on, -1 when the connection failed. */
static int on_header(wsl_conn_t *c, const wsl_frame_header_t *h) {
  if (h->opcode < WSL_OP_CLOSE) {
    on_data_header(c, h);
    return 0;
  }
  if (h->length == 0)
    return 0;
  wsl_conn_extra_t *x = wsl__conn_extra(c);
  if (x == NULL || (x->ctrl = malloc((size_t)h->length)) == NULL) {
    wsl__conn_extra_trim(c);
    wsl__conn_fail(c, 1011, "out of memory");
    return -1;
  }
  x->ctrl_len = 0;
  return 0;
}

static int on_payload(wsl_conn_t *c, const wsl_frame_header_t *h, uint8_t *data,
                      size_t len) {
  if (h->opcode < WSL_OP_CLOSE)
    return on_data_payload(c, h, data, len);
  memcpy(c->extra->ctrl + c->extra->ctrl_len, data, len);
  c->extra->ctrl_len += len;
  return 0;
}

static int on_frame_end(wsl_conn_t *c, const wsl_frame_header_t *h) {
  if (h->opcode < WSL_OP_CLOSE)
    return on_data_end(c, h);
  wsl_conn_extra_t *x = c->extra;
  if (x == NULL || x->ctrl == NULL) { /* no payload */
    on_control_frame(c, h->opcode, NULL, 0);
    return 0;
  }
  on_control_frame(c, h->opcode, x->ctrl, x->ctrl_len);
  free(x->ctrl);
  x->ctrl = NULL;
  x->ctrl_len = 0;
  wsl__conn_extra_trim(c);
  return 0;
}

static void parse_input(wsl_conn_t *c, uint8_t *data, size_t len) {
  c->stats.bytes_in += len;
  c->last_read_ms = uv_now(c->tcp.loop);
  c->ping_outstanding = 0;
  wsl_frame_event_t ev;
  while (!c->handles_closing && !c->close_after_flush) {
    size_t used = wsl_frame_parse_whole(&c->frames, data, len, &ev);
    data += used;
    len -= used;
    switch (ev.kind) {
    case WSL_FRAME_NEED_MORE:
      return;
    case WSL_FRAME_ERROR:
      wsl__conn_fail(c, ev.close_code, ev.reason);
      return;
    case WSL_FRAME_HEADER:
      if (on_header(c, &ev.header) != 0)
        return;
      break;
    case WSL_FRAME_WHOLE: /* a frame in one piece: the three events in one */
      if (ev.header.opcode >= WSL_OP_CLOSE) {
        /* A control frame: answered from the read's bytes. */
        on_control_frame(c, ev.header.opcode, ev.data, ev.len);
        break;
      }
      on_data_header(c, &ev.header);
      if (ev.header.compressed && ev.header.first && ev.header.fin) {
        /* A compressed message in one frame: inflated at once. */
        if (wsl__compress_whole(c, ev.data, ev.len) != 0)
          return;
        break;
      }
      if ((ev.len && on_data_payload(c, &ev.header, ev.data, ev.len) != 0) ||
          c->handles_closing || c->close_after_flush ||
          on_data_end(c, &ev.header) != 0)
        return;
      break;
    case WSL_FRAME_PAYLOAD:
      if (on_payload(c, &ev.header, ev.data, ev.len) != 0)
        return;
      break;
    case WSL_FRAME_END:
      if (on_frame_end(c, &ev.header) != 0)
        return;
      break;
    }
  }
}

void wsl__ws_input(wsl_conn_t *c, uint8_t *data, size_t len) {
  batch_t b; /* not zeroed: m is 1.5 KiB, filled as messages come */
  b.c = c;
  b.n = 0;
  b.outer = batch;
  batch = &b;
  parse_input(c, data, len);
  end_batch(c);
  batch = b.outer;
}

/* Keepalive (§5.5.2): a ping when the peer has been quiet for 3/4 of the
 * idle time; close 1001 when the whole idle time passes without a byte.
 * With ping_interval_ms, a ping that often as well, whatever the traffic
 * (for proxies and NATs that drop quiet connections). */
void wsl__ws_arm_keepalive(wsl_conn_t *c) {
  uint64_t now = uv_now(c->tcp.loop), next = 0;
  uint64_t idle = c->ws->idle_timeout_ms;
  if (idle) {
    uint64_t quiet = now - c->last_read_ms, ping_at = idle * 3 / 4;
    next =
        quiet >= ping_at ? (quiet >= idle ? 1 : idle - quiet) : ping_at - quiet;
  }
  if (c->ws->ping_interval_ms) {
    uint64_t at = c->extra->next_ping_ms; /* made by wsl__ws_open */
    uint64_t in = at > now ? at - now : 1;
    if (next == 0 || in < next)
      next = in;
  }
  wsl__conn_arm_timer(c, next);
}

void wsl__ws_on_timer(wsl_conn_t *c) {
  uint64_t now = uv_now(c->tcp.loop);
  uint64_t idle = c->ws->idle_timeout_ms;
  uint64_t quiet = now - c->last_read_ms;
  if (idle && quiet >= idle) {
    wsl__conn_fail(c, 1001, "idle timeout");
    return;
  }
  int ping = 0;
  if (idle && quiet >= idle * 3 / 4 && !c->ping_outstanding) {
    c->ping_outstanding = 1;
    ping = 1;
  }
  if (c->ws->ping_interval_ms && now >= c->extra->next_ping_ms) {
    c->extra->next_ping_ms = now + c->ws->ping_interval_ms;
    ping = 1;
  }
  if (ping)
    wsl__conn_write_frame(c, WSL_OP_PING, 0, NULL, 0);
  wsl__ws_arm_keepalive(c);
}
