/* loadgen_conn: one client connection of bench/loadgen, from connect
 * through TLS and the upgrade to close: its output queue, the transport
 * (plain or TLS) and what to do when epoll says it is ready. */
#define _GNU_SOURCE
#include "loadgen_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zlib.h>

#include "loadgen.h"
#include "loadgen_frame.h"
#include "loadgen_tls.h"
#include "loadgen_upgrade.h"
#include "loadgen_util.h"

#define RBUF_SIZE (256 * 1024)

static unsigned char rbuf[RBUF_SIZE];

void lg_out_reserve(lg_conn_t *c, size_t more) {
  if (c->out_len + more <= c->out_cap)
    return;
  if (c->out_off > 0) {
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
    if (c->out_len + more <= c->out_cap)
      return;
  }
  lg_grow(&c->out, &c->out_cap, c->out_len + more, 4096);
}

void lg_out_append(lg_conn_t *c, const void *p, size_t n) {
  lg_out_reserve(c, n);
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
}

static void set_events(lg_conn_t *c, int want_out) {
  want_out |= c->read_wants_write;
  struct epoll_event ev = {.events =
                               EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0),
                           .data.ptr = c};
  if (want_out == c->want_out)
    return;
  c->want_out = want_out;
  if (epoll_ctl(lg_run.epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
    lg_die("epoll_ctl");
}

/* The transport, plain or TLS: a count of bytes (0: end of stream, reads
 * only), or a negative LGTLS_ code, which the plain one uses too. */
static ssize_t conn_read(lg_conn_t *c, unsigned char *p, size_t n) {
  if (c->ssl)
    return lgtls_read(c->ssl, p, n);
  ssize_t r;
  while ((r = recv(c->fd, p, n, 0)) < 0 && errno == EINTR)
    ;
  return r >= 0 ? r : errno == EAGAIN ? LGTLS_WANT_READ : LGTLS_ERROR;
}

static ssize_t conn_write(lg_conn_t *c, const unsigned char *p, size_t n) {
  if (c->ssl)
    return lgtls_write(c->ssl, p, n);
  ssize_t r;
  while ((r = send(c->fd, p, n, 0)) < 0 && errno == EINTR)
    ;
  return r >= 0 ? r : errno == EAGAIN ? LGTLS_WANT_WRITE : LGTLS_ERROR;
}

/* Writes what is queued; returns -1 if the connection died. */
int lg_flush_out(lg_conn_t *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = conn_write(c, c->out + c->out_off, c->out_len - c->out_off);
    if (n == LGTLS_WANT_READ || n == LGTLS_WANT_WRITE) {
      /* A TLS write may wait for a read; on_readable flushes again. */
      set_events(c, n == LGTLS_WANT_WRITE);
      return 0;
    }
    if (n < 0) {
      lg_conn_kill(c, 1);
      return -1;
    }
    c->out_off += (size_t)n;
  }
  c->out_off = c->out_len = 0;
  set_events(c, 0);
  return 0;
}

static void conn_free_state(lg_conn_t *c) {
  if (c->inf) {
    inflateEnd(c->inf);
    free(c->inf);
    c->inf = NULL;
  }
  /* What the next connection on c must not inherit: the parser's and the
   * queue's positions, the negotiation and the session's progress. */
  c->hlen = c->clen = c->out_off = c->out_len = 0;
  c->fh_len = c->msg_op = c->head = c->count = 0;
  c->pmd = c->echoed = c->got_close = c->peer_fin = c->read_wants_write = 0;
  c->f_left = 0;
  c->fh_need = 2;
  c->want_out = -1;
}

void lg_conn_kill(lg_conn_t *c, int is_error) {
  if (c->state == LG_ST_DEAD)
    return;
  if (is_error && !lg_stop)
    lg_run.errors++;
  if (c->state == LG_ST_CONNECTING || c->state == LG_ST_TLS ||
      c->state == LG_ST_UPGRADING)
    lg_run.pending_connects--;
  if (c->state == LG_ST_OPEN || c->state == LG_ST_CLOSING)
    lg_run.open_conns--;
  if (c->ssl) {
    lgtls_free(c->ssl);
    c->ssl = NULL;
  }
  close(c->fd);
  c->fd = -1;
  c->state = LG_ST_DEAD;
  conn_free_state(c);
}

static void conn_open(lg_conn_t *c) {
  c->state = LG_ST_OPEN;
  lg_run.open_conns++;
  lg_run.pending_connects--;
  if (lg_opt.mode == LG_MODE_IDLE || lg_opt.mode == LG_MODE_FANOUT)
    return;
  uint64_t t = lg_now_ns();
  int n = lg_opt.mode == LG_MODE_HANDSHAKE ? 1 : lg_opt.inflight;
  for (int i = 0; i < n; i++)
    lg_send_message(c, t);
  lg_flush_out(c);
}

/* --sources K: binds the next (127.0.0.x, port), taken in turn from the K
 * addresses and the ephemeral port range, so that connect() has no port to
 * search for and a 4-tuple comes back only after K x 28,000 sessions (at
 * 64 sources, over a minute at 25,000 a second: longer than the server's
 * TIME_WAIT, so no SYN lands on one). The turn starts at a random place;
 * a pair in use elsewhere (say, in TIME_WAIT from another run) is skipped. */
static int bind_source(int fd) {
  static uint32_t next, lo, total;
  if (!total) {
    unsigned a = 32768, b = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
      if (fscanf(f, "%u %u", &a, &b) != 2 || a > b || b > 65535)
        a = 32768, b = 60999;
      fclose(f);
    }
    lo = a;
    total = (b - a + 1) * (uint32_t)lg_opt.sources;
    next = (uint32_t)(lg_rng_next() % total);
  }
  for (uint32_t tries = 0; tries < total; tries++) {
    uint32_t i = next++ % total;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + i % (uint32_t)lg_opt.sources);
    src.sin_port = htons((uint16_t)(lo + i / (uint32_t)lg_opt.sources));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) == 0)
      return 0;
    if (errno != EADDRINUSE)
      return -1;
  }
  return -1;
}

static void on_connected(lg_conn_t *c);

void lg_conn_start(lg_conn_t *c) {
  conn_free_state(c);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    lg_run.errors++;
    c->state = LG_ST_DEAD;
    return;
  }
  /* In handshake mode every write waits for the answer to the one before
   * (the 101 acknowledges the request, the echo the message), so Nagle
   * never holds one back and the option would be a system call for
   * nothing. */
  int one = 1;
  if (lg_opt.mode != LG_MODE_HANDSHAKE)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (lg_opt.sources > 1 && bind_source(fd) < 0) {
    close(fd);
    lg_run.errors++;
    c->state = LG_ST_DEAD;
    return;
  }
  c->fd = fd;
  c->state = LG_ST_CONNECTING;
  c->want_out = 0;
  c->t_start = lg_now_ns();
  lg_run.pending_connects++;
  if (connect(fd, (struct sockaddr *)&lg_opt.addr, sizeof lg_opt.addr) < 0 &&
      errno != EINPROGRESS) {
    lg_conn_kill(c, 1);
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
  if (epoll_ctl(lg_run.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    lg_die("epoll_ctl add");
  on_connected(c);
}

static void tls_step(lg_conn_t *c);

void lg_on_readable(lg_conn_t *c) {
  if (c->state == LG_ST_TLS) {
    tls_step(c);
    return;
  }
  if (c->read_wants_write) {
    c->read_wants_write = 0;
    set_events(c, c->out_len > c->out_off);
  }
  for (int rounds = 0; rounds < 8 && c->state != LG_ST_DEAD; rounds++) {
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
        lg_session_done(c, lg_now_ns());
      else
        lg_conn_kill(c, 1);
      return;
    }
    if (n < 0) {
      lg_conn_kill(c, 1);
      break;
    }
    uint64_t t = lg_now_ns();
    const unsigned char *p = rbuf;
    size_t len = (size_t)n;
    if (c->state == LG_ST_UPGRADING) {
      size_t room = sizeof c->hbuf - 1 - c->hlen;
      size_t k = len < room ? len : room;
      memcpy(c->hbuf + c->hlen, p, k);
      c->hlen += k;
      c->hbuf[c->hlen] = 0;
      char *end = strstr(c->hbuf, "\r\n\r\n");
      if (!end) {
        if (c->hlen == sizeof c->hbuf - 1)
          lg_conn_kill(c, 1);
        continue;
      }
      size_t hdr_end = (size_t)(end - c->hbuf) + 4;
      size_t used = hdr_end - (c->hlen - k);
      if (lg_upgrade_parse(c, hdr_end) < 0) {
        lg_conn_kill(c, 1);
        return;
      }
      conn_open(c);
      p += used;
      len -= used;
    }
    if (c->state >= LG_ST_OPEN && c->state != LG_ST_DEAD &&
        lg_on_frames(c, p, len, t) < 0) {
      lg_conn_kill(c, 1);
      return;
    }
    /* The server closes TCP straight after its close frame: when epoll
     * has already seen its FIN, the session is over without a read for
     * the end of the stream; else one more read usually finds it. */
    if (c->got_close && c->peer_fin) {
      lg_session_done(c, t);
      return;
    }
    /* A short read has emptied the socket, unless TLS holds more. */
    if ((size_t)n < sizeof rbuf && !(c->ssl && lgtls_ended(c->ssl)) &&
        !c->got_close)
      break;
  }
  if (c->state != LG_ST_DEAD && c->out_len > c->out_off)
    lg_flush_out(c);
}

/* The byte stream is ready: TCP connected, with --tls the handshake done. */
static void on_transport_ready(lg_conn_t *c) {
  if (lg_opt.raw)
    conn_open(c);
  else
    lg_upgrade_send(c);
}

/* Called straight after connect(), without waiting for writability: over
 * loopback the three-way handshake has nearly always completed inside
 * connect() (the SYN-ACK is processed as connect releases the socket), so
 * the first bytes can go at once, saving an epoll round, SO_ERROR and two
 * epoll_ctl changes a session. When the socket is still connecting, the
 * write says EAGAIN and waits for EPOLLOUT as any other write does; a
 * failed connect shows up as the write's (or the next read's) error. */
static void on_connected(lg_conn_t *c) {
  if (!lg_opt.tls) {
    on_transport_ready(c);
    return;
  }
  c->ssl = lgtls_new(c->fd);
  if (!c->ssl) {
    lg_conn_kill(c, 1);
    return;
  }
  c->state = LG_ST_TLS;
  tls_step(c);
}

/* --tls: one step of the handshake, whichever way the socket became ready. */
static void tls_step(lg_conn_t *c) {
  int r = lgtls_handshake(c->ssl);
  if (r == LGTLS_WANT_READ || r == LGTLS_WANT_WRITE) {
    set_events(c, r == LGTLS_WANT_WRITE);
    return;
  }
  if (r < 0) {
    lg_conn_kill(c, 1);
    return;
  }
  if (!lg_run.tls_chosen[0])
    snprintf(lg_run.tls_chosen, sizeof lg_run.tls_chosen, "%s",
             lgtls_describe(c->ssl));
  on_transport_ready(c);
}

void lg_on_writable(lg_conn_t *c) {
  if (c->state == LG_ST_TLS) {
    tls_step(c);
    return;
  }
  if (c->read_wants_write) {
    lg_on_readable(c);
    if (c->state == LG_ST_DEAD)
      return;
  }
  lg_flush_out(c);
}
