/* Close frame payloads (RFC 6455 §5.5.1, §7.4): which status codes a peer
 * may send, parsing a received payload, and encoding one to send. */
#ifndef WSL_CLOSE_H
#define WSL_CLOSE_H

#include <stddef.h>
#include <stdint.h>

#define WSL_CLOSE_NORMAL 1000
#define WSL_CLOSE_GOING_AWAY 1001
#define WSL_CLOSE_PROTOCOL_ERROR 1002
#define WSL_CLOSE_UNSUPPORTED 1003
#define WSL_CLOSE_NO_STATUS 1005 /* never sent: "the payload had no code" */
#define WSL_CLOSE_ABNORMAL 1006  /* never sent: "closed without a frame" */
#define WSL_CLOSE_INVALID_DATA 1007
#define WSL_CLOSE_POLICY 1008
#define WSL_CLOSE_TOO_BIG 1009
#define WSL_CLOSE_EXTENSION 1010
#define WSL_CLOSE_INTERNAL_ERROR 1011

/* 1 if a peer may send `code` in a close frame: 1000-1003, 1007-1014 (those
 * defined or registered with IANA) and 3000-4999 (libraries, applications);
 * else 0. */
int wsl_close_code_valid(int code);

/* Checks a received close payload. Returns 0 when it is acceptable, with
 * *code (1005 when the payload is empty) and the reason bytes (never NULL;
 * empty when there is none); else the close code to answer with: 1002 for a
 * 1-byte payload, one over 125 bytes or a code a peer may not send, 1007 for
 * a reason that is not valid UTF-8. On failure *code is what was received
 * (0 if nothing was), for logging. Any output pointer may be NULL. */
int wsl_close_parse(const uint8_t *payload, size_t len, int *code,
                    const uint8_t **reason, size_t *reason_len);

/* Writes a close payload: the 2-byte code, then the reason (UTF-8; NULL is
 * taken as empty), cut at a character boundary to fit in 123 bytes. Code 0
 * or 1005 gives an empty payload. Returns the payload size (0 to 125). */
size_t wsl_close_encode(uint8_t out[125], int code, const char *reason,
                        size_t reason_len);

#endif
