/* Tests for src/proto/handshake.c: the RFC 6455 vectors, every refusal rule
 * of the server check with its status, the response and request builders
 * read back by our parser, and the client's check of the response. */
#include "proto/handshake.h"

#include <string.h>

#include "test.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Parses one whole message (request or response) into p. */
static int parse(wsl_http_parser_t *p, wsl_http_mode_t mode, const char *s) {
  wsl_http_parser_init(p, mode, NULL);
  return wsl_http_parse(p, s, strlen(s), NULL);
}

static void test_vectors(void) {
  char out[WSL_ACCEPT_LEN + 1];
  /* RFC 6455 §1.3. */
  CHECK_EQ_INT(wsl_handshake_accept(KEY, strlen(KEY), out), 0);
  CHECK_STR(out, ACCEPT);
  CHECK_EQ_INT(strlen(out), WSL_ACCEPT_LEN);
  /* Only key_len bytes count. */
  CHECK_EQ_INT(wsl_handshake_accept(KEY "junk", strlen(KEY), out), 0);
  CHECK_STR(out, ACCEPT);
  /* Another key (a widely quoted example), and key_len is honoured. */
  CHECK_EQ_INT(wsl_handshake_accept("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 0);
  CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  CHECK_EQ_INT(wsl_handshake_accept(KEY, strlen(KEY) - 1, out), 0);
  CHECK(strcmp(out, ACCEPT) != 0);

  /* The §1.3 key is base64 of the 16-byte nonce "the sample nonce". */
  char key[WSL_KEY_LEN + 1];
  CHECK_EQ_INT(
      wsl_handshake_client_key(key, (const uint8_t *)"the sample nonce"), 0);
  CHECK_STR(key, KEY);
  static const uint8_t ones[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff};
  CHECK_EQ_INT(wsl_handshake_client_key(key, ones), 0);
  CHECK_STR(key, "/////////////////////w==");
}

/* The server's check, §4.2.1. */

/* A valid request with the line for `field` replaced by `line` (NULL: the
 * field left out); lines end with CRLF. */
static void build(wsl_buf_t *b, const char *method, const char *version,
                  const char *field, const char *line) {
  static const char *names[] = {"Host", "Upgrade", "Connection",
                                "Sec-WebSocket-Key", "Sec-WebSocket-Version"};
  static const char *lines[] = {
      "Host: server.example.com\r\n", "Upgrade: websocket\r\n",
      "Connection: Upgrade\r\n", "Sec-WebSocket-Key: " KEY "\r\n",
      "Sec-WebSocket-Version: 13\r\n"};
  b->len = 0;
  wsl_buf_appendf(b, "%s /chat HTTP/%s\r\n", method, version);
  for (size_t i = 0; i < 5; i++) {
    if (field != NULL && strcmp(field, names[i]) == 0) {
      if (line != NULL)
        wsl_buf_append_str(b, line);
    } else {
      wsl_buf_append_str(b, lines[i]);
    }
  }
  wsl_buf_append_str(b, "Origin: http://example.com\r\n\r\n");
  wsl_buf_append(b, "", 1);
}

static void expect_check(const char *method, const char *version,
                         const char *field, const char *line, int want,
                         const char *want_error) {
  wsl_buf_t b = WSL_BUF_INIT;
  wsl_http_parser_t p;
  build(&b, method, version, field, line);
  int rc = parse(&p, WSL_HTTP_REQUEST_MODE, b.data);
  CHECK_EQ_INT(rc, WSL_HTTP_DONE);
  const char *error = NULL;
  int status =
      rc == WSL_HTTP_DONE ? wsl_handshake_check(&p.request, &error) : -1;
  CHECK_EQ_INT(status, want);
  if (want == 0) {
    CHECK(error == NULL);
  } else {
    CHECK(error != NULL && strcmp(error, want_error) == 0);
  }
  if (status != want || (want != 0 && error && strcmp(error, want_error)))
    fprintf(stderr, "  (%s %s, %s: %s; got %d, %s)\n", method, version,
            field ? field : "-", line ? line : "left out", status,
            error ? error : "no error");
  wsl_http_parser_free(&p);
  wsl_buf_free(&b);
}

static void test_check(void) {
  expect_check("GET", "1.1", NULL, NULL, 0, NULL);
  /* Tokens, case-insensitive, in lists. */
  expect_check("GET", "1.1", "Upgrade", "Upgrade: WebSocket\r\n", 0, NULL);
  expect_check("GET", "1.1", "Upgrade", "upgrade: h2c, websocket\r\n", 0, NULL);
  expect_check("GET", "1.1", "Connection",
               "Connection: keep-alive, Upgrade\r\n", 0, NULL);
  expect_check("GET", "1.1", "Connection",
               "Connection: keep-alive\r\nConnection: upgrade\r\n", 0, NULL);

  /* 405 */
  expect_check("POST", "1.1", NULL, NULL, 405, "method not GET");
  expect_check("HEAD", "1.1", NULL, NULL, 405, "method not GET");
  expect_check("PUT", "1.0", NULL, NULL, 405, "method not GET");
  /* 400 */
  expect_check("GET", "1.0", NULL, NULL, 400, "HTTP version below 1.1");
  expect_check("GET", "1.1", "Host", NULL, 400, "Host missing");
  expect_check("GET", "1.1", "Host", "Host: a\r\nhost: b\r\n", 400,
               "Host repeated");
  expect_check("GET", "1.1", "Upgrade", NULL, 400, "Upgrade lacks websocket");
  expect_check("GET", "1.1", "Upgrade", "Upgrade: h2c\r\n", 400,
               "Upgrade lacks websocket");
  expect_check("GET", "1.1", "Upgrade", "Upgrade: websockets\r\n", 400,
               "Upgrade lacks websocket");
  expect_check("GET", "1.1", "Upgrade", "Upgrade: websocket/13\r\n", 400,
               "Upgrade lacks websocket");
  expect_check("GET", "1.1", "Connection", NULL, 400,
               "Connection lacks upgrade");
  expect_check("GET", "1.1", "Connection", "Connection: keep-alive\r\n", 400,
               "Connection lacks upgrade");
  expect_check("GET", "1.1", "Connection", "Connection: upgraded\r\n", 400,
               "Connection lacks upgrade");
  expect_check("GET", "1.1", "Sec-WebSocket-Key", NULL, 400,
               "Sec-WebSocket-Key missing");
  expect_check("GET", "1.1", "Sec-WebSocket-Key",
               "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Key: " KEY "\r\n",
               400, "Sec-WebSocket-Key repeated");
  static const char *bad_keys[] = {
      "Sec-WebSocket-Key:\r\n",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n",     /* no padding */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n",    /* short */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===\r\n",  /* long */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=a\r\n",   /* bad padding */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZS5h\r\n",   /* 18 bytes */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j\r\n",       /* 15 bytes */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==AA\r\n", /* trailing */
      "Sec-WebSocket-Key: dGhlIHNhbX!sZSBub25jZQ==\r\n",   /* not base64 */
      "Sec-WebSocket-Key: dGhlIHNhbX sZSBub25jZQ==\r\n",   /* a space */
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ===\r\n",   /* 3 pads */
      "Sec-WebSocket-Key: the sample nonce\r\n",           /* raw bytes */
  };
  for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
    expect_check("GET", "1.1", "Sec-WebSocket-Key", bad_keys[i], 400,
                 "Sec-WebSocket-Key is not 16 bytes in base64");
  /* Any 16 bytes do. */
  expect_check("GET", "1.1", "Sec-WebSocket-Key",
               "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n", 0, NULL);
  expect_check("GET", "1.1", "Sec-WebSocket-Key",
               "Sec-WebSocket-Key: +/+/+/+/+/+/+/+/+/+/+w==\r\n", 0, NULL);
  /* 426 */
  expect_check("GET", "1.1", "Sec-WebSocket-Version", NULL, 426,
               "Sec-WebSocket-Version missing");
  expect_check("GET", "1.1", "Sec-WebSocket-Version",
               "Sec-WebSocket-Version: 8\r\n", 426,
               "Sec-WebSocket-Version not 13");
  expect_check("GET", "1.1", "Sec-WebSocket-Version",
               "Sec-WebSocket-Version: 13, 8\r\n", 426,
               "Sec-WebSocket-Version not 13");
  expect_check("GET", "1.1", "Sec-WebSocket-Version",
               "Sec-WebSocket-Version: 130\r\n", 426,
               "Sec-WebSocket-Version not 13");
  expect_check("GET", "1.1", "Sec-WebSocket-Version",
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n", 426,
               "Sec-WebSocket-Version not 13");
  expect_check("GET", "1.1", "Sec-WebSocket-Version",
               "Sec-WebSocket-Version:\r\n", 426,
               "Sec-WebSocket-Version not 13");
  /* The first rule broken decides; error may be NULL. */
  wsl_buf_t b = WSL_BUF_INIT;
  wsl_http_parser_t p;
  build(&b, "POST", "1.0", "Sec-WebSocket-Version", NULL);
  CHECK_EQ_INT(parse(&p, WSL_HTTP_REQUEST_MODE, b.data), WSL_HTTP_DONE);
  CHECK_EQ_INT(wsl_handshake_check(&p.request, NULL), 405);
  wsl_http_parser_free(&p);
  build(&b, "GET", "1.1", "Sec-WebSocket-Key", NULL);
  CHECK_EQ_INT(parse(&p, WSL_HTTP_REQUEST_MODE, b.data), WSL_HTTP_DONE);
  CHECK_EQ_INT(wsl_handshake_check(&p.request, NULL), 400);
  wsl_http_parser_free(&p);
  wsl_buf_free(&b);
}

/* The server's response, read back. */

static void test_response(void) {
  wsl_buf_t b = WSL_BUF_INIT;
  CHECK_EQ_INT(wsl_handshake_response(&b, ACCEPT, NULL, NULL), 0);
  const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: " ACCEPT "\r\n"
                      "Date: ";
  CHECK(b.len > sizeof(head) && memcmp(b.data, head, sizeof(head) - 1) == 0);
  /* No blank line yet: the caller may add fields. */
  CHECK(b.len > 4 && memcmp(b.data + b.len - 4, "\r\n\r\n", 4) != 0);
  CHECK(b.len > 15 &&
        memcmp(b.data + b.len - 15, "Server: wslua\r\n", 15) == 0);
  CHECK_EQ_INT(wsl_http_response_header(&b, "X-Extra", 7, "1", 1), 0);
  CHECK_EQ_INT(wsl_http_response_end(&b), 0);
  wsl_buf_append(&b, "", 1);

  wsl_http_parser_t p;
  CHECK_EQ_INT(parse(&p, WSL_HTTP_RESPONSE_MODE, b.data), WSL_HTTP_DONE);
  CHECK_EQ_INT(p.request.status, 101);
  CHECK_EQ_INT(p.request.upgrade, 1);
  CHECK(wsl_http_header(&p.request, "Sec-WebSocket-Protocol") == NULL);
  CHECK(wsl_http_header(&p.request, "Sec-WebSocket-Extensions") == NULL);
  CHECK(wsl_http_header(&p.request, "X-Extra") != NULL);
  CHECK(wsl_http_header(&p.request, "Date") != NULL);
  CHECK_EQ_INT(wsl_handshake_client_check(&p.request, KEY, NULL, 0, NULL, 0),
               0);
  wsl_http_parser_free(&p);

  b.len = 0;
  CHECK_EQ_INT(wsl_handshake_response(&b, ACCEPT, "chat",
                                      "permessage-deflate; "
                                      "client_max_window_bits=15"),
               0);
  CHECK_EQ_INT(wsl_http_response_end(&b), 0);
  wsl_buf_append(&b, "", 1);
  CHECK_EQ_INT(parse(&p, WSL_HTTP_RESPONSE_MODE, b.data), WSL_HTTP_DONE);
  const wsl_http_header_t *h =
      wsl_http_header(&p.request, "Sec-WebSocket-Protocol");
  CHECK(h != NULL && h->value_len == 4 && memcmp(h->value, "chat", 4) == 0);
  h = wsl_http_header(&p.request, "Sec-WebSocket-Extensions");
  CHECK(h != NULL && h->value_len == 45);
  wsl_http_parser_free(&p);

  /* No injection through the protocol or extensions: out is left alone. */
  b.len = 0;
  CHECK_EQ_INT(
      wsl_handshake_response(&b, ACCEPT, "chat\r\nSet-Cookie: x", NULL), -1);
  CHECK_EQ_INT(wsl_handshake_response(&b, ACCEPT, NULL, "x\ny"), -1);
  CHECK_EQ_INT(b.len, 0);
  wsl_buf_free(&b);
}

/* The client's request, read back and checked by the server's rules. */

static void test_client_request(void) {
  wsl_buf_t b = WSL_BUF_INIT;
  CHECK_EQ_INT(wsl_handshake_client_request(&b, "example.com:8080",
                                            "/chat?room=1", KEY,
                                            "chat, superchat"),
               0);
  /* No blank line yet. */
  CHECK(b.len > 4 && memcmp(b.data + b.len - 4, "\r\n\r\n", 4) != 0);
  CHECK_EQ_INT(wsl_http_response_header(&b, "Origin", 6, "http://x", 8), 0);
  CHECK_EQ_INT(wsl_http_response_end(&b), 0);
  wsl_buf_append(&b, "", 1);
  CHECK(strncmp(b.data,
                "GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\n",
                51) == 0);

  wsl_http_parser_t p;
  CHECK_EQ_INT(parse(&p, WSL_HTTP_REQUEST_MODE, b.data), WSL_HTTP_DONE);
  const char *error = "unset";
  CHECK_EQ_INT(wsl_handshake_check(&p.request, &error), 0);
  CHECK_EQ_INT(p.request.upgrade, 1);
  wsl_token_t t[4];
  CHECK_EQ_INT(
      wsl_http_header_tokens(&p.request, "Sec-WebSocket-Protocol", t, 4), 2);
  const wsl_http_header_t *h = wsl_http_header(&p.request, "Sec-WebSocket-Key");
  CHECK(h != NULL && h->value_len == 24 && memcmp(h->value, KEY, 24) == 0);
  wsl_http_parser_free(&p);

  /* No path: "/"; no protocols: no field. */
  b.len = 0;
  CHECK_EQ_INT(wsl_handshake_client_request(&b, "h", NULL, KEY, NULL), 0);
  CHECK(strncmp(b.data, "GET / HTTP/1.1\r\n", 16) == 0);
  wsl_http_response_end(&b);
  wsl_buf_append(&b, "", 1);
  CHECK_EQ_INT(parse(&p, WSL_HTTP_REQUEST_MODE, b.data), WSL_HTTP_DONE);
  CHECK(wsl_http_header(&p.request, "Sec-WebSocket-Protocol") == NULL);
  CHECK_EQ_INT(wsl_handshake_check(&p.request, NULL), 0);
  wsl_http_parser_free(&p);

  /* Nothing that could rewrite the request. */
  b.len = 0;
  CHECK_EQ_INT(wsl_handshake_client_request(&b, "h", "/a b", KEY, NULL), -1);
  CHECK_EQ_INT(wsl_handshake_client_request(&b, "h", "/a\r\nX: y", KEY, NULL),
               -1);
  CHECK_EQ_INT(wsl_handshake_client_request(&b, "h\r\nX: y", "/", KEY, NULL),
               -1);
  CHECK_EQ_INT(wsl_handshake_client_request(&b, "h", "/", KEY, "a\r\nb"), -1);
  CHECK_EQ_INT(wsl_handshake_client_request(&b, NULL, "/", KEY, NULL), -1);
  CHECK_EQ_INT(b.len, 0);
  wsl_buf_free(&b);
}

/* The client's check of the response, §4.1. */

/* Whether the client under test offered extensions (then the check leaves
 * Sec-WebSocket-Extensions to its caller). */
static int extensions_offered;

static int client_check(const char *fields, const char *offered, char *err,
                        size_t errlen) {
  wsl_buf_t b = WSL_BUF_INIT;
  wsl_http_parser_t p;
  wsl_buf_appendf(&b, "%s\r\n", fields);
  wsl_buf_append(&b, "", 1);
  int rc = parse(&p, WSL_HTTP_RESPONSE_MODE, b.data);
  CHECK_EQ_INT(rc, WSL_HTTP_DONE);
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  int r = rc == WSL_HTTP_DONE
              ? wsl_handshake_client_check(&p.request, KEY, offered,
                                           extensions_offered, err, errlen)
              : -2;
  wsl_http_parser_free(&p);
  wsl_buf_free(&b);
  return r;
}

#define OK101                                                                  \
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"                 \
  "Connection: Upgrade\r\n"
#define ACCEPT_LINE "Sec-WebSocket-Accept: " ACCEPT "\r\n"

static void expect_client(const char *fields, const char *offered, int want,
                          const char *want_error) {
  char err[64];
  int r = client_check(fields, offered, err, sizeof(err));
  CHECK_EQ_INT(r, want);
  if (want == 0)
    CHECK_STR(err, "");
  else
    CHECK_STR(err, want_error);
  if (r != want || (want != 0 && strcmp(err, want_error) != 0))
    fprintf(stderr, "  (client check: got %d \"%s\" for\n%s)\n", r, err,
            fields);
}

static void test_client_check(void) {
  expect_client(OK101 ACCEPT_LINE, NULL, 0, NULL);
  expect_client(OK101 ACCEPT_LINE, "chat", 0, NULL); /* declined: fine */
  expect_client("HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\n"
                "connection: keep-alive, upgrade\r\n" ACCEPT_LINE,
                NULL, 0, NULL);
  expect_client(OK101 ACCEPT_LINE "Sec-WebSocket-Protocol: superchat\r\n",
                "chat, superchat", 0, NULL);
  expect_client(OK101 ACCEPT_LINE "Sec-WebSocket-Protocol: chat\r\n", "chat", 0,
                NULL);

  expect_client("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n", NULL, -1,
                "unexpected status 403");
  expect_client("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" ACCEPT_LINE, NULL,
                -1, "unexpected status 200");
  expect_client("HTTP/1.1 101 Switching Protocols\r\n"
                "Connection: Upgrade\r\n" ACCEPT_LINE,
                NULL, -1, "Upgrade lacks websocket");
  expect_client("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                "Connection: Upgrade\r\n" ACCEPT_LINE,
                NULL, -1, "Upgrade lacks websocket");
  expect_client("HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n" ACCEPT_LINE,
                NULL, -1, "Connection lacks upgrade");
  expect_client(OK101, NULL, -1, "Sec-WebSocket-Accept missing");
  expect_client(OK101 ACCEPT_LINE ACCEPT_LINE, NULL, -1,
                "Sec-WebSocket-Accept repeated");
  expect_client(OK101 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOA=\r\n",
                NULL, -1, "Sec-WebSocket-Accept mismatch");
  expect_client(OK101 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xO\r\n",
                NULL, -1, "Sec-WebSocket-Accept mismatch");
  expect_client(OK101 "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n",
                NULL, -1, "Sec-WebSocket-Accept mismatch");
  expect_client(OK101 ACCEPT_LINE "Sec-WebSocket-Protocol: chat\r\n", NULL, -1,
                "Sec-WebSocket-Protocol chat not offered");
  expect_client(OK101 ACCEPT_LINE "Sec-WebSocket-Protocol: v2\r\n",
                "chat, superchat", -1, "Sec-WebSocket-Protocol v2 not offered");
  expect_client(OK101 ACCEPT_LINE "Sec-WebSocket-Protocol: Chat\r\n", "chat",
                -1, "Sec-WebSocket-Protocol Chat not offered");
  expect_client(OK101 ACCEPT_LINE "Sec-WebSocket-Protocol: chat, superchat\r\n",
                "chat, superchat", -1,
                "Sec-WebSocket-Protocol chat, superchat not offered");
  expect_client(OK101 ACCEPT_LINE "Sec-WebSocket-Protocol: chat\r\n"
                                  "Sec-WebSocket-Protocol: chat\r\n",
                "chat", -1, "Sec-WebSocket-Protocol repeated");
  expect_client(OK101 ACCEPT_LINE "Sec-WebSocket-Protocol: super\r\n",
                "superchat", -1, "Sec-WebSocket-Protocol super not offered");
  expect_client(OK101 ACCEPT_LINE
                "Sec-WebSocket-Extensions: permessage-deflate\r\n",
                NULL, -1, "Sec-WebSocket-Extensions not offered");
  extensions_offered = 1;
  expect_client(OK101 ACCEPT_LINE
                "Sec-WebSocket-Extensions: permessage-deflate\r\n",
                NULL, 0, NULL);
  extensions_offered = 0;

  /* The message is cut to errlen, and errbuf may be NULL. */
  char small[8];
  CHECK_EQ_INT(client_check("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n",
                            NULL, small, sizeof(small)),
               -1);
  CHECK_STR(small, "unexpec");
  CHECK_EQ_INT(client_check("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n",
                            NULL, NULL, 0),
               -1);
}

int main(void) {
  test_vectors();
  test_check();
  test_response();
  test_client_request();
  test_client_check();
  return TEST_REPORT();
}
