/* TLS for connections (OpenSSL over memory BIOs): the connection feeds the
 * ciphertext it reads and gets plaintext back; plaintext it writes comes out
 * as ciphertext to send. No sockets here: conn.c moves the bytes. */
#ifndef WSL_TLS_H
#define WSL_TLS_H

#include <stddef.h>

#include "proto/buf.h"

typedef struct wsl_tls_ctx wsl_tls_ctx_t;
typedef struct wsl_tls wsl_tls_t;

/* Server contexts: cert is a PEM file holding the certificate (and its
 * chain, and the key when key is NULL, as Woketo's certFile); chain an
 * optional PEM file of intermediates. TLS 1.2 and 1.3, ALPN http/1.1.
 * Returns NULL with err filled (which file, what OpenSSL said). */
wsl_tls_ctx_t *wsl_tls_server_ctx_new(const char *cert, const char *key,
                                      const char *chain, char *err,
                                      size_t errlen);
/* Another certificate, served to clients asking for name by SNI. */
int wsl_tls_ctx_add_name(wsl_tls_ctx_t *ctx, const char *name,
                         const char *cert, const char *key, char *err,
                         size_t errlen);
/* Client contexts: verify the peer against the system's CAs (or ca_file)
 * unless insecure. */
wsl_tls_ctx_t *wsl_tls_client_ctx_new(const char *ca_file, int insecure,
                                      char *err, size_t errlen);
/* Contexts are reference-counted (as OpenSSL's SSL_CTX): a new one holds
 * one reference, each session made from it another. wsl_tls_ctx_ref takes
 * a reference and returns ctx; wsl_tls_ctx_free drops one, freeing the
 * context with the last. So a listener may drop its context for another
 * (renewed certificates) while its connections' sessions keep theirs. */
wsl_tls_ctx_t *wsl_tls_ctx_ref(wsl_tls_ctx_t *ctx);
void wsl_tls_ctx_free(wsl_tls_ctx_t *ctx);

/* A session, holding a reference to ctx until wsl_tls_free; server_name
 * (client side) is sent by SNI and verified. */
wsl_tls_t *wsl_tls_new(wsl_tls_ctx_t *ctx, int server,
                       const char *server_name);
void wsl_tls_free(wsl_tls_t *t);

/* Feeds ciphertext read from the socket and moves the handshake on;
 * ciphertext to send (handshake messages, plaintext held until the
 * handshake was done) is appended to out, which the caller must send before
 * anything it writes later. Returns 0, or -1 with *err naming what went
 * wrong (bad TLS bytes, plain HTTP on the TLS port, a failed handshake). */
int wsl_tls_feed(wsl_tls_t *t, const char *data, size_t len, wsl_buf_t *out,
                 const char **err);
/* Decrypts the next plaintext into buf: returns its length, 0 when more
 * ciphertext is needed, or -1 at the end (*err NULL after the peer's
 * close_notify, else what went wrong). Anything OpenSSL must send goes to
 * out, to be sent before the plaintext is acted on. */
int wsl_tls_read(wsl_tls_t *t, char *buf, size_t cap, wsl_buf_t *out,
                 const char **err);
/* Client side: the ClientHello, appended to out. */
int wsl_tls_start(wsl_tls_t *t, wsl_buf_t *out);
/* Encrypts plaintext, appending ciphertext to out. Before the handshake
 * has finished the plaintext is held and sent once it has. Returns 0 or
 * -1 (memory, or a session that failed). */
int wsl_tls_write(wsl_tls_t *t, const char *data, size_t len, wsl_buf_t *out);
/* A close_notify alert, appended to out. */
void wsl_tls_close(wsl_tls_t *t, wsl_buf_t *out);
int wsl_tls_handshake_done(const wsl_tls_t *t);
/* "TLSv1.3", the cipher, the ALPN choice: for logs. */
const char *wsl_tls_version(const wsl_tls_t *t);

#endif
