/* A listener and the connections it accepted. */
#include "net/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn_internal.h"
#include "net/log.h"

struct wsl_server {
  uv_tcp_t tcp;
  wsl_conn_config_t config;
  wsl_conn_list_t conns;
  size_t max_connections;
  int listening;
  int released;
};

/* The TLS context goes with the server: no connection uses it any more. */
static void maybe_free(wsl_server_t *s) {
  if (s->released && !s->listening && s->conns.count == 0) {
    wsl_tls_ctx_free(s->config.tls);
    free(s);
  }
}

/* Set before any listener opens (before the workers start), read after. */
static int share_ports;

void wsl_server_share_ports(int on) {
  share_ports = on;
}

/* Binds a socket of our own with SO_REUSEPORT, so that each worker's
 * listener on the address gets one and the kernel spreads connections among
 * them (libuv 1.44 has no UV_TCP_REUSEPORT), and hands it to tcp. */
static int bind_shared(uv_tcp_t *tcp, const struct sockaddr *addr) {
  int fd =
      socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return uv_translate_sys_error(errno);
  int on = 1;
  socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
      bind(fd, addr, len) != 0) {
    int r = uv_translate_sys_error(errno);
    close(fd);
    return r;
  }
  int r = uv_tcp_open(tcp, fd);
  if (r != 0)
    close(fd);
  return r;
}

static void on_conns_empty(wsl_conn_list_t *list) {
  wsl_server_t *s =
      (wsl_server_t *)((char *)list - offsetof(wsl_server_t, conns));
  maybe_free(s);
}

static void on_connection(uv_stream_t *listener, int status) {
  wsl_server_t *s = listener->data;
  if (status < 0) {
    wsl_log(WSL_LOG_WARN, "accept failed: %s", uv_strerror(status));
    return;
  }
  wsl_conn_t *c = wsl__conn_new(listener->loop, WSL_ROLE_SERVER,
                                s->config.handler, &s->conns);
  if (c == NULL) {
    wsl_log(WSL_LOG_ERROR, "out of memory accepting a connection");
    return;
  }
  c->config = &s->config;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    wsl_conn_abort(c, 0);
    return;
  }
  wsl__conn_fill_remote_addr(c);
  if (s->max_connections && s->conns.count > s->max_connections) {
    wsl_log(WSL_LOG_WARN, "%s: refused, connection limit (%zu) reached",
            wsl_conn_remote_addr(c), s->max_connections);
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n";
    wsl_conn_write(c, busy, sizeof busy - 1);
    wsl_conn_abort(c, 1);
    return;
  }
#ifndef __linux__
  /* Linux copies TCP_NODELAY from the listener (wsl_server_listen) to every
   * connection it accepts, which saves a system call per connection;
   * elsewhere each connection sets it. */
  uv_tcp_nodelay(&c->tcp, 1);
#endif
  if (s->config.tls && wsl__conn_tls_start(c, s->config.tls, NULL) != 0) {
    wsl_conn_abort(c, 0);
    return;
  }
  if (wsl__conn_http_open(c, WSL_HTTP_REQUEST_MODE, &s->config.http_limits) !=
      0) {
    wsl_log(WSL_LOG_ERROR, "out of memory accepting a connection");
    wsl_conn_abort(c, 0);
    return;
  }
  c->state = WSL_CONN_HTTP;
  wsl__conn_arm_timer(c, s->config.handshake_timeout_ms);
  wsl__conn_start_reading(c);
}

wsl_server_t *wsl_server_listen(uv_loop_t *loop, const char *host, int port,
                                const wsl_conn_config_t *config,
                                size_t max_connections, char *err,
                                size_t errlen) {
  struct sockaddr_storage addr;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
    snprintf(err, errlen, "%s is not an IP address", host);
    wsl_tls_ctx_free(config->tls);
    return NULL;
  }
  wsl_server_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(err, errlen, "out of memory");
    wsl_tls_ctx_free(config->tls);
    return NULL;
  }
  s->config = *config;
  s->conns.on_empty = on_conns_empty;
  s->max_connections = max_connections;
  uv_tcp_init(loop, &s->tcp);
  s->tcp.data = s;
  s->listening = 1;
  int r = share_ports ? bind_shared(&s->tcp, (struct sockaddr *)&addr)
                      : uv_tcp_bind(&s->tcp, (struct sockaddr *)&addr, 0);
  if (r == 0)
    r = uv_tcp_nodelay(&s->tcp, 1);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&s->tcp, 511, on_connection);
  if (r != 0) {
    snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port,
             uv_strerror(r));
    s->released = 1;
    wsl_server_stop(s);
    return NULL;
  }
  return s;
}

int wsl_server_port(const wsl_server_t *s) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) != 0)
    return -1;
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

size_t wsl_server_connections(const wsl_server_t *s) {
  return s->conns.count;
}

void wsl_server_set_tls(wsl_server_t *s, struct wsl_tls_ctx *ctx) {
  wsl_tls_ctx_t *old = s->config.tls;
  s->config.tls = ctx;
  wsl_tls_ctx_free(old);
}

static void on_listener_closed(uv_handle_t *h) {
  wsl_server_t *s = h->data;
  s->listening = 0;
  maybe_free(s);
}

void wsl_server_stop(wsl_server_t *s) {
  if (!uv_is_closing((uv_handle_t *)&s->tcp))
    uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
}

void wsl_server_close_idle(wsl_server_t *s) {
  for (wsl_conn_t *c = s->conns.head; c; c = c->next)
    if (c->state == WSL_CONN_HTTP)
      wsl_conn_abort(c, 1);
}

void wsl_server_release(wsl_server_t *s) {
  s->released = 1;
  maybe_free(s);
}
