/* libFuzzer target: HTTP/1.x parsing (requests, and responses as the client
 * side reads them) with fuzzer-chosen limits, then the WebSocket opening
 * handshake checks and the permessage-deflate negotiation on whatever
 * parses. The stream is parsed whole and again in fuzzer-chosen pieces
 * (each a heap block of exactly its size); both must give the same
 * messages and the same error status. Pipelined messages are taken
 * one after another until an error, an upgrade or the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/buf.h"
#include "proto/deflate.h"
#include "proto/handshake.h"
#include "proto/http.h"

/* A client key and its accept value, for checking responses. */
static const char client_key[] = "dGhlIHNhbXBsZSBub25jZQ==";

static void put(wsl_buf_t *t, const char *s, size_t n) {
  FUZZ_CHECK(wsl_buf_append(t, s, n) == 0);
  FUZZ_CHECK(wsl_buf_append(t, "|", 1) == 0);
}

/* Checks a parsed message and appends what it holds, and what the
 * handshake and negotiation code made of it, to the transcript. */
static void took(wsl_buf_t *t, const wsl_http_parser_t *p) {
  const wsl_http_request_t *r = &p->request;
  const char *why = NULL;
  wsl_token_t tokens[8];
  wsl_buf_t out = WSL_BUF_INIT;
  wsl_deflate_params_t agreed;
  const wsl_http_header_t *ext;
  int status;

  FUZZ_CHECK(r->body != NULL && r->body[r->body_len] == '\0');
  FUZZ_CHECK(r->path_len <= r->url_len);
  FUZZ_CHECK(r->query_len <= r->url_len);
  FUZZ_CHECK(r->nheaders <= p->limits.max_headers);
  FUZZ_CHECK(r->body_len <= p->limits.max_body);
  FUZZ_CHECK(r->url_len <= p->limits.max_url);
  FUZZ_CHECK(wsl_buf_appendf(t, "msg %s %d %d.%d ka%d up%d|", r->method,
                             r->status, r->version_major, r->version_minor,
                             r->keep_alive, r->upgrade) == 0);
  put(t, r->url, r->url_len);
  put(t, r->path, r->path_len);
  put(t, r->query, r->query_len);
  for (size_t i = 0; i < r->nheaders; i++) {
    const wsl_http_header_t *h = &r->headers[i];
    FUZZ_CHECK(h->name_len > 0);
    put(t, h->name, h->name_len);
    put(t, h->value, h->value_len);
  }
  put(t, r->body, r->body_len);

  /* Token lists: every element lies inside some field's value. */
  size_t n = wsl_http_header_tokens(r, "Connection", tokens, 8);
  FUZZ_CHECK(n <= 8);
  for (size_t i = 0; i < n; i++)
    FUZZ_CHECK(tokens[i].len > 0);

  ext = wsl_http_header(r, "Sec-WebSocket-Extensions");
  if (p->mode == WSL_HTTP_REQUEST_MODE) {
    status = wsl_handshake_check(r, &why);
    FUZZ_CHECK(status == 0 || status == 400 || status == 405 || status == 426);
    FUZZ_CHECK(status == 0 || why != NULL);
    FUZZ_CHECK(wsl_buf_appendf(t, "hs %d %s|", status, why ? why : "") == 0);
    if (status == 0) {
      const wsl_http_header_t *key = wsl_http_header(r, "Sec-WebSocket-Key");
      char accept[WSL_ACCEPT_LEN + 1];
      FUZZ_CHECK(key != NULL);
      FUZZ_CHECK(wsl_handshake_accept(key->value, key->value_len, accept) == 0);
      FUZZ_CHECK(strlen(accept) == WSL_ACCEPT_LEN);
      FUZZ_CHECK(wsl_handshake_response(&out, accept, NULL, NULL) == 0);
    }
    if (ext != NULL) {
      int k = wsl_deflate_negotiate(ext->value, ext->value_len, NULL, &agreed,
                                    &out);
      FUZZ_CHECK(k == 0 || k == 1);
      if (k == 1) {
        FUZZ_CHECK(agreed.server_max_window_bits >= 9 &&
                   agreed.server_max_window_bits <= 15);
        FUZZ_CHECK(agreed.client_max_window_bits >= 8 &&
                   agreed.client_max_window_bits <= 15);
      }
      FUZZ_CHECK(wsl_buf_appendf(t, "pmd %d|", k) == 0);
    }
  } else {
    char err[128];
    status = wsl_handshake_client_check(r, client_key, "chat, superchat",
                                        ext != NULL, err, sizeof err);
    FUZZ_CHECK(status == 0 || status == -1);
    FUZZ_CHECK(status == 0 || memchr(err, '\0', sizeof err) != NULL);
    FUZZ_CHECK(wsl_buf_appendf(t, "hs %d|", status) == 0);
    if (ext != NULL) {
      int k = wsl_deflate_client_accept(ext->value, ext->value_len, NULL,
                                        &agreed, err, sizeof err);
      FUZZ_CHECK(k == 0 || k == -1);
      FUZZ_CHECK(wsl_buf_appendf(t, "pmd %d|", k) == 0);
    }
  }
  wsl_buf_free(&out);
}

/* Feeds one piece; returns 0 when the stream can go no further (an error,
 * or an upgrade: what follows belongs to another protocol). */
static int feed(wsl_http_parser_t *p, wsl_buf_t *t, const char *buf,
                size_t len) {
  size_t at = 0;
  for (;;) {
    size_t used = 0;
    int r = wsl_http_parse(p, buf + at, len - at, &used);
    FUZZ_CHECK(used <= len - at);
    at += used;
    if (r == WSL_HTTP_NEED_MORE) {
      FUZZ_CHECK(at == len);
      return 1;
    }
    if (r != WSL_HTTP_DONE) {
      FUZZ_CHECK(r >= 400 && r <= 599 && p->error != NULL);
      FUZZ_CHECK(wsl_http_parse(p, buf, len, &used) == r && used == 0);
      /* The status, not the cause: when two checks catch one fault, which
       * sees it first may depend on the split ("Host : x" is refused by
       * llhttp or by our field-name check). */
      FUZZ_CHECK(wsl_buf_appendf(t, "error %d|", r) == 0);
      return 0;
    }
    took(t, p);
    if (p->request.upgrade) {
      FUZZ_CHECK(wsl_buf_appendf(t, "upgrade|") == 0);
      return 0;
    }
    wsl_http_parser_next(p);
  }
}

static void finish(wsl_http_parser_t *p, wsl_buf_t *t) {
  int r = wsl_http_parse_eof(p);
  if (r == WSL_HTTP_DONE)
    took(t, p);
  FUZZ_CHECK(wsl_buf_appendf(t, "eof %d|", r) == 0);
}

/* The status of the error a transcript ends with ("error NNN|"), or 0;
 * *head is the length before that entry. */
static int last_error(const wsl_buf_t *t, size_t *head) {
  const size_t n = sizeof "error 400|" - 1;
  *head = t->len;
  if (t->len < n || memcmp(t->data + t->len - n, "error ", 6) != 0 ||
      (t->len > n && t->data[t->len - n - 1] != '|'))
    return 0;
  *head = t->len - n;
  return atoi(t->data + t->len - 4);
}

static int is_limit(int status) {
  return status == 413 || status == 414 || status == 431;
}

/* Equal transcripts; or equal up to an error that is 400 (malformed) in one
 * and a limit status in the other. llhttp calls a span callback (where our
 * limits are checked) when the span ends or the piece does, and stops at a
 * malformed byte first: a URL over the limit with a bad byte after the
 * limit is 414 when cut before that byte, 400 when fed whole. Either answer
 * refuses the request. */
static int same(const wsl_buf_t *a, const wsl_buf_t *b) {
  size_t ha, hb;
  int ea, eb;
  if (a->len == b->len &&
      (a->len == 0 || memcmp(a->data, b->data, a->len) == 0))
    return 1;
  ea = last_error(a, &ha);
  eb = last_error(b, &hb);
  if (ha != hb || memcmp(a->data, b->data, ha) != 0)
    return 0;
  return (ea == 400 && is_limit(eb)) || (eb == 400 && is_limit(ea));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in_t in = {data, size};
  uint8_t c0 = fuzz_byte(&in), c1 = fuzz_byte(&in);
  wsl_http_mode_t mode =
      c0 & 1 ? WSL_HTTP_RESPONSE_MODE : WSL_HTTP_REQUEST_MODE;
  wsl_http_limits_t limits = {0, 0, 0, 0};
  fuzz_splits_t splits;
  wsl_http_parser_t whole, split;
  wsl_buf_t tw = WSL_BUF_INIT, ts = WSL_BUF_INIT;
  size_t off = 0;
  uint8_t *buf;
  int go_on = 1;

  /* Small limits, so that every one of them is reached. */
  if (c0 & 2)
    limits.max_header_bytes = 16 + (size_t)c1 * 4;
  if (c0 & 4)
    limits.max_headers = 1 + (c1 & 15);
  if (c0 & 8)
    limits.max_url = 1 + (size_t)c1;
  if (c0 & 16)
    limits.max_body = 1 + (size_t)c1;
  fuzz_splits_read(&in, &splits);

  wsl_http_parser_init(&whole, mode, &limits);
  buf = fuzz_dup(in.p, in.left);
  if (feed(&whole, &tw, (const char *)buf, in.left))
    finish(&whole, &tw);
  free(buf);
  wsl_http_parser_free(&whole);

  wsl_http_parser_init(&split, mode, &limits);
  while (go_on && off < in.left) {
    size_t n = fuzz_splits_next(&splits, in.left - off);
    buf = fuzz_dup(in.p + off, n);
    go_on = feed(&split, &ts, (const char *)buf, n);
    free(buf);
    off += n;
  }
  if (go_on)
    finish(&split, &ts);
  wsl_http_parser_free(&split);

  if (!same(&tw, &ts)) {
    fprintf(stderr, "whole: %.*s\nsplit: %.*s\n", (int)tw.len, tw.data,
            (int)ts.len, ts.data);
    FUZZ_CHECK(!"whole and split parses differ");
  }
  wsl_buf_free(&tw);
  wsl_buf_free(&ts);
  return 0;
}
