/* loadgen: a WebSocket echo load generator (epoll, one thread, no libuv). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "loadgen_tls.h"

/*
 * Modes:
 *   echo       each connection keeps `inflight` messages outstanding: every
 *              echo that comes back is answered by a new message;
 *   idle       connections are opened and upgraded, then only held (pings
 *              answered) so the server's memory can be read;
 *   handshake  `conns` loops of connect, upgrade, one echo, close;
 *   fanout     `conns` subscribers that only receive (each message checked
 *              and counted) and one publisher on `pubpath` sending the same
 *              payload; message k+1 leaves only when every subscriber has
 *              received message k+1-window, so nothing piles up unbounded.
 *              At the end the publisher stops and the subscribers receive
 *              the rest (until 5 s pass without one, 60 s at most):
 *              lost = sent x conns - received.
 * --raw drops the HTTP upgrade, for a plain TCP echo: the same masked frames
 * are sent, come back byte for byte and are read as masked frames, so the
 * client does the same work per message as against a WebSocket server (in
 * handshake mode: connect, one echo, our own close frame back, close).
 * --tls puts TLS under either (bench/loadgen_tls.c): each connection makes a
 * full handshake after connect, and every read and write goes through it.
 * One line of key=value results goes to stdout at the end.
 */

enum { MODE_ECHO, MODE_IDLE, MODE_HANDSHAKE, MODE_FANOUT };
enum { ST_CONNECTING, ST_TLS, ST_UPGRADING, ST_OPEN, ST_CLOSING, ST_DEAD };

#define RBUF_SIZE (256 * 1024)
#define MAX_INFLIGHT 1024
#define NVARIANTS 256
#define MAX_PENDING_CONNECTS 256

typedef struct {
  const char *host;
  int port;
  const char *path;
  int conns;
  size_t size;
  int binary;
  int inflight;
  double duration;
  double warmup;
  int deflate;
  int mode;
  int raw;
  int sources;
  int cpu;
  int json;
  const char *pubpath;
  int window;
  int tls;
} options_t;

typedef struct {
  int fd;
  int idx;
  int state;
  int src;
  /* --tls: the session, and whether a read must wait for writability (a
   * TLS read may have to send, e.g. a key update's answer). */
  struct ssl_st *ssl;
  int read_wants_write;
  /* Output waiting for the socket. */
  unsigned char *out;
  size_t out_len, out_cap, out_off;
  int want_out;
  /* Handshake response. */
  char hbuf[2048];
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
  uint64_t t_close;
  uint64_t received; /* fanout mode: messages this subscriber received */
} conn_t;

typedef struct {
  uint64_t buckets[64 + 36 * 32];
  uint64_t n;
} hist_t;

static options_t opt = {.host = "127.0.0.1",
                        .port = 9001,
                        .path = "/",
                        .conns = 100,
                        .size = 32,
                        .inflight = 1,
                        .duration = 5.0,
                        .warmup = 1.0,
                        .mode = MODE_ECHO,
                        .sources = 1,
                        .cpu = -1,
                        .pubpath = "/pub",
                        .window = 16};
static conn_t *conns;
static int epfd;
static unsigned char rbuf[RBUF_SIZE];
static unsigned char *inflate_buf;
static size_t inflate_cap;
/* Payload variants (plain) and, with deflate, their compressed forms. */
static unsigned char *plain[NVARIANTS];
static size_t plain_len[NVARIANTS];
static unsigned char *zipped[NVARIANTS];
static size_t zipped_len[NVARIANTS];
static int nvariants = 1;
static uint64_t rng_state[2];
static int measuring;
static uint64_t msgs, bytes_in, errors, sessions, zmsgs;
static hist_t hist;
static int open_conns, pending_connects;
static volatile sig_atomic_t stop_flag;
static struct sockaddr_in dst;
/* Fanout mode: the publisher, messages sent, deliveries per message still
 * missing (a ring of `window` counters), messages received by everyone. */
static conn_t *publisher;
static uint64_t fo_sent, fo_done, fo_received;
static int *fo_missing;
static int fo_sending = 1;
/* --tls: the protocol and cipher the first handshake chose. */
static char tls_chosen[96];

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xoroshiro128+ seeded from getrandom: masking keys must be unpredictable to
 * the server (RFC 6455 §5.3); this is a load generator, not a browser, so a
 * fast generator with a random seed is enough. */
static uint64_t rng_next(void) {
  uint64_t s0 = rng_state[0], s1 = rng_state[1], r = s0 + s1;
  s1 ^= s0;
  rng_state[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
  rng_state[1] = (s1 << 37) | (s1 >> 27);
  return r;
}

static void hist_add(hist_t *h, uint64_t v) {
  size_t i;
  if (v < 64) {
    i = v;
  } else {
    int e = 63 - __builtin_clzll(v);
    if (e > 41)
      e = 41, v = (1ull << 42) - 1;
    i = 64 + (size_t)(e - 6) * 32 + ((v >> (e - 5)) & 31);
  }
  h->buckets[i]++;
  h->n++;
}

/* The value at quantile q, as the middle of its bucket. */
static double hist_quantile(const hist_t *h, double q) {
  uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
  for (size_t i = 0; i < sizeof h->buckets / sizeof h->buckets[0]; i++) {
    seen += h->buckets[i];
    if (h->n && seen > want) {
      if (i < 64)
        return (double)i;
      int e = (int)((i - 64) / 32) + 6;
      uint64_t m = (i - 64) % 32;
      double lo = (double)((32 + m) << (e - 5));
      return lo + (double)(1ull << (e - 5)) / 2;
    }
  }
  return 0;
}

static void die(const char *msg) {
  fprintf(stderr, "loadgen: %s\n", msg);
  exit(2);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p)
    die("out of memory");
  return p;
}

static void out_reserve(conn_t *c, size_t more) {
  if (c->out_len + more <= c->out_cap)
    return;
  if (c->out_off > 0) {
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
    if (c->out_len + more <= c->out_cap)
      return;
  }
  size_t cap = c->out_cap ? c->out_cap : 4096;
  while (cap < c->out_len + more)
    cap *= 2;
  c->out = realloc(c->out, cap);
  if (!c->out)
    die("out of memory");
  c->out_cap = cap;
}

static void out_append(conn_t *c, const void *p, size_t n) {
  out_reserve(c, n);
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
}

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
static void put_frame(conn_t *c, int op, int rsv1, const unsigned char *p,
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
  uint32_t key = (uint32_t)rng_next();
  memcpy(h + hl, &key, 4);
  out_reserve(c, hl + 4 + n);
  memcpy(c->out + c->out_len, h, hl + 4);
  mask_copy(c->out + c->out_len + hl + 4, p, n, h + hl, 0);
  c->out_len += hl + 4 + n;
}

static void send_message(conn_t *c, uint64_t t) {
  int v = (int)(c->next_var++ % (uint64_t)nvariants);
  int op = opt.binary ? 2 : 1;
  if (c->pmd)
    put_frame(c, op, 1, zipped[v], zipped_len[v]);
  else
    put_frame(c, op, 0, plain[v], plain_len[v]);
  int slot = (c->head + c->count) % opt.inflight;
  c->sent_ns[slot] = t;
  c->sent_var[slot] = (uint16_t)v;
  c->count++;
}

static void set_events(conn_t *c, int want_out) {
  want_out |= c->read_wants_write;
  struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                           .data.ptr = c};
  if (want_out == c->want_out)
    return;
  c->want_out = want_out;
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
    die("epoll_ctl");
}

static void conn_kill(conn_t *c, int is_error);

/* The transport, plain or TLS: a count of bytes (0: end of stream, reads
 * only), or a negative LGTLS_ code, which the plain one uses too. */
static ssize_t conn_read(conn_t *c, unsigned char *p, size_t n) {
  if (c->ssl)
    return lgtls_read(c->ssl, p, n);
  for (;;) {
    ssize_t r = read(c->fd, p, n);
    if (r >= 0)
      return r;
    if (errno != EINTR)
      return errno == EAGAIN ? LGTLS_WANT_READ : LGTLS_ERROR;
  }
}

static ssize_t conn_write(conn_t *c, const unsigned char *p, size_t n) {
  if (c->ssl)
    return lgtls_write(c->ssl, p, n);
  for (;;) {
    ssize_t r = write(c->fd, p, n);
    if (r >= 0)
      return r;
    if (errno != EINTR)
      return errno == EAGAIN ? LGTLS_WANT_WRITE : LGTLS_ERROR;
  }
}

/* Writes what is queued; returns -1 if the connection died. */
static int flush_out(conn_t *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = conn_write(c, c->out + c->out_off, c->out_len - c->out_off);
    if (n == LGTLS_WANT_READ || n == LGTLS_WANT_WRITE) {
      /* A TLS write may wait for a read; on_readable flushes again. */
      set_events(c, n == LGTLS_WANT_WRITE);
      return 0;
    }
    if (n < 0) {
      conn_kill(c, 1);
      return -1;
    }
    c->out_off += (size_t)n;
  }
  c->out_off = c->out_len = 0;
  set_events(c, 0);
  return 0;
}

static void conn_free_state(conn_t *c) {
  if (c->inf) {
    inflateEnd(c->inf);
    free(c->inf);
    c->inf = NULL;
  }
  c->pmd = 0;
  c->hlen = 0;
  c->fh_len = 0;
  c->fh_need = 2;
  c->f_left = 0;
  c->msg_op = 0;
  c->clen = 0;
  c->head = c->count = 0;
  c->out_off = c->out_len = 0;
  c->want_out = -1;
  c->echoed = 0;
  c->got_close = 0;
  c->read_wants_write = 0;
}

static void conn_kill(conn_t *c, int is_error) {
  if (c->state == ST_DEAD)
    return;
  if (is_error && !stop_flag)
    errors++;
  if (c->state == ST_CONNECTING || c->state == ST_TLS ||
      c->state == ST_UPGRADING)
    pending_connects--;
  if (c->state == ST_OPEN || c->state == ST_CLOSING)
    open_conns--;
  if (c->ssl) {
    lgtls_free(c->ssl);
    c->ssl = NULL;
  }
  close(c->fd);
  c->fd = -1;
  c->state = ST_DEAD;
  conn_free_state(c);
}

static void conn_open(conn_t *c) {
  c->state = ST_OPEN;
  open_conns++;
  pending_connects--;
  if (opt.mode == MODE_IDLE || opt.mode == MODE_FANOUT)
    return;
  uint64_t t = now_ns();
  int n = opt.mode == MODE_HANDSHAKE ? 1 : opt.inflight;
  for (int i = 0; i < n; i++)
    send_message(c, t);
  flush_out(c);
}

static void send_upgrade(conn_t *c) {
  unsigned char key[16];
  static const char b64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char k64[25];
  uint64_t r0 = rng_next(), r1 = rng_next();
  memcpy(key, &r0, 8);
  memcpy(key + 8, &r1, 8);
  int j = 0;
  for (int i = 0; i < 15; i += 3) {
    uint32_t v =
        (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8 | key[i + 2];
    k64[j++] = b64[v >> 18];
    k64[j++] = b64[(v >> 12) & 63];
    k64[j++] = b64[(v >> 6) & 63];
    k64[j++] = b64[v & 63];
  }
  uint32_t v = (uint32_t)key[15] << 16;
  k64[j++] = b64[v >> 18];
  k64[j++] = b64[(v >> 12) & 63];
  k64[j++] = '=';
  k64[j++] = '=';
  k64[j] = 0;
  char req[512];
  int n =
      snprintf(req, sizeof req,
               "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n%s\r\n",
               c == publisher ? opt.pubpath : opt.path, opt.host, opt.port, k64,
               opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                             "client_max_window_bits\r\n"
                           : "");
  out_append(c, req, (size_t)n);
  c->state = ST_UPGRADING;
  flush_out(c);
}

static void conn_start(conn_t *c) {
  conn_free_state(c);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    errors++;
    c->state = ST_DEAD;
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (opt.sources > 1) {
    /* Each source address has its own ephemeral port range: past ~28,000
     * connections to one server, spread them over 127.0.0.1..N. */
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)c->src);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
      close(fd);
      errors++;
      c->state = ST_DEAD;
      return;
    }
  }
  c->fd = fd;
  c->state = ST_CONNECTING;
  c->want_out = 1;
  c->t_start = now_ns();
  pending_connects++;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    die("epoll_ctl add");
  if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 &&
      errno != EINPROGRESS)
    conn_kill(c, 1);
}

/* Parses the 101 response: status and the extension the server chose. */
static int parse_upgrade(conn_t *c, size_t hdr_end) {
  c->hbuf[hdr_end] = 0;
  if (strncmp(c->hbuf, "HTTP/1.1 101", 12) != 0)
    return -1;
  char *p = c->hbuf;
  while ((p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, "sec-websocket-extensions:", 25) == 0) {
      char *e = strchr(p, '\r');
      if (e)
        *e = 0;
      if (strstr(p, "permessage-deflate")) {
        c->pmd = 1;
        c->server_reset = strstr(p, "server_no_context_takeover") != NULL;
      }
      if (e)
        *e = '\r';
    }
  }
  if (opt.deflate && !c->pmd)
    return -1;
  if (c->pmd) {
    c->inf = xmalloc(sizeof *c->inf);
    memset(c->inf, 0, sizeof *c->inf);
    if (inflateInit2(c->inf, -15) != Z_OK)
      die("inflateInit2");
  }
  return 0;
}

static void cbuf_append(conn_t *c, const unsigned char *p, size_t n) {
  if (c->clen + n > c->ccap) {
    size_t cap = c->ccap ? c->ccap : 1024;
    while (cap < c->clen + n)
      cap *= 2;
    c->cbuf = realloc(c->cbuf, cap);
    if (!c->cbuf)
      die("out of memory");
    c->ccap = cap;
  }
  memcpy(c->cbuf + c->clen, p, n);
  c->clen += n;
}

/* Checks a piece of the echoed message against what was sent. */
static int check_piece(conn_t *c, const unsigned char *p, size_t n) {
  int v = c->sent_var[c->head];
  if (c->msg_pos + n > plain_len[v] || memcmp(plain[v] + c->msg_pos, p, n) != 0)
    return -1;
  c->msg_pos += n;
  return 0;
}

static int inflate_message(conn_t *c) {
  static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
  cbuf_append(c, tail, 4);
  z_stream *z = c->inf;
  z->next_in = c->cbuf;
  z->avail_in = (uInt)c->clen;
  size_t got = 0;
  for (;;) {
    if (got == inflate_cap) {
      inflate_cap = inflate_cap ? inflate_cap * 2 : 65536;
      inflate_buf = realloc(inflate_buf, inflate_cap);
      if (!inflate_buf)
        die("out of memory");
    }
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

/* Fanout mode: subscriber c received its next message, which is message
 * number c->received (messages arrive in order on one connection). */
static void on_delivery(conn_t *c) {
  if (c == publisher || c->received >= fo_sent) {
    conn_kill(c, 1); /* the publisher got one, or more came than were sent */
    return;
  }
  int *missing = &fo_missing[c->received % (uint64_t)opt.window];
  c->received++;
  fo_received++;
  if (measuring) {
    msgs++;
    bytes_in += plain_len[0];
  }
  if (--*missing == 0) {
    /* In order too: message k is complete only after k-1 was. */
    while (fo_done < fo_sent && fo_missing[fo_done % (uint64_t)opt.window] == 0)
      fo_done++;
  }
}

/* A whole data message came back. */
static void on_message(conn_t *c, uint64_t t) {
  int v = c->sent_var[c->head];
  if (c->msg_pos != plain_len[v]) {
    conn_kill(c, 1);
    return;
  }
  if (opt.mode == MODE_FANOUT) {
    on_delivery(c);
    return;
  }
  uint64_t sent = c->sent_ns[c->head];
  c->head = (c->head + 1) % opt.inflight;
  c->count--;
  if (measuring) {
    if (opt.mode != MODE_HANDSHAKE)
      hist_add(&hist, t - sent);
    msgs++;
    bytes_in += plain_len[v];
  }
  if (opt.mode == MODE_HANDSHAKE) {
    /* The session's one echo: close as a client does (status 1000). */
    static const unsigned char code[2] = {0x03, 0xe8};
    c->echoed = 1;
    put_frame(c, 8, 0, code, 2);
    c->state = ST_CLOSING;
  } else {
    send_message(c, t);
  }
}

static void session_done(conn_t *c, uint64_t t) {
  if (measuring) {
    sessions++;
    hist_add(&hist, t - c->t_start);
  }
  conn_kill(c, 0);
}

static void on_control(conn_t *c, uint64_t t) {
  if (c->f_op == 9) {
    put_frame(c, 10, 0, c->cbuf, c->clen);
  } else if (c->f_op == 8) {
    if (opt.mode == MODE_HANDSHAKE && c->echoed) {
      /* The server closes TCP first (RFC 6455 §7.1.1), so TIME_WAIT stays
       * on its side and does not use up our ports; raw: nobody will. */
      c->got_close = 1;
      c->t_close = t;
      if (opt.raw)
        session_done(c, t);
      c->clen = 0;
      return;
    }
    conn_kill(c, 1);
    return;
  }
  c->clen = 0;
}

/* Feeds bytes received on an open connection to the frame parser. */
static int on_frames(conn_t *c, const unsigned char *p, size_t n, uint64_t t) {
  while (n > 0 && c->state >= ST_OPEN && c->state != ST_DEAD) {
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
        if (c->f_masked && !opt.raw)
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
            (c->count == 0 && opt.mode != MODE_FANOUT))
          return -1;
        /* With deflate, a server may still send a message uncompressed
         * (ws does below its threshold); without, RSV1 is an error. */
        if (c->f_op != (opt.binary ? 2 : 1) || (c->f_rsv1 && !c->pmd))
          return -1;
        if (c->f_rsv1 && measuring)
          zmsgs++;
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

static void tls_step(conn_t *c);

static void on_readable(conn_t *c) {
  if (c->state == ST_TLS) {
    tls_step(c);
    return;
  }
  if (c->read_wants_write) {
    c->read_wants_write = 0;
    set_events(c, c->out_len > c->out_off);
  }
  for (int rounds = 0; rounds < 8 && c->state != ST_DEAD; rounds++) {
    ssize_t n = conn_read(c, rbuf, sizeof rbuf);
    if (n == LGTLS_WANT_WRITE) {
      c->read_wants_write = 1;
      set_events(c, 1);
      break;
    }
    if (n == LGTLS_WANT_READ)
      break;
    if (n == 0 || n == LGTLS_EOF) {
      if (c->got_close)
        session_done(c, now_ns());
      else
        conn_kill(c, 1);
      return;
    }
    if (n < 0) {
      conn_kill(c, 1);
      break;
    }
    uint64_t t = now_ns();
    const unsigned char *p = rbuf;
    size_t len = (size_t)n;
    if (c->state == ST_UPGRADING) {
      size_t room = sizeof c->hbuf - 1 - c->hlen;
      size_t k = len < room ? len : room;
      memcpy(c->hbuf + c->hlen, p, k);
      c->hlen += k;
      c->hbuf[c->hlen] = 0;
      char *end = strstr(c->hbuf, "\r\n\r\n");
      if (!end) {
        if (c->hlen == sizeof c->hbuf - 1)
          conn_kill(c, 1);
        continue;
      }
      size_t hdr_end = (size_t)(end - c->hbuf) + 4;
      size_t used = hdr_end - (c->hlen - k);
      if (parse_upgrade(c, hdr_end) < 0) {
        conn_kill(c, 1);
        return;
      }
      conn_open(c);
      p += used;
      len -= used;
    }
    if (c->state >= ST_OPEN && c->state != ST_DEAD &&
        on_frames(c, p, len, t) < 0) {
      conn_kill(c, 1);
      return;
    }
    if ((size_t)n < sizeof rbuf && !(c->ssl && lgtls_ended(c->ssl)))
      break;
  }
  if (c->state != ST_DEAD && c->out_len > c->out_off)
    flush_out(c);
}

/* The byte stream is ready: TCP connected, with --tls the handshake done. */
static void on_transport_ready(conn_t *c) {
  if (opt.raw)
    conn_open(c);
  else
    send_upgrade(c);
}

/* --tls: one step of the handshake, whichever way the socket became ready. */
static void tls_step(conn_t *c) {
  int r = lgtls_handshake(c->ssl);
  if (r == LGTLS_WANT_READ || r == LGTLS_WANT_WRITE) {
    set_events(c, r == LGTLS_WANT_WRITE);
    return;
  }
  if (r < 0) {
    conn_kill(c, 1);
    return;
  }
  if (!tls_chosen[0])
    snprintf(tls_chosen, sizeof tls_chosen, "%s", lgtls_describe(c->ssl));
  on_transport_ready(c);
}

static void on_writable(conn_t *c) {
  if (c->state == ST_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      conn_kill(c, 1);
      return;
    }
    if (!opt.tls) {
      on_transport_ready(c);
      return;
    }
    c->ssl = lgtls_new(c->fd);
    if (!c->ssl) {
      conn_kill(c, 1);
      return;
    }
    c->state = ST_TLS;
    tls_step(c);
    return;
  }
  if (c->state == ST_TLS) {
    tls_step(c);
    return;
  }
  if (c->read_wants_write) {
    on_readable(c);
    if (c->state == ST_DEAD)
      return;
  }
  flush_out(c);
}

/* Server core busy time in ticks from /proc/stat, for one cpu. */
static uint64_t cpu_busy_ticks(int cpu, uint64_t *total) {
  FILE *f = fopen("/proc/stat", "r");
  char line[512], name[16];
  uint64_t busy = 0;
  *total = 0;
  if (!f)
    return 0;
  if (cpu == -2)
    snprintf(name, sizeof name, "cpu  ");
  else
    snprintf(name, sizeof name, "cpu%d ", cpu);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, name, strlen(name)) == 0) {
      unsigned long long v[10] = {0};
      sscanf(line + strlen(name), "%llu %llu %llu %llu %llu %llu %llu %llu",
             &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
      busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
      *total = busy + v[3] + v[4];
      break;
    }
  }
  fclose(f);
  return busy;
}

static const char *words[] = {
    "hello", "there",  "the",    "meeting", "is",    "at",      "noon",
    "see",   "you",    "later",  "thanks",  "for",   "sharing", "this",
    "link",  "we",     "should", "ship",    "today", "sounds",  "good",
    "lunch", "deploy", "review", "merged",  "ok",    "lol",     "great"};

/* A JSON chat message of about `size` bytes, made of words. */
static size_t make_json(unsigned char *p, size_t size, int variant) {
  char text[65536];
  size_t tl = 0, want = size > 96 ? size - 96 : 8;
  if (want >= sizeof text)
    want = sizeof text - 16;
  while (tl < want) {
    const char *w = words[rng_next() % (sizeof words / sizeof words[0])];
    tl += (size_t)snprintf(text + tl, sizeof text - tl, "%s ", w);
  }
  text[want] = 0;
  int n = snprintf((char *)p, size + 256,
                   "{\"type\":\"message\",\"room\":\"general\",\"user\":"
                   "\"user%03d\",\"id\":%d,\"ts\":1700000%03d,\"text\":\"%s\"}",
                   variant % 997, variant, variant, text);
  return (size_t)n;
}

static void make_payloads(void) {
  nvariants = opt.deflate || opt.json ? NVARIANTS : 1;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (opt.deflate && deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
                                  Z_DEFAULT_STRATEGY) != Z_OK)
    die("deflateInit2");
  for (int v = 0; v < nvariants; v++) {
    plain[v] = xmalloc(opt.size + 256);
    if (opt.json) {
      plain_len[v] = make_json(plain[v], opt.size, v);
    } else {
      for (size_t i = 0; i < opt.size; i++)
        plain[v][i] = opt.binary ? (unsigned char)rng_next()
                                 : (unsigned char)('a' + i % 26);
      plain_len[v] = opt.size;
    }
    if (opt.deflate) {
      /* Each message compressed on its own (client_no_context_takeover is
       * always allowed to a sender), the 00 00 ff ff tail removed (RFC 7692
       * §7.2.1). */
      size_t cap = deflateBound(&z, plain_len[v]) + 16;
      zipped[v] = xmalloc(cap);
      deflateReset(&z);
      z.next_in = plain[v];
      z.avail_in = (uInt)plain_len[v];
      z.next_out = zipped[v];
      z.avail_out = (uInt)cap;
      if (deflate(&z, Z_SYNC_FLUSH) != Z_OK)
        die("deflate");
      zipped_len[v] = cap - z.avail_out - 4;
    }
  }
  if (opt.deflate)
    deflateEnd(&z);
}

/* Fanout mode: the publisher sends while fewer than `window` messages are
 * still on their way to some subscriber. */
static void fanout_pump(void) {
  if (!fo_sending || publisher->state != ST_OPEN)
    return;
  int op = opt.binary ? 2 : 1;
  int queued = 0;
  while (fo_sent - fo_done < (uint64_t)opt.window) {
    fo_missing[fo_sent % (uint64_t)opt.window] = opt.conns;
    put_frame(publisher, op, 0, plain[0], plain_len[0]);
    fo_sent++;
    queued = 1;
  }
  if (queued)
    flush_out(publisher);
}

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen [options]\n"
          "  --host H --port P --path /p   server (loopback only)\n"
          "  -c N        connections (handshake mode: concurrent loops)\n"
          "  -s BYTES    payload size (default 32)\n"
          "  -b          binary messages (default text)\n"
          "  -f K        messages in flight per connection (default 1)\n"
          "  -d SECONDS  measured duration (default 5)\n"
          "  -w SECONDS  warm-up before measuring (default 1)\n"
          "  --deflate   offer permessage-deflate, send compressed messages\n"
          "  --json      payloads are JSON chat messages of about -s bytes\n"
          "  --idle      only hold the connections (prints 'ready' when up)\n"
          "  --handshake connect, upgrade, one echo, close, repeat\n"
          "  --fanout    -c subscribers on --path, one publisher on --pubpath\n"
          "  --pubpath /p  the publisher's path (default /pub)\n"
          "  --window W  fanout: messages not yet received by all (16)\n"
          "  --raw       no upgrade: frames to a plain TCP echo\n"
          "  --tls       TLS over every connection (nothing verified)\n"
          "  --sources K spread connections over 127.0.0.1..K\n"
          "  --cpu N     report /proc/stat busy time of cpu N (-1: all)\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  static const struct option lo[] = {
      {"host", 1, 0, 'H'},    {"port", 1, 0, 'p'},
      {"path", 1, 0, 'P'},    {"deflate", 0, 0, 'z'},
      {"idle", 0, 0, 'i'},    {"handshake", 0, 0, 'k'},
      {"raw", 0, 0, 'r'},     {"sources", 1, 0, 'S'},
      {"cpu", 1, 0, 'C'},     {"json", 0, 0, 'j'},
      {"help", 0, 0, 'h'},    {"fanout", 0, 0, 'F'},
      {"pubpath", 1, 0, 'U'}, {"window", 1, 0, 'W'},
      {"tls", 0, 0, 'T'},     {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "c:s:bf:d:w:h", lo, NULL)) != -1) {
    switch (ch) {
    case 'H':
      opt.host = optarg;
      break;
    case 'p':
      opt.port = atoi(optarg);
      break;
    case 'P':
      opt.path = optarg;
      break;
    case 'c':
      opt.conns = atoi(optarg);
      break;
    case 's':
      opt.size = (size_t)strtoull(optarg, NULL, 10);
      break;
    case 'b':
      opt.binary = 1;
      break;
    case 'f':
      opt.inflight = atoi(optarg);
      break;
    case 'd':
      opt.duration = atof(optarg);
      break;
    case 'w':
      opt.warmup = atof(optarg);
      break;
    case 'z':
      opt.deflate = 1;
      break;
    case 'j':
      opt.json = 1;
      break;
    case 'i':
      opt.mode = MODE_IDLE;
      break;
    case 'k':
      opt.mode = MODE_HANDSHAKE;
      break;
    case 'r':
      opt.raw = 1;
      break;
    case 'S':
      opt.sources = atoi(optarg);
      break;
    case 'C':
      opt.cpu = strcmp(optarg, "-1") == 0 ? -2 : atoi(optarg);
      break;
    case 'F':
      opt.mode = MODE_FANOUT;
      break;
    case 'U':
      opt.pubpath = optarg;
      break;
    case 'W':
      opt.window = atoi(optarg);
      break;
    case 'T':
      opt.tls = 1;
      break;
    default:
      usage();
    }
  }
  if (opt.conns < 1 || opt.inflight < 1 || opt.inflight > MAX_INFLIGHT ||
      opt.duration <= 0 || opt.sources < 1 || opt.sources > 250 ||
      opt.size > (64u << 20) || opt.window < 1 || opt.window > 1 << 20 ||
      (opt.mode == MODE_FANOUT && (opt.deflate || opt.json || opt.raw)))
    usage();
  if (opt.mode == MODE_HANDSHAKE)
    opt.inflight = 1;
  if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1 ||
      (ntohl(dst.sin_addr.s_addr) >> 24) != 127)
    die("--host must be a 127.x.x.x address (loopback only)");
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)opt.port);
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  if (getrandom(rng_state, sizeof rng_state, 0) != sizeof rng_state)
    die("getrandom");
  rng_state[0] |= 1;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)opt.conns + 17 > rl.rlim_cur)
      die("more connections than open files allowed (ulimit -n)");
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  make_payloads();
  if (opt.tls && lgtls_init() < 0)
    die("TLS setup");
  epfd = epoll_create1(EPOLL_CLOEXEC);
  /* Fanout mode: one more connection, the publisher, opened last. */
  int nconns = opt.conns + (opt.mode == MODE_FANOUT);
  conns = calloc((size_t)nconns, sizeof *conns);
  if (!conns || epfd < 0)
    die("setup");
  if (opt.mode == MODE_FANOUT) {
    publisher = &conns[opt.conns];
    fo_missing = calloc((size_t)opt.window, sizeof *fo_missing);
    if (!fo_missing)
      die("setup");
  }
  for (int i = 0; i < nconns; i++) {
    conn_t *c = &conns[i];
    c->idx = i;
    c->fd = -1;
    c->state = ST_DEAD;
    c->src = i % opt.sources;
    c->sent_ns = xmalloc(sizeof(uint64_t) * (size_t)opt.inflight);
    c->sent_var = xmalloc(sizeof(uint16_t) * (size_t)opt.inflight);
    c->sent_var[0] = 0;
  }

  /* Phase 1: open every connection, a bounded number of connects at a time
   * so the server's accept backlog does not overflow. */
  uint64_t t0 = now_ns(), connect_deadline = t0 + 30000000000ull;
  int next = 0;
  struct epoll_event evs[512];
  int started = opt.mode == MODE_HANDSHAKE;
  uint64_t t_measure = 0, t_end = 0, busy0 = 0, total0 = 0;
  uint64_t t_ready = 0, t_stop = 0, busy1 = 0, total1 = 0;
  uint64_t all0 = 0, all1 = 0, dummy;   /* every core, load included */
  uint64_t t_progress = 0, fo_last = 0; /* fanout: the drain at the end */
  if (started) {
    for (; next < opt.conns; next++)
      conn_start(&conns[next]);
    t_measure = now_ns() + (uint64_t)(opt.warmup * 1e9);
    t_end = t_measure + (uint64_t)(opt.duration * 1e9);
  }
  while (!stop_flag) {
    while (!started && next < nconns && pending_connects < MAX_PENDING_CONNECTS)
      conn_start(&conns[next++]);
    int n = epoll_wait(epfd, evs, 512, 10);
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->state == ST_DEAD)
        continue;
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        on_readable(c);
      if (c->state != ST_DEAD && (evs[i].events & EPOLLOUT))
        on_writable(c);
    }
    uint64_t t = now_ns();
    /* Handshake mode: a finished (or failed) session starts the next. */
    for (int i = 0; opt.mode == MODE_HANDSHAKE && i < opt.conns; i++) {
      if (conns[i].state == ST_DEAD)
        conn_start(&conns[i]);
      else if (conns[i].got_close && t - conns[i].t_close > 2000000000ull)
        conn_kill(&conns[i], 1); /* the server never closed TCP */
    }
    if (!started) {
      if (next == nconns && pending_connects == 0) {
        started = 1;
        t_ready = t;
        if (opt.mode == MODE_IDLE) {
          printf("ready conns=%d errors=%" PRIu64 " secs=%.3f\n", open_conns,
                 errors, (double)(t - t0) / 1e9);
          fflush(stdout);
          t_measure = t;
        } else {
          t_measure = t + (uint64_t)(opt.warmup * 1e9);
        }
        t_end = t_measure + (uint64_t)(opt.duration * 1e9);
      } else if (t > connect_deadline) {
        fprintf(stderr, "loadgen: connections not up after 30 s\n");
        break;
      }
      continue;
    }
    if (opt.mode == MODE_FANOUT) {
      /* The server ran on_open (subscribe) before its 101, but give a
       * second worker time too: publishing starts 200 ms after all are up. */
      if (t - t_ready < 200000000ull)
        continue;
      if (fo_sending && measuring && t >= t_end) {
        /* Stop publishing, let the subscribers receive the rest. */
        fo_sending = 0;
        t_stop = t_progress = t;
        fo_last = fo_received;
        busy1 = opt.cpu != -1 ? cpu_busy_ticks(opt.cpu, &total1) : 0;
        all1 = cpu_busy_ticks(-2, &dummy);
        measuring = 0;
      }
      if (!fo_sending) {
        if (fo_received != fo_last) {
          fo_last = fo_received;
          t_progress = t;
        }
        if (fo_received == fo_sent * (uint64_t)opt.conns ||
            t - t_progress > 5000000000ull || t - t_stop > 60000000000ull ||
            open_conns < nconns)
          break;
        continue;
      }
      fanout_pump();
    }
    if (!measuring && t >= t_measure) {
      measuring = 1;
      if (opt.cpu != -1) {
        busy0 = cpu_busy_ticks(opt.cpu, &total0);
        all0 = cpu_busy_ticks(-2, &dummy);
      }
      t_measure = t;
    }
    if (measuring && t >= t_end)
      break;
  }
  if (opt.mode != MODE_FANOUT || fo_sending) {
    t_stop = now_ns();
    busy1 = opt.cpu != -1 ? cpu_busy_ticks(opt.cpu, &total1) : 0;
    all1 = cpu_busy_ticks(-2, &dummy);
  }
  stop_flag = 1;
  double secs =
      t_stop > t_measure && t_measure ? (double)(t_stop - t_measure) / 1e9 : 0;
  uint64_t count = opt.mode == MODE_HANDSHAKE ? sessions : msgs;
  printf("mode=%s%s%s conns=%d open=%d size=%zu inflight=%d secs=%.3f "
         "msgs=%" PRIu64 " msg_per_s=%.0f mb_per_s=%.2f p50_us=%.1f "
         "p99_us=%.1f p999_us=%.1f errors=%" PRIu64,
         opt.mode == MODE_ECHO     ? "echo"
         : opt.mode == MODE_IDLE   ? "idle"
         : opt.mode == MODE_FANOUT ? "fanout"
                                   : "handshake",
         opt.raw ? "-raw" : "", opt.tls ? "-tls" : "", opt.conns, open_conns,
         opt.size, opt.inflight, secs, count,
         secs > 0 ? (double)count / secs : 0,
         secs > 0 ? (double)bytes_in / secs / 1e6 : 0,
         hist_quantile(&hist, 0.5) / 1e3, hist_quantile(&hist, 0.99) / 1e3,
         hist_quantile(&hist, 0.999) / 1e3, errors);
  if (opt.cpu != -1 && total1 > total0) {
    double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
    double busy_us = (double)(busy1 - busy0) * tick_us;
    printf(" core_busy=%.3f core_us_per_msg=%.3f all_cores_us_per_msg=%.3f",
           (double)(busy1 - busy0) / (double)(total1 - total0),
           count ? busy_us / (double)count : 0,
           count ? (double)(all1 - all0) * tick_us / (double)count : 0);
  }
  if (opt.deflate)
    printf(" compressed_replies=%" PRIu64, zmsgs);
  if (opt.mode == MODE_FANOUT) {
    uint64_t expected = fo_sent * (uint64_t)opt.conns;
    printf(" window=%d sent=%" PRIu64 " expected=%" PRIu64 " received=%" PRIu64
           " lost=%" PRIu64,
           opt.window, fo_sent, expected, fo_received,
           expected > fo_received ? expected - fo_received : 0);
  }
  if (opt.tls)
    printf(" tls=%s", tls_chosen[0] ? tls_chosen : "none");
  if (opt.mode == MODE_IDLE)
    printf(" ready_secs=%.3f", t_ready ? (double)(t_ready - t0) / 1e9 : 0);
  printf("\n");
  return (open_conns < nconns && opt.mode != MODE_HANDSHAKE) ||
                 (opt.mode == MODE_FANOUT &&
                  fo_received != fo_sent * (uint64_t)opt.conns)
             ? 1
             : 0;
}
