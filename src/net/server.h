/* A listener: accepts TCP connections on one address and hands each to a
 * new connection (conn.h) with the server's configuration. */
#ifndef WSL_SERVER_H
#define WSL_SERVER_H

#include <uv.h>

#include "net/conn.h"

typedef struct wsl_server wsl_server_t;

/* Listens on host:port (port 0: any free port). Returns the server, or NULL
 * with err filled ("address already in use", ...). The configuration is
 * copied; its TLS context becomes the server's, freed with it (or at once
 * when listening fails). max_connections 0 means no limit. */
wsl_server_t *wsl_server_listen(uv_loop_t *loop, const char *host, int port,
                                const wsl_conn_config_t *config,
                                size_t max_connections, char *err,
                                size_t errlen);
/* With on, listeners from now on share their address with others of this
 * process (SO_REUSEPORT): one per worker, the kernel spreading connections
 * among them. Set once, before any listener opens. */
void wsl_server_share_ports(int on);
int wsl_server_port(const wsl_server_t *s);
size_t wsl_server_connections(const wsl_server_t *s);
/* Replaces the TLS context that connections accepted from now on get
 * (renewed certificates on a reload), taking ownership of ctx. Connections
 * already accepted, handshakes under way included, keep the context they
 * started with: each session holds a reference (tls.h). */
void wsl_server_set_tls(wsl_server_t *s, struct wsl_tls_ctx *ctx);

/* Stops accepting. Open connections are left to the owner to close (see
 * wsl_server_close_idle); the server is freed once it has been released,
 * its listener is closed and its last connection is gone. */
void wsl_server_stop(wsl_server_t *s);
/* Closes connections that are between HTTP requests or mid-request; those
 * the owner is answering and WebSocket sessions are the owner's to close. */
void wsl_server_close_idle(wsl_server_t *s);
void wsl_server_release(wsl_server_t *s);

#endif
