/* RFC 7692 permessage-deflate: negotiating the extension (server and client
 * side), compressing a message, and inflating one with a bound on its size.
 * No I/O; zlib does the compression itself. */
#ifndef WSL_DEFLATE_H
#define WSL_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"

/* What was agreed, with the RFC's meaning of each name: server_* describe the
 * server's deflater (the client's inflater), client_* the client's deflater
 * (the server's inflater). So a server builds its deflater from server_* and
 * its inflater from client_*; a client does the reverse.
 *
 * The window of a deflater of ours is never 8: zlib cannot write raw deflate
 * with a 256-byte window, so an agreement that would need it is not made
 * (the server declines that offer; the client fails the response). The
 * window of the peer's deflater may be 8: wsl_inflater_new inflates that
 * with a 9-bit window, which is always safe. */
typedef struct {
  int server_no_context_takeover;
  int client_no_context_takeover;
  int server_max_window_bits; /* 8..15 */
  int client_max_window_bits; /* 8..15 */
} wsl_deflate_params_t;

/* What one side wants. Values out of range are clamped into it. */
typedef struct {
  int level;       /* zlib level 0..9, or -1 (Z_DEFAULT_COMPRESSION, 6) */
  int mem_level;   /* 1..9 */
  int window_bits; /* 9..15: the largest window our deflater may use */
  /* 9..15: the largest window we ask the peer's deflater to use, when the
   * negotiation lets us choose it (server: client_max_window_bits, if the
   * client offered that parameter; client: server_max_window_bits in the
   * offer). Below 15 it saves the memory of our inflater. */
  int peer_window_bits;
  /* Server: always include server_no_context_takeover in the response
   * (§7.1.1.1 allows it unasked), so our deflater holds nothing between
   * messages (wsl_deflater_release, or one shared deflater). Client: ask the
   * server for it, so our inflater holds nothing between messages. */
  int server_no_context_takeover;
  /* Server: include client_no_context_takeover in the response (allowed
   * unasked, §7.1.1.2), so our inflater holds nothing between messages.
   * Client: say in the offer that our deflater will not take over context,
   * and do so. */
  int client_no_context_takeover;
  size_t threshold; /* messages shorter are sent uncompressed (the caller's
                       rule; not used here) */
} wsl_deflate_config_t;

/* The defaults of a context kept between messages (no_context_takeover
 * false), which a connection holds for its life: a 4 KiB window and memory
 * level 5 keep zlib's state of both directions near 50 KB. */
#define WSL_DEFLATE_KEPT_WINDOW_BITS 12
#define WSL_DEFLATE_KEPT_MEM_LEVEL 5
/* The zlib level of a deflater that keeps no context (lua/conn.c). */
#define WSL_DEFLATE_SHARED_LEVEL 1

/* Level -1 (zlib's default, 6), mem_level 8, both windows 15, no flags,
 * threshold 0. */
void wsl_deflate_config_default(wsl_deflate_config_t *c);

/* Server side, RFC 7692 §5 and §7. header is the Sec-WebSocket-Extensions
 * value (several header lines joined with ", "), len its length; cfg NULL
 * means the defaults. The offers are tried in order; the first
 * permessage-deflate offer we can accept wins: returns 1, fills *agreed and
 * appends the response value to out, e.g. "permessage-deflate;
 * server_no_context_takeover; client_max_window_bits=12". Returns 0 when no
 * offer is acceptable (answer without the extension: never an error status)
 * and -1 only when out could not grow (out is then as it was).
 *
 * An offer is not acceptable, and the next is tried, if it is malformed or
 * has an unknown, repeated or misused parameter, or a window size that is
 * not 8..15 written without leading zeros (a quoted value such as "10" is
 * accepted, §7.1), or if it asks for server_max_window_bits=8 (or a config
 * window and offer that together come to 8): zlib cannot honour it.
 *
 * The response: server_no_context_takeover if offered or configured;
 * client_no_context_takeover likewise (an offered one is the client's hint,
 * and confirming it lets our inflater reset); server_max_window_bits=N if
 * offered or if our window is below 15, N = min(offer, cfg->window_bits);
 * client_max_window_bits=M only if the client offered that parameter and M =
 * min(its value or 15, cfg->peer_window_bits) is below 15. */
int wsl_deflate_negotiate(const char *header, size_t len,
                          const wsl_deflate_config_t *cfg,
                          wsl_deflate_params_t *agreed, wsl_buf_t *out);

/* Client side: appends our one offer to out, e.g. "permessage-deflate;
 * client_max_window_bits" (cfg NULL: the defaults). It always includes
 * client_max_window_bits, with cfg->window_bits as its value when that is
 * below 15; server_max_window_bits=cfg->peer_window_bits when that is below
 * 15; the no_context_takeover flags as configured. Returns 0, or -1 (no
 * memory, out as it was). */
int wsl_deflate_client_offer(wsl_buf_t *out, const wsl_deflate_config_t *cfg);

/* Client side: checks the server's Sec-WebSocket-Extensions value against
 * the offer that cfg made (call it only when the response has that field).
 * Returns 0 with *agreed filled, or -1 with a reason written to err
 * (NUL-terminated, cut to errlen; err may be NULL), and the connection then
 * fails (1010, or as the caller decides): more or fewer than one extension,
 * not permessage-deflate, a malformed value, an unknown, repeated or misused
 * parameter, a bad window size, client_max_window_bits without a value (our
 * offer always has that parameter, so the server may always answer it),
 * server_max_window_bits missing or above what was offered,
 * server_no_context_takeover missing when offered, or a client window of 8,
 * which zlib cannot deflate with. client_max_window_bits in *agreed is the
 * window our deflater is to use: the smaller of the server's answer and
 * cfg->window_bits. */
int wsl_deflate_client_accept(const char *header, size_t len,
                              const wsl_deflate_config_t *cfg,
                              wsl_deflate_params_t *agreed, char *err,
                              size_t errlen);

/* Compressing whole messages (§7.2.1): raw deflate, a sync flush, the
 * trailing 00 00 ff ff removed. An empty message comes out as the single
 * byte 00 (§7.2.3.6). With no_context_takeover the stream is reset after each
 * message, so one deflater may serve many connections in turn (one per
 * thread and window size, say). Zlib's state is allocated at the first
 * message, not by wsl_deflater_new. */
typedef struct wsl_deflater wsl_deflater_t;

/* level -1..9, mem_level 1..9, window_bits 9..15; NULL when one is out of
 * range or memory ran out. */
wsl_deflater_t *wsl_deflater_new(int level, int mem_level, int window_bits,
                                 int no_context_takeover);

/* Appends the compressed payload of the message in[0..len) to out. Returns
 * 0, or -1 when memory ran out: out is then as it was, and the deflater has
 * been reset, which the peer's inflater tolerates (it only loses what the
 * window could have shared), so the deflater stays usable. */
int wsl_deflater_compress(wsl_deflater_t *d, const uint8_t *in, size_t len,
                          wsl_buf_t *out);

/* With no_context_takeover: frees zlib's state (about 1 << (window_bits + 2)
 * plus 1 << (mem_level + 9) bytes, and a few KiB) until the next message
 * needs it again, so an idle connection costs only the small struct. Without
 * it, the window must be kept and this does nothing. */
void wsl_deflater_release(wsl_deflater_t *d);

/* Bytes held: the struct plus every allocation zlib holds now (counted, not
 * estimated). */
size_t wsl_deflater_memory(const wsl_deflater_t *d);
void wsl_deflater_free(wsl_deflater_t *d);

/* Inflating a message (§7.2.2) as its frames arrive, with a bound on its
 * inflated size. */
#define WSL_DEFLATE_NO_MEMORY (-1)
#define WSL_DEFLATE_TOO_BIG (-2)  /* the caller closes with 1009 */
#define WSL_DEFLATE_BAD_DATA (-3) /* the caller closes with 1007 */

/* Receives the inflated message in pieces of at most WSL_INFLATE_CHUNK
 * bytes. Returns 0 to go on, or non-zero to stop: wsl_inflater_feed then
 * returns that value as is (so use positive values to tell it apart from
 * the codes above). */
typedef int (*wsl_inflate_sink_t)(void *ud, const uint8_t *data, size_t len);

#define WSL_INFLATE_CHUNK 16384

typedef struct wsl_inflater wsl_inflater_t;

/* window_bits 8..15: the window of the peer's deflater as agreed (8 is
 * inflated with 9). NULL when out of range or memory ran out. Zlib's state
 * is allocated at the first message, not here. */
wsl_inflater_t *wsl_inflater_new(int window_bits, int no_context_takeover);

/* Feeds the next len bytes of the compressed payload of the current message;
 * fin = 1 with the last bytes (or with none) ends the message: the inflater
 * appends 00 00 ff ff itself. The inflated bytes go to sink(ud, ...), never
 * held whole. limit (0 = none) bounds the inflated size of the message: the
 * feed that would pass it returns WSL_DEFLATE_TOO_BIG at once, having
 * inflated at most one byte beyond it and delivered at most limit bytes in
 * all, however small the compressed input (decompression bombs).
 *
 * Returns 0, WSL_DEFLATE_BAD_DATA (not valid DEFLATE data, or a message that
 * ends in the middle of a block), WSL_DEFLATE_TOO_BIG, WSL_DEFLATE_NO_MEMORY,
 * or the sink's non-zero value. After any of those the message is abandoned
 * and the stream reset: the caller fails the connection (with context
 * takeover later messages could not be inflated anyway).
 *
 * Accepted beyond the common case: an empty payload (an empty message), a
 * block with BFINAL set (§7.2.3.4: the next block starts a new stream whose
 * window still holds what came before), blocks of any kind in any number.
 * With no_context_takeover the stream is reset after each message; without
 * it the window carries over to the next message. */
int wsl_inflater_feed(wsl_inflater_t *inf, const uint8_t *data, size_t len,
                      int fin, uint64_t limit, wsl_inflate_sink_t sink,
                      void *ud);

/* With no_context_takeover and between messages: frees zlib's state (about
 * 7 KiB plus the window) until the next message needs it again. Otherwise
 * it does nothing. */
void wsl_inflater_release(wsl_inflater_t *inf);

size_t wsl_inflater_memory(const wsl_inflater_t *inf);
void wsl_inflater_free(wsl_inflater_t *inf);

/* Tests only: makes the nth allocation zlib asks of this module from now on
 * fail (1: the next one); 0 turns it off. Not thread-safe. */
void wsl__deflate_fail_alloc(int nth);

#endif
