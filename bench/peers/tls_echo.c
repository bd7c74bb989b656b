/* tls_echo: the floor for TLS, a raw TLS echo (epoll, one thread, OpenSSL).
 * Decrypted bytes go back as they came, encrypted again; WebSocket framing
 * is not looked at. tcp_echo with a TLS layer, nothing else. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* One connection: what could not be written yet, and whether a read waits
 * for writability (the handshake, or tickets sent on the first read, may
 * have to write). While something is pending, the connection is not read
 * (backpressure, as an echo must). */
typedef struct {
  int fd;
  SSL *ssl;
  int read_wants_write;
  char *pend;
  size_t pend_len, pend_off;
} conn_t;

static char buf[256 * 1024];
static int epfd;
static SSL_CTX *ctx;

static void conn_close(conn_t *c) {
  SSL_free(c->ssl);
  ERR_clear_error();
  close(c->fd);
  free(c->pend);
  free(c);
}

static void watch(conn_t *c, int op, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(epfd, op, c->fd, &ev);
}

/* Writes n bytes; keeps the rest for EPOLLOUT. Returns -1 on error. TLS
 * 1.3 has no renegotiation, so a write never waits for a read. */
static int echo(conn_t *c, const char *p, size_t n) {
  while (n > 0) {
    size_t w;
    if (!SSL_write_ex(c->ssl, p, n, &w)) {
      if (SSL_get_error(c->ssl, 0) != SSL_ERROR_WANT_WRITE)
        return -1;
      c->pend = malloc(n);
      if (!c->pend)
        return -1;
      memcpy(c->pend, p, n);
      c->pend_len = n;
      c->pend_off = 0;
      watch(c, EPOLL_CTL_MOD, EPOLLOUT);
      return 0;
    }
    p += w;
    n -= w;
  }
  return 0;
}

/* Reads until OpenSSL holds nothing more: bytes it has taken from the
 * socket would not wake epoll again. */
static int on_readable(conn_t *c) {
  int rounds = 0;
  c->read_wants_write = 0;
  while (!c->pend && (rounds++ < 16 || SSL_has_pending(c->ssl))) {
    size_t n;
    if (!SSL_read_ex(c->ssl, buf, sizeof buf, &n)) {
      switch (SSL_get_error(c->ssl, 0)) {
      case SSL_ERROR_WANT_READ:
        return 0;
      case SSL_ERROR_WANT_WRITE:
        c->read_wants_write = 1;
        watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
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

static int on_writable(conn_t *c) {
  if (c->read_wants_write) {
    watch(c, EPOLL_CTL_MOD, EPOLLIN);
    return on_readable(c);
  }
  while (c->pend_off < c->pend_len) {
    size_t w;
    if (!SSL_write_ex(c->ssl, c->pend + c->pend_off, c->pend_len - c->pend_off,
                      &w))
      return SSL_get_error(c->ssl, 0) == SSL_ERROR_WANT_WRITE ? 0 : -1;
    c->pend_off += w;
  }
  free(c->pend);
  c->pend = NULL;
  watch(c, EPOLL_CTL_MOD, EPOLLIN);
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

static void on_accept(int lfd) {
  int fd, one = 1;
  while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_t *c = calloc(1, sizeof *c);
    SSL *ssl = SSL_new(ctx);
    if (!c || !ssl || !SSL_set_fd(ssl, fd)) {
      SSL_free(ssl);
      free(c);
      close(fd);
      continue;
    }
    SSL_set_accept_state(ssl);
    c->fd = fd;
    c->ssl = ssl;
    watch(c, EPOLL_CTL_ADD, EPOLLIN);
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: tls_echo PORT CERT KEY   (listens on 127.0.0.1)\n");
    return 2;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  if (setup_tls(argv[2], argv[3]) < 0)
    return 1;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
    perror("tls_echo: bind/listen");
    return 1;
  }
  epfd = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(epfd, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c) {
        on_accept(lfd);
        continue;
      }
      int r = 0;
      if (evs[i].events & EPOLLOUT)
        r = on_writable(c);
      if (r == 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        r = on_readable(c);
      if (r < 0)
        conn_close(c);
    }
  }
}
