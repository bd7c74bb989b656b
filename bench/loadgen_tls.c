/* loadgen_tls: the TLS client transport of bench/loadgen (OpenSSL). */
#include "loadgen_tls.h"

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static SSL_CTX *ctx;

int lgtls_init(void) {
  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    ERR_print_errors_fp(stderr);
    return -1;
  }
  /* The servers are ours, on loopback, with throwaway self-signed
   * certificates: nothing is verified, since what is measured is the cost
   * of the encryption, not trust. The versions and cipher suites are
   * OpenSSL's defaults, so TLS 1.3 wherever the server offers it. */
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  /* Every connection makes a full handshake: sessions are not resumed. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  /* The output queue may move (realloc) and grow between a write that must
   * wait and its retry, and a partial write is fine: loadgen keeps the
   * rest queued, as it does with write(2). */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  /* Read what the socket holds in one read(2), not a record header and
   * then its body: lgtls_read drains OpenSSL's buffer anyway. */
  SSL_CTX_set_read_ahead(ctx, 1);
  /* A server closes TCP without close_notify (the WebSocket close frame
   * is the real end): that is the end of the stream, not an error. */
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  return 0;
}

SSL *lgtls_new(int fd) {
  SSL *ssl = SSL_new(ctx);
  if (!ssl)
    return NULL;
  if (!SSL_set_fd(ssl, fd)) {
    SSL_free(ssl);
    return NULL;
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

/* The LGTLS_ code for a call that returned ret. The error queue is left
 * empty: a stale entry would make the next SSL_get_error say SSL_ERROR_SSL
 * for another connection. */
static int status(SSL *ssl, int ret) {
  switch (SSL_get_error(ssl, ret)) {
  case SSL_ERROR_WANT_READ:
    return LGTLS_WANT_READ;
  case SSL_ERROR_WANT_WRITE:
    return LGTLS_WANT_WRITE;
  case SSL_ERROR_ZERO_RETURN:
    return LGTLS_EOF;
  default:
    ERR_clear_error();
    return LGTLS_ERROR;
  }
}

int lgtls_handshake(SSL *ssl) {
  int r = SSL_do_handshake(ssl);
  return r == 1 ? 0 : status(ssl, r);
}

ssize_t lgtls_read(SSL *ssl, unsigned char *buf, size_t cap) {
  size_t got = 0, n;
  while (got < cap) {
    if (!SSL_read_ex(ssl, buf + got, cap - got, &n)) {
      int code = status(ssl, 0);
      return got > 0 ? (ssize_t)got : code;
    }
    got += n;
  }
  return (ssize_t)got;
}

int lgtls_ended(SSL *ssl) {
  return (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
}

ssize_t lgtls_write(SSL *ssl, const unsigned char *p, size_t n) {
  size_t done;
  if (!SSL_write_ex(ssl, p, n, &done))
    return status(ssl, 0);
  return (ssize_t)done;
}

const char *lgtls_describe(SSL *ssl) {
  static char s[96];
  snprintf(s, sizeof s, "%s/%s", SSL_get_version(ssl),
           SSL_get_cipher_name(ssl));
  return s;
}

void lgtls_free(SSL *ssl) {
  if (lgtls_ended(ssl))
    SSL_shutdown(ssl);
  ERR_clear_error();
  SSL_free(ssl);
}
