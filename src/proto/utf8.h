/* Incremental UTF-8 validation (RFC 3629) for text messages and close
 * reasons: bytes may arrive split anywhere, and a bad byte is caught at once.
 */
#ifndef WSL_UTF8_H
#define WSL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* States of the validator. Any other value means "inside a multi-byte
 * sequence": valid so far, but not yet complete. */
#define WSL_UTF8_ACCEPT 0
#define WSL_UTF8_REJECT 1 /* sticky: once rejected, always rejected */

/* Feeds n more bytes to a validation that is in `state` (start with
 * WSL_UTF8_ACCEPT) and returns the new state. Rejects as soon as no
 * continuation could make the bytes valid: C0, C1 and F5..FF at once; E0
 * 80..9F (overlong), ED A0..BF (surrogates), F0 80..8F (overlong) and F4
 * 90..BF (above U+10FFFF) at the second byte. The whole text is valid iff the
 * final state is WSL_UTF8_ACCEPT. */
uint32_t wsl_utf8_feed(uint32_t state, const uint8_t *s, size_t n);

/* 1 if s[0..n) is complete, valid UTF-8; else 0. */
int wsl_utf8_valid(const uint8_t *s, size_t n);

#endif
