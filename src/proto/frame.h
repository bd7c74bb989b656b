/* RFC 6455 §5 frame codec: a push parser that resumes at any byte and
 * unmasks payload in place, a header encoder, and masking. No I/O. */
#ifndef WSL_FRAME_H
#define WSL_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
  WSL_OP_CONT = 0x0,
  WSL_OP_TEXT = 0x1,
  WSL_OP_BINARY = 0x2,
  WSL_OP_CLOSE = 0x8,
  WSL_OP_PING = 0x9,
  WSL_OP_PONG = 0xA
};

/* Control frames are the opcodes with the high bit set (§5.5). */
#define WSL_OP_IS_CONTROL(op) (((op)&0x8) != 0)

/* RSV bits are given as they sit in byte 0. */
#define WSL_RSV1 0x40
#define WSL_RSV2 0x20
#define WSL_RSV3 0x10

/* 2 bytes, 8 of extended length, 4 of masking key. */
#define WSL_FRAME_HEADER_MAX 14

/* The largest payload of a control frame (§5.5). */
#define WSL_FRAME_CONTROL_MAX 125

typedef enum { WSL_ROLE_SERVER, WSL_ROLE_CLIENT } wsl_role_t;

typedef enum {
  WSL_FRAME_NEED_MORE, /* every byte given was consumed; feed more */
  WSL_FRAME_HEADER,    /* ev->header describes a new frame */
  WSL_FRAME_PAYLOAD,   /* ev->data, ev->len: the next piece of the current
                          frame's payload, already unmasked in place in the
                          caller's buffer */
  WSL_FRAME_END,       /* the current frame is complete (ev->header is its
                          header again) */
  WSL_FRAME_WHOLE,     /* wsl_frame_parse_whole only: a whole frame,
                          ev->header with its payload in ev->data, ev->len
                          (unmasked in place); no END follows */
  WSL_FRAME_ERROR      /* ev->close_code (1002 protocol error, 1009 too big)
                          and ev->reason, a static string naming the rule */
} wsl_frame_event_kind_t;

/* Byte-sized fields: a copy of the current header lives in every open
 * connection's parser. */
typedef struct {
  uint64_t length;
  uint8_t mask[4];
  uint8_t fin;
  uint8_t rsv; /* byte0 & 0x70 */
  uint8_t opcode;
  uint8_t masked;
  uint8_t message_opcode; /* data frames: WSL_OP_TEXT/BINARY of the message
                             the frame belongs to (continuations inherit
                             it); 0 for control frames */
  uint8_t first;          /* a data frame that starts a message */
  uint8_t compressed;     /* the message this data frame belongs to had RSV1
                             on its first frame (continuations inherit it) */
} wsl_frame_header_t;

typedef struct {
  wsl_frame_event_kind_t kind;
  wsl_frame_header_t header; /* set for HEADER, PAYLOAD and END */
  uint8_t *data;
  size_t len;
  int close_code;
  const char *reason;
} wsl_frame_event_t;

/* The size limits a parser applies; 0 = none. */
typedef struct {
  uint64_t max_frame;   /* a data frame longer: 1009, reported at its header */
  uint64_t max_message; /* a data message whose frames add up to more: 1009,
                           reported at the header that passes it */
} wsl_frame_limits_t;

/* One lives in every open connection: small fields are byte-sized, and the
 * limits are the connection's options' (a pointer, not a copy). */
typedef struct {
  /* Settings: set after init, before parsing. */
  const wsl_frame_limits_t *limits; /* wsl_frame_parser_limit */
  uint8_t role;        /* wsl_role_t. SERVER: incoming frames must be
                          masked, else 1002. CLIENT: they must not be, else
                          1002. */
  uint8_t allowed_rsv; /* RSV bits a negotiated extension allows; only
                          WSL_RSV1 (permessage-deflate) is meaningful: RSV1
                          is then allowed on the first frame of a data
                          message only. Any other RSV bit set: 1002. */

  /* Private: the parser's state between calls. */
  uint8_t small_ok; /* the limits pass every frame under 126 bytes */
  uint8_t state;
  uint8_t hdr_len;
  uint8_t hdr_need;   /* 2 until the second byte tells the full size */
  uint8_t in_message; /* inside a fragmented data message */
  uint8_t msg_opcode; /* its opcode and compressed flag */
  uint8_t msg_compressed;
  uint8_t err; /* the error reported again after an ERROR (frame.c) */
  /* The header bytes are needed only until the header is complete, the
   * decoded header only from then on: they share the room. */
  union {
    uint8_t hdr[WSL_FRAME_HEADER_MAX]; /* header bytes collected so far */
    wsl_frame_header_t cur;
  };
  uint64_t pos;       /* payload bytes of cur delivered so far */
  uint64_t msg_bytes; /* its length so far, saturating */
} wsl_frame_parser_t;

/* Readies p for a new stream: no limits, no extension, the given role. */
void wsl_frame_parser_init(wsl_frame_parser_t *p, wsl_role_t role);

/* Applies limits (NULL: none), which must stay as they are for as long as
 * p uses them. */
void wsl_frame_parser_limit(wsl_frame_parser_t *p,
                            const wsl_frame_limits_t *limits);

/* Consumes bytes from buf[0..len) and reports exactly one event in *ev;
 * returns how many bytes it consumed (END may consume none). The caller
 * loops until the event is NEED_MORE (every byte then consumed) or ERROR:
 *
 *   do { n = wsl_frame_parse(p, buf, len, &ev); buf += n; len -= n;
 *        handle ev; } while (ev.kind != NEED_MORE && ev.kind != ERROR);
 *
 * Works for any split of the stream. PAYLOAD data points into buf and has
 * been unmasked there. After an ERROR every call reports the same ERROR.
 * Rules are those of RFC 6455 §5.2-5.5 (see frame.c). */
size_t wsl_frame_parse(wsl_frame_parser_t *p, uint8_t *buf, size_t len,
                       wsl_frame_event_t *ev);

/* The same, except that a frame whose header and payload are all in buf
 * comes as one WHOLE event rather than HEADER, PAYLOAD and END: one call
 * for a small frame instead of three (the common case, on every message's
 * path). Other frames come as wsl_frame_parse reports them. */
size_t wsl_frame_parse_whole(wsl_frame_parser_t *p, uint8_t *buf, size_t len,
                             wsl_frame_event_t *ev);

/* Writes a frame header with the minimal length encoding; returns its size
 * (2 to 14). rsv is given as in byte 0; mask is 4 bytes, or NULL for an
 * unmasked frame. */
size_t wsl_frame_header_encode(uint8_t out[WSL_FRAME_HEADER_MAX], int fin,
                               int rsv, int opcode, uint64_t length,
                               const uint8_t *mask);

/* XORs data[0..len) in place with the masking key (§5.3); offset is the
 * position of data[0] within the payload, so a payload can be masked in
 * pieces. */
void wsl_frame_mask(uint8_t *data, size_t len, const uint8_t mask[4],
                    size_t offset);

#endif
