/* The inside of a connection, shared by conn.c (lifecycle, reading, writing,
 * timers), conn_ws.c (the WebSocket session), server.c and connect.c. Not for
 * the Lua layer. */
#ifndef WSL_CONN_INTERNAL_H
#define WSL_CONN_INTERNAL_H

#include "net/conn.h"
#include "net/cork.h"
#include "net/tls.h"
#include "proto/buf.h"
#include "proto/frame.h"

struct wsl_conn {
  uv_tcp_t tcp;
  uv_timer_t timer; /* handshake, keep-alive, idle and close-wait timeouts */
  wsl_conn_state_t state;
  wsl_role_t role;
  const wsl_conn_handler_t *handler;
  const wsl_conn_config_t *config; /* server role */
  void *data;                      /* the owner's */
  struct wsl_conn *prev, *next;    /* the listener's (or dialer's) list */
  struct wsl_conn_list *list;

  wsl_tls_t *tls;        /* NULL for plain TCP */
  char remote_addr[64];
  wsl_buf_t pending;     /* bytes read but not yet parsed (while answering) */
  int processing;        /* inside process_input: do not re-enter */
  int refs;              /* tcp, timer, pending requests: free at zero */
  int handles_closing;   /* uv_close was called */
  int reading;           /* uv_read_start is in effect */
  int close_after_flush; /* shutdown once the write queue drains */
  /* Output batching (conn.c, cork.c, flush.c): small writes wait in the
   * cork (plaintext on TLS, encrypted once when it leaves) and leave in
   * one system call per loop turn, from the thread's flush list. */
  wsl_cork_t cork;
  int batched;         /* counted by the thread's flusher: may cork */
  unsigned flush_slot; /* 1 + its index on the flush list; 0: not listed */

  /* HTTP */
  wsl_http_parser_t http;
  int http_parser_live;

  /* WebSocket */
  wsl_ws_options_t ws;
  wsl_frame_parser_t frames;
  uint32_t utf8;          /* validation state of the current text message */
  int msg_opcode;         /* opcode of the message in progress, or 0 */
  int msg_compressed;     /* it came with RSV1: inflate its pieces */
  int msg_delivered;      /* a piece of it went to the owner */
  int msg_done;           /* its last piece went to the owner */
  uint64_t frame_got;     /* payload bytes of the current frame so far */
  uint8_t ctrl[125];      /* payload of the current control frame */
  size_t ctrl_len;
  uint64_t last_read_ms;  /* uv_now when the peer last sent something */
  int ping_outstanding;   /* a keepalive ping was sent, no answer yet */
  uint64_t next_ping_ms;  /* uv_now of the next ping_interval ping */
  int above_low_water;    /* the send queue passed ws.low_water: on_drain
                             when it falls back */
  uint64_t dropped;       /* messages skipped (backpressure_drop) */
  wsl_conn_stats_t stats; /* bytes and messages each way, who closed */
  struct wsl_sub *subs, *subs_tail; /* its topics (topics.c) */
  int close_sent, close_received;
  int close_code;         /* the session's close code for on_close */
  char close_reason[124];
  size_t close_reason_len;
  const char *error;      /* what went wrong, for on_close */
  char error_buf[128];    /* for an error message made at run time */

  /* permessage-deflate, when negotiated (compress.c) */
  int compress;
  wsl_deflater_t *deflater; /* our own, or the thread's shared one */
  int deflater_shared;
  wsl_inflater_t *inflater;

  /* client role */
  char *dial_request;     /* the handshake request bytes */
  size_t dial_request_len;
  char dial_key[25];
  char *dial_protocols;
  struct wsl_tls_ctx *dial_tls;
  char dial_server_name[256];
};

typedef struct wsl_conn_list {
  wsl_conn_t *head;
  size_t count;
  void (*on_empty)(struct wsl_conn_list *list); /* the last one was freed */
} wsl_conn_list_t;

/* A frame's bytes, built once and referenced by every write of it. */
typedef struct wsl_shared_frame {
  size_t refs;
  size_t len;
  char bytes[];
} wsl_shared_frame_t;

/* conn.c */
wsl_shared_frame_t *wsl__shared_frame_new(int opcode, int rsv, const void *data,
                                          size_t len);
void wsl__shared_frame_release(wsl_shared_frame_t *f);
/* Queues a shared frame on an open server-role connection. */
int wsl__conn_write_shared(wsl_conn_t *c, wsl_shared_frame_t *f);
wsl_conn_t *wsl__conn_new(uv_loop_t *loop, wsl_role_t role,
                          const wsl_conn_handler_t *handler,
                          wsl_conn_list_t *list);
void wsl__conn_unref(wsl_conn_t *c);
void wsl__conn_start_reading(wsl_conn_t *c);
void wsl__conn_arm_timer(wsl_conn_t *c, uint64_t ms);
int wsl__conn_write_frame(wsl_conn_t *c, int opcode, int rsv,
                          const void *data, size_t len);
void wsl__conn_fail(wsl_conn_t *c, int code, const char *why);
void wsl__conn_fill_remote_addr(wsl_conn_t *c);
/* Puts TLS under the connection; the client role sends its ClientHello. */
int wsl__conn_tls_start(wsl_conn_t *c, struct wsl_tls_ctx *ctx,
                        const char *server_name);

/* Sends what waits in the cork now (flush.c calls it once per turn). */
int wsl__conn_flush(wsl_conn_t *c);

/* flush.c: the thread's flush list. attach counts a new connection and
 * returns 1 when it may cork (0: its writes go at once); detach, when it
 * starts closing, unlists it. list returns 0 or -1 (no memory: the caller
 * flushes at once). */
int wsl__flush_attach(wsl_conn_t *c);
void wsl__flush_detach(wsl_conn_t *c);
int wsl__flush_list(wsl_conn_t *c);
void wsl__flush_unlist(wsl_conn_t *c);

/* conn_ws.c: feed WebSocket bytes; returns once they are used up or the
 * connection stops reading. */
void wsl__ws_input(wsl_conn_t *c, uint8_t *data, size_t len);
void wsl__ws_open(wsl_conn_t *c, const wsl_ws_options_t *options);
void wsl__ws_on_timer(wsl_conn_t *c);
/* Arms the timer for the next keepalive event (idle ping or close, or the
 * ping_interval ping). */
void wsl__ws_arm_keepalive(wsl_conn_t *c);
/* Hands a piece of the message in progress to the owner. */
void wsl__ws_deliver(wsl_conn_t *c, const uint8_t *data, size_t len, int last);

/* compress.c: permessage-deflate on a connection. */
int wsl__compress_open(wsl_conn_t *c, const wsl_ws_options_t *o);
void wsl__compress_free(wsl_conn_t *c);
/* Inflates a piece of a compressed message (fin: its last) and delivers
 * the result; returns -1 when the connection failed (1009, 1007). */
int wsl__compress_inflate(wsl_conn_t *c, const uint8_t *data, size_t len,
                          int fin);
/* 1 with the compressed payload appended to out, 0 when the message goes
 * as it is (no compression, or under the threshold), -1 out of memory. */
int wsl__compress_message(wsl_conn_t *c, const void *data, size_t len,
                          wsl_buf_t *out);
/* Settings under which a compressed frame can be shared: 0 when this
 * connection's compressor keeps context (it compresses for itself). */
int wsl__compress_share_key(const wsl_conn_t *c);

/* connect.c: the response to our handshake request. */
size_t wsl__dial_input(wsl_conn_t *c, char *data, size_t len);

#endif
