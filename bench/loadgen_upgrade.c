/* loadgen_upgrade: the HTTP upgrade of bench/loadgen's connections
 * (RFC 6455 §4.1): the request with a fresh key, and the 101 response with
 * the key's answer and the extension the server chose. */
#include "loadgen_upgrade.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "loadgen.h"
#include "loadgen_fanout.h"
#include "loadgen_util.h"

/* Base64 (RFC 4648) of n bytes into out, which holds 4 * ceil(n / 3) + 1. */
static void b64(char *out, const unsigned char *p, size_t n) {
  static const char abc[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n)
      v |= p[i + 2];
    *out++ = abc[v >> 18];
    *out++ = abc[(v >> 12) & 63];
    *out++ = i + 1 < n ? abc[(v >> 6) & 63] : '=';
    *out++ = i + 2 < n ? abc[v & 63] : '=';
  }
  *out = 0;
}

void lg_upgrade_send(lg_conn_t *c) {
  /* A fresh key per connection, and the answer the server must give to it
   * (RFC 6455 §4.2.2): base64 of SHA-1 of the key and the protocol's GUID. */
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char key[16], digest[EVP_MAX_MD_SIZE];
  char k64[25], keyed[24 + sizeof guid];
  uint64_t r0 = lg_rng_next(), r1 = lg_rng_next();
  memcpy(key, &r0, 8);
  memcpy(key + 8, &r1, 8);
  b64(k64, key, sizeof key);
  memcpy(keyed, k64, 24);
  memcpy(keyed + 24, guid, sizeof guid - 1);
  /* SHA1() would look the algorithm up (under a lock) on every call. */
  static EVP_MD *sha1;
  static EVP_MD_CTX *ctx;
  if (!sha1 &&
      (!(sha1 = EVP_MD_fetch(NULL, "SHA1", NULL)) || !(ctx = EVP_MD_CTX_new())))
    lg_die("SHA-1");
  if (!EVP_DigestInit_ex2(ctx, sha1, NULL) ||
      !EVP_DigestUpdate(ctx, keyed, 24 + sizeof guid - 1) ||
      !EVP_DigestFinal_ex(ctx, digest, NULL))
    lg_die("SHA-1");
  b64(c->accept, digest, 20);
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

/* Parses the 101 response: status, the key's answer and the extension the
 * server chose. */
int lg_upgrade_parse(lg_conn_t *c, size_t hdr_end) {
  c->hbuf[hdr_end] = 0;
  if (strncmp(c->hbuf, "HTTP/1.1 101", 12) != 0)
    return -1;
  char *p = c->hbuf;
  int accepted = 0;
  while ((p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, "sec-websocket-accept:", 21) == 0) {
      const char *v = p + 21;
      v += strspn(v, " \t");
      size_t n = strcspn(v, " \t\r");
      accepted = n == sizeof c->accept - 1 && memcmp(v, c->accept, n) == 0;
    } else if (strncasecmp(p, "sec-websocket-extensions:", 25) == 0) {
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
  if (!accepted || (lg_opt.deflate && !c->pmd))
    return -1;
  if (c->pmd) {
    c->inf = lg_xmalloc(sizeof *c->inf);
    memset(c->inf, 0, sizeof *c->inf);
    if (inflateInit2(c->inf, -15) != Z_OK)
      lg_die("inflateInit2");
  }
  return 0;
}
