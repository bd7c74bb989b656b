/* loadgen_upgrade: the HTTP upgrade of bench/loadgen's connections
 * (RFC 6455 §4.1): the request, and the 101 response with the extension
 * the server chose. */
#include "loadgen_upgrade.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "loadgen.h"
#include "loadgen_fanout.h"
#include "loadgen_util.h"

void lg_upgrade_send(lg_conn_t *c) {
  unsigned char key[16];
  static const char b64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char k64[25];
  uint64_t r0 = lg_rng_next(), r1 = lg_rng_next();
  memcpy(key, &r0, 8);
  memcpy(key + 8, &r1, 8);
  int j = 0;
  for (int i = 0; i < 15; i += 3) {
    uint32_t v =
        (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8 | key[i + 2];
    k64[j++] = b64[v >> 18];
    k64[j++] = b64[(v >> 12) & 63];
    k64[j++] = b64[(v >> 6) & 63];
    k64[j++] = b64[v & 63];
  }
  uint32_t v = (uint32_t)key[15] << 16;
  k64[j++] = b64[v >> 18];
  k64[j++] = b64[(v >> 12) & 63];
  k64[j++] = '=';
  k64[j++] = '=';
  k64[j] = 0;
  char req[512];
  int n =
      snprintf(req, sizeof req,
               "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n%s\r\n",
               c == lg_fo.publisher ? lg_opt.pubpath : lg_opt.path, lg_opt.host,
               lg_opt.port, k64,
               lg_opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                "client_max_window_bits\r\n"
                              : "");
  lg_out_append(c, req, (size_t)n);
  c->state = LG_ST_UPGRADING;
  lg_flush_out(c);
}

/* Parses the 101 response: status and the extension the server chose. */
int lg_upgrade_parse(lg_conn_t *c, size_t hdr_end) {
  c->hbuf[hdr_end] = 0;
  if (strncmp(c->hbuf, "HTTP/1.1 101", 12) != 0)
    return -1;
  char *p = c->hbuf;
  while ((p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, "sec-websocket-extensions:", 25) == 0) {
      char *e = strchr(p, '\r');
      if (e)
        *e = 0;
      if (strstr(p, "permessage-deflate")) {
        c->pmd = 1;
        c->server_reset = strstr(p, "server_no_context_takeover") != NULL;
      }
      if (e)
        *e = '\r';
    }
  }
  if (lg_opt.deflate && !c->pmd)
    return -1;
  if (c->pmd) {
    c->inf = lg_xmalloc(sizeof *c->inf);
    memset(c->inf, 0, sizeof *c->inf);
    if (inflateInit2(c->inf, -15) != Z_OK)
      lg_die("inflateInit2");
  }
  return 0;
}
