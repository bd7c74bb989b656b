/* One connection: lifecycle, reading, writing and timers, for both roles.
 * The HTTP request phase is here too; the WebSocket session is conn_ws.c. */
#include "net/conn_internal.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/log.h"
#include "net/topics.h"

/* One read takes a 64 KiB frame and its header whole: fewer reads and fewer
 * pieces handed to the owner. The buffer is per thread (on_alloc). */
#define READ_BUFFER_SIZE (256 * 1024)

wsl_conn_state_t wsl_conn_state(const wsl_conn_t *c) {
  return c->state;
}

void *wsl_conn_data(const wsl_conn_t *c) {
  return c->data;
}

void wsl_conn_set_data(wsl_conn_t *c, void *data) {
  c->data = data;
}

const char *wsl_conn_remote_addr(const wsl_conn_t *c) {
  /* Formatted on demand: 19 bytes of address per connection instead of a
   * string, and it is asked for only in logs and by tostring. */
  static _Thread_local char out[INET6_ADDRSTRLEN + 8];
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = ntohs(c->peer_port);
  switch (c->peer_family) {
  case AF_INET6:
    uv_inet_ntop(AF_INET6, c->peer_addr, ip, sizeof ip);
    snprintf(out, sizeof out, "[%s]:%d", ip, port);
    return out;
  case AF_INET:
    uv_inet_ntop(AF_INET, c->peer_addr, ip, sizeof ip);
    break;
  default:
    if (wsl__conn_dial(c) && c->extra->dial->addr)
      return c->extra->dial->addr;
    port = 0;
  }
  snprintf(out, sizeof out, "%s:%d", ip, port);
  return out;
}

const wsl_conn_config_t *wsl_conn_config(const wsl_conn_t *c) {
  return c->config;
}

/* Bytes waiting to leave: libuv's queue and the cork. */
static size_t queued(const wsl_conn_t *c) {
  return c->tcp.write_queue_size + c->cork.bytes;
}

size_t wsl_conn_buffered(const wsl_conn_t *c) {
  return queued(c);
}

int wsl_conn_draining(const wsl_conn_t *c) {
  return c->above_low_water;
}

uint64_t wsl_conn_dropped(const wsl_conn_t *c) {
  return c->rare ? c->rare->dropped : 0;
}

void wsl_conn_stats(const wsl_conn_t *c, wsl_conn_stats_t *out) {
  /* Padding too: an owner may keep the struct as bytes (the Lua layer
   * does). */
  memset(out, 0, sizeof *out);
  out->bytes_in = c->stats.bytes_in;
  out->bytes_out = c->stats.bytes_out;
  out->messages_in = c->stats.messages_in;
  out->messages_out = c->stats.messages_out;
  out->closer = (wsl_closer_t)c->closer;
}

/* The buffers of one write: the cork's pieces, then up to 3 more; shared[i]
 * is the frame that bufs[i] points into, or NULL. */
typedef struct {
  uv_buf_t *bufs;
  wsl_shared_frame_t **shared;
  size_t n;
  uv_buf_t bufs_small[16];
  wsl_shared_frame_t *shared_small[16];
} gather_t;

static int gather_init(gather_t *g, const wsl_cork_t *k) {
  g->bufs = g->bufs_small;
  g->shared = g->shared_small;
  if (k->pieces + 3 > 16) {
    g->bufs = malloc((k->pieces + 3) * sizeof *g->bufs);
    g->shared = malloc((k->pieces + 3) * sizeof *g->shared);
    if (g->bufs == NULL || g->shared == NULL) {
      free(g->bufs);
      free(g->shared);
      return UV_ENOMEM;
    }
  }
  wsl_cork_fill(k, g->bufs, g->shared);
  g->n = k->pieces;
  return 0;
}

static void gather_free(gather_t *g) {
  if (g->bufs != g->bufs_small) {
    free(g->bufs);
    free(g->shared);
  }
}

/* --- lifecycle ---------------------------------------------------------- */

static void on_timer(wsl_timer_t *t);

wsl_conn_t *wsl__conn_new(uv_loop_t *loop, wsl_role_t role,
                          const wsl_conn_handler_t *handler,
                          wsl_conn_list_t *list) {
  wsl_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  if (wsl_timers_attach(loop, on_timer) != 0) {
    free(c);
    return NULL;
  }
  if (uv_tcp_init(loop, &c->tcp) != 0) {
    wsl_timers_detach(loop);
    free(c);
    return NULL;
  }
  c->tcp.data = c;
  c->batched = wsl__flush_attach(c);
  c->refs = 1;
  c->role = role;
  c->handler = handler;
  c->close_code = 1006;
  c->ws = wsl__ws_options_default();
  c->list = list;
  if (list) {
    c->next = list->head;
    if (list->head)
      list->head->prev = c;
    list->head = c;
    list->count++;
  }
  return c;
}

void wsl__conn_unref(wsl_conn_t *c) {
  if (--c->refs > 0)
    return;
  /* Gone from its topics before the owner hears of the close. */
  wsl__topics_leave_all(c);
  const char *reason = c->rare ? c->rare->close_reason : NULL;
  if (c->handler->on_close)
    c->handler->on_close(c, c->close_code, reason ? reason : "",
                         reason ? c->close_reason_len : 0, c->error);
  if (c->list) {
    if (c->prev)
      c->prev->next = c->next;
    else
      c->list->head = c->next;
    if (c->next)
      c->next->prev = c->prev;
    c->list->count--;
    if (c->list->count == 0 && c->list->on_empty)
      c->list->on_empty(c->list);
  }
  wsl__conn_http_close(c);
  wsl_timers_detach(c->tcp.loop);
  wsl_tls_free(c->tls);
  wsl__compress_free(c);
  wsl_cork_free(&c->cork);
  wsl__ws_options_release(c);
  wsl__dial_free(c);
  wsl__conn_parts_free(c);
  free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  wsl__conn_unref(h->data);
}

/* Closes both handles; on_close and the free follow from the loop. */
static void close_now(wsl_conn_t *c) {
  if (c->handles_closing)
    return;
  /* None of the turn's messages may refer to c once it is freed (turn.c).
   * No owner code runs here: a close may come from a finalizer while the
   * VM itself is being closed. */
  wsl__turn_forget(c);
  /* Off the flush list now: the connection is freed by a close callback
   * of this loop turn, before the next flush. */
  if (c->batched)
    wsl__flush_detach(c);
  /* What was written before the close (the cork, then close_notify)
   * leaves as a flush would have sent it: best effort, in one write, the
   * socket is closing either way. */
  gather_t g;
  if (c->tcp.write_queue_size == 0 && gather_init(&g, &c->cork) == 0) {
    wsl_buf_t sealed = WSL_BUF_INIT;
    if (c->tls) {
      for (size_t i = 0; i < g.n; i++)
        wsl_tls_write(c->tls, g.bufs[i].base, g.bufs[i].len, &sealed);
      wsl_tls_close(c->tls, &sealed);
      g.bufs[0] = uv_buf_init(sealed.data, (unsigned)sealed.len);
      g.n = sealed.len > 0;
    }
    if (g.n)
      uv_try_write((uv_stream_t *)&c->tcp, g.bufs, (unsigned)g.n);
    wsl_buf_free(&sealed);
    gather_free(&g);
  }
  wsl_cork_free(&c->cork);
  c->handles_closing = 1;
  c->state = WSL_CONN_CLOSED;
  wsl_timer_stop(c->tcp.loop, &c->timer);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

void wsl__conn_end(wsl_conn_t *c) {
  /* The last bytes (the close frame) wait in the kernel until the close,
   * so that the FIN goes in their packet rather than one of its own: one
   * packet a session fewer, sent and received (Linux's TCP_CORK; elsewhere
   * they leave as before). Only here, where the peer has said it sends
   * nothing more: closing a socket with unread input resets it and drops
   * what it holds. */
#ifdef TCP_CORK
  int fd, on = 1;
  if (!c->handles_closing && c->cork.pieces && c->tcp.write_queue_size == 0 &&
      uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
#endif
  wsl_conn_abort(c, 1);
}

void wsl_conn_abort(wsl_conn_t *c, int flush) {
  if (c->handles_closing)
    return;
  if (flush && c->cork.pieces) {
    wsl__conn_flush(c);
    if (c->handles_closing)
      return;
  }
  if (flush && c->tcp.write_queue_size > 0) {
    /* The last write callback closes; the timer bounds the wait for a peer
     * that does not read. */
    c->close_after_flush = 1;
    if (c->state != WSL_CONN_CLOSING)
      c->state = WSL_CONN_CLOSING;
    if (c->reading) {
      uv_read_stop((uv_stream_t *)&c->tcp);
      c->reading = 0;
    }
    wsl__conn_arm_timer(c, c->ws->close_timeout_ms);
    return;
  }
  close_now(c);
}

void wsl__conn_arm_timer(wsl_conn_t *c, uint64_t ms) {
  if (c->handles_closing)
    return;
  if (ms == 0)
    wsl_timer_stop(c->tcp.loop, &c->timer);
  else
    wsl_timer_start(c->tcp.loop, &c->timer, ms);
}

static void process_pending(wsl_conn_t *c);

static size_t pending_len(const wsl_conn_t *c) {
  return c->rare && c->rare->pending ? c->rare->pending->len : 0;
}

/* Keeps bytes to parse later; the buffer exists only while some wait. */
static void hold(wsl_conn_t *c, const char *data, size_t len) {
  wsl_conn_rare_t *r = wsl__conn_rare(c);
  if (r == NULL || (r->pending == NULL &&
                    (r->pending = calloc(1, sizeof *r->pending)) == NULL))
    return;
  wsl_buf_append(r->pending, data, len);
}

static void on_timer(wsl_timer_t *t) {
  wsl_conn_t *c = (wsl_conn_t *)((char *)t - offsetof(wsl_conn_t, timer));
  if (pending_len(c) > 0 && !c->processing &&
      (c->state == WSL_CONN_HTTP || c->state == WSL_CONN_OPEN)) {
    /* Bytes that came while the owner was answering (see
     * schedule_pending): arm the state's own timeout, then parse them. */
    if (c->state == WSL_CONN_HTTP)
      wsl__conn_arm_timer(c, c->config->keepalive_timeout_ms);
    else
      wsl__ws_arm_keepalive(c);
    process_pending(c);
    return;
  }
  if (c->close_after_flush) {
    wsl_log(WSL_LOG_INFO, "%s: peer did not take the last bytes, closing",
            wsl_conn_remote_addr(c));
    close_now(c);
    return;
  }
  switch (c->state) {
  case WSL_CONN_HTTP:
    wsl_log(WSL_LOG_INFO, "%s: no complete request in time, closing",
            wsl_conn_remote_addr(c));
    close_now(c);
    break;
  case WSL_CONN_DIALING:
    c->error = "handshake timeout";
    close_now(c);
    break;
  case WSL_CONN_OPEN:
    wsl__ws_on_timer(c);
    break;
  case WSL_CONN_CLOSING:
    wsl_log(WSL_LOG_DEBUG, "%s: no close frame from the peer in time",
            wsl_conn_remote_addr(c));
    close_now(c);
    break;
  default:
    break;
  }
}

void wsl__conn_fill_remote_addr(wsl_conn_t *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  c->peer_family = AF_UNSPEC;
  c->peer_port = 0;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
      memcpy(c->peer_addr, &a->sin6_addr, 16);
      c->peer_port = a->sin6_port;
      c->peer_family = AF_INET6;
    } else if (ss.ss_family == AF_INET) {
      const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
      memcpy(c->peer_addr, &a->sin_addr, 4);
      c->peer_port = a->sin_port;
      c->peer_family = AF_INET;
    }
  }
  /* Unknown, and no longer "host:port" as dialled: "?:0", as a failed
   * lookup always read. */
  wsl_dial_state_t *d = wsl__conn_dial(c);
  if (c->peer_family == AF_UNSPEC && d) {
    free(d->addr);
    d->addr = NULL;
  }
}

/* --- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  /* One buffer per thread: every byte read is parsed before the callback
   * returns, and what must wait is copied to the connection's own buffer. */
  static _Thread_local char shared[READ_BUFFER_SIZE];
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(shared, sizeof shared);
}

static void process_input(wsl_conn_t *c, char *data, size_t len);

static void tls_input(wsl_conn_t *c, char *data, size_t len);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  wsl_conn_t *c = s->data;
  if (nread == 0)
    return;
  if (nread < 0) {
    /* What came before the end reaches the owners first (turn.c). */
    wsl__turn_run();
    if (c->handles_closing)
      return;
    if (nread != UV_EOF && c->error == NULL)
      c->error = uv_strerror((int)nread);
    if (c->state == WSL_CONN_DIALING && c->error == NULL)
      c->error = "connection closed during the handshake";
    close_now(c);
    return;
  }
  /* The handlers run inside; what they write waits in the cork and leaves
   * with the loop turn's flush (see queue_writev). */
  if (c->tls)
    tls_input(c, buf->base, (size_t)nread);
  else
    process_input(c, buf->base, (size_t)nread);
}

void wsl__conn_start_reading(wsl_conn_t *c) {
  if (c->reading || c->handles_closing)
    return;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
    c->reading = 1;
}

static void stop_reading(wsl_conn_t *c) {
  if (!c->reading)
    return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
}

/* Parses HTTP bytes; returns how many were used. */
static size_t http_input(wsl_conn_t *c, char *data, size_t len) {
  size_t used = 0;
  int r = wsl_http_parse(c->http, data, len, &used);
  if (r == WSL_HTTP_NEED_MORE) {
    c->stats.bytes_in += len;
    return len;
  }
  c->stats.bytes_in += used;
  if (r != WSL_HTTP_DONE) {
    wsl_log(WSL_LOG_INFO, "%s: %d %s", wsl_conn_remote_addr(c), r,
            c->http->error);
    wsl_buf_t out = WSL_BUF_INIT;
    wsl_http_error_response(&out, r, c->http->error, 1);
    wsl_conn_write(c, out.data, out.len);
    wsl_buf_free(&out);
    c->state = WSL_CONN_CLOSING;
    wsl_conn_abort(c, 1);
    return len;
  }
  c->state = WSL_CONN_ANSWERING;
  wsl__conn_arm_timer(c, 0);
  c->handler->on_request(c, &c->http->request);
  return used;
}

static void process_input(wsl_conn_t *c, char *data, size_t len) {
  if (c->processing) {
    hold(c, data, len);
    return;
  }
  c->processing = 1;
  while (len > 0 && !c->handles_closing) {
    size_t used = len;
    switch (c->state) {
    case WSL_CONN_HTTP:
      used = http_input(c, data, len);
      break;
    case WSL_CONN_DIALING:
      used = wsl__dial_input(c, data, len);
      break;
    case WSL_CONN_OPEN:
    case WSL_CONN_CLOSING:
      if (!c->close_after_flush)
        wsl__ws_input(c, (uint8_t *)data, len);
      break;
    case WSL_CONN_ANSWERING:
      /* The owner has not answered yet: keep the bytes, read no more. */
      hold(c, data, len);
      stop_reading(c);
      break;
    case WSL_CONN_CLOSED:
      break;
    }
    data += used;
    len -= used;
  }
  c->processing = 0;
}

/* Feeds bytes that arrived while the owner was answering. */
static void process_pending(wsl_conn_t *c) {
  if (c->processing || pending_len(c) == 0)
    return;
  wsl_buf_t *held = c->rare->pending;
  c->rare->pending = NULL;
  process_input(c, held->data, held->len);
  wsl_buf_free(held);
  free(held);
}

/* --- writing ------------------------------------------------------------ */

/* What the kernel did not take: references to shared frames, then the
 * copied bytes. */
typedef struct {
  uv_write_t req;
  size_t nshared;
  wsl_shared_frame_t *shared[];
} write_req_t;

static void on_write(uv_write_t *req, int status) {
  write_req_t *w = (write_req_t *)req;
  wsl_conn_t *c = req->data;
  for (size_t i = 0; i < w->nshared; i++)
    wsl__shared_frame_release(w->shared[i]);
  free(w);
  if (c->handles_closing)
    return;
  if (status < 0) {
    if (c->error == NULL)
      c->error = uv_strerror(status);
    close_now(c);
    return;
  }
  if (c->above_low_water && c->tcp.write_queue_size <= c->ws->low_water) {
    c->above_low_water = 0;
    if (c->state == WSL_CONN_OPEN && c->handler->on_drain)
      c->handler->on_drain(c);
  }
  if (c->close_after_flush && c->tcp.write_queue_size == 0)
    close_now(c);
}

/* Writes that fit in the cork with what already waits there wait for the
 * flush; larger ones leave at once, with the cork in front of them. */
#define CORK_MAX (16 * 1024)
/* Shared frames from this size wait in the cork by reference; smaller ones
 * are copied, which costs less than a buffer of their own. */
#define SHARE_MIN 256

/* Puts the gathered buffers on the socket as one write: what the kernel
 * takes now, the rest in one queued request, in which what is left of a
 * shared frame is referenced and everything else copied. */
static int send_gathered(wsl_conn_t *c, gather_t *g) {
  if (c->handles_closing)
    return UV_ECANCELED;
  size_t total = 0;
  for (size_t i = 0; i < g->n; i++)
    total += g->bufs[i].len;
  if (total == 0)
    return 0;
  size_t done = 0;
  if (c->tcp.write_queue_size == 0) {
    int r = uv_try_write((uv_stream_t *)&c->tcp, g->bufs, (unsigned)g->n);
    if (r < 0 && r != UV_EAGAIN) {
      if (c->error == NULL)
        c->error = uv_strerror(r);
      close_now(c);
      return UV_ECANCELED;
    }
    if (r > 0)
      done = (size_t)r;
    if (done == total)
      return 0;
  }
  size_t first = 0;
  while (done >= g->bufs[first].len)
    done -= g->bufs[first++].len;
  g->bufs[first].base += done;
  g->bufs[first].len -= done;
  /* The request: the shared frames left and the bytes to copy; its buffers
   * go in place of the gathered ones (a run of copies becomes one). */
  size_t nshared = 0, copy = 0;
  for (size_t i = first; i < g->n; i++) {
    if (g->shared[i])
      nshared++;
    else
      copy += g->bufs[i].len;
  }
  write_req_t *w = malloc(sizeof *w + nshared * sizeof w->shared[0] + copy);
  if (w == NULL)
    return UV_ENOMEM;
  char *bytes = (char *)(w->shared + nshared);
  w->nshared = 0;
  size_t nout = 0;
  int joining = 0; /* the last buffer out is a run of copies */
  for (size_t i = first; i < g->n; i++) {
    uv_buf_t b = g->bufs[i]; /* read before bufs[nout <= i] is written */
    if (g->shared[i]) {
      g->shared[i]->refs++;
      w->shared[w->nshared++] = g->shared[i];
      g->bufs[nout++] = b;
      joining = 0;
    } else if (b.len) {
      memcpy(bytes, b.base, b.len);
      if (joining)
        g->bufs[nout - 1].len += b.len;
      else
        g->bufs[nout++] = uv_buf_init(bytes, (unsigned)b.len);
      bytes += b.len;
      joining = 1;
    }
  }
  w->req.data = c;
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, g->bufs, (unsigned)nout,
               on_write) != 0) {
    for (size_t i = 0; i < w->nshared; i++)
      wsl__shared_frame_release(w->shared[i]);
    free(w);
    close_now(c);
    return UV_ECANCELED;
  }
  if (c->state == WSL_CONN_OPEN && c->tcp.write_queue_size > c->ws->low_water)
    c->above_low_water = 1;
  return 0;
}

/* Wire bytes (TLS records) that must not wait: sent after anything already
 * on the socket's queue. */
static int raw_write(wsl_conn_t *c, const char *data, size_t len) {
  gather_t g;
  g.bufs = g.bufs_small;
  g.shared = g.shared_small;
  g.bufs[0] = uv_buf_init((char *)data, (unsigned)len);
  g.shared[0] = NULL;
  g.n = 1;
  return send_gathered(c, &g);
}

/* Encrypts the gathered plaintext into one run of records and sends it (a
 * TLS connection's cork holds one copy: ciphertext is per connection, so
 * shared frames are copied). */
static int tls_send(wsl_conn_t *c, const gather_t *g) {
  wsl_buf_t out = WSL_BUF_INIT;
  int r = 0;
  for (size_t i = 0; i < g->n && r == 0; i++)
    r = wsl_tls_write(c->tls, g->bufs[i].base, g->bufs[i].len, &out);
  if (r == 0)
    r = raw_write(c, out.data, out.len);
  else
    close_now(c);
  wsl_buf_free(&out);
  return r == 0 ? 0 : UV_ECANCELED;
}

/* Sends bufs (plaintext, at most 3; the bytes of shared, when set, are the
 * last one's) now, after what waits in the cork, which is emptied. */
static int send_now(wsl_conn_t *c, const uv_buf_t *bufs, unsigned n,
                    wsl_shared_frame_t *shared) {
  wsl_cork_t cork = c->cork;
  c->cork = (wsl_cork_t)WSL_CORK_INIT;
  gather_t g;
  int r = gather_init(&g, &cork);
  if (r == 0) {
    for (unsigned i = 0; i < n; i++) {
      g.bufs[g.n] = bufs[i];
      g.shared[g.n++] = i == n - 1 ? shared : NULL;
    }
    r = c->tls ? tls_send(c, &g) : send_gathered(c, &g);
    gather_free(&g);
  }
  wsl_cork_free(&cork);
  return r;
}

int wsl__conn_flush(wsl_conn_t *c) {
  if (c->cork.pieces == 0 || c->handles_closing)
    return 0;
  return send_now(c, NULL, 0, NULL);
}

/* Every byte for the peer goes through here (bufs: at most 3, sent as one;
 * shared as for send_now). Small writes wait in the cork for the loop
 * turn's flush, so that a connection written to many times in a turn costs
 * one system call; order is kept, as whatever leaves at once takes the
 * cork in front of it. */
static int queue_writev(wsl_conn_t *c, const uv_buf_t *bufs, unsigned n,
                        wsl_shared_frame_t *shared) {
  if (c->handles_closing)
    return UV_ECANCELED;
  size_t len = 0;
  for (unsigned i = 0; i < n; i++)
    len += bufs[i].len;
  c->stats.bytes_out += len;
  if (len == 0)
    return 0;
  /* A shared frame for a connection that the kernel is not keeping up with
   * queues behind what waits without a system call. */
  int queue_shared = shared && c->tls == NULL && c->cork.pieces == 0 &&
                     c->tcp.write_queue_size > 0;
  if (!c->batched || queue_shared || c->cork.bytes + len > CORK_MAX)
    return send_now(c, bufs, n, shared);
  if (shared && c->tls == NULL && n == 1 && len >= SHARE_MIN) {
    if (wsl_cork_share(&c->cork, shared) != 0)
      return UV_ENOMEM;
  } else if (wsl_cork_copyv(&c->cork, bufs, n) != 0) {
    return UV_ENOMEM;
  }
  if (wsl__flush_list(c) != 0)
    return wsl__conn_flush(c);
  return 0;
}

static int queue_write(wsl_conn_t *c, const char *data, size_t len,
                       wsl_shared_frame_t *shared) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  return queue_writev(c, &b, 1, shared);
}

int wsl__conn_tls_start(wsl_conn_t *c, struct wsl_tls_ctx *ctx,
                        const char *server_name) {
  c->tls = wsl_tls_new(ctx, c->role == WSL_ROLE_SERVER, server_name);
  if (c->tls == NULL)
    return UV_ENOMEM;
  if (c->role == WSL_ROLE_SERVER)
    return 0;
  wsl_buf_t hello = WSL_BUF_INIT;
  int r = wsl_tls_start(c->tls, &hello);
  if (r == 0)
    r = raw_write(c, hello.data, hello.len);
  wsl_buf_free(&hello);
  return r;
}

/* Ciphertext in, plaintext to the parsers. What OpenSSL has to send goes
 * out before the plaintext is acted on, so that records leave in order
 * (a handler's reply must not overtake a session ticket). */
static void tls_input(wsl_conn_t *c, char *data, size_t len) {
  static _Thread_local char plain[16384];
  wsl_buf_t out = WSL_BUF_INIT;
  const char *err = NULL;
  int r = wsl_tls_feed(c->tls, data, len, &out, &err);
  while (r == 0 && !c->handles_closing) {
    if (out.len) {
      raw_write(c, out.data, out.len);
      out.len = 0;
    }
    r = wsl_tls_read(c->tls, plain, sizeof plain, &out, &err);
    if (r <= 0)
      break;
    process_input(c, plain, (size_t)r);
    r = 0;
  }
  if (out.len)
    raw_write(c, out.data, out.len);
  wsl_buf_free(&out);
  if (r < 0) {
    if (err) {
      wsl_log(WSL_LOG_INFO, "%s: %s, closing", wsl_conn_remote_addr(c), err);
      if (c->error == NULL)
        c->error = err;
    }
    close_now(c);
  }
}

int wsl_conn_write(wsl_conn_t *c, const void *data, size_t len) {
  if (c->handles_closing)
    return UV_ECANCELED;
  return queue_write(c, data, len, NULL);
}

/* Masking keys for the client role, drawn from the system's random source
 * in batches so that a frame does not cost a system call. */
static void mask_key(uint8_t key[4]) {
  static _Thread_local uint8_t pool[256];
  static _Thread_local size_t left;
  if (left < 4) {
    if (uv_random(NULL, NULL, pool, sizeof pool, 0, NULL) != 0) {
      /* getrandom cannot fail on Linux once booted; keep going regardless. */
      for (size_t i = 0; i < sizeof pool; i++)
        pool[i] = (uint8_t)(uv_hrtime() >> (i % 8));
    }
    left = sizeof pool;
  }
  memcpy(key, pool + sizeof pool - left, 4);
  left -= 4;
}

int wsl__conn_write_frame(wsl_conn_t *c, int opcode, int rsv, const void *data,
                          size_t len) {
  uint8_t head[WSL_FRAME_HEADER_MAX];
  uint8_t key[4];
  const uint8_t *mask = NULL;
  if (c->role == WSL_ROLE_CLIENT) {
    mask_key(key);
    mask = key;
  }
  size_t hlen = wsl_frame_header_encode(head, 1, rsv, opcode, len, mask);
  if (mask == NULL && (c->tls == NULL || hlen + len <= CORK_MAX)) {
    /* Header and payload as two pieces of one write: a small frame is
     * copied into the cork, a large one goes from the caller's bytes, and
     * only what the kernel does not take is copied. */
    uv_buf_t b[2] = {uv_buf_init((char *)head, (unsigned)hlen),
                     uv_buf_init((char *)data, (unsigned)len)};
    return queue_writev(c, b, 2, NULL);
  }
  /* Masked (client role), or a large frame over TLS: header and payload
   * in one piece, one record. */
  char small[512];
  char *frame = hlen + len <= sizeof small ? small : malloc(hlen + len);
  if (frame == NULL)
    return UV_ENOMEM;
  memcpy(frame, head, hlen);
  if (len)
    memcpy(frame + hlen, data, len);
  if (mask)
    wsl_frame_mask((uint8_t *)frame + hlen, len, mask, 0);
  int r = queue_write(c, frame, hlen + len, NULL);
  if (frame != small)
    free(frame);
  return r;
}

wsl_shared_frame_t *wsl__shared_frame_new(int opcode, int rsv, const void *data,
                                          size_t len) {
  uint8_t head[WSL_FRAME_HEADER_MAX];
  size_t hlen = wsl_frame_header_encode(head, 1, rsv, opcode, len, NULL);
  wsl_shared_frame_t *f = malloc(sizeof *f + hlen + len);
  if (f == NULL)
    return NULL;
  f->refs = 1;
  f->len = hlen + len;
  memcpy(f->bytes, head, hlen);
  if (len)
    memcpy(f->bytes + hlen, data, len);
  return f;
}

void wsl__shared_frame_release(wsl_shared_frame_t *f) {
  if (--f->refs == 0)
    free(f);
}

/* Past the send-buffer limit a message is skipped (drop policy) or the
 * connection closed with 1008, a reason that names the limit. */
static int check_backpressure(wsl_conn_t *c) {
  if (c->ws->max_backpressure == 0 || queued(c) <= c->ws->max_backpressure)
    return 0;
  if (c->ws->backpressure_drop) {
    wsl_conn_rare_t *r = wsl__conn_rare(c);
    if (r)
      r->dropped++;
    return WSL_EDROPPED;
  }
  wsl__conn_fail(c, 1008,
                 wsl__conn_error_text(c, "send buffer over max_backpressure",
                                      "send buffer over max_backpressure "
                                      "(%zu bytes)",
                                      c->ws->max_backpressure));
  return UV_ENOBUFS;
}

/* The usual answer: a small uncompressed frame from the server, for the
 * loop turn's write. Its header is two bytes, and it goes straight into the
 * cork (what queue_writev would do, without the general path's steps: it
 * is on nearly every message's path). Returns 0, an error, or 1 when it is
 * not such a frame. */
static int send_small(wsl_conn_t *c, int opcode, const void *data, size_t len) {
  if (len >= 126 || c->role != WSL_ROLE_SERVER || !c->batched ||
      c->handles_closing || c->cork.bytes + 2 + len > CORK_MAX ||
      (c->compress && len >= c->ws->deflate_config.threshold))
    return 1;
  uint8_t head[2] = {(uint8_t)(0x80 | opcode), (uint8_t)len};
  uv_buf_t b[2] = {uv_buf_init((char *)head, 2),
                   uv_buf_init((char *)data, (unsigned)len)};
  if (wsl_cork_copyv(&c->cork, b, 2) != 0)
    return UV_ENOMEM;
  c->stats.bytes_out += 2 + len;
  if (wsl__flush_list(c) != 0)
    return wsl__conn_flush(c);
  return 0;
}

int wsl_conn_send(wsl_conn_t *c, int opcode, const void *data, size_t len) {
  if (c->state != WSL_CONN_OPEN)
    return UV_ECANCELED;
  int r = check_backpressure(c);
  if (r)
    return r;
  if ((r = send_small(c, opcode, data, len)) != 1) {
    if (r == 0)
      c->stats.messages_out++;
    return r;
  }
  wsl_buf_t packed = WSL_BUF_INIT;
  int compressed = wsl__compress_message(c, data, len, &packed);
  if (compressed < 0)
    r = UV_ENOMEM;
  else if (compressed)
    r = wsl__conn_write_frame(c, opcode, WSL_RSV1, packed.data, packed.len);
  else
    r = wsl__conn_write_frame(c, opcode, 0, data, len);
  wsl_buf_free(&packed);
  if (r == 0)
    c->stats.messages_out++;
  return r;
}

int wsl_conn_compressed(const wsl_conn_t *c) {
  return c->compress;
}

int wsl__conn_write_shared(wsl_conn_t *c, wsl_shared_frame_t *f) {
  if (c->state != WSL_CONN_OPEN || c->role != WSL_ROLE_SERVER)
    return UV_ECANCELED;
  int r = check_backpressure(c);
  if (r == 0)
    r = queue_write(c, f->bytes, f->len, f);
  if (r == 0)
    c->stats.messages_out++;
  return r;
}

int wsl_conn_ping(wsl_conn_t *c, const void *data, size_t len) {
  if (c->state != WSL_CONN_OPEN)
    return UV_ECANCELED;
  if (len > 125)
    return UV_EINVAL;
  return wsl__conn_write_frame(c, WSL_OP_PING, 0, data, len);
}

/* --- HTTP answers ------------------------------------------------------- */

/* Bytes that arrived while the owner was answering are parsed on the next
 * turn of the loop, not from inside the owner's call: the owner finishes
 * setting up (a client object after an upgrade) before events come. */
static void schedule_pending(wsl_conn_t *c) {
  if (pending_len(c) > 0 && !c->handles_closing)
    wsl_timer_start(c->tcp.loop, &c->timer, 0);
}

int wsl_conn_http_finish(wsl_conn_t *c, int keep_alive) {
  if (c->state != WSL_CONN_ANSWERING)
    return UV_ECANCELED;
  if (!keep_alive || c->http->request.upgrade) {
    c->state = WSL_CONN_CLOSING;
    wsl_conn_abort(c, 1);
    return 0;
  }
  wsl_http_parser_next(c->http);
  c->state = WSL_CONN_HTTP;
  wsl__conn_arm_timer(c, c->config->keepalive_timeout_ms);
  wsl__conn_start_reading(c);
  schedule_pending(c);
  return 0;
}

int wsl_conn_upgrade(wsl_conn_t *c, const void *response, size_t len,
                     const wsl_ws_options_t *options) {
  if (c->state != WSL_CONN_ANSWERING)
    return UV_ECANCELED;
  int r = queue_write(c, response, len, NULL);
  if (r != 0)
    return r;
  /* The request was the last HTTP on this connection: what follows it is
   * WebSocket (pipelined bytes included), so the parser goes now. */
  wsl__conn_http_close(c);
  wsl__ws_open(c, options);
  wsl__conn_start_reading(c);
  schedule_pending(c);
  return 0;
}

int wsl__conn_http_open(wsl_conn_t *c, wsl_http_mode_t mode,
                        const wsl_http_limits_t *limits) {
  c->http = malloc(sizeof *c->http);
  if (c->http == NULL)
    return UV_ENOMEM;
  wsl_http_parser_init(c->http, mode, limits);
  return 0;
}

void wsl__conn_http_close(wsl_conn_t *c) {
  if (c->http == NULL)
    return;
  wsl_http_parser_free(c->http);
  free(c->http);
  c->http = NULL;
}
