/* TLS over memory BIOs (OpenSSL): no sockets here, only bytes in and out. */
#include "net/tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

typedef struct sni_name {
  char *name;
  SSL_CTX *ctx;
  struct sni_name *next;
} sni_name_t;

/* Reference-counted: its owner (a listener, the client cache) holds one
 * reference and each session another, since the SNI callback of a handshake
 * under way reads names through the session's context. A context and its
 * sessions belong to one loop's thread. */
struct wsl_tls_ctx {
  SSL_CTX *ctx;
  sni_name_t *names; /* extra certificates by SNI name */
  int refs;
};

struct wsl_tls {
  wsl_tls_ctx_t *ctx; /* a reference, dropped with the session */
  SSL *ssl;
  BIO *in;             /* ciphertext from the peer, for OpenSSL to read */
  BIO *out;            /* ciphertext OpenSSL wrote, for us to send */
  wsl_buf_t held;      /* plaintext written before the handshake finished */
  int failed;
  char reason[256];    /* the last failure, with OpenSSL's words */
};

/* Records why the session failed, with OpenSSL's reason, in t->reason. A
 * certificate the client could not verify also says why (the CA, the name,
 * the dates): OpenSSL's error alone says only "certificate verify failed". */
static const char *failure(wsl_tls_t *t, const char *what) {
  unsigned long e = ERR_get_error();
  long verify = SSL_get_verify_result(t->ssl);
  if (e) {
    char ossl[160];
    ERR_error_string_n(e, ossl, sizeof ossl);
    snprintf(t->reason, sizeof t->reason, "%s (%s%s%s)", what, ossl,
             verify == X509_V_OK ? "" : ": ",
             verify == X509_V_OK ? "" : X509_verify_cert_error_string(verify));
  } else {
    snprintf(t->reason, sizeof t->reason, "%s", what);
  }
  ERR_clear_error();
  t->failed = 1;
  return t->reason;
}

/* The last OpenSSL error as text, appended to what. */
static void fill_error(char *err, size_t errlen, const char *what,
                       const char *file) {
  unsigned long e = ERR_get_error();
  char reason[256] = "unknown error";
  if (e)
    ERR_error_string_n(e, reason, sizeof reason);
  snprintf(err, errlen, "%s %s: %s", what, file ? file : "", reason);
  ERR_clear_error();
}

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  static const unsigned char http11[] = "\x08http/1.1";
  (void)ssl;
  (void)arg;
  unsigned char *chosen;
  if (SSL_select_next_proto(&chosen, outlen, http11, sizeof http11 - 1, in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; /* no ALPN: fine, HTTP/1.1 anyway */
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *server_ssl_ctx(const char *cert, const char *key,
                               const char *chain, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    fill_error(err, errlen, "cannot create TLS context", NULL);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    fill_error(err, errlen, "cannot load certificate", cert);
    goto fail;
  }
  if (chain) {
    /* Intermediates from their own file. */
    FILE *f = fopen(chain, "r");
    X509 *x;
    if (f == NULL) {
      snprintf(err, errlen, "cannot open chain %s", chain);
      goto fail;
    }
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
      SSL_CTX_add_extra_chain_cert(ctx, x);
    fclose(f);
    ERR_clear_error();
  }
  const char *key_file = key ? key : cert;
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
    fill_error(err, errlen, "cannot load private key", key_file);
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    fill_error(err, errlen, "key does not match certificate", cert);
    goto fail;
  }
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

/* SNI: switch to the certificate registered for the name asked for. */
static int on_servername(SSL *ssl, int *alert, void *arg) {
  wsl_tls_ctx_t *ctx = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  (void)alert;
  if (name == NULL)
    return SSL_TLSEXT_ERR_NOACK;
  for (sni_name_t *n = ctx->names; n; n = n->next)
    if (strcasecmp(n->name, name) == 0) {
      SSL_set_SSL_CTX(ssl, n->ctx);
      return SSL_TLSEXT_ERR_OK;
    }
  return SSL_TLSEXT_ERR_NOACK;
}

wsl_tls_ctx_t *wsl_tls_server_ctx_new(const char *cert, const char *key,
                                      const char *chain, char *err,
                                      size_t errlen) {
  wsl_tls_ctx_t *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL)
    return NULL;
  ctx->refs = 1;
  ctx->ctx = server_ssl_ctx(cert, key, chain, err, errlen);
  if (ctx->ctx == NULL) {
    free(ctx);
    return NULL;
  }
  SSL_CTX_set_tlsext_servername_callback(ctx->ctx, on_servername);
  SSL_CTX_set_tlsext_servername_arg(ctx->ctx, ctx);
  return ctx;
}

int wsl_tls_ctx_add_name(wsl_tls_ctx_t *ctx, const char *name,
                         const char *cert, const char *key, char *err,
                         size_t errlen) {
  sni_name_t *n = calloc(1, sizeof *n);
  if (n == NULL)
    return -1;
  n->ctx = server_ssl_ctx(cert, key, NULL, err, errlen);
  n->name = strdup(name);
  if (n->ctx == NULL || n->name == NULL) {
    SSL_CTX_free(n->ctx);
    free(n->name);
    free(n);
    return -1;
  }
  n->next = ctx->names;
  ctx->names = n;
  return 0;
}

wsl_tls_ctx_t *wsl_tls_client_ctx_new(const char *ca_file, int insecure,
                                      char *err, size_t errlen) {
  wsl_tls_ctx_t *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL)
    return NULL;
  ctx->refs = 1;
  ctx->ctx = SSL_CTX_new(TLS_client_method());
  if (ctx->ctx == NULL) {
    fill_error(err, errlen, "cannot create TLS context", NULL);
    free(ctx);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx->ctx, TLS1_2_VERSION);
  SSL_CTX_set_alpn_protos(ctx->ctx, (const unsigned char *)"\x08http/1.1", 9);
  if (insecure) {
    SSL_CTX_set_verify(ctx->ctx, SSL_VERIFY_NONE, NULL);
  } else {
    SSL_CTX_set_verify(ctx->ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx->ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx->ctx);
    if (ok != 1) {
      fill_error(err, errlen, "cannot load CA certificates", ca_file);
      wsl_tls_ctx_free(ctx);
      return NULL;
    }
  }
  return ctx;
}

wsl_tls_ctx_t *wsl_tls_ctx_ref(wsl_tls_ctx_t *ctx) {
  ctx->refs++;
  return ctx;
}

void wsl_tls_ctx_free(wsl_tls_ctx_t *ctx) {
  if (ctx == NULL || --ctx->refs > 0)
    return;
  while (ctx->names) {
    sni_name_t *n = ctx->names;
    ctx->names = n->next;
    SSL_CTX_free(n->ctx);
    free(n->name);
    free(n);
  }
  SSL_CTX_free(ctx->ctx);
  free(ctx);
}

wsl_tls_t *wsl_tls_new(wsl_tls_ctx_t *ctx, int server,
                       const char *server_name) {
  wsl_tls_t *t = calloc(1, sizeof *t);
  if (t == NULL)
    return NULL;
  t->ssl = SSL_new(ctx->ctx);
  t->in = BIO_new(BIO_s_mem());
  t->out = BIO_new(BIO_s_mem());
  if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
    BIO_free(t->in);
    BIO_free(t->out);
    SSL_free(t->ssl);
    free(t);
    return NULL;
  }
  t->ctx = wsl_tls_ctx_ref(ctx);
  /* An empty memory BIO means "try again later", not end of file. */
  BIO_set_mem_eof_return(t->in, -1);
  SSL_set_bio(t->ssl, t->in, t->out);
  if (server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    if (server_name) {
      /* An IP address is verified but not sent: SNI carries host names
       * only (RFC 6066, section 3). */
      unsigned char ip[16];
      if (inet_pton(AF_INET, server_name, ip) != 1 &&
          inet_pton(AF_INET6, server_name, ip) != 1)
        SSL_set_tlsext_host_name(t->ssl, server_name);
      SSL_set1_host(t->ssl, server_name);
    }
  }
  return t;
}

void wsl_tls_free(wsl_tls_t *t) {
  if (t == NULL)
    return;
  SSL_free(t->ssl); /* frees both BIOs */
  wsl_buf_free(&t->held);
  wsl_tls_ctx_free(t->ctx);
  free(t);
}

/* Moves what OpenSSL wrote into out. */
static int drain(wsl_tls_t *t, wsl_buf_t *out) {
  char chunk[16384];
  int n;
  while ((n = BIO_read(t->out, chunk, sizeof chunk)) > 0)
    if (wsl_buf_append(out, chunk, (size_t)n) != 0)
      return -1;
  return 0;
}

static int write_all(wsl_tls_t *t, const char *data, size_t len,
                     wsl_buf_t *out) {
  while (len > 0) {
    int chunk = len > 1 << 20 ? 1 << 20 : (int)len;
    int n = SSL_write(t->ssl, data, chunk);
    if (n <= 0) {
      t->failed = 1;
      ERR_clear_error();
      return -1;
    }
    data += n;
    len -= (size_t)n;
    if (drain(t, out) != 0)
      return -1;
  }
  return 0;
}

static const char *handshake_error(const char *data, size_t len) {
  /* A plain HTTP request where a ClientHello should be. */
  if (len >= 4 && (memcmp(data, "GET ", 4) == 0 ||
                   memcmp(data, "POST", 4) == 0 ||
                   memcmp(data, "HEAD", 4) == 0))
    return "plain HTTP on the TLS port";
  return "TLS handshake failed";
}

int wsl_tls_feed(wsl_tls_t *t, const char *data, size_t len, wsl_buf_t *out,
                 const char **err) {
  if (t->failed) {
    *err = t->reason[0] ? t->reason : "TLS session failed";
    return -1;
  }
  if (len && BIO_write(t->in, data, (int)len) != (int)len) {
    *err = "out of memory";
    return -1;
  }
  if (SSL_is_init_finished(t->ssl))
    return 0;
  int r = SSL_do_handshake(t->ssl);
  int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
  drain(t, out);
  if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ &&
      e != SSL_ERROR_WANT_WRITE) {
    *err = failure(t, handshake_error(data, len));
    return -1;
  }
  if (r == 1 && t->held.len) {
    wsl_buf_t held = t->held;
    t->held = (wsl_buf_t)WSL_BUF_INIT;
    int w = write_all(t, held.data, held.len, out);
    wsl_buf_free(&held);
    if (w != 0) {
      *err = failure(t, "TLS write failed");
      return -1;
    }
  }
  return 0;
}

int wsl_tls_read(wsl_tls_t *t, char *buf, size_t cap, wsl_buf_t *out,
                 const char **err) {
  if (!SSL_is_init_finished(t->ssl))
    return 0;
  int n = SSL_read(t->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
  int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, n);
  drain(t, out);
  if (n > 0)
    return n;
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return 0;
  if (e == SSL_ERROR_ZERO_RETURN) {
    *err = NULL; /* close_notify: an orderly end */
    ERR_clear_error();
    return -1;
  }
  *err = failure(t, e == SSL_ERROR_SYSCALL ? "TLS stream ended"
                                           : "bad TLS record");
  return -1;
}

int wsl_tls_start(wsl_tls_t *t, wsl_buf_t *out) {
  int r = SSL_do_handshake(t->ssl);
  int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
  drain(t, out);
  if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) {
    t->failed = 1;
    ERR_clear_error();
    return -1;
  }
  return 0;
}

int wsl_tls_write(wsl_tls_t *t, const char *data, size_t len, wsl_buf_t *out) {
  if (t->failed)
    return -1;
  if (!SSL_is_init_finished(t->ssl))
    return wsl_buf_append(&t->held, data, len);
  return write_all(t, data, len, out);
}

void wsl_tls_close(wsl_tls_t *t, wsl_buf_t *out) {
  if (t->failed || !SSL_is_init_finished(t->ssl))
    return;
  SSL_shutdown(t->ssl);
  drain(t, out);
  ERR_clear_error();
}

int wsl_tls_handshake_done(const wsl_tls_t *t) {
  return SSL_is_init_finished(t->ssl);
}

const char *wsl_tls_version(const wsl_tls_t *t) {
  return SSL_get_version(t->ssl);
}
