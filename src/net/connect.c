/* Dialling out: resolve, connect, send the opening handshake, check the
 * server's answer, then hand the connection to the WebSocket session. */
#include "net/connect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/conn_internal.h"
#include "net/log.h"
#include "proto/handshake.h"

typedef struct {
  uv_getaddrinfo_t req;
  wsl_conn_t *conn;
  int port;
} resolve_t;

typedef struct {
  uv_connect_t req;
  wsl_conn_t *conn;
} connect_t;

static void fail_dial(wsl_conn_t *c, const char *why) {
  if (c->error == NULL)
    c->error = why;
  wsl_conn_abort(c, 0);
}

static void on_connected(uv_connect_t *req, int status) {
  connect_t *cr = (connect_t *)req;
  wsl_conn_t *c = cr->conn;
  free(cr);
  if (c->handles_closing) {
    wsl__conn_unref(c);
    return;
  }
  if (status < 0) {
    fail_dial(c, uv_strerror(status));
    wsl__conn_unref(c);
    return;
  }
  wsl__conn_fill_remote_addr(c);
  uv_tcp_nodelay(&c->tcp, 1);
  wsl_dial_state_t *d = c->extra->dial;
  if (d->tls && wsl__conn_tls_start(c, d->tls, d->server_name) != 0) {
    fail_dial(c, "cannot start TLS");
    wsl__conn_unref(c);
    return;
  }
  /* Over TLS, held until the TLS handshake is done. */
  wsl_conn_write(c, d->request, d->request_len);
  free(d->request);
  d->request = NULL;
  wsl__conn_start_reading(c);
  wsl__conn_unref(c);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  resolve_t *rr = (resolve_t *)req;
  wsl_conn_t *c = rr->conn;
  free(rr);
  if (c->handles_closing) {
    uv_freeaddrinfo(res);
    wsl__conn_unref(c);
    return;
  }
  if (status < 0) {
    fail_dial(c, uv_strerror(status));
    wsl__conn_unref(c);
    return;
  }
  connect_t *cr = malloc(sizeof *cr);
  int r = cr ? uv_tcp_connect(&cr->req, &c->tcp, res->ai_addr, on_connected)
             : UV_ENOMEM;
  uv_freeaddrinfo(res);
  if (r != 0) {
    free(cr);
    fail_dial(c, uv_strerror(r));
    wsl__conn_unref(c);
    return;
  }
  cr->conn = c; /* the reference held for the resolve carries over */
}

wsl_conn_t *wsl_connect(uv_loop_t *loop, const wsl_dial_t *dial,
                        const wsl_ws_options_t *options,
                        const wsl_conn_handler_t *handler, void *data) {
  wsl_conn_t *c = wsl__conn_new(loop, WSL_ROLE_CLIENT, handler, NULL);
  if (c == NULL)
    return NULL;
  c->data = data;
  c->state = WSL_CONN_DIALING;
  wsl_conn_extra_t *x = wsl__conn_extra(c);
  wsl_dial_state_t *d = x ? calloc(1, sizeof *d) : NULL;
  if (d == NULL) {
    wsl__conn_extra_trim(c);
    fail_dial(c, "out of memory");
    return c;
  }
  x->dial = d;
  if (options)
    d->ws = *options;
  else
    wsl_ws_options_default(&d->ws);
  c->ws = &d->ws;
  size_t addr_len = strlen(dial->host) + 16;
  if ((d->addr = malloc(addr_len)) != NULL)
    snprintf(d->addr, addr_len, "%s:%d", dial->host, dial->port);

  uint8_t nonce[16];
  uv_random(NULL, NULL, nonce, sizeof nonce, 0, NULL);
  wsl_handshake_client_key(d->key, nonce);
  wsl_buf_t req = WSL_BUF_INIT;
  wsl_handshake_client_request(&req, dial->host_header, dial->path, d->key,
                               dial->protocols);
  if (d->ws.deflate) {
    wsl_buf_append_str(&req, "Sec-WebSocket-Extensions: ");
    wsl_deflate_client_offer(&req, &d->ws.deflate_config);
    wsl_buf_append_str(&req, "\r\n");
  }
  if (dial->extra_headers)
    wsl_buf_append_str(&req, dial->extra_headers);
  wsl_http_response_end(&req);
  d->request_len = req.len;
  d->request = wsl_buf_detach(&req);
  d->protocols = dial->protocols ? strdup(dial->protocols) : NULL;
  d->tls = dial->tls ? wsl_tls_ctx_ref(dial->tls) : NULL;
  if (dial->tls)
    d->server_name = strdup(dial->server_name ? dial->server_name : dial->host);
  if (d->request == NULL || (dial->protocols && d->protocols == NULL) ||
      (dial->tls && d->server_name == NULL) ||
      wsl__conn_http_open(c, WSL_HTTP_RESPONSE_MODE, NULL) != 0) {
    fail_dial(c, "out of memory");
    return c;
  }
  wsl__conn_arm_timer(c, dial->handshake_timeout_ms);

  resolve_t *rr = malloc(sizeof *rr);
  if (rr == NULL) {
    fail_dial(c, "out of memory");
    return c;
  }
  rr->conn = c;
  c->refs++; /* held until the resolve and connect are done */
  char port[16];
  snprintf(port, sizeof port, "%d", dial->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  int r = uv_getaddrinfo(loop, &rr->req, on_resolved, dial->host, port, &hints);
  if (r != 0) {
    free(rr);
    c->refs--;
    fail_dial(c, uv_strerror(r));
  }
  return c;
}

/* The server's answer to our permessage-deflate offer (RFC 7692 §5):
 * none (compression off), or one we accept; anything else fails. */
static int check_extensions(wsl_conn_t *c) {
  const wsl_http_request_t *r = &c->http->request;
  wsl_ws_options_t *o = &c->extra->dial->ws;
  if (!o->deflate)
    return 0;
  size_t n = wsl_http_header_count(r, "Sec-WebSocket-Extensions");
  if (n == 0) {
    o->deflate = 0;
    return 0;
  }
  const wsl_http_header_t *h = wsl_http_header(r, "Sec-WebSocket-Extensions");
  char why[128];
  if (n > 1 ||
      wsl_deflate_client_accept(h->value, h->value_len, &o->deflate_config,
                                &o->deflate_params, why, sizeof why) != 0) {
    if (n > 1)
      snprintf(why, sizeof why, "more than one Sec-WebSocket-Extensions");
    fail_dial(c, wsl__conn_error_text(c, "unacceptable extension response",
                                      "%s", why));
    return -1;
  }
  return 0;
}

size_t wsl__dial_input(wsl_conn_t *c, char *data, size_t len) {
  size_t used = 0;
  int r = wsl_http_parse(c->http, data, len, &used);
  if (r == WSL_HTTP_NEED_MORE)
    return len;
  if (r != WSL_HTTP_DONE) {
    fail_dial(c, "malformed handshake response");
    return len;
  }
  char why[128];
  const wsl_dial_state_t *d = c->extra->dial;
  if (wsl_handshake_client_check(&c->http->request, d->key, d->protocols,
                                 c->ws->deflate, why, sizeof why) != 0) {
    fail_dial(c,
              wsl__conn_error_text(c, "invalid handshake response", "%s", why));
    return len;
  }
  if (check_extensions(c) != 0)
    return len;
  wsl__ws_open(c, NULL);
  if (c->state != WSL_CONN_OPEN)
    return len; /* out of memory: failed */
  if (c->handler->on_open)
    c->handler->on_open(c, &c->http->request);
  /* Open: nothing of the handshake is needed any more. */
  wsl__conn_http_close(c);
  wsl__dial_free(c);
  return used;
}

void wsl__dial_free(wsl_conn_t *c) {
  wsl_dial_state_t *d = wsl__conn_dial(c);
  if (d == NULL)
    return;
  free(d->request);
  free(d->protocols);
  free(d->server_name);
  free(d->addr);
  wsl_tls_ctx_free(d->tls);
  free(d);
  c->extra->dial = NULL;
  wsl__conn_extra_trim(c);
}
