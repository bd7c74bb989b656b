/* Tests for src/proto/deflate.c: negotiation tables (server and client side,
 * RFC 7692 §5 and §7), the §7.2.3 byte vectors fed at every split point,
 * round trips over every window size with and without context takeover,
 * a decompression bomb, bad data, release and memory figures, and
 * allocation failures. */
#include "proto/deflate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/buf.h"
#include "test.h"

/* Configurations the tables refer to. */
enum { DEF, SNCT, CNCT, BOTH, W9, W10, P10, P12, W10P9, NCFG };

static wsl_deflate_config_t config(int which) {
  wsl_deflate_config_t c;
  wsl_deflate_config_default(&c);
  switch (which) {
  case SNCT:
    c.server_no_context_takeover = 1;
    break;
  case CNCT:
    c.client_no_context_takeover = 1;
    break;
  case BOTH:
    c.server_no_context_takeover = c.client_no_context_takeover = 1;
    break;
  case W9:
    c.window_bits = 9;
    break;
  case W10:
    c.window_bits = 10;
    break;
  case P10:
    c.peer_window_bits = 10;
    break;
  case P12:
    c.peer_window_bits = 12;
    break;
  case W10P9:
    c.window_bits = 10;
    c.peer_window_bits = 9;
    break;
  }
  return c;
}

static void test_config_default(void) {
  wsl_deflate_config_t c = config(DEF);
  CHECK_EQ_INT(c.level, -1);
  CHECK_EQ_INT(c.mem_level, 8);
  CHECK_EQ_INT(c.window_bits, 15);
  CHECK_EQ_INT(c.peer_window_bits, 15);
  CHECK_EQ_INT(c.server_no_context_takeover, 0);
  CHECK_EQ_INT(c.client_no_context_takeover, 0);
  CHECK_EQ_INT(c.threshold, 0);
}

/* Server side: an offer header, a config, and what must come back. */
typedef struct {
  const char *header;
  int cfg;
  int ret;
  const char *response; /* when ret is 1 */
  int snct, cnct, sbits, cbits;
} offer_case_t;

#define PMD "permessage-deflate"

static const offer_case_t offer_cases[] = {
    /* Plain offers (§5, §7). */
    {PMD, DEF, 1, PMD, 0, 0, 15, 15},
    {PMD "; client_max_window_bits", DEF, 1, PMD, 0, 0, 15, 15},
    {PMD "; client_max_window_bits", P12, 1, PMD "; client_max_window_bits=12",
     0, 0, 15, 12},
    {PMD "; client_max_window_bits=10", DEF, 1,
     PMD "; client_max_window_bits=10", 0, 0, 15, 10},
    {PMD "; client_max_window_bits=10", P12, 1,
     PMD "; client_max_window_bits=10", 0, 0, 15, 10},
    {PMD "; client_max_window_bits=13", P12, 1,
     PMD "; client_max_window_bits=12", 0, 0, 15, 12},
    {PMD "; client_max_window_bits=8", DEF, 1, PMD "; client_max_window_bits=8",
     0, 0, 15, 8},
    {PMD "; client_max_window_bits=15", DEF, 1, PMD, 0, 0, 15, 15},
    {PMD, P12, 1, PMD, 0, 0, 15, 15}, /* may not ask unoffered */
    {PMD "; server_max_window_bits=10", DEF, 1,
     PMD "; server_max_window_bits=10", 0, 0, 10, 15},
    {PMD "; server_max_window_bits=15", DEF, 1,
     PMD "; server_max_window_bits=15", 0, 0, 15, 15},
    {PMD "; server_max_window_bits=9", DEF, 1, PMD "; server_max_window_bits=9",
     0, 0, 9, 15},
    {PMD "; server_no_context_takeover", DEF, 1,
     PMD "; server_no_context_takeover", 1, 0, 15, 15},
    {PMD "; client_no_context_takeover", DEF, 1,
     PMD "; client_no_context_takeover", 0, 1, 15, 15},
    {PMD "; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=9; client_max_window_bits=9",
     DEF, 1,
     PMD "; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=9; client_max_window_bits=9",
     1, 1, 9, 9},
    /* The §5.2 example: the first offer is acceptable. */
    {PMD "; client_max_window_bits; server_max_window_bits=10, " PMD
         "; client_max_window_bits",
     DEF, 1, PMD "; server_max_window_bits=10", 0, 0, 10, 15},
    {PMD "; server_max_window_bits=10, " PMD, DEF, 1,
     PMD "; server_max_window_bits=10", 0, 0, 10, 15},
    /* server_max_window_bits=8: zlib cannot; the next offer, or none. */
    {PMD "; server_max_window_bits=8", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=8, " PMD, DEF, 1, PMD, 0, 0, 15, 15},
    {PMD "; server_max_window_bits=8, " PMD "; server_max_window_bits=9", DEF,
     1, PMD "; server_max_window_bits=9", 0, 0, 9, 15},
    {PMD "; server_max_window_bits=8", W9, 0, NULL, 0, 0, 0, 0},
    /* Config flags and windows are reflected. */
    {PMD, SNCT, 1, PMD "; server_no_context_takeover", 1, 0, 15, 15},
    {PMD, CNCT, 1, PMD "; client_no_context_takeover", 0, 1, 15, 15},
    {PMD "; client_max_window_bits", BOTH, 1,
     PMD "; server_no_context_takeover; client_no_context_takeover", 1, 1, 15,
     15},
    {PMD "; server_no_context_takeover", SNCT, 1,
     PMD "; server_no_context_takeover", 1, 0, 15, 15},
    {PMD, W10, 1, PMD "; server_max_window_bits=10", 0, 0, 10, 15},
    {PMD, W9, 1, PMD "; server_max_window_bits=9", 0, 0, 9, 15},
    {PMD "; server_max_window_bits=12", W10, 1,
     PMD "; server_max_window_bits=10", 0, 0, 10, 15},
    {PMD "; server_max_window_bits=9", W10, 1, PMD "; server_max_window_bits=9",
     0, 0, 9, 15},
    {PMD "; client_max_window_bits", W10P9, 1,
     PMD "; server_max_window_bits=10; client_max_window_bits=9", 0, 0, 10, 9},
    /* Quoted values (§7.1: the value after unquoting must fit the ABNF). */
    {PMD "; client_max_window_bits=\"10\"", DEF, 1,
     PMD "; client_max_window_bits=10", 0, 0, 15, 10},
    {PMD "; server_max_window_bits=\"12\"", DEF, 1,
     PMD "; server_max_window_bits=12", 0, 0, 12, 15},
    {PMD "; server_max_window_bits=\"1\\2\"", DEF, 1,
     PMD "; server_max_window_bits=12", 0, 0, 12, 15},
    {PMD "; server_max_window_bits=\"\"", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=\" 12\"", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=\"12", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=\"12, " PMD, DEF, 0, NULL, 0, 0, 0, 0},
    /* Bad values. */
    {PMD "; server_max_window_bits=16", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=7", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=08", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=010", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=1a", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=-9", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=100000000000000000015", DEF, 0, NULL, 0, 0,
     0, 0},
    {PMD "; server_max_window_bits", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; client_max_window_bits=0", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; client_max_window_bits=", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_no_context_takeover=1", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; client_no_context_takeover=\"\"", DEF, 0, NULL, 0, 0, 0, 0},
    /* Duplicates. */
    {PMD "; server_no_context_takeover; server_no_context_takeover", DEF, 0,
     NULL, 0, 0, 0, 0},
    {PMD "; client_no_context_takeover; client_no_context_takeover", DEF, 0,
     NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=10; server_max_window_bits=10", DEF, 0, NULL,
     0, 0, 0, 0},
    {PMD "; client_max_window_bits; client_max_window_bits=10", DEF, 0, NULL, 0,
     0, 0, 0},
    {PMD "; client_max_window_bits; client_max_window_bits, " PMD, DEF, 1, PMD,
     0, 0, 15, 15},
    /* Unknown parameters and other extensions. */
    {PMD "; foo", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; foo=1, " PMD "; client_no_context_takeover", DEF, 1,
     PMD "; client_no_context_takeover", 0, 1, 15, 15},
    {"x-webkit-deflate-frame", DEF, 0, NULL, 0, 0, 0, 0},
    {"x-webkit-deflate-frame, " PMD "; client_max_window_bits", DEF, 1, PMD, 0,
     0, 15, 15},
    {"deflate-frame; no_context_takeover", DEF, 0, NULL, 0, 0, 0, 0},
    {"permessage-deflatex", DEF, 0, NULL, 0, 0, 0, 0},
    {"foo; a=\"x, " PMD "\", " PMD, DEF, 1, PMD, 0, 0, 15, 15},
    /* Spelling: case, whitespace, empty elements. */
    {"PerMessage-Deflate; Server_No_Context_Takeover", DEF, 1,
     PMD "; server_no_context_takeover", 1, 0, 15, 15},
    {" \t" PMD " ;\tclient_max_window_bits = 10 , foo", DEF, 1,
     PMD "; client_max_window_bits=10", 0, 0, 15, 10},
    {", ," PMD ",,", DEF, 1, PMD, 0, 0, 15, 15},
    {"", DEF, 0, NULL, 0, 0, 0, 0},
    {" , ", DEF, 0, NULL, 0, 0, 0, 0},
    /* Malformed elements are skipped up to the next comma. */
    {PMD ";", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; ; client_max_window_bits", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD " client_max_window_bits", DEF, 0, NULL, 0, 0, 0, 0},
    {";" PMD, DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=10 10", DEF, 0, NULL, 0, 0, 0, 0},
    {PMD "; =10, " PMD, DEF, 1, PMD, 0, 0, 15, 15},
    {PMD " x\"a, b\", " PMD "; server_max_window_bits=11", DEF, 1,
     PMD "; server_max_window_bits=11", 0, 0, 11, 15},
    {PMD "; a=\"\\\"\", " PMD, DEF, 1, PMD, 0, 0, 15, 15},
    {PMD "; client_max_window_bits=(10), " PMD, DEF, 1, PMD, 0, 0, 15, 15},
};

static void test_negotiate(void) {
  size_t n = sizeof offer_cases / sizeof offer_cases[0];
  for (size_t i = 0; i < n; i++) {
    const offer_case_t *t = &offer_cases[i];
    wsl_deflate_config_t c = config(t->cfg);
    wsl_deflate_params_t a = {-1, -1, -1, -1};
    wsl_buf_t out = WSL_BUF_INIT;
    wsl_buf_append_str(&out, "X"); /* appends, never replaces */
    int r = wsl_deflate_negotiate(t->header, strlen(t->header), &c, &a, &out);
    wsl_buf_append(&out, "", 1);
    CHECK_EQ_INT(r, t->ret);
    if (r == 1 && t->ret == 1) {
      CHECK_STR(out.data + 1, t->response);
      CHECK_EQ_INT(a.server_no_context_takeover, t->snct);
      CHECK_EQ_INT(a.client_no_context_takeover, t->cnct);
      CHECK_EQ_INT(a.server_max_window_bits, t->sbits);
      CHECK_EQ_INT(a.client_max_window_bits, t->cbits);
    } else {
      CHECK_STR(out.data, "X");
    }
    if (r != t->ret || (r == 1 && strcmp(out.data + 1, t->response) != 0))
      fprintf(stderr, "  offer %zu: \"%s\" -> %d \"%s\"\n", i, t->header, r,
              out.data);
    wsl_buf_free(&out);
  }
  /* len is honoured: the header need not end with a NUL. */
  const char *h = PMD "; server_max_window_bits=10xyz";
  wsl_deflate_params_t a;
  wsl_buf_t out = WSL_BUF_INIT;
  CHECK_EQ_INT(wsl_deflate_negotiate(h, strlen(h) - 3, NULL, &a, &out), 1);
  CHECK_EQ_INT(a.server_max_window_bits, 10);
  CHECK_EQ_INT(wsl_deflate_negotiate(NULL, 0, NULL, &a, &out), 0);
  wsl_buf_free(&out);
}

static void test_client_offer(void) {
  static const struct {
    int cfg;
    const char *offer;
  } cases[] = {
      {DEF, PMD "; client_max_window_bits"},
      {W10, PMD "; client_max_window_bits=10"},
      {P12, PMD "; server_max_window_bits=12; client_max_window_bits"},
      {BOTH, PMD "; server_no_context_takeover; client_no_context_takeover; "
                 "client_max_window_bits"},
      {W10P9, PMD "; server_max_window_bits=9; client_max_window_bits=10"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wsl_deflate_config_t c = config(cases[i].cfg);
    wsl_buf_t out = WSL_BUF_INIT;
    CHECK_EQ_INT(wsl_deflate_client_offer(&out, &c), 0);
    wsl_buf_append(&out, "", 1);
    CHECK_STR(out.data, cases[i].offer);
    wsl_buf_free(&out);
  }
}

/* Client side: a response header, the config the offer came from, and what
 * must come back. */
typedef struct {
  const char *header;
  int cfg;
  int ret;
  int snct, cnct, sbits, cbits;
  const char *err; /* a part of the message, when ret is -1 */
} response_case_t;

static const response_case_t response_cases[] = {
    {PMD, DEF, 0, 0, 0, 15, 15, NULL},
    {PMD "; server_no_context_takeover", DEF, 0, 1, 0, 15, 15, NULL},
    {PMD "; client_no_context_takeover", DEF, 0, 0, 1, 15, 15, NULL},
    {PMD "; server_max_window_bits=10", DEF, 0, 0, 0, 10, 15, NULL},
    {PMD "; server_max_window_bits=8", DEF, 0, 0, 0, 8, 15, NULL},
    {PMD "; server_max_window_bits=\"11\"", DEF, 0, 0, 0, 11, 15, NULL},
    {PMD "; client_max_window_bits=10", DEF, 0, 0, 0, 15, 10, NULL},
    {PMD "; client_max_window_bits=9", DEF, 0, 0, 0, 15, 9, NULL},
    {"PERMESSAGE-DEFLATE ; CLIENT_MAX_WINDOW_BITS=12", DEF, 0, 0, 0, 15, 12,
     NULL},
    {PMD, CNCT, 0, 0, 1, 15, 15, NULL},
    {PMD "; server_no_context_takeover", SNCT, 0, 1, 0, 15, 15, NULL},
    {PMD "; server_max_window_bits=10", P10, 0, 0, 0, 10, 15, NULL},
    {PMD "; server_max_window_bits=9", P10, 0, 0, 0, 9, 15, NULL},
    {PMD, W10, 0, 0, 0, 15, 10, NULL},
    {PMD "; client_max_window_bits=12", W10, 0, 0, 0, 15, 10, NULL},
    {PMD "; client_max_window_bits=9", W10, 0, 0, 0, 15, 9, NULL},
    /* Failures. */
    {PMD "; client_max_window_bits=8", DEF, -1, 0, 0, 0, 0, "=8"},
    {PMD "; client_max_window_bits", DEF, -1, 0, 0, 0, 0, "without a value"},
    {PMD ", " PMD, DEF, -1, 0, 0, 0, 0, "more than one"},
    {PMD ", x-foo", DEF, -1, 0, 0, 0, 0, "more than one"},
    {"x-webkit-deflate-frame", DEF, -1, 0, 0, 0, 0, "x-webkit-deflate-frame"},
    {PMD "; foo", DEF, -1, 0, 0, 0, 0, "unknown parameter foo"},
    {PMD "; server_no_context_takeover; server_no_context_takeover", DEF, -1, 0,
     0, 0, 0, "duplicate"},
    {PMD "; server_max_window_bits=16", DEF, -1, 0, 0, 0, 0, "bad value"},
    {PMD "; server_max_window_bits", DEF, -1, 0, 0, 0, 0, "no value"},
    {PMD "; server_no_context_takeover=1", DEF, -1, 0, 0, 0, 0, "a value"},
    {PMD ";", DEF, -1, 0, 0, 0, 0, "malformed"},
    {"", DEF, -1, 0, 0, 0, 0, "empty"},
    {" , ", DEF, -1, 0, 0, 0, 0, "empty"},
    {PMD, SNCT, -1, 0, 0, 0, 0, "server_no_context_takeover"},
    {PMD, P10, -1, 0, 0, 0, 0, "server_max_window_bits=10"},
    {PMD "; server_max_window_bits=12", P10, -1, 0, 0, 0, 0, "above"},
};

static void test_client_accept(void) {
  size_t n = sizeof response_cases / sizeof response_cases[0];
  for (size_t i = 0; i < n; i++) {
    const response_case_t *t = &response_cases[i];
    wsl_deflate_config_t c = config(t->cfg);
    wsl_deflate_params_t a = {-1, -1, -1, -1};
    char err[128] = "";
    int r = wsl_deflate_client_accept(t->header, strlen(t->header), &c, &a, err,
                                      sizeof err);
    CHECK_EQ_INT(r, t->ret);
    if (r == 0 && t->ret == 0) {
      CHECK_EQ_INT(a.server_no_context_takeover, t->snct);
      CHECK_EQ_INT(a.client_no_context_takeover, t->cnct);
      CHECK_EQ_INT(a.server_max_window_bits, t->sbits);
      CHECK_EQ_INT(a.client_max_window_bits, t->cbits);
    } else if (t->ret == -1) {
      CHECK(strstr(err, t->err) != NULL);
    }
    if (r != t->ret || (t->err && strstr(err, t->err) == NULL))
      fprintf(stderr, "  response %zu: \"%s\" -> %d \"%s\"\n", i, t->header, r,
              err);
  }
  /* err may be NULL, and is cut to errlen. */
  wsl_deflate_params_t a;
  CHECK_EQ_INT(wsl_deflate_client_accept("x", 1, NULL, &a, NULL, 0), -1);
  char small[6];
  CHECK_EQ_INT(wsl_deflate_client_accept("", 0, NULL, &a, small, sizeof small),
               -1);
  CHECK_STR(small, "empty");
  CHECK_EQ_INT(wsl_deflate_client_accept(NULL, 0, NULL, &a, small, 6), -1);
}

/* Every client config against every server config: whatever the server
 * answers to our offer, the client accepts it, and both sides agree. */
static void test_offer_answer(void) {
  for (int ci = 0; ci < NCFG; ci++) {
    for (int si = 0; si < NCFG; si++) {
      wsl_deflate_config_t cc = config(ci), sc = config(si);
      wsl_buf_t offer = WSL_BUF_INIT, answer = WSL_BUF_INIT;
      wsl_deflate_params_t sa, ca;
      CHECK_EQ_INT(wsl_deflate_client_offer(&offer, &cc), 0);
      int r = wsl_deflate_negotiate(offer.data, offer.len, &sc, &sa, &answer);
      CHECK_EQ_INT(r, 1);
      if (r == 1) {
        char err[128] = "";
        CHECK_EQ_INT(wsl_deflate_client_accept(answer.data, answer.len, &cc,
                                               &ca, err, sizeof err),
                     0);
        CHECK_EQ_INT(ca.server_no_context_takeover,
                     sa.server_no_context_takeover);
        CHECK_EQ_INT(ca.client_no_context_takeover,
                     sa.client_no_context_takeover);
        CHECK_EQ_INT(ca.server_max_window_bits, sa.server_max_window_bits);
        /* The client's deflater may use less than the server allows. */
        CHECK(ca.client_max_window_bits <= sa.client_max_window_bits);
        CHECK(ca.client_max_window_bits >= 9);
        CHECK(sa.server_max_window_bits >= 9);
      }
      wsl_buf_free(&offer);
      wsl_buf_free(&answer);
    }
  }
}

/* A sink that keeps what it is given. */
typedef struct {
  wsl_buf_t buf;
  size_t calls;
  size_t max_piece;
  uint64_t total;
  int keep;    /* store the bytes, or only count them */
  int stop_at; /* return 7 at this call (1-based); 0: never */
} sink_t;

static int collect(void *ud, const uint8_t *data, size_t len) {
  sink_t *s = ud;
  s->calls++;
  s->total += len;
  if (len > s->max_piece)
    s->max_piece = len;
  if (s->keep && wsl_buf_append(&s->buf, data, len) != 0)
    return 99;
  if (s->stop_at && s->calls == (size_t)s->stop_at)
    return 7;
  return 0;
}

static void sink_reset(sink_t *s) {
  s->buf.len = 0;
  s->calls = s->max_piece = 0;
  s->total = 0;
  s->keep = 1;
  s->stop_at = 0;
}

/* Feeds payload in pieces ending at cuts[0..ncuts) (ascending), the last
 * piece with fin. Returns the first non-zero result, or 0. */
static int feed_cut(wsl_inflater_t *inf, const uint8_t *p, size_t len,
                    const size_t *cuts, size_t ncuts, uint64_t limit,
                    sink_t *s) {
  size_t at = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    int r =
        wsl_inflater_feed(inf, p + at, end - at, i == ncuts, limit, collect, s);
    if (r != 0)
      return r;
    at = end;
  }
  return 0;
}

static int feed_whole(wsl_inflater_t *inf, const uint8_t *p, size_t len,
                      uint64_t limit, sink_t *s) {
  return feed_cut(inf, p, len, NULL, 0, limit, s);
}

#define B(...)                                                                 \
  ((const uint8_t[]){__VA_ARGS__}), sizeof((uint8_t[]){__VA_ARGS__})

typedef struct {
  const uint8_t *p;
  size_t len;
} bytes_t;

/* Each message of msgs, fed to one inflater in turn, split at point k
 * (every k), then one byte at a time, must give "Hello". */
static void check_hellos(int nct, const bytes_t *msgs, size_t n) {
  size_t maxlen = 0;
  for (size_t i = 0; i < n; i++)
    if (msgs[i].len > maxlen)
      maxlen = msgs[i].len;
  sink_t s = {WSL_BUF_INIT, 0, 0, 0, 1, 0};
  for (size_t k = 0; k <= maxlen + 1; k++) {
    wsl_inflater_t *inf = wsl_inflater_new(15, nct);
    for (size_t i = 0; i < n; i++) {
      sink_reset(&s);
      size_t cut = k < msgs[i].len ? k : msgs[i].len;
      int r;
      if (k == maxlen + 1) { /* one byte at a time */
        size_t cuts[64];
        for (size_t j = 0; j + 1 < msgs[i].len && j < 64; j++)
          cuts[j] = j + 1;
        r = feed_cut(inf, msgs[i].p, msgs[i].len, cuts,
                     msgs[i].len ? msgs[i].len - 1 : 0, 0, &s);
      } else {
        r = feed_cut(inf, msgs[i].p, msgs[i].len, &cut, 1, 0, &s);
      }
      CHECK_EQ_INT(r, 0);
      CHECK_EQ_INT(s.buf.len, 5);
      if (s.buf.len == 5)
        CHECK_MEM(s.buf.data, "Hello", 5);
    }
    wsl_inflater_free(inf);
  }
  wsl_buf_free(&s.buf);
}

/* RFC 7692 §7.2.3. */
static void test_rfc_examples(void) {
  static const uint8_t hello1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  static const uint8_t hello2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
  static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                   0x65, 0x6c, 0x6c, 0x6f, 0x00};
  static const uint8_t bfinal[] = {0xf3, 0x48, 0xcd, 0xc9,
                                   0xc9, 0x07, 0x00, 0x00};
  static const uint8_t two_blocks[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                                       0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};

  /* §7.2.3.1 and §7.2.3.2: zlib's defaults give the RFC's bytes. */
  wsl_deflater_t *d = wsl_deflater_new(-1, 8, 15, 0);
  wsl_buf_t out = WSL_BUF_INIT;
  CHECK_EQ_INT(wsl_deflater_compress(d, (const uint8_t *)"Hello", 5, &out), 0);
  CHECK_EQ_INT(out.len, sizeof hello1);
  CHECK_MEM(out.data, hello1, sizeof hello1);
  out.len = 0;
  CHECK_EQ_INT(wsl_deflater_compress(d, (const uint8_t *)"Hello", 5, &out), 0);
  CHECK_EQ_INT(out.len, sizeof hello2);
  CHECK_MEM(out.data, hello2, sizeof hello2);
  /* §7.2.3.6: an empty message after a flush is the byte 00. */
  out.len = 0;
  CHECK_EQ_INT(wsl_deflater_compress(d, NULL, 0, &out), 0);
  CHECK_EQ_INT(out.len, 1);
  CHECK_EQ_INT(out.data[0], 0);
  wsl_deflater_free(d);

  /* Without context takeover, each message is the first one again. */
  d = wsl_deflater_new(-1, 8, 15, 1);
  for (int i = 0; i < 3; i++) {
    out.len = 0;
    CHECK_EQ_INT(wsl_deflater_compress(d, (const uint8_t *)"Hello", 5, &out),
                 0);
    CHECK_EQ_INT(out.len, sizeof hello1);
    CHECK_MEM(out.data, hello1, sizeof hello1);
  }
  out.len = 0;
  CHECK_EQ_INT(wsl_deflater_compress(d, NULL, 0, &out), 0);
  CHECK_EQ_INT(out.len, 1);
  CHECK_EQ_INT(out.data[0], 0);
  wsl_deflater_free(d);
  wsl_buf_free(&out);

  const bytes_t one[] = {{hello1, sizeof hello1}};
  const bytes_t takeover[] = {{hello1, sizeof hello1}, {hello2, sizeof hello2}};
  const bytes_t st[] = {{stored, sizeof stored}, {stored, sizeof stored}};
  const bytes_t bf[] = {{bfinal, sizeof bfinal}, {bfinal, sizeof bfinal}};
  /* The second message refers back across the first one's final block. */
  const bytes_t bf_takeover[] = {{bfinal, sizeof bfinal},
                                 {hello2, sizeof hello2}};
  /* A final block without the RFC's extra 00 is taken too. */
  const bytes_t bf_short[] = {{bfinal, sizeof bfinal - 1},
                              {hello1, sizeof hello1}};
  const bytes_t two[] = {{two_blocks, sizeof two_blocks},
                         {two_blocks, sizeof two_blocks}};
  for (int nct = 0; nct <= 1; nct++) {
    check_hellos(nct, one, 1);
    check_hellos(nct, st, 2);
    check_hellos(nct, bf, 2);
    check_hellos(nct, bf_short, 2);
    check_hellos(nct, two, 2);
  }
  check_hellos(0, takeover, 2);
  check_hellos(0, bf_takeover, 2);

  /* Without context takeover the second message cannot refer back. */
  wsl_inflater_t *inf = wsl_inflater_new(15, 1);
  sink_t s = {WSL_BUF_INIT, 0, 0, 0, 1, 0};
  CHECK_EQ_INT(feed_whole(inf, hello1, sizeof hello1, 0, &s), 0);
  CHECK_EQ_INT(feed_whole(inf, hello2, sizeof hello2, 0, &s),
               WSL_DEFLATE_BAD_DATA);
  wsl_inflater_free(inf);

  /* §7.2.3.6: empty messages, as 00 and as an empty payload. */
  for (int nct = 0; nct <= 1; nct++) {
    inf = wsl_inflater_new(15, nct);
    sink_reset(&s);
    CHECK_EQ_INT(feed_whole(inf, B(0x00), 0, &s), 0);
    CHECK_EQ_INT(feed_whole(inf, NULL, 0, 0, &s), 0);
    CHECK_EQ_INT(wsl_inflater_feed(inf, NULL, 0, 0, 0, collect, &s), 0);
    CHECK_EQ_INT(wsl_inflater_feed(inf, NULL, 0, 1, 0, collect, &s), 0);
    CHECK_EQ_INT(s.total, 0);
    CHECK_EQ_INT(feed_whole(inf, hello1, sizeof hello1, 0, &s), 0);
    CHECK_EQ_INT(s.total, 5);
    wsl_inflater_free(inf);
  }
  wsl_buf_free(&s.buf);
}

/* A small deterministic generator (xorshift64*), so failures repeat. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1du;
}

static void fill_random(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(rng() >> 56);
}

/* Text-like data: words from a small vocabulary, so it compresses well and
 * its matches reach across the whole of a large window. */
static void fill_text(uint8_t *p, size_t n) {
  static const char *words[] = {"the ",     "quick ", "brown ",  "fox ",
                                "jumps ",   "over ",  "lazy ",   "dog ",
                                "{\"id\":", "42, ",   "\"msg\"", "\n"};
  size_t i = 0;
  while (i < n) {
    const char *w = words[rng() % (sizeof words / sizeof words[0])];
    for (size_t j = 0; w[j] && i < n; j++)
      p[i++] = (uint8_t)w[j];
  }
}

/* Up to 8 random cut points of a payload, ascending. */
static size_t random_cuts(size_t len, size_t *cuts) {
  if (len < 2)
    return 0;
  size_t n = (size_t)(rng() % 9);
  for (size_t i = 0; i < n; i++)
    cuts[i] = 1 + (size_t)(rng() % (len - 1));
  for (size_t i = 1; i < n; i++) /* insertion sort */
    for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
      size_t t = cuts[j];
      cuts[j] = cuts[j - 1];
      cuts[j - 1] = t;
    }
  return n;
}

/* Compresses each message with one deflater, inflates it with one inflater
 * of the same window (the tightest the peer may use), fed in random pieces,
 * and compares. */
static void round_trip(const uint8_t *msg, size_t len, int bits, int nct,
                       int messages, sink_t *s, wsl_buf_t *z) {
  wsl_deflater_t *d = wsl_deflater_new(-1, 8, bits, nct);
  wsl_inflater_t *inf = wsl_inflater_new(bits, nct);
  CHECK(d != NULL && inf != NULL);
  size_t first = 0;
  for (int m = 0; m < messages; m++) {
    z->len = 0;
    CHECK_EQ_INT(wsl_deflater_compress(d, msg, len, z), 0);
    if (m == 0)
      first = z->len;
    else if (nct)
      CHECK_EQ_INT(z->len, first); /* every message compressed alike */
    size_t cuts[8];
    size_t ncuts = random_cuts(z->len, cuts);
    sink_reset(s);
    int r = feed_cut(inf, (const uint8_t *)z->data, z->len, cuts, ncuts, 0, s);
    CHECK_EQ_INT(r, 0);
    CHECK_EQ_INT(s->buf.len, len);
    CHECK(s->max_piece <= WSL_INFLATE_CHUNK);
    if (s->buf.len == len && len > 0)
      CHECK_MEM(s->buf.data, msg, len);
    if (r != 0 || s->buf.len != len)
      fprintf(stderr, "  round trip: len %zu bits %d nct %d msg %d\n", len,
              bits, nct, m);
  }
  /* With context takeover a repeated small message shrinks. */
  if (!nct && messages > 1 && len >= 125 && len <= 256)
    CHECK(z->len < first);
  wsl_deflater_free(d);
  wsl_inflater_free(inf);
}

static void test_round_trips(void) {
  static const size_t sizes[] = {0, 1, 125, 64 * 1024, 1024 * 1024};
  size_t max = sizes[sizeof sizes / sizeof sizes[0] - 1];
  uint8_t *msg = malloc(max);
  sink_t s = {WSL_BUF_INIT, 0, 0, 0, 1, 0};
  wsl_buf_t z = WSL_BUF_INIT;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    for (int kind = 0; kind < 2; kind++) {
      if (kind == 0)
        fill_random(msg, sizes[i]);
      else
        fill_text(msg, sizes[i]);
      for (int bits = 9; bits <= 15; bits++)
        for (int nct = 0; nct <= 1; nct++)
          round_trip(msg, sizes[i], bits, nct, sizes[i] > 65536 ? 2 : 3, &s,
                     &z);
    }
  }
  free(msg);
  wsl_buf_free(&s.buf);
  wsl_buf_free(&z);

  /* A peer that announced 8 bits is inflated with 9. */
  wsl_inflater_t *inf = wsl_inflater_new(8, 0);
  CHECK(inf != NULL);
  wsl_inflater_free(inf);
  CHECK(wsl_inflater_new(7, 0) == NULL);
  CHECK(wsl_inflater_new(16, 0) == NULL);
  CHECK(wsl_deflater_new(-1, 8, 8, 0) == NULL);
  CHECK(wsl_deflater_new(-1, 8, 16, 0) == NULL);
  CHECK(wsl_deflater_new(10, 8, 15, 0) == NULL);
  CHECK(wsl_deflater_new(-2, 8, 15, 0) == NULL);
  CHECK(wsl_deflater_new(6, 0, 15, 0) == NULL);
  CHECK(wsl_deflater_new(6, 10, 15, 0) == NULL);
  wsl_deflater_free(NULL);
  wsl_inflater_free(NULL);
}

/* 10 MiB of zeros against a 1 MiB limit, and limits at the exact size. */
static void test_bomb(void) {
  size_t big = 10 * 1024 * 1024;
  uint8_t *zeros = calloc(1, big);
  wsl_deflater_t *d = wsl_deflater_new(9, 9, 15, 1);
  wsl_buf_t z = WSL_BUF_INIT;
  CHECK_EQ_INT(wsl_deflater_compress(d, zeros, big, &z), 0);
  CHECK(z.len < 16 * 1024);
  free(zeros);
  uint64_t limit = 1024 * 1024;
  sink_t s = {WSL_BUF_INIT, 0, 0, 0, 0, 0};
  for (size_t piece = 1000; piece <= z.len; piece += 4000) {
    wsl_inflater_t *inf = wsl_inflater_new(15, 0);
    sink_reset(&s);
    s.keep = 0;
    int r = 0;
    size_t at = 0;
    while (r == 0 && at < z.len) {
      size_t n = z.len - at < piece ? z.len - at : piece;
      r = wsl_inflater_feed(inf, (const uint8_t *)z.data + at, n,
                            at + n == z.len, limit, collect, &s);
      at += n;
      CHECK(wsl_inflater_memory(inf) < 64 * 1024);
    }
    CHECK_EQ_INT(r, WSL_DEFLATE_TOO_BIG);
    CHECK(s.total <= limit);
    CHECK(s.total + WSL_INFLATE_CHUNK > limit);
    /* It stopped at once: the input after the limit was never needed. */
    CHECK(at < z.len);
    wsl_inflater_free(inf);
  }

  /* A message exactly at the limit passes; one byte less does not. */
  uint8_t msg[100000];
  fill_text(msg, sizeof msg);
  z.len = 0;
  CHECK_EQ_INT(wsl_deflater_compress(d, msg, sizeof msg, &z), 0);
  wsl_inflater_t *inf = wsl_inflater_new(15, 1);
  sink_reset(&s);
  CHECK_EQ_INT(feed_whole(inf, (const uint8_t *)z.data, z.len, sizeof msg, &s),
               0);
  CHECK_EQ_INT(s.total, sizeof msg);
  sink_reset(&s);
  CHECK_EQ_INT(
      feed_whole(inf, (const uint8_t *)z.data, z.len, sizeof msg - 1, &s),
      WSL_DEFLATE_TOO_BIG);
  CHECK(s.total <= sizeof msg - 1);
  /* The limit is per message, and the inflater goes on after a failure. */
  for (int i = 0; i < 3; i++) {
    sink_reset(&s);
    CHECK_EQ_INT(
        feed_whole(inf, (const uint8_t *)z.data, z.len, sizeof msg, &s), 0);
    CHECK_EQ_INT(s.total, sizeof msg);
  }
  wsl_inflater_free(inf);
  wsl_deflater_free(d);
  wsl_buf_free(&z);
  wsl_buf_free(&s.buf);
}

static void test_bad_data(void) {
  static const uint8_t hello1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  sink_t s = {WSL_BUF_INIT, 0, 0, 0, 1, 0};
  static const struct {
    uint8_t bytes[8];
    size_t len;
  } bad[] = {
      {{0xff}, 1},                         /* BTYPE 11 is reserved */
      {{0x07, 0xff, 0xff}, 3},             /* BTYPE 11 after BFINAL 1 */
      {{0x00, 0x05, 0x00, 0x00, 0x00}, 5}, /* stored: NLEN is not ~LEN */
      {{0xf2, 0x48}, 2},                   /* cut in the middle of a block */
      {{0xf2, 0x48, 0xcd, 0xc9}, 4},
      {{0x02, 0xff, 0xff, 0xff, 0xff}, 5}, /* an invalid distance code */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (int nct = 0; nct <= 1; nct++) {
      wsl_inflater_t *inf = wsl_inflater_new(15, nct);
      sink_reset(&s);
      CHECK_EQ_INT(feed_whole(inf, bad[i].bytes, bad[i].len, 0, &s),
                   WSL_DEFLATE_BAD_DATA);
      /* The stream was reset: a first message inflates again. */
      sink_reset(&s);
      CHECK_EQ_INT(feed_whole(inf, hello1, sizeof hello1, 0, &s), 0);
      CHECK_EQ_INT(s.buf.len, 5);
      wsl_inflater_free(inf);
    }
  }
  /* Garbage after a good start, in a later piece. */
  wsl_inflater_t *inf = wsl_inflater_new(15, 0);
  sink_reset(&s);
  CHECK_EQ_INT(wsl_inflater_feed(inf, hello1, 6, 0, 0, collect, &s), 0);
  CHECK_EQ_INT(wsl_inflater_feed(inf, B(0xff, 0xff, 0xff), 1, 0, collect, &s),
               WSL_DEFLATE_BAD_DATA);
  wsl_inflater_free(inf);

  /* The sink can stop it; its value comes back as is. */
  uint8_t msg[70000];
  fill_text(msg, sizeof msg);
  wsl_deflater_t *d = wsl_deflater_new(-1, 8, 15, 1);
  wsl_buf_t z = WSL_BUF_INIT;
  CHECK_EQ_INT(wsl_deflater_compress(d, msg, sizeof msg, &z), 0);
  inf = wsl_inflater_new(15, 1);
  sink_reset(&s);
  s.stop_at = 2;
  CHECK_EQ_INT(feed_whole(inf, (const uint8_t *)z.data, z.len, 0, &s), 7);
  CHECK_EQ_INT(s.calls, 2);
  sink_reset(&s);
  CHECK_EQ_INT(feed_whole(inf, (const uint8_t *)z.data, z.len, 0, &s), 0);
  CHECK_EQ_INT(s.buf.len, sizeof msg);
  CHECK(s.calls >= sizeof msg / WSL_INFLATE_CHUNK);
  CHECK_EQ_INT(s.max_piece, WSL_INFLATE_CHUNK);
  wsl_inflater_free(inf);
  wsl_deflater_free(d);
  wsl_buf_free(&z);
  wsl_buf_free(&s.buf);
}

/* The released mode: zlib's state goes between messages and comes back. */
static void test_release(void) {
  uint8_t msg[5000];
  fill_text(msg, sizeof msg);
  wsl_buf_t z = WSL_BUF_INIT, z2 = WSL_BUF_INIT;
  sink_t s = {WSL_BUF_INIT, 0, 0, 0, 1, 0};

  wsl_deflater_t *d = wsl_deflater_new(-1, 8, 15, 1);
  size_t idle = wsl_deflater_memory(d);
  CHECK(idle < 1024);
  CHECK_EQ_INT(wsl_deflater_compress(d, msg, sizeof msg, &z), 0);
  size_t busy = wsl_deflater_memory(d);
  CHECK(busy >= idle + (1u << 17) + (1u << 17)); /* zlib's own formula */
  CHECK(busy < idle + (1u << 17) + (1u << 17) + 16 * 1024);
  wsl_deflater_release(d);
  CHECK_EQ_INT(wsl_deflater_memory(d), idle);
  wsl_deflater_release(d); /* twice is harmless */
  CHECK_EQ_INT(wsl_deflater_compress(d, msg, sizeof msg, &z2), 0);
  CHECK_EQ_INT(z2.len, z.len);
  CHECK_MEM(z2.data, z.data, z.len);
  CHECK_EQ_INT(wsl_deflater_memory(d), busy);
  wsl_deflater_free(d);

  /* Smaller windows hold less. */
  d = wsl_deflater_new(-1, 1, 9, 1);
  z2.len = 0;
  CHECK_EQ_INT(wsl_deflater_compress(d, msg, sizeof msg, &z2), 0);
  CHECK(wsl_deflater_memory(d) < busy / 8);
  wsl_deflater_free(d);

  /* With context takeover, release keeps the window. */
  d = wsl_deflater_new(-1, 8, 15, 0);
  CHECK_EQ_INT(wsl_deflater_compress(d, msg, sizeof msg, &z2), 0);
  busy = wsl_deflater_memory(d);
  wsl_deflater_release(d);
  CHECK_EQ_INT(wsl_deflater_memory(d), busy);
  wsl_deflater_free(d);

  wsl_inflater_t *inf = wsl_inflater_new(15, 1);
  idle = wsl_inflater_memory(inf);
  CHECK(idle < 1024);
  for (int i = 0; i < 3; i++) {
    sink_reset(&s);
    CHECK_EQ_INT(feed_whole(inf, (const uint8_t *)z.data, z.len, 0, &s), 0);
    CHECK_EQ_INT(s.buf.len, sizeof msg);
    CHECK(wsl_inflater_memory(inf) >= idle + (1u << 15));
    wsl_inflater_release(inf);
    CHECK_EQ_INT(wsl_inflater_memory(inf), idle);
  }
  /* Not in the middle of a message. */
  sink_reset(&s);
  CHECK_EQ_INT(
      wsl_inflater_feed(inf, (const uint8_t *)z.data, 10, 0, 0, collect, &s),
      0);
  busy = wsl_inflater_memory(inf);
  wsl_inflater_release(inf);
  CHECK_EQ_INT(wsl_inflater_memory(inf), busy);
  CHECK_EQ_INT(wsl_inflater_feed(inf, (const uint8_t *)z.data + 10, z.len - 10,
                                 1, 0, collect, &s),
               0);
  CHECK_EQ_INT(s.buf.len, sizeof msg);
  wsl_inflater_free(inf);

  /* With context takeover, release keeps the window. */
  inf = wsl_inflater_new(15, 0);
  sink_reset(&s);
  CHECK_EQ_INT(feed_whole(inf, (const uint8_t *)z.data, z.len, 0, &s), 0);
  busy = wsl_inflater_memory(inf);
  wsl_inflater_release(inf);
  CHECK_EQ_INT(wsl_inflater_memory(inf), busy);
  wsl_inflater_free(inf);

  wsl_buf_free(&z);
  wsl_buf_free(&z2);
  wsl_buf_free(&s.buf);
}

/* Every zlib allocation failing in turn: a clean -1, nothing leaked or
 * half-written, and the object works at the next try. */
static void test_alloc_failures(void) {
  static const uint8_t hello1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  for (int nth = 1; nth <= 5; nth++) {
    wsl_deflater_t *d = wsl_deflater_new(-1, 8, 15, 0);
    size_t idle = wsl_deflater_memory(d);
    wsl_buf_t out = WSL_BUF_INIT;
    wsl_buf_append_str(&out, "ab");
    wsl__deflate_fail_alloc(nth);
    CHECK_EQ_INT(wsl_deflater_compress(d, (const uint8_t *)"Hello", 5, &out),
                 -1);
    wsl__deflate_fail_alloc(0);
    CHECK_EQ_INT(out.len, 2);
    CHECK_EQ_INT(wsl_deflater_memory(d), idle);
    CHECK_EQ_INT(wsl_deflater_compress(d, (const uint8_t *)"Hello", 5, &out),
                 0);
    CHECK_EQ_INT(out.len, 2 + sizeof hello1);
    CHECK_MEM(out.data + 2, hello1, sizeof hello1);
    wsl_buf_free(&out);
    wsl_deflater_free(d);
  }
  /* The inflater allocates its state, then its window at the first
   * output. */
  sink_t s = {WSL_BUF_INIT, 0, 0, 0, 1, 0};
  for (int nth = 1; nth <= 2; nth++) {
    wsl_inflater_t *inf = wsl_inflater_new(15, 0);
    sink_reset(&s);
    wsl__deflate_fail_alloc(nth);
    CHECK_EQ_INT(feed_whole(inf, hello1, sizeof hello1, 0, &s),
                 WSL_DEFLATE_NO_MEMORY);
    wsl__deflate_fail_alloc(0);
    sink_reset(&s);
    CHECK_EQ_INT(feed_whole(inf, hello1, sizeof hello1, 0, &s), 0);
    CHECK_EQ_INT(s.buf.len, 5);
    wsl_inflater_free(inf);
  }
  wsl_buf_free(&s.buf);
}

int main(void) {
  test_config_default();
  test_negotiate();
  test_client_offer();
  test_client_accept();
  test_offer_answer();
  test_rfc_examples();
  test_round_trips();
  test_bomb();
  test_bad_data();
  test_release();
  test_alloc_failures();
  return TEST_REPORT();
}
