/* Dialling out: a WebSocket client connection in the same core (RFC 6455
 * §4.1), with masking and handshake validation. */
#ifndef WSL_CONNECT_H
#define WSL_CONNECT_H

#include <uv.h>

#include "net/conn.h"

typedef struct {
  const char *host;      /* name or address to resolve */
  int port;
  const char *host_header; /* "host:port" as sent in Host */
  const char *path;      /* request target, "/" at least */
  const char *protocols; /* comma list to offer, or NULL */
  const char *extra_headers; /* "Name: value\r\n..." or NULL */
  uint64_t handshake_timeout_ms;
  struct wsl_tls_ctx *tls;   /* wss://: a client TLS context, else NULL */
  const char *server_name;   /* for SNI and verification; NULL: host */
} wsl_dial_t;

/* Starts connecting. Returns the connection (state DIALING): on_open or
 * on_close (with an error) follows from the loop. NULL only when memory
 * could not be had. */
wsl_conn_t *wsl_connect(uv_loop_t *loop, const wsl_dial_t *dial,
                        const wsl_ws_options_t *options,
                        const wsl_conn_handler_t *handler, void *data);

#endif
