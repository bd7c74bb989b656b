/* HTTP/1.x messages: push-style request (or response) parsing over llhttp,
 * with limits, and the builders for the responses the server sends. */
#ifndef WSL_HTTP_H
#define WSL_HTTP_H

#include <stddef.h>
#include <time.h>

#include <llhttp.h>

#include "proto/buf.h"

typedef struct {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} wsl_http_header_t;

/* Every limit answers with the status RFC 9110 / RFC 6585 name. */
typedef struct {
  /* The header section: from the first byte of the request (or status) line
   * through the blank line that ends it, line ends included; the trailer
   * section of a chunked body has a budget of the same size. Default 8192;
   * over: 431 (414 instead when the request target is what runs over). */
  size_t max_header_bytes;
  size_t max_headers; /* fields, trailers included; default 100; over: 431 */
  size_t max_url;     /* default 8192; a request target longer: 414 */
  /* Default 1 MiB; a body longer (by Content-Length, or the chunked total):
   * 413, refused as soon as the length is known. */
  size_t max_body;
} wsl_http_limits_t;

void wsl_http_limits_default(wsl_http_limits_t *l);

/* One parsed message. Every pointer points into the parser's storage and
 * stays valid until wsl_http_parser_next or wsl_http_parser_free. */
typedef struct {
  const char *method; /* "GET", "POST", ...; "" for a response */
  const char *url;    /* request target as sent; "" for a response */
  size_t url_len;
  const char *path; /* url before '?' */
  size_t path_len;
  const char *query; /* after '?', without it; len 0 if none */
  size_t query_len;
  int version_major, version_minor;
  int status; /* responses only (client side): the status code; else 0 */
  wsl_http_header_t *headers; /* in order, names as sent, values trimmed */
  size_t nheaders;
  /* The whole body, chunked decoded (trailer fields are dropped), followed
   * by a NUL that body_len does not count. */
  const char *body;
  size_t body_len;
  int keep_alive; /* llhttp_should_keep_alive */
  int upgrade;    /* asks for / accepts a protocol upgrade (llhttp's flag) */
} wsl_http_request_t; /* the same struct serves a parsed response */

typedef enum { WSL_HTTP_REQUEST_MODE, WSL_HTTP_RESPONSE_MODE } wsl_http_mode_t;

/* A field recorded as offsets into the arena while the message comes in. */
typedef struct {
  size_t name_off, name_len, value_off, value_len;
} wsl__http_field_t;

typedef struct wsl_http_parser {
  llhttp_t llhttp; /* its settings are one static table shared by all */
  wsl_http_mode_t mode;
  wsl_http_limits_t limits;
  /* Storage for the message: url, field names and values, body. Offsets are
   * kept while it grows; pointers are made only once the message is done. */
  wsl_buf_t arena;
  wsl__http_field_t *fields;
  size_t nfields, fields_cap;
  wsl_http_header_t *headers; /* p->request.headers, reused across messages */
  size_t headers_cap;
  /* Private counters. */
  int phase;          /* WSL_HTTP_PHASE_HEAD, ... (http.c) */
  int fail;           /* our own error status, set by a callback */
  size_t head_bytes;  /* header + trailer bytes seen, against the limit */
  size_t field_count; /* fields and trailer fields */
  size_t span_off;    /* where the element being received starts */
  size_t url_off, url_len;
  size_t body_off, body_len;
  int url_done;    /* the request target is complete */
  int in_field;    /* between a field name's first byte and its end */
  size_t name_len; /* bytes of that name so far */
  int saw_upgrade; /* an Upgrade header field is in the header section */
  int keep_alive;
  int closed; /* the last message ended the connection: no more may come */
  wsl_http_request_t request;
  /* After an error status: a string naming the cause, e.g. "header fields
   * too large", "too many header fields", "URI too long", "body too large",
   * "malformed request: <llhttp reason>". Static, or errbuf below: valid
   * until the parser is freed. */
  const char *error;
  char errbuf[96];
} wsl_http_parser_t;

/* limits NULL: the defaults; so is any limit left 0. Allocates nothing until
 * bytes come. */
void wsl_http_parser_init(wsl_http_parser_t *p, wsl_http_mode_t mode,
                          const wsl_http_limits_t *limits);
void wsl_http_parser_free(wsl_http_parser_t *p);

#define WSL_HTTP_NEED_MORE 0
#define WSL_HTTP_DONE 1

/* Push-style, resumable at any byte. Returns WSL_HTTP_NEED_MORE (all bytes
 * consumed, message incomplete), WSL_HTTP_DONE (one whole message is in
 * p->request; *consumed says how many of these bytes it used: the rest
 * belongs to the next pipelined message or, after an upgrade, to the new
 * protocol), or an HTTP error status >= 400 with p->error set: 400 malformed,
 * 413, 414, 431, 501 for a method llhttp does not know, 500 when memory ran
 * out. An error is sticky: later calls return it again. After DONE, calls
 * return DONE with *consumed 0 until wsl_http_parser_next. For GET and HEAD
 * with an Upgrade header field the message ends with its header section.
 * consumed may be NULL. */
int wsl_http_parse(wsl_http_parser_t *p, const char *data, size_t len,
                   size_t *consumed);

/* The peer closed its side: a response whose body runs to the end of the
 * connection is then complete. Returns WSL_HTTP_DONE if a message is (now)
 * complete, WSL_HTTP_NEED_MORE if none had begun, else 400. */
int wsl_http_parse_eof(wsl_http_parser_t *p);

/* After DONE: forget the message, ready for the next one on the same
 * connection (keep-alive; also after a refused upgrade). */
void wsl_http_parser_next(wsl_http_parser_t *p);

/* The first header field of that name (case-insensitive), or NULL. */
const wsl_http_header_t *wsl_http_header(const wsl_http_request_t *r,
                                         const char *name);

/* How many fields of that name (case-insensitive) the message has. */
size_t wsl_http_header_count(const wsl_http_request_t *r, const char *name);

/* 1 if any field of that name holds token in its comma-separated list,
 * compared case-insensitively, spaces and tabs trimmed; else 0. */
int wsl_http_header_has_token(const wsl_http_request_t *r, const char *name,
                              const char *token);

typedef struct {
  const char *s;
  size_t len;
} wsl_token_t;

/* The comma-separated elements of every field of that name, in order,
 * trimmed, empty ones skipped (commas inside quoted strings are not
 * special-cased). Stores at most max and returns how many it stored. */
size_t wsl_http_header_tokens(const wsl_http_request_t *r, const char *name,
                              wsl_token_t *out, size_t max);

/* The reason phrase of status ("OK", "Switching Protocols", ...), or
 * "Unknown". */
const char *wsl_http_status_text(int status);

/* IMF-fixdate (RFC 9110 §5.6.7), "Sun, 06 Nov 1994 08:49:37 GMT": 29 chars
 * and a NUL, independent of the locale. */
void wsl_http_date(char out[30], time_t t);

/* The response builders append to out and return 0, or -1 leaving out as it
 * was (bad argument or no memory). */

/* "HTTP/1.1 <status> <text>\r\n", then Date and "Server: wslua". status must
 * be 100..999. */
int wsl_http_response_begin(wsl_buf_t *out, int status);

/* "name: value\r\n". Refused (-1, nothing written) if name is not an HTTP
 * token or value holds CR, LF or NUL: no header injection. */
int wsl_http_response_header(wsl_buf_t *out, const char *name, size_t name_len,
                             const char *value, size_t value_len);

/* The blank line that ends the header section. */
int wsl_http_response_end(wsl_buf_t *out);

/* A complete small response: status line, Date, Server, "Content-Type:
 * text/plain; charset=utf-8", Content-Length, "Connection: close" if close,
 * the blank line, then message and "\n" as the body (message NULL: the
 * reason phrase). */
int wsl_http_error_response(wsl_buf_t *out, int status, const char *message,
                            int close);

#endif
