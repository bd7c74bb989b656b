/* The WebSocket opening handshake (RFC 6455 §4): checking and answering an
 * upgrade request on the server side, building and checking one on the
 * client side. */
#ifndef WSL_HANDSHAKE_H
#define WSL_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/http.h"

#define WSL_ACCEPT_LEN 28
#define WSL_KEY_LEN 24

/* Fetches OpenSSL's SHA-1 once, for every handshake after: called at start,
 * before any thread serves (without it each digest fetches it again). */
void wsl_handshake_init(void);

/* base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), NUL-terminated
 * (§4.2.2). Returns 0, or -1 if OpenSSL failed (out is then ""). */
int wsl_handshake_accept(const char *key, size_t key_len,
                         char out[WSL_ACCEPT_LEN + 1]);

/* Server side, §4.2.1. Returns 0 when req is a valid opening handshake, else
 * the HTTP status to refuse with, *error (if error is not NULL) a static
 * string naming the cause:
 *   405 the method is not GET (the caller sends "Allow: GET");
 *   400 HTTP version below 1.1; Host missing or repeated; no Upgrade field
 *       holding the token "websocket"; no Connection field holding the token
 *       "upgrade"; Sec-WebSocket-Key missing, repeated, or not base64 of
 *       exactly 16 bytes;
 *   426 Sec-WebSocket-Version missing, repeated or not exactly "13" (the
 *       caller sends "Sec-WebSocket-Version: 13").
 * The checks run in that order; the first that fails decides. */
int wsl_handshake_check(const wsl_http_request_t *req, const char **error);

/* Appends "HTTP/1.1 101 Switching Protocols", Upgrade: websocket, Connection:
 * Upgrade, Sec-WebSocket-Accept, Sec-WebSocket-Protocol and
 * Sec-WebSocket-Extensions if not NULL, then Date and Server, WITHOUT the
 * final blank line: the caller may add fields, then calls
 * wsl_http_response_end. Returns 0, or -1 leaving out as it was (no memory,
 * or a value holding CR, LF or NUL). */
int wsl_handshake_response(wsl_buf_t *out, const char *accept,
                           const char *protocol, const char *extensions);

/* Client side. The key is base64 of 16 random bytes, which the caller takes
 * from RAND_bytes (§4.1 wants them unpredictable): 24 chars and a NUL.
 * Returns 0. */
int wsl_handshake_client_key(char out[WSL_KEY_LEN + 1],
                             const uint8_t random16[16]);

/* Appends "GET <path> HTTP/1.1", Host, Upgrade: websocket, Connection:
 * Upgrade, Sec-WebSocket-Key, Sec-WebSocket-Version: 13 and, if protocols is
 * not NULL, Sec-WebSocket-Protocol (a comma list), WITHOUT the final blank
 * line: the caller may add fields, then calls wsl_http_response_end. path
 * NULL or "" means "/". Returns 0, or -1 leaving out as it was (no memory,
 * a path that is not a request target (spaces, controls), or a value holding
 * CR, LF or NUL). */
int wsl_handshake_client_request(wsl_buf_t *out, const char *host_header,
                                 const char *path, const char *key,
                                 const char *protocols);

/* Client side, §4.1: 0 when resp is status 101 with Upgrade: websocket and
 * Connection: upgrade (tokens, case-insensitive), one Sec-WebSocket-Accept
 * equal to the accept of key, a Sec-WebSocket-Protocol only if protocols were
 * offered and then exactly one of them, and no Sec-WebSocket-Extensions
 * unless extensions_offered (then checking them is the caller's, who knows
 * what it offered). Else -1, with a message naming the failure written to
 * errbuf (NUL-terminated, cut to errlen; errbuf may be NULL), e.g.
 * "unexpected status 403". */
int wsl_handshake_client_check(const wsl_http_request_t *resp, const char *key,
                               const char *offered_protocols,
                               int extensions_offered, char *errbuf,
                               size_t errlen);

#endif
