/* loadgen_conn: one client connection of bench/loadgen, from connect
 * through TLS and the upgrade to close: its output queue, the transport
 * (plain or TLS) and what to do when epoll says it is ready. */
#ifndef LOADGEN_CONN_H
#define LOADGEN_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

struct ssl_st;

/* A connection's life: connect, TLS handshake (--tls), upgrade (not with
 * --raw), open, closing (handshake mode, our close frame sent), dead. Dead
 * connections hold no socket and may be started again. */
enum {
  LG_ST_CONNECTING,
  LG_ST_TLS,
  LG_ST_UPGRADING,
  LG_ST_OPEN,
  LG_ST_CLOSING,
  LG_ST_DEAD
};

typedef struct {
  int fd;
  int idx;
  int state;
  /* --tls: the session, and whether a read must wait for writability (a
   * TLS read may have to send, e.g. a key update's answer). */
  struct ssl_st *ssl;
  int read_wants_write;
  /* Output waiting for the socket. */
  unsigned char *out;
  size_t out_len, out_cap, out_off;
  int want_out;
  /* Handshake response, and the Sec-WebSocket-Accept it must carry. */
  char hbuf[2048];
  char accept[29];
  size_t hlen;
  /* Frame parser. */
  unsigned char fh[14];
  int fh_len;
  int fh_need;
  uint64_t f_left;
  unsigned char f_mask[4];
  int f_masked;
  int f_op;
  int f_fin;
  int f_rsv1;
  uint64_t f_pos; /* position in the frame payload, for unmasking */
  int msg_op;     /* opcode of the data message being read, 0 if none */
  int msg_rsv1;
  uint64_t msg_pos; /* bytes of the (uncompressed) message checked so far */
  /* Control frame or compressed message collected whole. */
  unsigned char *cbuf;
  size_t clen, ccap;
  /* Messages sent and not yet echoed: send times and variants. */
  uint64_t *sent_ns;
  uint16_t *sent_var;
  int head, count;
  uint64_t next_var;
  /* Deflate negotiated: inflate stream and server context takeover. */
  int pmd;
  int server_reset;
  z_stream *inf;
  uint64_t t_start; /* handshake mode: session start */
  int echoed;       /* handshake mode: the one echo came back */
  int got_close;    /* handshake mode: the server's close frame came */
  int peer_fin;     /* epoll said the server's FIN is here (EPOLLRDHUP) */
  uint64_t t_close;
  uint64_t received; /* fanout mode: messages this subscriber received */
} lg_conn_t;

/* Makes room for `more` bytes at c->out + c->out_len; dies when out of
 * memory. */
void lg_out_reserve(lg_conn_t *c, size_t more);

/* Queues n bytes; lg_flush_out sends them. */
void lg_out_append(lg_conn_t *c, const void *p, size_t n);

/* Writes what is queued; returns -1 if the connection died. */
int lg_flush_out(lg_conn_t *c);

/* Closes the socket and resets c to dead, counting an error if is_error
 * (unless the run is stopping). Safe to call twice. */
void lg_conn_kill(lg_conn_t *c, int is_error);

/* Opens a fresh non-blocking connection to lg_opt.addr on c (dead, or
 * never used); a failure marks c dead and counts an error. */
void lg_conn_start(lg_conn_t *c);

/* epoll reported c readable (or hung up), or writable. Either may kill c:
 * callers check c->state before the other. */
void lg_on_readable(lg_conn_t *c);
void lg_on_writable(lg_conn_t *c);

#endif
