/* loadgen_frame: WebSocket frames as bench/loadgen writes them (masked,
 * RFC 6455 §5.3) and reads them back: the parser, permessage-deflate's
 * inflate (RFC 7692), the check of each echo against what was sent, and
 * what each mode does when a message or a control frame arrives. */
#ifndef LOADGEN_FRAME_H
#define LOADGEN_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "loadgen_conn.h"

/* Queues one masked frame with the n bytes at p (not flushed). */
void lg_put_frame(lg_conn_t *c, int op, int rsv1, const unsigned char *p,
                  size_t n);

/* Queues the connection's next payload variant (compressed if deflate was
 * negotiated) and remembers it and its send time t for the echo. */
void lg_send_message(lg_conn_t *c, uint64_t t);

/* Feeds n bytes received at time t on an open connection to the parser.
 * Returns -1 on a protocol error or a wrong echo (the caller kills c); the
 * handlers it calls may kill c themselves, which ends the loop. In raw mode
 * the masked frames that come back are unmasked in place, so p is written. */
int lg_on_frames(lg_conn_t *c, const unsigned char *p, size_t n, uint64_t t);

/* Handshake mode: the session on c is over (the server closed TCP after
 * the close frames): counts it and its duration, and kills c as no error. */
void lg_session_done(lg_conn_t *c, uint64_t t);

#endif
