/* Close frame payloads: status code rules (RFC 6455 §7.4), parsing and
 * encoding with a UTF-8 reason (§5.5.1). */
#include "proto/close.h"

#include <string.h>

#include "proto/utf8.h"

/* A control frame's payload is at most 125 bytes (§5.5): the code and 123
 * bytes of reason. */
#define PAYLOAD_MAX 125
#define REASON_MAX (PAYLOAD_MAX - 2)

int wsl_close_code_valid(int code) {
  /* §7.4.1: 1004 is reserved, and 1005, 1006 and 1015 describe a close
   * locally and must never be sent. 1012-1014 are registered with IANA. 0-999
   * and 1016-2999 are unused or kept for the protocol; 5000 and up are not
   * codes at all. */
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

int wsl_close_parse(const uint8_t *payload, size_t len, int *code,
                    const uint8_t **reason, size_t *reason_len) {
  static const uint8_t none[1] = {0};
  int c = 0;
  const uint8_t *r = none;
  size_t rlen = 0;
  int ret = 0;
  if (len == 0) {
    c = WSL_CLOSE_NO_STATUS;
  } else if (len == 1 || len > PAYLOAD_MAX) {
    ret = WSL_CLOSE_PROTOCOL_ERROR;
  } else {
    c = payload[0] << 8 | payload[1];
    r = payload + 2;
    rlen = len - 2;
    if (!wsl_close_code_valid(c))
      ret = WSL_CLOSE_PROTOCOL_ERROR;
    else if (!wsl_utf8_valid(r, rlen))
      ret = WSL_CLOSE_INVALID_DATA;
  }
  if (code)
    *code = c;
  if (reason)
    *reason = r;
  if (reason_len)
    *reason_len = rlen;
  return ret;
}

size_t wsl_close_encode(uint8_t out[125], int code, const char *reason,
                        size_t reason_len) {
  const uint8_t *r = (const uint8_t *)reason;
  if (code == 0 || code == WSL_CLOSE_NO_STATUS)
    return 0;
  if (r == NULL)
    reason_len = 0;
  if (reason_len > REASON_MAX) {
    /* Back up to the start of the character that would be cut in two. */
    reason_len = REASON_MAX;
    while (reason_len > 0 && (r[reason_len] & 0xC0) == 0x80)
      reason_len--;
  }
  out[0] = (uint8_t)(code >> 8);
  out[1] = (uint8_t)code;
  if (reason_len)
    memcpy(out + 2, r, reason_len);
  return 2 + reason_len;
}
