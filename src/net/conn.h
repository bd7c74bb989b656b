/* One connection: HTTP/1.1 requests, then, once upgraded, a WebSocket
 * session (RFC 6455) with its close rules, keepalive and limits. Serves both
 * roles: accepted connections (server) and dialled ones (client, see
 * connect.h). The owner (the Lua layer) sees events through a handler table
 * and answers through the functions below; it never touches libuv. */
#ifndef WSL_CONN_H
#define WSL_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto/deflate.h"
#include "proto/http.h"

typedef struct wsl_conn wsl_conn_t;

/* Limits and timings; every field has a default (wsl_conn_options_default).
 * An open connection keeps a shared copy (conn_ws.c normalize() copies each
 * field: a new one goes there too). */
typedef struct {
  uint64_t max_message;      /* bytes; over: close 1009 (default 1 MiB) */
  uint64_t max_frame;        /* bytes; over: close 1009 (default max_message) */
  uint64_t idle_timeout_ms;  /* no byte from the peer: ping at 3/4, then 1001
                                (default 120 s; 0: none) */
  uint64_t close_timeout_ms; /* wait for the peer's close (default 3 s) */
  size_t max_backpressure;   /* bytes queued for sending; over: close 1008
                                (default 1 MiB; 0: none) */
  int backpressure_drop;     /* over max_backpressure, skip messages for the
                                connection (counted) instead of closing */
  size_t low_water;          /* on_drain when the queue falls to it after
                                being above (0: max_backpressure / 2) */
  uint64_t ping_interval_ms; /* a ping this often, whatever the traffic
                                (default 0: only the idle ping) */
  /* permessage-deflate (RFC 7692). Client role: deflate_config is offered
   * when deflate is set. Server role: the owner negotiates
   * (wsl_deflate_negotiate) and passes what was agreed in deflate_params
   * with deflate set. */
  int deflate;
  wsl_deflate_config_t deflate_config;
  wsl_deflate_params_t deflate_params;
} wsl_ws_options_t;

void wsl_ws_options_default(wsl_ws_options_t *o);

/* Frees what this thread keeps for all its connections (the shared
 * compressors, spare cork buffers): a worker thread that ends calls it once
 * none of its connections is left. */
void wsl_conn_thread_exit(void);

/* Drops the whole messages that wait for the end of this thread's loop
 * turn (see on_messages): for an owner that goes away while the loop is
 * stopped, whose handlers must not be called after. */
void wsl_conn_turn_clear(void);

/* A whole message, as on_messages hands it: uncompressed, in one piece, and
 * (text) checked to be UTF-8. */
typedef struct {
  wsl_conn_t *conn; /* the connection it came on */
  const char *data;
  size_t len;
  int opcode; /* WSL_OP_TEXT or WSL_OP_BINARY */
} wsl_message_t;

/* Events for the owner. Each is called from the event loop, never from
 * inside a call the owner made, except on_data/on_request which may follow
 * wsl_conn_http_finish when pipelined bytes were waiting. */
typedef struct {
  /* A complete HTTP request (server role). Reading stops until the owner
   * answers with wsl_conn_http_finish() or wsl_conn_upgrade(). req is valid
   * until then. */
  void (*on_request)(wsl_conn_t *c, const wsl_http_request_t *req);
  /* Client role: the opening handshake succeeded. */
  void (*on_open)(wsl_conn_t *c, const wsl_http_request_t *resp);
  /* A piece of a data message: opcode is WSL_OP_TEXT or WSL_OP_BINARY;
   * first marks the message's first piece, last its final one (a piece may
   * be empty). Text has been checked to be UTF-8 so far. */
  void (*on_data)(wsl_conn_t *c, int opcode, const char *data, size_t len,
                  int first, int last);
  /* Optional: whole messages given together instead of one on_data each
   * (an owner that runs a script per message sets up once for all of
   * them): the small ones of a loop turn, from every connection of the
   * thread with this handler, after the turn's reads (turn.c); a larger one
   * with the others of its read. Each connection's come in order, and
   * before anything else the connection does after them (other messages'
   * pieces, a control frame answered, a failure, its close); data is valid
   * during the call. The owner checks wsl_conn_state before each: once a
   * connection is closed, the rest are not for it. */
  void (*on_messages)(const wsl_message_t *msgs, size_t n);
  /* The connection is gone; called exactly once, after which c is freed.
   * code is the close code of the session (1006 when none was exchanged);
   * error is NULL, or what went wrong (a dial failure, a protocol error). */
  void (*on_close)(wsl_conn_t *c, int code, const char *reason,
                   size_t reason_len, const char *error);
  /* The send queue fell to ws.low_water after having been above it (from
   * a write callback; the owner may send from here). Optional. */
  void (*on_drain)(wsl_conn_t *c);
} wsl_conn_handler_t;

typedef enum {
  WSL_CONN_HTTP,      /* reading requests */
  WSL_CONN_ANSWERING, /* a request was handed to the owner */
  WSL_CONN_DIALING,   /* client role: connecting, handshake in flight */
  WSL_CONN_OPEN,      /* WebSocket open */
  WSL_CONN_CLOSING,   /* close frame sent, waiting for the peer's */
  WSL_CONN_CLOSED     /* TCP closing; on_close comes from the loop */
} wsl_conn_state_t;

wsl_conn_state_t wsl_conn_state(const wsl_conn_t *c);
/* The owner's pointer, NULL until set. */
void *wsl_conn_data(const wsl_conn_t *c);
void wsl_conn_set_data(wsl_conn_t *c, void *data);
/* "1.2.3.4:5678" or "[::1]:5678" ("host:port" as dialled until a client
 * connection is connected). Formatted when asked, into storage of the
 * calling thread that the next call reuses: copy it to keep it. */
const char *wsl_conn_remote_addr(const wsl_conn_t *c);
/* Bytes written but not yet taken by the kernel. */
size_t wsl_conn_buffered(const wsl_conn_t *c);
/* 1 while the send queue is above the low-water mark: an on_drain follows
 * unless the connection goes first. */
int wsl_conn_draining(const wsl_conn_t *c);
/* Messages skipped under the "drop" backpressure policy. */
uint64_t wsl_conn_dropped(const wsl_conn_t *c);

/* Who sent the first close frame of a WebSocket session. */
typedef enum {
  WSL_CLOSER_NONE, /* no close frame yet (or none was exchanged) */
  WSL_CLOSER_PEER, /* the peer's came first */
  WSL_CLOSER_LOCAL /* ours came first */
} wsl_closer_t;

/* What went through a connection, for access logs and metrics. Bytes are
 * those of HTTP and WebSocket (frame headers included, TLS records not):
 * of the whole connection while it speaks HTTP, of the WebSocket session
 * alone (from after the 101) once upgraded. Messages are WebSocket data
 * messages: received whole, or queued for sending. Counting costs an
 * addition per read, write and message. */
typedef struct {
  uint64_t bytes_in, bytes_out;
  uint64_t messages_in, messages_out;
  wsl_closer_t closer;
} wsl_conn_stats_t;

void wsl_conn_stats(const wsl_conn_t *c, wsl_conn_stats_t *out);

/* HTTP, server role. wsl_conn_write queues raw bytes (a response, in one or
 * several pieces); wsl_conn_http_finish ends the response: the next request
 * is read when keep_alive, else the connection closes after the bytes are
 * sent. Return 0, or UV_ECANCELED when the connection is closed. */
int wsl_conn_write(wsl_conn_t *c, const void *data, size_t len);
int wsl_conn_http_finish(wsl_conn_t *c, int keep_alive);

/* Sends the 101 response (all of it, blank line included) and switches the
 * connection to WebSocket with these options. */
int wsl_conn_upgrade(wsl_conn_t *c, const void *response, size_t len,
                     const wsl_ws_options_t *options);

/* A message skipped because the send buffer limit was passed under the
 * drop policy. */
#define WSL_EDROPPED (-20001)

/* WebSocket. Return 0; UV_ECANCELED when closed or closing (the routine
 * race of a client that went away); UV_ENOBUFS when the send buffer limit
 * was passed (the connection is then being closed with 1008), or
 * WSL_EDROPPED under the drop policy (the message is skipped, counted). */
int wsl_conn_send(wsl_conn_t *c, int opcode, const void *data, size_t len);
int wsl_conn_ping(wsl_conn_t *c, const void *data, size_t len);
/* Starts the closing handshake (RFC 6455 §7.1.2): sends a close frame and
 * waits close_timeout_ms for the peer's before closing TCP. */
int wsl_conn_close(wsl_conn_t *c, int code, const char *reason, size_t len);
/* Closes the TCP connection now (after queued bytes if flush). */
void wsl_conn_abort(wsl_conn_t *c, int flush);

/* Whether permessage-deflate is in use on the connection. */
int wsl_conn_compressed(const wsl_conn_t *c);

/* A message sent to many connections. Its frame is built once for every
 * connection that takes it as is (and compressed once for every set of
 * compression settings that keeps no context between messages); the bytes
 * are shared, reference counted, never copied per connection. A connection
 * whose compressor keeps context compresses for itself. */
typedef struct wsl_broadcast wsl_broadcast_t;
wsl_broadcast_t *wsl_broadcast_new(int opcode, const void *data, size_t len);
int wsl_conn_send_broadcast(wsl_conn_t *c, wsl_broadcast_t *b);
void wsl_broadcast_free(wsl_broadcast_t *b);

/* Server role: made by the listener for an accepted socket. */
typedef struct wsl_conn_config {
  const wsl_conn_handler_t *handler;
  wsl_http_limits_t http_limits;
  uint64_t handshake_timeout_ms; /* a whole request must come within it */
  uint64_t keepalive_timeout_ms; /* an idle keep-alive HTTP connection */
  void *owner;                   /* the owner's, for its handler */
  struct wsl_tls_ctx *tls;       /* NULL: plain TCP */
} wsl_conn_config_t;

/* Server role: the listener's configuration; NULL for dialled ones. */
const wsl_conn_config_t *wsl_conn_config(const wsl_conn_t *c);

#endif
