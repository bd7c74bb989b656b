/* tls_echo: the floor for TLS, a raw TLS echo (epoll, one thread, OpenSSL).
 * Decrypted bytes go back as they came, encrypted again; WebSocket framing
 * is not looked at. tcp_echo with a TLS layer, nothing else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "echo_peer.h"

/* One connection: what could not be written yet, and whether a read waits
 * for writability (the handshake, or tickets sent on the first read, may
 * have to write). While something is pending, the connection is not read
 * (backpressure, as an echo must). */
typedef struct {
  int fd;
  SSL *ssl;
  int read_wants_write;
  echo_pend_t pend;
} conn_t;

static char buf[256 * 1024];
static SSL_CTX *ctx;

static void conn_close(void *p) {
  conn_t *c = p;
  SSL_free(c->ssl);
  ERR_clear_error();
  close(c->fd);
  free(c->pend.buf);
  free(c);
}

/* Writes n bytes; keeps the rest for EPOLLOUT. Returns -1 on error. TLS
 * 1.3 has no renegotiation, so a write never waits for a read. */
static int echo(conn_t *c, const char *p, size_t n) {
  while (n > 0) {
    size_t w;
    if (!SSL_write_ex(c->ssl, p, n, &w)) {
      if (SSL_get_error(c->ssl, 0) != SSL_ERROR_WANT_WRITE)
        return -1;
      return echo_pend_keep(&c->pend, c->fd, c, p, n);
    }
    p += w;
    n -= w;
  }
  return 0;
}

/* Reads until OpenSSL holds nothing more: bytes it has taken from the
 * socket would not wake epoll again. */
static int on_readable(void *p) {
  conn_t *c = p;
  int rounds = 0;
  c->read_wants_write = 0;
  while (!c->pend.buf && (rounds++ < 16 || SSL_has_pending(c->ssl))) {
    size_t n;
    if (!SSL_read_ex(c->ssl, buf, sizeof buf, &n)) {
      switch (SSL_get_error(c->ssl, 0)) {
      case SSL_ERROR_WANT_READ:
        return 0;
      case SSL_ERROR_WANT_WRITE:
        c->read_wants_write = 1;
        echo_watch(c->fd, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
        return 0;
      default:
        return -1;
      }
    }
    if (echo(c, buf, n) < 0)
      return -1;
  }
  return 0;
}

static int on_writable(void *p) {
  conn_t *c = p;
  if (c->read_wants_write) {
    echo_watch(c->fd, c, EPOLL_CTL_MOD, EPOLLIN);
    return on_readable(c);
  }
  while (c->pend.off < c->pend.len) {
    size_t w;
    if (!SSL_write_ex(c->ssl, c->pend.buf + c->pend.off,
                      c->pend.len - c->pend.off, &w))
      return SSL_get_error(c->ssl, 0) == SSL_ERROR_WANT_WRITE ? 0 : -1;
    c->pend.off += w;
  }
  echo_pend_done(&c->pend, c->fd, c);
  /* OpenSSL may hold records read before the write had to wait. */
  return on_readable(c);
}

/* The context: the certificate and key, TLS 1.3 only (as the clients
 * negotiate anyway), partial writes from a buffer that may move. */
static int setup_tls(const char *cert, const char *key) {
  ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
      SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return -1;
  }
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  return 0;
}

static void on_accept(int fd) {
  conn_t *c = calloc(1, sizeof *c);
  SSL *ssl = SSL_new(ctx);
  if (!c || !ssl || !SSL_set_fd(ssl, fd)) {
    SSL_free(ssl);
    free(c);
    close(fd);
    return;
  }
  SSL_set_accept_state(ssl);
  c->fd = fd;
  c->ssl = ssl;
  echo_watch(fd, c, EPOLL_CTL_ADD, EPOLLIN);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: tls_echo PORT CERT KEY   (listens on 127.0.0.1)\n");
    return 2;
  }
  if (setup_tls(argv[2], argv[3]) < 0)
    return 1;
  static const echo_handlers_t h = {on_accept, on_readable, on_writable,
                                    conn_close};
  return echo_serve("tls_echo", argv[1], &h);
}
