/* loadgen_tls: the TLS client transport of bench/loadgen (OpenSSL). */
#ifndef LOADGEN_TLS_H
#define LOADGEN_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct ssl_st;

/* What a call could not finish without: the caller waits for the socket
 * to be readable (WANT_READ) or writable (WANT_WRITE) and calls again. */
enum {
  LGTLS_WANT_READ = -1,
  LGTLS_WANT_WRITE = -2,
  LGTLS_EOF = -3,
  LGTLS_ERROR = -4
};

/* Creates the one client context; returns 0, or -1 with a message on
 * stderr. */
int lgtls_init(void);

/* A client session on a connected non-blocking socket (the handshake has
 * not started); NULL when OpenSSL cannot make one. */
struct ssl_st *lgtls_new(int fd);

/* Drives the handshake: 0 once it is done, or a negative LGTLS_ code. */
int lgtls_handshake(struct ssl_st *ssl);

/* Reads decrypted bytes into buf until it is full or nothing more is
 * available: SSL_read returns one record at a time, and bytes OpenSSL holds
 * would not wake epoll again. Returns the count (> 0), or a negative LGTLS_
 * code when nothing was read. */
ssize_t lgtls_read(struct ssl_st *ssl, unsigned char *buf, size_t cap);

/* Whether the peer's close_notify (or the end of TCP) has been read. A
 * short lgtls_read may have stopped there with bytes to return, and a peer
 * that waits for our close_notify before closing TCP would never wake
 * epoll again: the caller reads once more. */
int lgtls_ended(struct ssl_st *ssl);

/* Writes up to n bytes (n > 0); returns how many, or a negative LGTLS_
 * code. A retry after WANT_ may pass a moved or longer buffer that starts
 * with the same bytes. */
ssize_t lgtls_write(struct ssl_st *ssl, const unsigned char *p, size_t n);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384": what the handshake chose (a static
 * buffer, valid until the next call). */
const char *lgtls_describe(struct ssl_st *ssl);

/* Frees the session. Our close_notify is sent only in answer to the
 * peer's (servers on asyncio wait for it before closing TCP); otherwise the
 * socket is closed at once, as the plain transport does. */
void lgtls_free(struct ssl_st *ssl);

#endif
