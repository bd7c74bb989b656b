/* Tests for src/proto/http.c: every message fed at every split point and one
 * byte at a time, pipelining, bodies, each limit at its edge, malformed
 * input, upgrades, header lookup and the response builders. */
#include "proto/http.h"

#include <stdlib.h>
#include <string.h>

#include "test.h"

/* Driving the parser. */

#define MAX_MSGS 4

typedef struct {
  int rc;               /* the last status wsl_http_parse returned */
  size_t n;             /* messages parsed */
  size_t end[MAX_MSGS]; /* where in the input each message ended */
} run_t;

typedef void (*check_fn)(size_t i, const wsl_http_request_t *r);

/* Feeds s[0..len) in two pieces cut at split, or one byte at a time when
 * split > len, calling wsl_http_parser_next after each message. Stops at an
 * error, or after max messages (the rest is then not HTTP). */
static run_t drive(wsl_http_parser_t *p, const char *s, size_t len,
                   size_t split, size_t max, check_fn check) {
  run_t r = {WSL_HTTP_NEED_MORE, 0, {0}};
  size_t pos = 0, c = 99;
  /* An empty push is harmless. */
  CHECK_EQ_INT(wsl_http_parse(p, s, 0, &c), WSL_HTTP_NEED_MORE);
  CHECK_EQ_INT(c, 0);
  while (pos < len) {
    size_t piece_end = split > len ? pos + 1 : pos < split ? split : len;
    int rc = wsl_http_parse(p, s + pos, piece_end - pos, &c);
    r.rc = rc;
    if (rc == WSL_HTTP_NEED_MORE) {
      CHECK_EQ_INT(c, piece_end - pos);
      pos = piece_end;
      continue;
    }
    if (rc != WSL_HTTP_DONE)
      return r;
    CHECK(c <= piece_end - pos);
    pos += c;
    if (r.n < MAX_MSGS)
      r.end[r.n] = pos;
    if (check != NULL)
      check(r.n, &p->request);
    /* DONE again, and nothing consumed, until next(). */
    CHECK_EQ_INT(wsl_http_parse(p, s + pos, len - pos, &c), WSL_HTTP_DONE);
    CHECK_EQ_INT(c, 0);
    if (++r.n == max)
      return r;
    wsl_http_parser_next(p);
  }
  return r;
}

/* Runs s at every split point and byte by byte, expecting the same outcome
 * each time: the status of the last call, the number of messages and where
 * each ended (ends may be NULL). */
static void every_split(wsl_http_mode_t mode, const wsl_http_limits_t *lim,
                        const char *s, size_t len, size_t max, check_fn check,
                        int want_rc, size_t want_n, const size_t *want_ends) {
  for (size_t split = 0; split <= len + 1; split++) {
    wsl_http_parser_t p;
    wsl_http_parser_init(&p, mode, lim);
    run_t r = drive(&p, s, len, split, max, check);
    int failures = wsl_test_failures;
    CHECK_EQ_INT(r.rc, want_rc);
    CHECK_EQ_INT(r.n, want_n);
    for (size_t i = 0; want_ends != NULL && i < want_n && i < MAX_MSGS; i++)
      CHECK_EQ_INT(r.end[i], want_ends[i]);
    if (r.rc >= 400) {
      CHECK(p.error != NULL && p.error[0] != '\0');
      /* Errors are sticky. */
      CHECK_EQ_INT(wsl_http_parse(&p, "GET / HTTP/1.1\r\n\r\n", 18, NULL),
                   want_rc);
    }
    if (wsl_test_failures != failures)
      fprintf(stderr, "  (split %zu of %zu: rc %d, n %zu, error %s)\n", split,
              len, r.rc, r.n, p.error ? p.error : "none");
    wsl_http_parser_free(&p);
  }
}

static int header_is(const wsl_http_request_t *r, size_t i, const char *name,
                     const char *value) {
  return i < r->nheaders && r->headers[i].name_len == strlen(name) &&
         memcmp(r->headers[i].name, name, strlen(name)) == 0 &&
         r->headers[i].value_len == strlen(value) &&
         memcmp(r->headers[i].value, value, strlen(value)) == 0;
}

static int span_is(const char *s, size_t len, const char *want) {
  return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* One request, every field. */

static void check_get(size_t i, const wsl_http_request_t *r) {
  CHECK_EQ_INT(i, 0);
  CHECK_STR(r->method, "GET");
  CHECK(span_is(r->url, r->url_len, "/chat?room=1&x=2"));
  CHECK(span_is(r->path, r->path_len, "/chat"));
  CHECK(span_is(r->query, r->query_len, "room=1&x=2"));
  CHECK_EQ_INT(r->version_major, 1);
  CHECK_EQ_INT(r->version_minor, 1);
  CHECK_EQ_INT(r->status, 0);
  CHECK_EQ_INT(r->nheaders, 4);
  CHECK(header_is(r, 0, "Host", "example.com"));
  CHECK(header_is(r, 1, "X-Empty", ""));
  CHECK(header_is(r, 2, "x-pad", "padded \t value"));
  CHECK(header_is(r, 3, "ACCEPT", "*/*"));
  CHECK_EQ_INT(r->body_len, 0);
  CHECK_EQ_INT(r->keep_alive, 1);
  CHECK_EQ_INT(r->upgrade, 0);
}

static void test_get(void) {
  const char req[] = "GET /chat?room=1&x=2 HTTP/1.1\r\n"
                     "Host: example.com\r\n"
                     "X-Empty:\r\n"
                     "x-pad: \t padded \t value \t \r\n"
                     "ACCEPT: */*\r\n"
                     "\r\n";
  size_t len = sizeof(req) - 1, ends[] = {len};
  every_split(WSL_HTTP_REQUEST_MODE, NULL, req, len, 0, check_get,
              WSL_HTTP_DONE, 1, ends);
}

static void check_no_query(size_t i, const wsl_http_request_t *r) {
  (void)i;
  CHECK(span_is(r->path, r->path_len, "/a/b"));
  CHECK_EQ_INT(r->query_len, 0);
  CHECK(r->query != NULL);
  CHECK_EQ_INT(r->nheaders, 0);
}

static void check_empty_query(size_t i, const wsl_http_request_t *r) {
  (void)i;
  CHECK(span_is(r->path, r->path_len, "/a"));
  CHECK_EQ_INT(r->query_len, 0);
}

static void test_path_query(void) {
  const char a[] = "GET /a/b HTTP/1.1\r\n\r\n";
  every_split(WSL_HTTP_REQUEST_MODE, NULL, a, sizeof(a) - 1, 0, check_no_query,
              WSL_HTTP_DONE, 1, NULL);
  const char b[] = "GET /a? HTTP/1.1\r\n\r\n";
  every_split(WSL_HTTP_REQUEST_MODE, NULL, b, sizeof(b) - 1, 0,
              check_empty_query, WSL_HTTP_DONE, 1, NULL);
}

/* Pipelining and bodies. */

static void check_pipelined(size_t i, const wsl_http_request_t *r) {
  static const char *urls[] = {"/one", "/two", "/three"};
  static const char *methods[] = {"GET", "POST", "HEAD"};
  CHECK(i < 3);
  if (i >= 3)
    return;
  CHECK_STR(r->method, methods[i]);
  CHECK(span_is(r->url, r->url_len, urls[i]));
  CHECK_EQ_INT(r->keep_alive, 1);
  if (i == 1)
    CHECK(span_is(r->body, r->body_len, "0123456789"));
  else
    CHECK_EQ_INT(r->body_len, 0);
}

static void test_pipelined(void) {
  const char two[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                     "GET /two HTTP/1.1\r\nHost: a\r\n\r\n";
  size_t ends2[] = {30, 60};
  /* Only the URLs differ from check_pipelined's: check them here. */
  for (size_t split = 0; split <= sizeof(two); split++) {
    wsl_http_parser_t p;
    wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
    run_t r = drive(&p, two, sizeof(two) - 1, split, 0, NULL);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_INT(r.end[0], ends2[0]);
    CHECK_EQ_INT(r.end[1], ends2[1]);
    wsl_http_parser_free(&p);
  }
  /* Both in one push: the first DONE stops right after the first request. */
  wsl_http_parser_t p;
  size_t c;
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, two, sizeof(two) - 1, &c), WSL_HTTP_DONE);
  CHECK_EQ_INT(c, 30);
  CHECK(span_is(p.request.url, p.request.url_len, "/one"));
  wsl_http_parser_next(&p);
  CHECK_EQ_INT(wsl_http_parse(&p, two + c, sizeof(two) - 1 - c, &c),
               WSL_HTTP_DONE);
  CHECK_EQ_INT(c, 30);
  CHECK(span_is(p.request.url, p.request.url_len, "/two"));
  CHECK(header_is(&p.request, 0, "Host", "a"));
  wsl_http_parser_free(&p);

  const char three[] = "GET /one HTTP/1.1\r\n\r\n"
                       "POST /two HTTP/1.1\r\nContent-Length: 10\r\n\r\n"
                       "0123456789"
                       "HEAD /three HTTP/1.1\r\n\r\n";
  size_t ends3[] = {21, 21 + 42 + 10, sizeof(three) - 1};
  every_split(WSL_HTTP_REQUEST_MODE, NULL, three, sizeof(three) - 1, 0,
              check_pipelined, WSL_HTTP_DONE, 3, ends3);
}

static void check_chunked(size_t i, const wsl_http_request_t *r) {
  (void)i;
  CHECK_STR(r->method, "POST");
  CHECK(span_is(r->body, r->body_len, "hello, world"));
  CHECK_EQ_INT(r->body[r->body_len], '\0');
  /* The trailer field is not among the headers. */
  CHECK_EQ_INT(r->nheaders, 2);
  CHECK(header_is(r, 1, "Transfer-Encoding", "chunked"));
  CHECK_EQ_INT(r->keep_alive, 1);
}

static void test_chunked(void) {
  const char req[] = "POST /up HTTP/1.1\r\n"
                     "Host: a\r\n"
                     "Transfer-Encoding: chunked\r\n"
                     "\r\n"
                     "5\r\nhello\r\n"
                     "7;ext=1\r\n, world\r\n"
                     "0\r\n"
                     "X-Trailer: t\r\n"
                     "\r\n";
  size_t len = sizeof(req) - 1, ends[] = {len};
  every_split(WSL_HTTP_REQUEST_MODE, NULL, req, len, 0, check_chunked,
              WSL_HTTP_DONE, 1, ends);
}

static void check_content_length(size_t i, const wsl_http_request_t *r) {
  if (i == 0) {
    CHECK(span_is(r->body, r->body_len, "hello world"));
    CHECK(header_is(r, 0, "Content-Length", "11"));
  } else {
    CHECK_STR(r->method, "GET");
    CHECK_EQ_INT(r->body_len, 0);
  }
}

static void test_content_length(void) {
  const char post[] = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
  const char req[] = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"
                     "hello world"
                     "GET / HTTP/1.1\r\n\r\n";
  size_t ends[] = {sizeof(post) - 1 + 11, sizeof(req) - 1};
  every_split(WSL_HTTP_REQUEST_MODE, NULL, req, sizeof(req) - 1, 0,
              check_content_length, WSL_HTTP_DONE, 2, ends);
}

static void check_head(size_t i, const wsl_http_request_t *r) {
  (void)i;
  CHECK_STR(r->method, "HEAD");
  CHECK(span_is(r->url, r->url_len, "/x"));
  CHECK_EQ_INT(r->body_len, 0);
}

static void test_head(void) {
  const char req[] = "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n";
  size_t ends[] = {sizeof(req) - 1};
  every_split(WSL_HTTP_REQUEST_MODE, NULL, req, sizeof(req) - 1, 0, check_head,
              WSL_HTTP_DONE, 1, ends);
}

/* Keep-alive, RFC 9112 §9.3. */

static int keep_alive_of(const char *req) {
  wsl_http_parser_t p;
  int ka = -1;
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  if (wsl_http_parse(&p, req, strlen(req), NULL) == WSL_HTTP_DONE)
    ka = p.request.keep_alive;
  wsl_http_parser_free(&p);
  return ka;
}

static void test_keep_alive(void) {
  CHECK_EQ_INT(keep_alive_of("GET / HTTP/1.1\r\n\r\n"), 1);
  CHECK_EQ_INT(keep_alive_of("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), 0);
  CHECK_EQ_INT(keep_alive_of("GET / HTTP/1.0\r\n\r\n"), 0);
  CHECK_EQ_INT(
      keep_alive_of("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 1);
  CHECK_EQ_INT(
      keep_alive_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 1);

  /* HTTP/1.0 fields are reported as such. */
  wsl_http_parser_t p;
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, "GET / HTTP/1.0\r\n\r\n", 18, NULL),
               WSL_HTTP_DONE);
  CHECK_EQ_INT(p.request.version_major, 1);
  CHECK_EQ_INT(p.request.version_minor, 0);
  /* After a message that ends the connection, more requests are refused;
   * stray line ends are not. */
  wsl_http_parser_next(&p);
  CHECK_EQ_INT(wsl_http_parse(&p, "\r\n", 2, NULL), WSL_HTTP_NEED_MORE);
  CHECK_EQ_INT(wsl_http_parse(&p, "GET / HTTP/1.1\r\n\r\n", 18, NULL), 400);
  CHECK(p.error != NULL &&
        strcmp(p.error, "data after Connection: close") == 0);
  wsl_http_parser_free(&p);

  /* A keep-alive connection serves many requests on one parser. */
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  for (int i = 0; i < 50; i++) {
    CHECK_EQ_INT(wsl_http_parse(&p, "GET / HTTP/1.1\r\n\r\n", 18, NULL),
                 WSL_HTTP_DONE);
    wsl_http_parser_next(&p);
  }
  wsl_http_parser_free(&p);
}

/* Limits, each at its edge: the limit passes, one more fails. */

/* "GET <url> HTTP/1.1\r\n", then fields, each "X-<i>: v\r\n", padded so the
 * header section is exactly total bytes (0: no padding), then the blank
 * line. */
static char *make_request(size_t url_len, size_t nfields, size_t total) {
  wsl_buf_t b = WSL_BUF_INIT;
  wsl_buf_append_str(&b, "GET /");
  for (size_t i = 1; i < url_len; i++)
    wsl_buf_append_str(&b, "u");
  wsl_buf_append_str(&b, " HTTP/1.1\r\n");
  for (size_t i = 0; i < nfields; i++)
    wsl_buf_appendf(&b, "X-%zu: v\r\n", i);
  if (total != 0) {
    const char *pad = "Pad: ";
    size_t have = b.len + strlen(pad) + 2 + 2;
    CHECK(total >= have);
    wsl_buf_append_str(&b, pad);
    for (size_t i = have; i < total; i++)
      wsl_buf_append_str(&b, "p");
    wsl_buf_append_str(&b, "\r\n");
  }
  wsl_buf_append_str(&b, "\r\n");
  if (total != 0)
    CHECK_EQ_INT(b.len, total);
  wsl_buf_append(&b, "", 1);
  return wsl_buf_detach(&b);
}

static void expect(const wsl_http_limits_t *lim, const char *req, size_t len,
                   int want_rc, const char *want_error) {
  size_t ends[] = {len};
  every_split(WSL_HTTP_REQUEST_MODE, lim, req, len, 0, NULL, want_rc,
              want_rc == WSL_HTTP_DONE ? 1 : 0, ends);
  /* And the cause, for one push of everything. */
  wsl_http_parser_t p;
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, lim);
  CHECK_EQ_INT(wsl_http_parse(&p, req, len, NULL), want_rc);
  if (want_error != NULL) {
    CHECK(p.error != NULL && strcmp(p.error, want_error) == 0);
    if (p.error != NULL && strcmp(p.error, want_error) != 0)
      fprintf(stderr, "  error: %s\n", p.error);
  }
  wsl_http_parser_free(&p);
}

static void test_limit_header_bytes(void) {
  wsl_http_limits_t lim;
  wsl_http_limits_default(&lim);
  lim.max_header_bytes = 200;
  char *ok = make_request(1, 2, 200), *over = make_request(1, 2, 201);
  expect(&lim, ok, 200, WSL_HTTP_DONE, NULL);
  expect(&lim, over, 201, 431, "header fields too large");
  free(ok);
  free(over);

  /* The defaults: 8192. A few splits only, the input is long. */
  ok = make_request(1, 10, 8192);
  over = make_request(1, 10, 8193);
  wsl_http_parser_t p;
  size_t c;
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, ok, 4000, &c), WSL_HTTP_NEED_MORE);
  CHECK_EQ_INT(wsl_http_parse(&p, ok + 4000, 8192 - 4000, &c), WSL_HTTP_DONE);
  CHECK_EQ_INT(c, 8192 - 4000);
  wsl_http_parser_free(&p);
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, over, 8193, &c), 431);
  wsl_http_parser_free(&p);
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, over, 8192, &c), WSL_HTTP_NEED_MORE);
  CHECK_EQ_INT(wsl_http_parse(&p, over + 8192, 1, &c), 431);
  wsl_http_parser_free(&p);
  free(ok);
  free(over);
}

static void test_limit_header_count(void) {
  wsl_http_limits_t lim;
  wsl_http_limits_default(&lim);
  lim.max_headers = 5;
  char *ok = make_request(1, 5, 0), *over = make_request(1, 6, 0);
  expect(&lim, ok, strlen(ok), WSL_HTTP_DONE, NULL);
  expect(&lim, over, strlen(over), 431, "too many header fields");
  free(ok);
  free(over);

  /* The default, 100; a limit left 0 means the default. */
  memset(&lim, 0, sizeof(lim));
  lim.max_body = 7;
  ok = make_request(1, 100, 0);
  over = make_request(1, 101, 0);
  wsl_http_parser_t p;
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, &lim);
  CHECK_EQ_INT(p.limits.max_headers, 100);
  CHECK_EQ_INT(p.limits.max_header_bytes, 8192);
  CHECK_EQ_INT(p.limits.max_url, 8192);
  CHECK_EQ_INT(p.limits.max_body, 7);
  CHECK_EQ_INT(wsl_http_parse(&p, ok, strlen(ok), NULL), WSL_HTTP_DONE);
  CHECK_EQ_INT(p.request.nheaders, 100);
  CHECK(header_is(&p.request, 99, "X-99", "v"));
  wsl_http_parser_free(&p);
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, over, strlen(over), NULL), 431);
  wsl_http_parser_free(&p);
  free(ok);
  free(over);
}

static void test_limit_url(void) {
  wsl_http_limits_t lim;
  wsl_http_limits_default(&lim);
  lim.max_url = 20;
  char *ok = make_request(20, 1, 0), *over = make_request(21, 1, 0);
  expect(&lim, ok, strlen(ok), WSL_HTTP_DONE, NULL);
  expect(&lim, over, strlen(over), 414, "URI too long");
  free(ok);
  free(over);

  /* With the defaults, a target too long for the header budget is still
   * reported as what it is. */
  over = make_request(9000, 0, 0);
  wsl_http_parser_t p;
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, over, strlen(over), NULL), 414);
  wsl_http_parser_free(&p);
  free(over);
  ok = make_request(8000, 0, 0);
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, ok, strlen(ok), NULL), WSL_HTTP_DONE);
  CHECK_EQ_INT(p.request.url_len, 8000);
  wsl_http_parser_free(&p);
  free(ok);
}

static void test_limit_body(void) {
  wsl_http_limits_t lim;
  wsl_http_limits_default(&lim);
  lim.max_body = 10;
  const char cl_ok[] = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n"
                       "0123456789";
  expect(&lim, cl_ok, sizeof(cl_ok) - 1, WSL_HTTP_DONE, NULL);
  /* Refused at the end of the header section, before any body comes. */
  const char cl_over[] = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
  expect(&lim, cl_over, sizeof(cl_over) - 1, 413, "body too large");

  const char ch_ok[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n";
  expect(&lim, ch_ok, sizeof(ch_ok) - 1, WSL_HTTP_DONE, NULL);
  /* Refused at the chunk line that would pass the limit. */
  const char ch_over[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\n01234\r\n6\r\n";
  expect(&lim, ch_over, sizeof(ch_over) - 1, 413, "body too large");
  const char ch_one[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "b\r\n";
  expect(&lim, ch_one, sizeof(ch_one) - 1, 413, "body too large");

  /* The default, 1 MiB, by Content-Length. */
  wsl_http_parser_t p;
  const char big[] = "POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n";
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, big, sizeof(big) - 1, NULL), 413);
  wsl_http_parser_free(&p);
  const char max[] = "POST / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n";
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, max, sizeof(max) - 1, NULL),
               WSL_HTTP_NEED_MORE);
  char *body = calloc(1, 1048576);
  CHECK_EQ_INT(wsl_http_parse(&p, body, 1048576, NULL), WSL_HTTP_DONE);
  CHECK_EQ_INT(p.request.body_len, 1048576);
  free(body);
  wsl_http_parser_free(&p);
}

static void test_limit_trailers(void) {
  wsl_http_limits_t lim;
  wsl_http_limits_default(&lim);
  lim.max_header_bytes = 64;
  /* The trailer section has a budget of its own, the same size. */
  wsl_buf_t b = WSL_BUF_INIT;
  wsl_buf_append_str(&b, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "1\r\na\r\n0\r\n");
  size_t start = b.len;
  wsl_buf_append_str(&b, "T: ");
  while (b.len - start < 64 - 4)
    wsl_buf_append_str(&b, "t");
  wsl_buf_append_str(&b, "\r\n\r\n");
  CHECK_EQ_INT(b.len - start, 64);
  expect(&lim, b.data, b.len, WSL_HTTP_DONE, NULL);
  b.len = start;
  wsl_buf_append_str(&b, "T: ");
  while (b.len - start < 64 - 3)
    wsl_buf_append_str(&b, "t");
  wsl_buf_append_str(&b, "\r\n\r\n");
  CHECK_EQ_INT(b.len - start, 65);
  expect(&lim, b.data, b.len, 431, "header fields too large");
  wsl_buf_free(&b);
}

/* Malformed input. */

static void test_malformed(void) {
  static const char *bad[] = {
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
      "GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
      "GET / HTTP/1.1\r\n: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",
      "GET / HTTP/1.1\r\nHost\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
      "GET / HTTQ/1.1\r\n\r\n",
      "GET / HTTP/1.1 x\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    size_t failures = (size_t)wsl_test_failures;
    expect(NULL, bad[i], strlen(bad[i]), 400, NULL);
    wsl_http_parser_t p;
    wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
    CHECK_EQ_INT(wsl_http_parse(&p, bad[i], strlen(bad[i]), NULL), 400);
    CHECK(p.error != NULL && strncmp(p.error, "malformed request: ", 19) == 0);
    wsl_http_parser_free(&p);
    if ((size_t)wsl_test_failures != failures)
      fprintf(stderr, "  (bad input %zu)\n", i);
  }
  /* A well-formed method llhttp does not know. */
  expect(NULL, "BREW /pot HTTP/1.1\r\n\r\n", 22, 501, "method not implemented");
  expect(NULL, "GETS / HTTP/1.1\r\n\r\n", 19, 501, "method not implemented");
  /* Out of an error, next() starts over. */
  wsl_http_parser_t p;
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, "\x01", 1, NULL), 400);
  wsl_http_parser_next(&p);
  CHECK(p.error == NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, "GET / HTTP/1.1\r\n\r\n", 18, NULL),
               WSL_HTTP_DONE);
  wsl_http_parser_free(&p);
}

/* Upgrades: the message ends with its header section. */

static const char upgrade_req[] =
    "GET /ws HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

static void check_upgrade(size_t i, const wsl_http_request_t *r) {
  CHECK_EQ_INT(i, 0);
  CHECK_EQ_INT(r->upgrade, 1);
  CHECK(span_is(r->path, r->path_len, "/ws"));
  CHECK_EQ_INT(r->nheaders, 5);
  CHECK_EQ_INT(r->body_len, 0);
}

static void test_upgrade(void) {
  /* A masked "Hello" frame (RFC 6455 §5.7) follows the request. */
  const char frame[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  size_t hlen = sizeof(upgrade_req) - 1, len = hlen + sizeof(frame) - 1;
  char *in = malloc(len);
  memcpy(in, upgrade_req, hlen);
  memcpy(in + hlen, frame, sizeof(frame) - 1);
  size_t ends[] = {hlen};
  every_split(WSL_HTTP_REQUEST_MODE, NULL, in, len, 1, check_upgrade,
              WSL_HTTP_DONE, 1, ends);
  free(in);

  /* Even with a Content-Length, a GET upgrade has no body. */
  const char with_cl[] = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nContent-Length: 5\r\n\r\n"
                         "\x81\x00\x81\x00\x81";
  wsl_http_parser_t p;
  size_t c;
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, with_cl, sizeof(with_cl) - 1, &c),
               WSL_HTTP_DONE);
  CHECK_EQ_INT(c, sizeof(with_cl) - 1 - 5);
  CHECK_EQ_INT(p.request.body_len, 0);
  CHECK_EQ_INT(p.request.upgrade, 1);
  wsl_http_parser_free(&p);

  /* A refused upgrade leaves the connection in HTTP: next() goes on. */
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, upgrade_req, hlen, &c), WSL_HTTP_DONE);
  CHECK_EQ_INT(c, hlen);
  wsl_http_parser_next(&p);
  CHECK_EQ_INT(wsl_http_parse(&p, "GET /after HTTP/1.1\r\n\r\n", 23, &c),
               WSL_HTTP_DONE);
  CHECK(span_is(p.request.url, p.request.url_len, "/after"));
  CHECK_EQ_INT(p.request.upgrade, 0);
  wsl_http_parser_free(&p);

  /* Upgrade without Connection: upgrade is not an upgrade, but the message
   * still ends with its header section. */
  const char half[] = "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nXYZ";
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, half, sizeof(half) - 1, &c), WSL_HTTP_DONE);
  CHECK_EQ_INT(c, sizeof(half) - 1 - 3);
  CHECK_EQ_INT(p.request.upgrade, 0);
  wsl_http_parser_free(&p);
}

/* Response mode, the client side. */

static void check_101(size_t i, const wsl_http_request_t *r) {
  CHECK_EQ_INT(i, 0);
  CHECK_EQ_INT(r->status, 101);
  CHECK_EQ_INT(r->upgrade, 1);
  CHECK_STR(r->method, "");
  CHECK_EQ_INT(r->url_len, 0);
  CHECK(
      header_is(r, 2, "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

static void check_403(size_t i, const wsl_http_request_t *r) {
  (void)i;
  CHECK_EQ_INT(r->status, 403);
  CHECK_EQ_INT(r->upgrade, 0);
  CHECK(span_is(r->body, r->body_len, "nope\n"));
}

static void test_response_mode(void) {
  const char resp[] = "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                      "\r\n"
                      "\x81\x05Hello";
  size_t len = sizeof(resp) - 1, ends[] = {len - 7};
  every_split(WSL_HTTP_RESPONSE_MODE, NULL, resp, len, 1, check_101,
              WSL_HTTP_DONE, 1, ends);

  const char denied[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\n"
                        "nope\n";
  size_t dends[] = {sizeof(denied) - 1};
  every_split(WSL_HTTP_RESPONSE_MODE, NULL, denied, sizeof(denied) - 1, 1,
              check_403, WSL_HTTP_DONE, 1, dends);

  /* A body that runs to the end of the connection. */
  wsl_http_parser_t p;
  const char eof[] = "HTTP/1.1 403 Forbidden\r\n\r\nnope\n";
  wsl_http_parser_init(&p, WSL_HTTP_RESPONSE_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, eof, sizeof(eof) - 1, NULL),
               WSL_HTTP_NEED_MORE);
  CHECK_EQ_INT(wsl_http_parse_eof(&p), WSL_HTTP_DONE);
  check_403(0, &p.request);
  CHECK_EQ_INT(p.request.keep_alive, 0);
  wsl_http_parser_free(&p);
  /* EOF in the middle of the header section. */
  wsl_http_parser_init(&p, WSL_HTTP_RESPONSE_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, "HTTP/1.1 101 Swi", 16, NULL),
               WSL_HTTP_NEED_MORE);
  CHECK_EQ_INT(wsl_http_parse_eof(&p), 400);
  wsl_http_parser_free(&p);
  /* Garbage instead of a status line. */
  wsl_http_parser_init(&p, WSL_HTTP_RESPONSE_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, "HELLO\r\n\r\n", 9, NULL), 400);
  CHECK(p.error != NULL && strncmp(p.error, "malformed response: ", 20) == 0);
  wsl_http_parser_free(&p);
}

/* Header lookup and token lists. */

static void test_lookup(void) {
  const char req[] = "GET / HTTP/1.1\r\n"
                     "Connection: keep-alive, Upgrade\r\n"
                     "Sec-WebSocket-Protocol: chat,, superchat ,\r\n"
                     "sec-websocket-protocol: \t v2.chat\t\r\n"
                     "Upgrade: websocketx, h2c\r\n"
                     "X-Dup: first\r\n"
                     "x-dup: second\r\n"
                     "Empty:\r\n"
                     "\r\n";
  wsl_http_parser_t p;
  wsl_http_parser_init(&p, WSL_HTTP_REQUEST_MODE, NULL);
  CHECK_EQ_INT(wsl_http_parse(&p, req, sizeof(req) - 1, NULL), WSL_HTTP_DONE);
  const wsl_http_request_t *r = &p.request;

  const wsl_http_header_t *h = wsl_http_header(r, "x-DUP");
  CHECK(h != NULL && span_is(h->value, h->value_len, "first"));
  CHECK(wsl_http_header(r, "X-Du") == NULL);
  CHECK(wsl_http_header(r, "X-Dupe") == NULL);
  CHECK(wsl_http_header(r, "Missing") == NULL);
  CHECK_EQ_INT(wsl_http_header_count(r, "X-Dup"), 2);
  CHECK_EQ_INT(wsl_http_header_count(r, "Missing"), 0);

  CHECK_EQ_INT(wsl_http_header_has_token(r, "connection", "upgrade"), 1);
  CHECK_EQ_INT(wsl_http_header_has_token(r, "Connection", "KEEP-ALIVE"), 1);
  CHECK_EQ_INT(wsl_http_header_has_token(r, "Connection", "close"), 0);
  CHECK_EQ_INT(wsl_http_header_has_token(r, "Connection", "upgrad"), 0);
  CHECK_EQ_INT(wsl_http_header_has_token(r, "Upgrade", "websocket"), 0);
  CHECK_EQ_INT(wsl_http_header_has_token(r, "Upgrade", "h2c"), 1);
  CHECK_EQ_INT(
      wsl_http_header_has_token(r, "Sec-WebSocket-Protocol", "v2.chat"), 1);
  CHECK_EQ_INT(wsl_http_header_has_token(r, "Empty", ""), 0);
  CHECK_EQ_INT(wsl_http_header_has_token(r, "Missing", "x"), 0);

  wsl_token_t t[8];
  size_t n = wsl_http_header_tokens(r, "Sec-WebSocket-Protocol", t, 8);
  CHECK_EQ_INT(n, 3);
  CHECK(span_is(t[0].s, t[0].len, "chat"));
  CHECK(span_is(t[1].s, t[1].len, "superchat"));
  CHECK(span_is(t[2].s, t[2].len, "v2.chat"));
  CHECK_EQ_INT(wsl_http_header_tokens(r, "Sec-WebSocket-Protocol", t, 2), 2);
  CHECK(span_is(t[1].s, t[1].len, "superchat"));
  CHECK_EQ_INT(wsl_http_header_tokens(r, "Sec-WebSocket-Protocol", t, 0), 0);
  CHECK_EQ_INT(wsl_http_header_tokens(r, "Empty", t, 8), 0);
  CHECK_EQ_INT(wsl_http_header_tokens(r, "Missing", t, 8), 0);
  n = wsl_http_header_tokens(r, "x-dup", t, 8);
  CHECK_EQ_INT(n, 2);
  CHECK(span_is(t[1].s, t[1].len, "second"));
  wsl_http_parser_free(&p);
}

/* The response builders. */

static void test_status_text_and_date(void) {
  CHECK_STR(wsl_http_status_text(200), "OK");
  CHECK_STR(wsl_http_status_text(101), "Switching Protocols");
  CHECK_STR(wsl_http_status_text(404), "Not Found");
  CHECK_STR(wsl_http_status_text(405), "Method Not Allowed");
  CHECK_STR(wsl_http_status_text(413), "Content Too Large");
  CHECK_STR(wsl_http_status_text(414), "URI Too Long");
  CHECK_STR(wsl_http_status_text(426), "Upgrade Required");
  CHECK_STR(wsl_http_status_text(431), "Request Header Fields Too Large");
  CHECK_STR(wsl_http_status_text(501), "Not Implemented");
  CHECK_STR(wsl_http_status_text(599), "Unknown");
  CHECK_STR(wsl_http_status_text(0), "Unknown");

  char d[30];
  wsl_http_date(d, 784111777); /* RFC 9110 §5.6.7's example */
  CHECK_STR(d, "Sun, 06 Nov 1994 08:49:37 GMT");
  wsl_http_date(d, 0);
  CHECK_STR(d, "Thu, 01 Jan 1970 00:00:00 GMT");
  wsl_http_date(d, 951782400); /* a leap day */
  CHECK_STR(d, "Tue, 29 Feb 2000 00:00:00 GMT");
  CHECK_EQ_INT(strlen(d), 29);
}

static void test_builders(void) {
  wsl_buf_t b = WSL_BUF_INIT;
  CHECK_EQ_INT(wsl_http_response_begin(&b, 404), 0);
  CHECK_EQ_INT(wsl_http_response_header(&b, "X-A", 3, "1", 1), 0);
  CHECK_EQ_INT(wsl_http_response_header(&b, "X-Empty", 7, "", 0), 0);
  CHECK_EQ_INT(wsl_http_response_end(&b), 0);
  const char head[] = "HTTP/1.1 404 Not Found\r\nDate: ";
  CHECK(b.len > sizeof(head) && memcmp(b.data, head, sizeof(head) - 1) == 0);
  /* Date is 29 chars, then Server. */
  const char tail[] = "\r\nServer: wslua\r\nX-A: 1\r\nX-Empty: \r\n\r\n";
  size_t date_at = sizeof(head) - 1, want = date_at + 29 + sizeof(tail) - 1;
  CHECK_EQ_INT(b.len, want);
  CHECK(b.len == want && memcmp(b.data + date_at + 25, " GMT", 4) == 0 &&
        memcmp(b.data + date_at + 29, tail, sizeof(tail) - 1) == 0);

  /* No header injection: nothing written, -1. */
  size_t mark = b.len;
  CHECK_EQ_INT(wsl_http_response_header(&b, "X", 1, "a\r\nSet-Cookie: x", 16),
               -1);
  CHECK_EQ_INT(wsl_http_response_header(&b, "X", 1, "a\nb", 3), -1);
  CHECK_EQ_INT(wsl_http_response_header(&b, "X", 1, "a\rb", 3), -1);
  CHECK_EQ_INT(wsl_http_response_header(&b, "X", 1, "a\0b", 3), -1);
  CHECK_EQ_INT(wsl_http_response_header(&b, "X Y", 3, "v", 1), -1);
  CHECK_EQ_INT(wsl_http_response_header(&b, "X:Y", 3, "v", 1), -1);
  CHECK_EQ_INT(wsl_http_response_header(&b, "X\r\nY", 4, "v", 1), -1);
  CHECK_EQ_INT(wsl_http_response_header(&b, "", 0, "v", 1), -1);
  CHECK_EQ_INT(wsl_http_response_begin(&b, 99), -1);
  CHECK_EQ_INT(wsl_http_response_begin(&b, 1000), -1);
  CHECK_EQ_INT(b.len, mark);
  /* Tabs and obs-text are fine in a value. */
  CHECK_EQ_INT(wsl_http_response_header(&b, "X", 1, "a\tb\xc3\xa9", 5), 0);
  wsl_buf_free(&b);
}

static void test_error_response(void) {
  for (int close = 0; close <= 1; close++) {
    wsl_buf_t b = WSL_BUF_INIT;
    CHECK_EQ_INT(
        wsl_http_error_response(&b, 431, "header fields too large", close), 0);
    /* Our own parser reads it back whole. */
    wsl_http_parser_t p;
    size_t c;
    wsl_http_parser_init(&p, WSL_HTTP_RESPONSE_MODE, NULL);
    CHECK_EQ_INT(wsl_http_parse(&p, b.data, b.len, &c), WSL_HTTP_DONE);
    CHECK_EQ_INT(c, b.len);
    const wsl_http_request_t *r = &p.request;
    CHECK_EQ_INT(r->status, 431);
    CHECK(span_is(r->body, r->body_len, "header fields too large\n"));
    const wsl_http_header_t *h = wsl_http_header(r, "Content-Type");
    CHECK(h && span_is(h->value, h->value_len, "text/plain; charset=utf-8"));
    h = wsl_http_header(r, "Content-Length");
    CHECK(h && span_is(h->value, h->value_len, "24"));
    CHECK(wsl_http_header(r, "Date") != NULL);
    h = wsl_http_header(r, "Server");
    CHECK(h && span_is(h->value, h->value_len, "wslua"));
    CHECK_EQ_INT(wsl_http_header_has_token(r, "Connection", "close"), close);
    CHECK_EQ_INT(r->keep_alive, !close);
    CHECK(memcmp(b.data, "HTTP/1.1 431 Request Header Fields Too Large\r\n",
                 46) == 0);
    wsl_http_parser_free(&p);
    wsl_buf_free(&b);
  }
  /* No message: the reason phrase. */
  wsl_buf_t b = WSL_BUF_INIT;
  CHECK_EQ_INT(wsl_http_error_response(&b, 404, NULL, 0), 0);
  CHECK(b.len > 12 && memcmp(b.data + b.len - 12, "\r\nNot Found\n", 12) == 0);
  wsl_buf_free(&b);
}

int main(void) {
  test_get();
  test_path_query();
  test_pipelined();
  test_chunked();
  test_content_length();
  test_head();
  test_keep_alive();
  test_limit_header_bytes();
  test_limit_header_count();
  test_limit_url();
  test_limit_body();
  test_limit_trailers();
  test_malformed();
  test_upgrade();
  test_response_mode();
  test_lookup();
  test_status_text_and_date();
  test_builders();
  test_error_response();
  return TEST_REPORT();
}
