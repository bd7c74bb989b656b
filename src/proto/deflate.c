/* RFC 7692 permessage-deflate: negotiation, message compression, and
 * size-bounded inflation over zlib. */
#define ZLIB_CONST
#include "proto/deflate.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* The empty stored block that ends a sync flush (§7.2.1): removed by the
 * sender, put back by the receiver. */
static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

/* Configuration. */

void wsl_deflate_config_default(wsl_deflate_config_t *c) {
  c->level = Z_DEFAULT_COMPRESSION;
  c->mem_level = 8;
  c->window_bits = 15;
  c->peer_window_bits = 15;
  c->server_no_context_takeover = 0;
  c->client_no_context_takeover = 0;
  c->threshold = 0;
}

static int clamp(int v, int lo, int hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* The windows a config asks for, made valid: a deflater of ours needs 9 at
 * least, and we ask no peer for less than we could use ourselves. */
static int cfg_window(const wsl_deflate_config_t *c) {
  return clamp(c->window_bits, 9, 15);
}

static int cfg_peer_window(const wsl_deflate_config_t *c) {
  return clamp(c->peer_window_bits, 9, 15);
}

/* Parsing an extension list (RFC 6455 §9.1, RFC 9110 §5.6):
 *
 *   extension-list = 1#( token *( OWS ";" OWS token [ OWS "=" OWS
 *                                  ( token / quoted-string ) ] ) )
 *
 * Empty list elements are skipped. A quoted value counts by its content
 * (RFC 7692 §7.1), so "10" is 10. */

typedef struct {
  const char *p, *end;
} scan_t;

/* One element of the list, and what its parameters say if it is
 * permessage-deflate. */
typedef struct {
  const char *name;
  size_t name_len;
  int valid;    /* permessage-deflate, well formed, parameters all right */
  char why[80]; /* when not valid */
  int s_nct;    /* server_no_context_takeover */
  int c_nct;    /* client_no_context_takeover */
  int s_bits;   /* server_max_window_bits: 0 absent, else 8..15 */
  int c_bits;   /* client_max_window_bits: 0 absent, -1 without a value,
                   else 8..15 */
} ext_t;

static scan_t scan_init(const char *header, size_t len) {
  scan_t s = {"", NULL};
  if (header != NULL)
    s.p = header;
  s.end = s.p + (header != NULL ? len : 0);
  return s;
}

static int lower(int c) {
  return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Case-insensitive equality of s[0..len) and the string lit. */
static int ieq(const char *s, size_t len, const char *lit) {
  size_t n = strlen(lit);
  if (len != n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)s[i]) != lit[i])
      return 0;
  return 1;
}

/* tchar, RFC 9110 §5.6.2. */
static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return 1;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(scan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
    s->p++;
}

/* The length of the token at s->p, which is then passed. */
static size_t scan_token(scan_t *s) {
  const char *start = s->p;
  while (s->p < s->end && is_tchar((unsigned char)*s->p))
    s->p++;
  return (size_t)(s->p - start);
}

/* The quoted-string at s->p (which is '"'): its content, unescaped, goes to
 * val, cut to cap bytes; *vlen is its full length. Returns 0, or -1 if it is
 * not terminated or holds a byte a quoted-string may not. */
static int scan_quoted(scan_t *s, char *val, size_t cap, size_t *vlen) {
  size_t n = 0;
  s->p++;
  while (s->p < s->end) {
    unsigned char c = (unsigned char)*s->p++;
    if (c == '"') {
      *vlen = n;
      return 0;
    }
    if (c == '\\') {
      if (s->p == s->end)
        return -1;
      c = (unsigned char)*s->p++;
    }
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return -1;
    if (n < cap)
      val[n] = (char)c;
    n++;
  }
  return -1;
}

/* A window size: 8..15 as decimal digits without a leading zero (the ABNF
 * of §7.1.2.1 and §7.1.2.2); else -1. */
static int parse_bits(const char *v, size_t len) {
  if (len == 1 && (v[0] == '8' || v[0] == '9'))
    return v[0] - '0';
  if (len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return 10 + (v[1] - '0');
  return -1;
}

static void invalid(ext_t *e, const char *what, const char *name,
                    size_t name_len) {
  if (!e->valid)
    return;
  e->valid = 0;
  snprintf(e->why, sizeof e->why, "%s%s%.*s", what, name_len ? " " : "",
           (int)(name_len > 40 ? 40 : name_len), name);
}

/* Applies one parameter of a permessage-deflate element (§7.1); a problem
 * makes e invalid. */
static void apply_param(ext_t *e, const char *name, size_t len, int has_value,
                        const char *val, size_t vlen) {
  int *flag = NULL, *bits = NULL;
  if (ieq(name, len, "server_no_context_takeover"))
    flag = &e->s_nct;
  else if (ieq(name, len, "client_no_context_takeover"))
    flag = &e->c_nct;
  else if (ieq(name, len, "server_max_window_bits"))
    bits = &e->s_bits;
  else if (ieq(name, len, "client_max_window_bits"))
    bits = &e->c_bits;
  if (flag == NULL && bits == NULL) {
    invalid(e, "unknown parameter", name, len);
  } else if (flag ? *flag != 0 : *bits != 0) {
    invalid(e, "duplicate parameter", name, len);
  } else if (flag) {
    if (has_value)
      invalid(e, "a value for", name, len);
    else
      *flag = 1;
  } else if (!has_value) {
    /* Only an offer may say client_max_window_bits without a value; the
     * client side refuses the -1 in a response. */
    if (bits == &e->s_bits)
      invalid(e, "no value for", name, len);
    else
      *bits = -1;
  } else {
    int v = parse_bits(val, vlen);
    if (v < 0)
      invalid(e, "bad value for", name, len);
    else
      *bits = v;
  }
}

/* Marks e malformed and skips to the next comma outside a quoted string. */
static int malformed(scan_t *s, ext_t *e) {
  invalid(e, "malformed extension", e->name, e->name_len);
  while (s->p < s->end && *s->p != ',') {
    if (*s->p == '"') {
      char unused[1];
      size_t n;
      if (scan_quoted(s, unused, 0, &n) != 0)
        s->p = s->end;
    } else {
      s->p++;
    }
  }
  if (s->p < s->end)
    s->p++;
  return 1;
}

/* One parameter after its ';': its name and optional value. Returns 0, or
 * -1 if it is malformed. */
static int scan_param(scan_t *s, ext_t *e) {
  skip_ows(s);
  const char *name = s->p;
  size_t len = scan_token(s);
  if (len == 0)
    return -1;
  skip_ows(s);
  char val[4];
  size_t vlen = 0;
  int has_value = 0;
  if (s->p < s->end && *s->p == '=') {
    s->p++;
    skip_ows(s);
    has_value = 1;
    if (s->p < s->end && *s->p == '"') {
      if (scan_quoted(s, val, sizeof val, &vlen) != 0)
        return -1;
    } else {
      const char *v = s->p;
      vlen = scan_token(s);
      if (vlen == 0)
        return -1;
      memcpy(val, v, vlen < sizeof val ? vlen : sizeof val);
    }
  }
  if (e->valid)
    apply_param(e, name, len, has_value, val, vlen);
  return 0;
}

/* The next element of the list into *e. Returns 0 at the end of the list,
 * else 1 (e->valid says whether it is a usable permessage-deflate one). */
static int next_ext(scan_t *s, ext_t *e) {
  memset(e, 0, sizeof *e);
  for (;;) {
    skip_ows(s);
    if (s->p == s->end)
      return 0;
    if (*s->p != ',')
      break;
    s->p++;
  }
  e->name = s->p;
  e->name_len = scan_token(s);
  e->valid = 1;
  if (e->name_len == 0)
    return malformed(s, e);
  if (!ieq(e->name, e->name_len, "permessage-deflate"))
    invalid(e, "unsupported extension", e->name, e->name_len);
  for (;;) {
    skip_ows(s);
    if (s->p == s->end)
      return 1;
    if (*s->p == ',') {
      s->p++;
      return 1;
    }
    if (*s->p != ';')
      return malformed(s, e);
    s->p++;
    if (scan_param(s, e) != 0)
      return malformed(s, e);
  }
}

static void set_err(char *err, size_t errlen, const char *fmt, int a, int b) {
  if (err && errlen)
    snprintf(err, errlen, fmt, a, b);
}

/* Appends "; name" or "; name=bits" (bits > 0). */
static int append_param(wsl_buf_t *out, const char *name, int bits) {
  if (bits > 0)
    return wsl_buf_appendf(out, "; %s=%d", name, bits);
  return wsl_buf_appendf(out, "; %s", name);
}

/* Appends "permessage-deflate" with each flag that is set and each window
 * size that is not 0 (-1: the name without a value); 0, or -1 with out as
 * it was. */
static int append_ext(wsl_buf_t *out, int s_nct, int c_nct, int s_bits,
                      int c_bits) {
  size_t start = out->len;
  if (wsl_buf_append_str(out, "permessage-deflate") != 0 ||
      (s_nct && append_param(out, "server_no_context_takeover", 0) != 0) ||
      (c_nct && append_param(out, "client_no_context_takeover", 0) != 0) ||
      (s_bits && append_param(out, "server_max_window_bits", s_bits) != 0) ||
      (c_bits && append_param(out, "client_max_window_bits", c_bits) != 0)) {
    out->len = start;
    return -1;
  }
  return 0;
}

/* Server side. */

/* The agreement for offer e under c, written to *a and the response to out;
 * 0 when e cannot be accepted, 1 when it is, -1 on no memory. */
static int accept_offer(const ext_t *e, const wsl_deflate_config_t *c,
                        wsl_deflate_params_t *a, wsl_buf_t *out) {
  int s_bits = cfg_window(c);
  if (e->s_bits > 0 && e->s_bits < s_bits)
    s_bits = e->s_bits;
  /* §7.1.2.1: we must not use a larger window than the offer allows, and
   * zlib cannot write raw deflate with 8 bits: decline rather than lie. */
  if (s_bits < 9)
    return 0;
  int c_bits = 15;
  if (e->c_bits != 0) {
    c_bits = e->c_bits > 0 ? e->c_bits : 15;
    if (cfg_peer_window(c) < c_bits)
      c_bits = cfg_peer_window(c);
  }
  a->server_no_context_takeover = e->s_nct || c->server_no_context_takeover;
  a->client_no_context_takeover = e->c_nct || c->client_no_context_takeover;
  a->server_max_window_bits = s_bits;
  a->client_max_window_bits = c_bits;
  /* §7.1.2.1: an offered server_max_window_bits must be answered. */
  int send_s = e->s_bits > 0 || s_bits < 15 ? s_bits : 0;
  /* §7.1.2.2: client_max_window_bits only if offered. */
  int send_c = e->c_bits != 0 && c_bits < 15 ? c_bits : 0;
  if (append_ext(out, a->server_no_context_takeover,
                 a->client_no_context_takeover, send_s, send_c) != 0)
    return -1;
  return 1;
}

int wsl_deflate_negotiate(const char *header, size_t len,
                          const wsl_deflate_config_t *cfg,
                          wsl_deflate_params_t *agreed, wsl_buf_t *out) {
  wsl_deflate_config_t defaults;
  if (cfg == NULL) {
    wsl_deflate_config_default(&defaults);
    cfg = &defaults;
  }
  scan_t s = scan_init(header, len);
  ext_t e;
  while (next_ext(&s, &e)) {
    if (!e.valid)
      continue;
    int r = accept_offer(&e, cfg, agreed, out);
    if (r != 0)
      return r;
  }
  return 0;
}

/* Client side. */

int wsl_deflate_client_offer(wsl_buf_t *out, const wsl_deflate_config_t *cfg) {
  wsl_deflate_config_t defaults;
  if (cfg == NULL) {
    wsl_deflate_config_default(&defaults);
    cfg = &defaults;
  }
  int s_bits = cfg_peer_window(cfg) < 15 ? cfg_peer_window(cfg) : 0;
  /* client_max_window_bits always: without a value it only lets the server
   * choose our window. */
  int c_bits = cfg_window(cfg) < 15 ? cfg_window(cfg) : -1;
  return append_ext(out, cfg->server_no_context_takeover,
                    cfg->client_no_context_takeover, s_bits, c_bits);
}

/* Checks the one extension of a response against the offer of c (§7.1);
 * 0 with *a filled, or -1 with err set. */
static int check_response(const ext_t *e, const wsl_deflate_config_t *c,
                          wsl_deflate_params_t *a, char *err, size_t errlen) {
  int offered_s = cfg_peer_window(c) < 15 ? cfg_peer_window(c) : 0;
  if (c->server_no_context_takeover && !e->s_nct) {
    set_err(err, errlen, "server_no_context_takeover was not accepted", 0, 0);
    return -1;
  }
  if (offered_s && e->s_bits == 0) {
    set_err(err, errlen, "server_max_window_bits=%d was not accepted",
            offered_s, 0);
    return -1;
  }
  if (offered_s && e->s_bits > offered_s) {
    set_err(err, errlen, "server_max_window_bits=%d above the offered %d",
            e->s_bits, offered_s);
    return -1;
  }
  if (e->c_bits < 0) {
    set_err(err, errlen, "client_max_window_bits without a value", 0, 0);
    return -1;
  }
  int c_bits = cfg_window(c);
  if (e->c_bits > 0 && e->c_bits < c_bits)
    c_bits = e->c_bits;
  if (c_bits < 9) {
    set_err(err, errlen, "client_max_window_bits=%d is not supported", c_bits,
            0);
    return -1;
  }
  a->server_no_context_takeover = e->s_nct;
  a->client_no_context_takeover = e->c_nct || c->client_no_context_takeover;
  a->server_max_window_bits = e->s_bits ? e->s_bits : 15;
  a->client_max_window_bits = c_bits;
  return 0;
}

int wsl_deflate_client_accept(const char *header, size_t len,
                              const wsl_deflate_config_t *cfg,
                              wsl_deflate_params_t *agreed, char *err,
                              size_t errlen) {
  wsl_deflate_config_t defaults;
  if (cfg == NULL) {
    wsl_deflate_config_default(&defaults);
    cfg = &defaults;
  }
  scan_t s = scan_init(header, len);
  ext_t e, more;
  if (!next_ext(&s, &e)) {
    set_err(err, errlen, "empty Sec-WebSocket-Extensions", 0, 0);
    return -1;
  }
  if (next_ext(&s, &more)) {
    set_err(err, errlen, "more than one extension in the response", 0, 0);
    return -1;
  }
  if (!e.valid) {
    if (err && errlen)
      snprintf(err, errlen, "%s", e.why);
    return -1;
  }
  return check_response(&e, cfg, agreed, err, errlen);
}

/* Memory: zlib allocates through these, so the module knows exactly what it
 * holds, and tests can make an allocation fail. */

typedef union {
  max_align_t align;
  size_t size;
} zhdr_t;

static int fail_countdown;

void wsl__deflate_fail_alloc(int nth) {
  fail_countdown = nth;
}

static voidpf zalloc_counted(voidpf opaque, uInt items, uInt size) {
  size_t *held = opaque;
  if (fail_countdown > 0 && --fail_countdown == 0)
    return Z_NULL;
  if (size != 0 && items > (SIZE_MAX - sizeof(zhdr_t)) / size)
    return Z_NULL;
  size_t n = (size_t)items * size;
  zhdr_t *h = malloc(sizeof *h + n);
  if (h == NULL)
    return Z_NULL;
  h->size = n;
  *held += sizeof *h + n;
  return h + 1;
}

static void zfree_counted(voidpf opaque, voidpf p) {
  size_t *held = opaque;
  if (p == NULL)
    return;
  zhdr_t *h = (zhdr_t *)p - 1;
  *held -= sizeof *h + h->size;
  free(h);
}

/* Compressing. */

struct wsl_deflater {
  z_stream zs;
  size_t held; /* bytes zlib holds */
  int live;    /* zs is initialised */
  int level, mem_level, window_bits, no_context_takeover;
};

wsl_deflater_t *wsl_deflater_new(int level, int mem_level, int window_bits,
                                 int no_context_takeover) {
  if (level < -1 || level > 9 || mem_level < 1 || mem_level > 9 ||
      window_bits < 9 || window_bits > 15)
    return NULL;
  wsl_deflater_t *d = calloc(1, sizeof *d);
  if (d == NULL)
    return NULL;
  d->level = level;
  d->mem_level = mem_level;
  d->window_bits = window_bits;
  d->no_context_takeover = no_context_takeover != 0;
  return d;
}

static int deflater_start(wsl_deflater_t *d) {
  if (d->live)
    return 0;
  memset(&d->zs, 0, sizeof d->zs);
  d->zs.zalloc = zalloc_counted;
  d->zs.zfree = zfree_counted;
  d->zs.opaque = &d->held;
  /* Negative windowBits: raw deflate, no zlib header or trailer. */
  if (deflateInit2(&d->zs, d->level, Z_DEFLATED, -d->window_bits, d->mem_level,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return -1;
  d->live = 1;
  return 0;
}

/* Room to ask of out before each deflate call: about the message for small
 * ones, in steps for large ones (the buffer grows by doubling). */
static size_t out_step(size_t len) {
  return len < 65536 ? len + 64 : 65536;
}

/* Deflates all of in[0..len) with a sync flush, appending to out. */
static int deflate_all(wsl_deflater_t *d, const uint8_t *in, size_t len,
                       wsl_buf_t *out) {
  z_stream *z = &d->zs;
  size_t left = len;
  z->next_in = in;
  z->avail_in = 0;
  for (;;) {
    if (z->avail_in == 0 && left > 0) {
      uInt n = left > UINT_MAX ? UINT_MAX : (uInt)left;
      z->avail_in = n;
      left -= n;
    }
    int flush = left == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    if (wsl_buf_reserve(out, out_step(z->avail_in + left)) != 0)
      return -1;
    size_t room = out->cap - out->len;
    uInt space = room > UINT_MAX ? UINT_MAX : (uInt)room;
    z->next_out = (Bytef *)out->data + out->len;
    z->avail_out = space;
    /* Z_BUF_ERROR only says no progress was possible (an empty message
     * right after a flush); Z_STREAM_ERROR cannot happen with a live
     * stream. */
    if (deflate(z, flush) == Z_STREAM_ERROR)
      return -1;
    out->len += space - z->avail_out;
    if (flush == Z_SYNC_FLUSH && z->avail_out != 0)
      return 0;
  }
}

int wsl_deflater_compress(wsl_deflater_t *d, const uint8_t *in, size_t len,
                          wsl_buf_t *out) {
  size_t start = out->len;
  if (deflater_start(d) != 0)
    return -1;
  if (deflate_all(d, in, len, out) != 0) {
    out->len = start;
    deflateReset(&d->zs);
    return -1;
  }
  size_t n = out->len - start;
  if (n >= 4 && memcmp(out->data + out->len - 4, tail, 4) == 0)
    out->len -= 4;
  /* zlib writes nothing for an empty message right after a flush; the
   * receiver needs at least the header byte of an empty stored block. */
  if (out->len == start && wsl_buf_append(out, "", 1) != 0) {
    deflateReset(&d->zs);
    return -1;
  }
  if (d->no_context_takeover)
    deflateReset(&d->zs);
  return 0;
}

void wsl_deflater_release(wsl_deflater_t *d) {
  if (d->live && d->no_context_takeover) {
    deflateEnd(&d->zs);
    d->live = 0;
  }
}

size_t wsl_deflater_memory(const wsl_deflater_t *d) {
  return sizeof *d + d->held;
}

void wsl_deflater_free(wsl_deflater_t *d) {
  if (d == NULL)
    return;
  if (d->live)
    deflateEnd(&d->zs);
  free(d);
}

/* Inflating. */

struct wsl_inflater {
  z_stream zs;
  size_t held;     /* bytes zlib holds */
  int live;        /* zs is initialised */
  int ended;       /* the stream reached a BFINAL block's end: the next
                      byte starts a new one */
  int window_bits; /* as given to zlib: 9..15 */
  int no_context_takeover;
  uint64_t in_bytes;  /* compressed bytes of the current message so far */
  uint64_t out_bytes; /* inflated bytes of the current message so far */
};

wsl_inflater_t *wsl_inflater_new(int window_bits, int no_context_takeover) {
  if (window_bits < 8 || window_bits > 15)
    return NULL;
  wsl_inflater_t *inf = calloc(1, sizeof *inf);
  if (inf == NULL)
    return NULL;
  /* A larger window than the peer's deflater used is always safe, and 9
   * keeps clear of zlib's special handling of 8-bit windows. */
  inf->window_bits = window_bits < 9 ? 9 : window_bits;
  inf->no_context_takeover = no_context_takeover != 0;
  return inf;
}

static int inflater_start(wsl_inflater_t *inf) {
  if (inf->live)
    return 0;
  memset(&inf->zs, 0, sizeof inf->zs);
  inf->zs.zalloc = zalloc_counted;
  inf->zs.zfree = zfree_counted;
  inf->zs.opaque = &inf->held;
  if (inflateInit2(&inf->zs, -inf->window_bits) != Z_OK)
    return -1;
  inf->live = 1;
  inf->ended = 0;
  return 0;
}

/* After a BFINAL block: a new stream begins, whose window still holds the
 * data before it, which later blocks may refer to. */
static int inflater_restart(wsl_inflater_t *inf) {
  uInt n = 0;
  Bytef *dict = NULL;
  if (inflateGetDictionary(&inf->zs, NULL, &n) != Z_OK)
    return WSL_DEFLATE_BAD_DATA;
  if (n > 0) {
    dict = malloc(n);
    if (dict == NULL)
      return WSL_DEFLATE_NO_MEMORY;
    inflateGetDictionary(&inf->zs, dict, &n);
  }
  int r = inflateReset(&inf->zs);
  if (r == Z_OK && n > 0)
    r = inflateSetDictionary(&inf->zs, dict, n);
  free(dict);
  inf->ended = 0;
  return r == Z_OK ? 0 : WSL_DEFLATE_BAD_DATA;
}

/* The state after a message: ready for the next one. */
static void inflater_end_message(wsl_inflater_t *inf) {
  inf->in_bytes = 0;
  inf->out_bytes = 0;
  if (inf->no_context_takeover && inf->live) {
    inflateReset(&inf->zs);
    inf->ended = 0;
  }
}

/* A failed message: the stream cannot go on from where it stopped. */
static int inflater_fail(wsl_inflater_t *inf, int code) {
  inf->in_bytes = 0;
  inf->out_bytes = 0;
  if (inf->live)
    inflateReset(&inf->zs);
  inf->ended = 0;
  return code;
}

/* Inflates in[0..len), delivering the output. is_tail: in is the 00 00 ff ff
 * that ends the message; if the stream has ended before it, it is not
 * needed. Returns 0 or an error for wsl_inflater_feed. */
static int inflate_bytes(wsl_inflater_t *inf, const uint8_t *in, size_t len,
                         int is_tail, uint64_t limit, wsl_inflate_sink_t sink,
                         void *ud) {
  uint8_t chunk[WSL_INFLATE_CHUNK];
  z_stream *z = &inf->zs;
  size_t left = len;
  int full = 0;
  z->next_in = in;
  z->avail_in = 0;
  while (left > 0 || z->avail_in > 0 || full) {
    if (inf->ended) {
      if (is_tail || (left == 0 && z->avail_in == 0))
        return 0;
      int r = inflater_restart(inf);
      if (r != 0)
        return r;
    }
    if (z->avail_in == 0) {
      uInt n = left > UINT_MAX ? UINT_MAX : (uInt)left;
      z->avail_in = n;
      left -= n;
    }
    /* Never ask for more than one byte past the limit. */
    uInt room = WSL_INFLATE_CHUNK;
    if (limit != 0 && limit - inf->out_bytes < room)
      room = (uInt)(limit - inf->out_bytes) + 1;
    z->next_out = chunk;
    z->avail_out = room;
    int r = inflate(z, Z_SYNC_FLUSH);
    if (r == Z_MEM_ERROR)
      return WSL_DEFLATE_NO_MEMORY;
    if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
      return WSL_DEFLATE_BAD_DATA;
    size_t got = room - z->avail_out;
    full = z->avail_out == 0;
    if (got > 0) {
      if (limit != 0 && got > limit - inf->out_bytes)
        return WSL_DEFLATE_TOO_BIG;
      inf->out_bytes += got;
      int s = sink(ud, chunk, got);
      if (s != 0)
        return s;
    }
    if (r == Z_STREAM_END)
      inf->ended = 1;
  }
  return 0;
}

int wsl_inflater_feed(wsl_inflater_t *inf, const uint8_t *data, size_t len,
                      int fin, uint64_t limit, wsl_inflate_sink_t sink,
                      void *ud) {
  int r;
  if (len > 0) {
    if (inflater_start(inf) != 0)
      return inflater_fail(inf, WSL_DEFLATE_NO_MEMORY);
    r = inflate_bytes(inf, data, len, 0, limit, sink, ud);
    if (r != 0)
      return inflater_fail(inf, r);
    inf->in_bytes += len;
  }
  if (!fin)
    return 0;
  /* An empty payload is an empty message: nothing to inflate. */
  if (inf->in_bytes > 0) {
    r = inflate_bytes(inf, tail, sizeof tail, 1, limit, sink, ud);
    if (r != 0)
      return inflater_fail(inf, r);
    /* The message must end between blocks, at the end of the empty stored
     * block we added (zlib reports 128 in data_type there), or with the
     * stream itself. Anything else means bytes are missing. */
    if (!inf->ended && !(inf->zs.data_type & 128))
      return inflater_fail(inf, WSL_DEFLATE_BAD_DATA);
  }
  inflater_end_message(inf);
  return 0;
}

void wsl_inflater_release(wsl_inflater_t *inf) {
  if (inf->live && inf->no_context_takeover && inf->in_bytes == 0) {
    inflateEnd(&inf->zs);
    inf->live = 0;
  }
}

size_t wsl_inflater_memory(const wsl_inflater_t *inf) {
  return sizeof *inf + inf->held;
}

void wsl_inflater_free(wsl_inflater_t *inf) {
  if (inf == NULL)
    return;
  if (inf->live)
    inflateEnd(&inf->zs);
  free(inf);
}
