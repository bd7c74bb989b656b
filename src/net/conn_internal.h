/* The inside of a connection, shared by conn.c (lifecycle, reading, writing,
 * timers), conn_parts.c (the parts made when needed), conn_ws.c (the
 * WebSocket session), server.c and connect.c. Not for the Lua layer. */
#ifndef WSL_CONN_INTERNAL_H
#define WSL_CONN_INTERNAL_H

#include "net/conn.h"
#include "net/cork.h"
#include "net/timers.h"
#include "net/tls.h"
#include "proto/buf.h"
#include "proto/frame.h"

/* Client role: what the opening handshake needs (connect.c). Allocated by
 * wsl_connect (in the extra part), freed once the handshake is done: an
 * open connection carries none of it. After a failed dial it stays until
 * the connection is freed (addr names the peer in logs). */
typedef struct wsl_dial_state {
  char *request; /* the handshake request bytes, until written */
  size_t request_len;
  char key[25];
  char *protocols;
  struct wsl_tls_ctx *tls;
  char *server_name;
  char *addr; /* "host:port" as dialled, the remote address until connected */
  wsl_ws_options_t ws; /* the options, settled by the server's answer */
} wsl_dial_state_t;

/* What the owner's calls and the connection's end need, allocated the
 * first time one needs it (wsl__conn_rare) and freed with the connection:
 * 10,000 idle connections do not each carry its 48 bytes (issue 6). Kept
 * small: in a pub/sub server every connection has topics, so every one has
 * this part. */
typedef struct wsl_conn_rare {
  /* Bytes read but not yet parsed (while the owner answers a request),
   * NULL when none wait. */
  wsl_buf_t *pending;
  uint64_t dropped;                 /* messages skipped (backpressure_drop) */
  struct wsl_sub *subs, *subs_tail; /* its topics (topics.c) */
  char *close_reason; /* allocated once a reason is known, else NULL */
  char *error_buf;    /* an error message made at run time, or NULL */
} wsl_conn_rare_t;

/* What some protocol features need: allocated the first time one does
 * (wsl__conn_extra), freed once none does (wsl__conn_extra_trim) or with
 * the connection. A server's connection with the default options never
 * has it; one with ping_interval, a compressor of its own, or the client
 * role (until the handshake is done) does. Each field is 0 or NULL when
 * not in use. */
typedef struct wsl_conn_extra {
  wsl_dial_state_t *dial;   /* client role, until the handshake is done */
  uint64_t next_ping_ms;    /* uv_now of the next ping_interval ping */
  wsl_deflater_t *deflater; /* our own, not the thread's (compress.c) */
  /* Our own (compress.c): for the connection's life when the peer keeps
   * context, else only while a message spans reads. */
  wsl_inflater_t *inflater;
  /* The payload of a control frame (at most 125 bytes) that comes over
   * several reads, from its header to its end; one that comes whole is
   * answered from the read's bytes. */
  uint8_t *ctrl;
  uint8_t ctrl_len; /* bytes of ctrl so far */
} wsl_conn_extra_t;

/* The counts of wsl_conn_stats_t. Who closed is a byte of the connection's
 * small fields (closer), not an enum padded to 8 bytes here. */
typedef struct {
  uint64_t bytes_in, bytes_out;
  uint64_t messages_in, messages_out;
} wsl_conn_counts_t;

struct wsl_conn {
  uv_tcp_t tcp;
  /* Handshake, keep-alive, idle and close-wait timeouts: one timer, on the
   * loop's shared libuv timer (timers.h). */
  wsl_timer_t timer;
  const wsl_conn_handler_t *handler;
  const wsl_conn_config_t *config; /* server role */
  void *data;                      /* the owner's */
  struct wsl_conn *prev, *next;    /* the listener's (or dialer's) list */
  struct wsl_conn_list *list;
  wsl_tls_t *tls; /* NULL for plain TCP */
  /* The peer's address, formatted only when asked (wsl_conn_remote_addr):
   * the address alone, not a struct sockaddr (28 bytes for IPv6). */
  uint8_t peer_addr[16]; /* 4 bytes for AF_INET, 16 for AF_INET6 */
  uint16_t peer_port;    /* network byte order */
  uint8_t peer_family;   /* AF_INET, AF_INET6, or AF_UNSPEC until known */
  /* Small fields together: an idle connection is mostly this struct, and
   * 10,000 of them should cost little (issue 6). */
  uint8_t state;      /* wsl_conn_state_t */
  uint8_t role;       /* wsl_role_t */
  uint8_t msg_opcode; /* opcode of the message in progress, or 0 */
  uint8_t close_reason_len;
  uint8_t closer; /* wsl_closer_t, for wsl_conn_stats */
  /* Validation state of the current text message: wsl_utf8_feed's states
   * are all below 256. */
  uint8_t utf8;
  uint16_t close_code;            /* the session's close code for on_close */
  unsigned processing : 1;        /* inside process_input: do not re-enter */
  unsigned handles_closing : 1;   /* uv_close was called */
  unsigned reading : 1;           /* uv_read_start is in effect */
  unsigned close_after_flush : 1; /* shutdown once the write queue drains */
  unsigned batched : 1;          /* counted by the thread's flusher: may cork */
  unsigned ws_shared : 1;        /* ws is a shared copy (conn_ws.c) */
  unsigned msg_compressed : 1;   /* it came with RSV1: inflate its pieces */
  unsigned msg_delivered : 1;    /* a piece of it went to the owner */
  unsigned msg_done : 1;         /* its last piece went to the owner */
  unsigned ping_outstanding : 1; /* a keepalive ping was sent, no answer */
  unsigned above_low_water : 1;  /* the send queue passed ws->low_water:
                                    on_drain when it falls back */
  unsigned close_sent : 1, close_received : 1;
  unsigned compress : 1; /* permessage-deflate negotiated */
  /* Our deflater is the thread's, found by its settings (compress.c). */
  unsigned deflater_shared : 1;
  /* The peer keeps no context: we inflate with the thread's inflater, or
   * our own only while a message spans reads (compress.c). */
  unsigned inflate_no_context : 1;
  int refs;            /* tcp, pending requests: free at 0 */
  unsigned flush_slot; /* 1 + its index on the flush list; 0: not listed */

  wsl_conn_rare_t *rare;   /* NULL until one of its fields is needed */
  wsl_conn_extra_t *extra; /* likewise */
  /* Output batching (conn.c, cork.c, flush.c): small writes wait in the
   * cork (plaintext on TLS, encrypted once when it leaves) and leave in
   * one system call per loop turn, from the thread's flush list. */
  wsl_cork_t cork;

  /* HTTP: the parser exists while the connection speaks HTTP (or, client
   * role, waits for the handshake response), NULL once upgraded. */
  wsl_http_parser_t *http;

  /* WebSocket. The options are read only: until the upgrade the defaults
   * (client role: the dial state's), from then on a copy shared by every
   * connection of the thread opened with the same ones (conn_ws.c), kept
   * for the connection's life (a reload does not change them). */
  const wsl_ws_options_t *ws;
  wsl_frame_parser_t frames;
  uint64_t last_read_ms;   /* uv_now when the peer last sent something */
  wsl_conn_counts_t stats; /* bytes and messages each way */
  const char *error;       /* what went wrong, for on_close */
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
/* conn_parts.c: c's rare and extra parts, made now if it has none; NULL
 * when out of memory. */
wsl_conn_rare_t *wsl__conn_rare(wsl_conn_t *c);
wsl_conn_extra_t *wsl__conn_extra(wsl_conn_t *c);
/* Frees c's extra part if none of its fields is in use. */
void wsl__conn_extra_trim(wsl_conn_t *c);
/* Frees both parts and what they hold but the dial state and the
 * compressors (wsl__dial_free, wsl__compress_free go first). */
void wsl__conn_parts_free(wsl_conn_t *c);
/* The dial state of a client-role connection, or NULL. */
wsl_dial_state_t *wsl__conn_dial(const wsl_conn_t *c);
void wsl__conn_start_reading(wsl_conn_t *c);
void wsl__conn_arm_timer(wsl_conn_t *c, uint64_t ms);
int wsl__conn_write_frame(wsl_conn_t *c, int opcode, int rsv, const void *data,
                          size_t len);
void wsl__conn_fail(wsl_conn_t *c, int code, const char *why);
/* Records the peer's address (after accept or connect). */
void wsl__conn_fill_remote_addr(wsl_conn_t *c);
/* A message made at run time for c->error: formatted into storage that
 * lives as long as the connection, or a fixed text when memory is short. */
const char *wsl__conn_error_text(wsl_conn_t *c, const char *fallback,
                                 const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The HTTP parser of a connection that starts speaking HTTP (0, or
 * UV_ENOMEM), and its end (upgrade, handshake done, connection freed). */
int wsl__conn_http_open(wsl_conn_t *c, wsl_http_mode_t mode,
                        const wsl_http_limits_t *limits);
void wsl__conn_http_close(wsl_conn_t *c);
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
/* Makes sure the flusher runs this turn (turn.c has messages waiting). */
void wsl__flush_wake(wsl_conn_t *c);

/* turn.c: the small whole messages of a loop turn, run after its reads. A
 * message up to this size is copied there; a larger one is not. */
#define WSL_TURN_MESSAGE_MAX 1024
/* 1 when the message (copied) joined the turn; 0 when it cannot (too
 * large, a turn being run, no on_messages). */
int wsl__turn_add(const wsl_message_t *m);
/* Hands what waits to the owners (nothing while a run is going on). */
void wsl__turn_run(void);
/* Drops c's messages (c is closing; a run skips them anyway). */
void wsl__turn_forget(wsl_conn_t *c);

/* Closes once what waits is written, the peer having finished (its close
 * frame came): the FIN may go with the last bytes. */
void wsl__conn_end(wsl_conn_t *c);

/* conn_ws.c: feed WebSocket bytes; returns once they are used up or the
 * connection stops reading. */
void wsl__ws_input(wsl_conn_t *c, uint8_t *data, size_t len);
void wsl__ws_open(wsl_conn_t *c, const wsl_ws_options_t *options);
/* The options of a connection that has not opened a session yet. */
const wsl_ws_options_t *wsl__ws_options_default(void);
/* Drops the connection's hold on its shared options. */
void wsl__ws_options_release(wsl_conn_t *c);
void wsl__ws_on_timer(wsl_conn_t *c);
/* Arms the timer for the next keepalive event (idle ping or close, or the
 * ping_interval ping). */
void wsl__ws_arm_keepalive(wsl_conn_t *c);
/* Hands a piece of the message in progress to the owner. */
void wsl__ws_deliver(wsl_conn_t *c, const uint8_t *data, size_t len, int last);
/* A whole message of c (opcode c->msg_opcode, checked, data valid during
 * the call only) for the owner: to the loop turn's when small, else now,
 * after what came before it. Ends the message. */
void wsl__ws_whole(wsl_conn_t *c, const uint8_t *data, size_t len);
/* The message in progress is over: the next frame starts another. */
void wsl__ws_end_message(wsl_conn_t *c);

/* compress.c: permessage-deflate on a connection. */
int wsl__compress_open(wsl_conn_t *c, const wsl_ws_options_t *o);
void wsl__compress_free(wsl_conn_t *c);
/* Inflates a piece of a compressed message (fin: its last) and delivers
 * the result; returns -1 when the connection failed (1009, 1007). */
/* The payload of a compressed message's only frame, all of it: inflated
 * and handed over whole when it fits a buffer, else in pieces; the message
 * ends here. Returns 0, or -1 when the connection failed. */
int wsl__compress_whole(wsl_conn_t *c, const uint8_t *data, size_t len);
int wsl__compress_inflate(wsl_conn_t *c, const uint8_t *data, size_t len,
                          int fin);
/* Gives the frame parser's limits (the connection's options') the room
 * that compressed bytes may need over the inflated ones. */
void wsl__compress_frame_limits(wsl_frame_limits_t *l);
/* 1 with the compressed payload appended to out, 0 when the message goes
 * as it is (no compression, or under the threshold), -1 out of memory. */
int wsl__compress_message(wsl_conn_t *c, const void *data, size_t len,
                          wsl_buf_t *out);
/* Settings under which a compressed frame can be shared: 0 when this
 * connection's compressor keeps context (it compresses for itself). */
int wsl__compress_share_key(const wsl_conn_t *c);

/* connect.c: the response to our handshake request. */
size_t wsl__dial_input(wsl_conn_t *c, char *data, size_t len);
void wsl__dial_free(wsl_conn_t *c);

#endif
