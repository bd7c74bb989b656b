/* HTTP/1.x parsing over llhttp, with limits; the response builders. */
#define _POSIX_C_SOURCE 200809L
#include "proto/http.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where the parser is in the current message. The header and trailer
 * sections are fed to llhttp only up to what their byte budget allows, so
 * the limit holds exactly whatever the split of the input. */
enum {
  WSL_HTTP_PHASE_HEAD,     /* request/status line and header fields */
  WSL_HTTP_PHASE_BODY,     /* body, chunk lines */
  WSL_HTTP_PHASE_TRAILERS, /* after the last chunk */
  WSL_HTTP_PHASE_DONE,     /* a whole message waits in p->request */
  WSL_HTTP_PHASE_ERROR     /* p->fail and p->error say why; sticky */
};

/* Storage larger than this is given back between messages, so an idle
 * keep-alive connection does not hold on to a big body's buffer. */
#define WSL_HTTP_ARENA_KEEP (64 * 1024)

void wsl_http_limits_default(wsl_http_limits_t *l) {
  l->max_header_bytes = 8192;
  l->max_headers = 100;
  l->max_url = 8192;
  l->max_body = 1024 * 1024;
}

/* Helpers for the callbacks. */

static wsl_http_parser_t *parser_of(llhttp_t *h) {
  return (wsl_http_parser_t *)h->data;
}

/* Records our own refusal; llhttp then stops with a callback error, and
 * wsl_http_parse reports status instead of llhttp's code. */
static int refuse(wsl_http_parser_t *p, int status, const char *why) {
  if (p->fail == 0) {
    p->fail = status;
    p->error = why;
  }
  return -1;
}

static int store(wsl_http_parser_t *p, const char *at, size_t len) {
  if (wsl_buf_append(&p->arena, at, len) != 0)
    return refuse(p, 500, "out of memory");
  return 0;
}

static int lower(int c) {
  return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Case-insensitive equality of two byte strings (ASCII, no locale). */
static int ieq(const char *a, size_t alen, const char *b, size_t blen) {
  if (alen != blen)
    return 0;
  for (size_t i = 0; i < alen; i++)
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
      return 0;
  return 1;
}

static int is_ows(char c) {
  return c == ' ' || c == '\t';
}

/* tchar, RFC 9110 §5.6.2. */
static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return 1;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* llhttp callbacks. Each element of the message arrives in one or more
 * spans, elements one after another, so each is stored contiguously in the
 * arena and delimited by the *_complete callbacks. */

static int on_message_begin(llhttp_t *h) {
  wsl_http_parser_t *p = parser_of(h);
  p->url_off = p->arena.len;
  return 0;
}

static int on_url(llhttp_t *h, const char *at, size_t len) {
  wsl_http_parser_t *p = parser_of(h);
  if (len > p->limits.max_url - p->url_len)
    return refuse(p, 414, "URI too long");
  p->url_len += len;
  return store(p, at, len);
}

static int on_url_complete(llhttp_t *h) {
  parser_of(h)->url_done = 1;
  return 0;
}

static int on_header_field(llhttp_t *h, const char *at, size_t len) {
  wsl_http_parser_t *p = parser_of(h);
  if (!p->in_field) {
    p->in_field = 1;
    p->span_off = p->arena.len;
    p->name_len = 0;
  }
  p->name_len += len;
  /* llhttp's loose mode lets spaces into names ("Host : x"), which RFC 9110
   * §5.6.2 and §5.1 do not: refuse them. */
  for (size_t i = 0; i < len; i++)
    if (!is_tchar((unsigned char)at[i]))
      return refuse(p, 400,
                    p->mode == WSL_HTTP_REQUEST_MODE
                        ? "malformed request: invalid header field name"
                        : "malformed response: invalid header field name");
  /* Trailer fields are counted and bounded, but not kept. */
  if (p->phase != WSL_HTTP_PHASE_HEAD)
    return 0;
  return store(p, at, len);
}

static int on_header_field_complete(llhttp_t *h) {
  wsl_http_parser_t *p = parser_of(h);
  if (!p->in_field || p->name_len == 0) /* no name at all: ": value" */
    return refuse(p, 400,
                  p->mode == WSL_HTTP_REQUEST_MODE
                      ? "malformed request: empty header field name"
                      : "malformed response: empty header field name");
  p->in_field = 0;
  if (++p->field_count > p->limits.max_headers)
    return refuse(p, 431, "too many header fields");
  if (p->phase != WSL_HTTP_PHASE_HEAD)
    return 0;
  if (p->nfields == p->fields_cap) {
    size_t cap = p->fields_cap ? p->fields_cap * 2 : 16;
    wsl__http_field_t *f = realloc(p->fields, cap * sizeof(*f));
    if (f == NULL)
      return refuse(p, 500, "out of memory");
    p->fields = f;
    p->fields_cap = cap;
  }
  wsl__http_field_t *f = &p->fields[p->nfields++];
  f->name_off = p->span_off;
  f->name_len = p->arena.len - p->span_off;
  f->value_off = p->arena.len;
  f->value_len = 0;
  if (ieq(p->arena.data + f->name_off, f->name_len, "upgrade", 7))
    p->saw_upgrade = 1;
  return 0;
}

static int on_header_value(llhttp_t *h, const char *at, size_t len) {
  wsl_http_parser_t *p = parser_of(h);
  if (p->phase != WSL_HTTP_PHASE_HEAD)
    return 0;
  return store(p, at, len);
}

static int on_header_value_complete(llhttp_t *h) {
  wsl_http_parser_t *p = parser_of(h);
  if (p->phase != WSL_HTTP_PHASE_HEAD || p->nfields == 0)
    return 0;
  wsl__http_field_t *f = &p->fields[p->nfields - 1];
  f->value_len = p->arena.len - f->value_off;
  /* llhttp skips the OWS before a value; the OWS after it is ours to drop
   * (RFC 9110 §5.5). */
  while (f->value_len > 0 &&
         is_ows(p->arena.data[f->value_off + f->value_len - 1]))
    f->value_len--;
  return 0;
}

/* Return values, per llhttp: 0 go on, 1 the message has no body. */
static int on_headers_complete(llhttp_t *h) {
  wsl_http_parser_t *p = parser_of(h);
  p->phase = WSL_HTTP_PHASE_BODY;
  p->body_off = p->arena.len;
  /* An upgrade request ends with its header section: what follows belongs
   * to the protocol it asks for (or is the next request if refused). */
  if (p->mode == WSL_HTTP_REQUEST_MODE && p->saw_upgrade &&
      (h->method == HTTP_GET || h->method == HTTP_HEAD))
    return 1;
  if ((h->flags & F_CONTENT_LENGTH) && !(h->flags & F_CHUNKED) &&
      h->content_length > p->limits.max_body)
    return refuse(p, 413, "body too large");
  return 0;
}

static int on_body(llhttp_t *h, const char *at, size_t len) {
  wsl_http_parser_t *p = parser_of(h);
  if (len > p->limits.max_body - p->body_len)
    return refuse(p, 413, "body too large");
  p->body_len += len;
  return store(p, at, len);
}

/* The chunk's size is in h->content_length. The last chunk starts the
 * trailer section: pause there, so its byte budget starts at this byte. */
static int on_chunk_header(llhttp_t *h) {
  wsl_http_parser_t *p = parser_of(h);
  if (h->content_length == 0) {
    p->phase = WSL_HTTP_PHASE_TRAILERS;
    return HPE_PAUSED;
  }
  if (h->content_length > p->limits.max_body - p->body_len)
    return refuse(p, 413, "body too large");
  return 0;
}

/* Always pause: pipelined messages come out one at a time, and the pause
 * position tells where this message ended. */
static int on_message_complete(llhttp_t *h) {
  wsl_http_parser_t *p = parser_of(h);
  p->keep_alive = llhttp_should_keep_alive(h);
  p->phase = WSL_HTTP_PHASE_DONE;
  return HPE_PAUSED;
}

static const llhttp_settings_t wsl_http_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/* Parser lifecycle. */

static void reset_message(wsl_http_parser_t *p) {
  p->arena.len = 0;
  if (p->arena.cap > WSL_HTTP_ARENA_KEEP)
    wsl_buf_free(&p->arena);
  p->nfields = 0;
  p->phase = WSL_HTTP_PHASE_HEAD;
  p->fail = 0;
  p->head_bytes = 0;
  p->field_count = 0;
  p->span_off = 0;
  p->url_off = p->url_len = 0;
  p->body_off = p->body_len = 0;
  p->url_done = 0;
  p->in_field = 0;
  p->saw_upgrade = 0;
  p->keep_alive = 0;
  memset(&p->request, 0, sizeof(p->request));
  p->error = NULL;
}

void wsl_http_parser_init(wsl_http_parser_t *p, wsl_http_mode_t mode,
                          const wsl_http_limits_t *limits) {
  memset(p, 0, sizeof(*p));
  p->mode = mode;
  wsl_http_limits_default(&p->limits);
  if (limits != NULL) {
    /* A zero leaves the default: zeroed options do not refuse everything. */
    if (limits->max_header_bytes != 0)
      p->limits.max_header_bytes = limits->max_header_bytes;
    if (limits->max_headers != 0)
      p->limits.max_headers = limits->max_headers;
    if (limits->max_url != 0)
      p->limits.max_url = limits->max_url;
    if (limits->max_body != 0)
      p->limits.max_body = limits->max_body;
  }
  llhttp_init(&p->llhttp,
              mode == WSL_HTTP_REQUEST_MODE ? HTTP_REQUEST : HTTP_RESPONSE,
              &wsl_http_settings);
  p->llhttp.data = p;
  reset_message(p);
}

void wsl_http_parser_free(wsl_http_parser_t *p) {
  wsl_buf_free(&p->arena);
  free(p->fields);
  free(p->headers);
  p->fields = NULL;
  p->headers = NULL;
  p->nfields = p->fields_cap = p->headers_cap = 0;
  memset(&p->request, 0, sizeof(p->request));
}

void wsl_http_parser_next(wsl_http_parser_t *p) {
  int closed = 0;
  if (p->phase == WSL_HTTP_PHASE_DONE && !p->llhttp.upgrade) {
    closed = !p->keep_alive;
    llhttp_resume(&p->llhttp);
  } else {
    llhttp_reset(&p->llhttp); /* after an upgrade, an error, or midway */
  }
  reset_message(p);
  p->closed = closed;
}

static int fail_with(wsl_http_parser_t *p, int status, const char *why) {
  p->phase = WSL_HTTP_PHASE_ERROR;
  p->fail = status;
  p->error = why;
  return status;
}

/* Turns the offsets into p->request once the message is whole. */
static int finish_message(wsl_http_parser_t *p) {
  wsl_http_request_t *r = &p->request;
  llhttp_t *h = &p->llhttp;
  /* A NUL after the last stored byte (the body), not counted: every
   * pointer below is then into real storage, and the body is a C string. */
  if (wsl_buf_reserve(&p->arena, 1) != 0)
    return fail_with(p, 500, "out of memory");
  p->arena.data[p->arena.len] = '\0';
  if (p->nfields > p->headers_cap) {
    wsl_http_header_t *hs = realloc(p->headers, p->nfields * sizeof(*hs));
    if (hs == NULL)
      return fail_with(p, 500, "out of memory");
    p->headers = hs;
    p->headers_cap = p->nfields;
  }
  const char *base = p->arena.data;
  memset(r, 0, sizeof(*r));
  if (p->mode == WSL_HTTP_REQUEST_MODE) {
    r->method = llhttp_method_name((llhttp_method_t)h->method);
    r->url = base + p->url_off;
    r->url_len = p->url_len;
    const char *q = memchr(r->url, '?', r->url_len);
    r->path = r->url;
    r->path_len = q ? (size_t)(q - r->url) : r->url_len;
    r->query = q ? q + 1 : r->url + r->url_len;
    r->query_len = q ? r->url_len - r->path_len - 1 : 0;
  } else {
    r->method = r->url = r->path = r->query = "";
    r->status = h->status_code;
  }
  r->version_major = h->http_major;
  r->version_minor = h->http_minor;
  for (size_t i = 0; i < p->nfields; i++) {
    const wsl__http_field_t *f = &p->fields[i];
    p->headers[i].name = base + f->name_off;
    p->headers[i].name_len = f->name_len;
    p->headers[i].value = base + f->value_off;
    p->headers[i].value_len = f->value_len;
  }
  r->headers = p->headers;
  r->nheaders = p->nfields;
  r->body = base + p->body_off;
  r->body_len = p->body_len;
  r->keep_alive = p->keep_alive;
  r->upgrade = h->upgrade;
  return WSL_HTTP_DONE;
}

/* The status and cause for an error llhttp reported. */
static int fail_llhttp(wsl_http_parser_t *p, llhttp_errno_t err,
                       const char *data, size_t len) {
  if (p->fail != 0)
    return fail_with(p, p->fail, p->error);
  if (err == HPE_INVALID_METHOD && p->mode == WSL_HTTP_REQUEST_MODE) {
    /* A token llhttp does not know is a method we do not implement (RFC
     * 9110 §9.1); anything else there is garbage. */
    const char *at = llhttp_get_error_pos(&p->llhttp);
    if (at != NULL && at >= data && at < data + len &&
        is_tchar((unsigned char)*at))
      return fail_with(p, 501, "method not implemented");
  }
  snprintf(p->errbuf, sizeof(p->errbuf), "malformed %s: %s",
           p->mode == WSL_HTTP_REQUEST_MODE ? "request" : "response",
           llhttp_get_error_reason(&p->llhttp));
  return fail_with(p, 400, p->errbuf);
}

int wsl_http_parse(wsl_http_parser_t *p, const char *data, size_t len,
                   size_t *consumed) {
  size_t off = 0;
  if (consumed != NULL)
    *consumed = 0;
  if (p->phase == WSL_HTTP_PHASE_ERROR)
    return p->fail;
  if (p->phase == WSL_HTTP_PHASE_DONE)
    return WSL_HTTP_DONE;
  if (p->closed) {
    /* llhttp's loose mode would swallow it silently. Stray line ends are
     * tolerated, as RFC 9112 §2.2 allows. */
    for (; off < len; off++)
      if (data[off] != '\r' && data[off] != '\n')
        return fail_with(p, 400, "data after Connection: close");
    if (consumed != NULL)
      *consumed = off;
    return WSL_HTTP_NEED_MORE;
  }
  while (off < len) {
    size_t n = len - off;
    int limited =
        p->phase == WSL_HTTP_PHASE_HEAD || p->phase == WSL_HTTP_PHASE_TRAILERS;
    if (limited) {
      size_t room = p->limits.max_header_bytes - p->head_bytes;
      if (room == 0) {
        /* The request line is not over yet: the target is too long. */
        if (p->phase == WSL_HTTP_PHASE_HEAD &&
            p->mode == WSL_HTTP_REQUEST_MODE && !p->url_done)
          return fail_with(p, 414, "URI too long");
        return fail_with(p, 431, "header fields too large");
      }
      if (n > room)
        n = room;
    }
    int phase = p->phase;
    llhttp_errno_t err = llhttp_execute(&p->llhttp, data + off, n);
    size_t used = n;
    if (err == HPE_PAUSED)
      used = (size_t)(llhttp_get_error_pos(&p->llhttp) - (data + off));
    if (limited && p->phase == phase)
      p->head_bytes += used;
    off += used;
    if (err == HPE_OK)
      continue;
    if (err == HPE_PAUSED && p->phase == WSL_HTTP_PHASE_DONE) {
      if (consumed != NULL)
        *consumed = off;
      return finish_message(p);
    }
    if (err == HPE_PAUSED && p->phase == WSL_HTTP_PHASE_TRAILERS) {
      llhttp_resume(&p->llhttp);
      p->head_bytes = 0;
      continue;
    }
    return fail_llhttp(p, err, data + off - used, n);
  }
  if (consumed != NULL)
    *consumed = off;
  return WSL_HTTP_NEED_MORE;
}

int wsl_http_parse_eof(wsl_http_parser_t *p) {
  if (p->phase == WSL_HTTP_PHASE_ERROR)
    return p->fail;
  if (p->phase == WSL_HTTP_PHASE_DONE)
    return WSL_HTTP_DONE;
  llhttp_errno_t err = llhttp_finish(&p->llhttp);
  if (p->phase == WSL_HTTP_PHASE_DONE)
    return finish_message(p);
  if (err == HPE_OK)
    return WSL_HTTP_NEED_MORE;
  if (p->fail != 0)
    return fail_with(p, p->fail, p->error);
  return fail_with(p, 400, "incomplete message");
}

/* Header lookup. */

static int name_is(const wsl_http_header_t *hd, const char *name,
                   size_t name_len) {
  return ieq(hd->name, hd->name_len, name, name_len);
}

const wsl_http_header_t *wsl_http_header(const wsl_http_request_t *r,
                                         const char *name) {
  size_t name_len = strlen(name);
  for (size_t i = 0; i < r->nheaders; i++)
    if (name_is(&r->headers[i], name, name_len))
      return &r->headers[i];
  return NULL;
}

size_t wsl_http_header_count(const wsl_http_request_t *r, const char *name) {
  size_t name_len = strlen(name), n = 0;
  for (size_t i = 0; i < r->nheaders; i++)
    if (name_is(&r->headers[i], name, name_len))
      n++;
  return n;
}

/* The next non-empty element of a comma-separated list in [*s, end),
 * trimmed; 0 when there is none left. */
static int next_token(const char **s, const char *end, wsl_token_t *t) {
  while (*s < end) {
    const char *a = *s;
    const char *comma = memchr(a, ',', (size_t)(end - a));
    const char *b = comma ? comma : end;
    *s = comma ? comma + 1 : end;
    while (a < b && is_ows(*a))
      a++;
    while (b > a && is_ows(b[-1]))
      b--;
    if (b > a) {
      t->s = a;
      t->len = (size_t)(b - a);
      return 1;
    }
  }
  return 0;
}

size_t wsl_http_header_tokens(const wsl_http_request_t *r, const char *name,
                              wsl_token_t *out, size_t max) {
  size_t name_len = strlen(name), n = 0;
  for (size_t i = 0; i < r->nheaders && n < max; i++) {
    const wsl_http_header_t *hd = &r->headers[i];
    if (!name_is(hd, name, name_len))
      continue;
    const char *s = hd->value, *end = hd->value + hd->value_len;
    while (n < max && next_token(&s, end, &out[n]))
      n++;
  }
  return n;
}

int wsl_http_header_has_token(const wsl_http_request_t *r, const char *name,
                              const char *token) {
  size_t name_len = strlen(name), token_len = strlen(token);
  for (size_t i = 0; i < r->nheaders; i++) {
    const wsl_http_header_t *hd = &r->headers[i];
    if (!name_is(hd, name, name_len))
      continue;
    const char *s = hd->value, *end = hd->value + hd->value_len;
    wsl_token_t t;
    while (next_token(&s, end, &t))
      if (ieq(t.s, t.len, token, token_len))
        return 1;
  }
  return 0;
}

/* Responses. */

static const struct {
  int status;
  const char *text;
} wsl_http_statuses[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {511, "Network Authentication Required"},
};

const char *wsl_http_status_text(int status) {
  for (size_t i = 0;
       i < sizeof(wsl_http_statuses) / sizeof(wsl_http_statuses[0]); i++)
    if (wsl_http_statuses[i].status == status)
      return wsl_http_statuses[i].text;
  return "Unknown";
}

void wsl_http_date(char out[30], time_t t) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                  "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct tm tm;
  /* Years past 9999 do not fit the format: clamp to the epoch. */
  if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 ||
      tm.tm_year > 9999 - 1900) {
    time_t zero = 0;
    gmtime_r(&zero, &tm);
  }
  snprintf(out, 30, "%s, %02u %s %04u %02u:%02u:%02u GMT",
           days[(unsigned)tm.tm_wday % 7], (unsigned)tm.tm_mday % 100,
           months[(unsigned)tm.tm_mon % 12],
           (unsigned)(tm.tm_year + 1900) % 10000, (unsigned)tm.tm_hour % 100,
           (unsigned)tm.tm_min % 100, (unsigned)tm.tm_sec % 100);
}

/* Date and Server, the fields every response of ours carries. */
static int append_date_server(wsl_buf_t *out) {
  char date[30];
  wsl_http_date(date, time(NULL));
  return wsl_buf_appendf(out, "Date: %s\r\nServer: wslua\r\n", date);
}

int wsl_http_response_begin(wsl_buf_t *out, int status) {
  size_t mark = out->len;
  if (status < 100 || status > 999)
    return -1;
  if (wsl_buf_appendf(out, "HTTP/1.1 %d %s\r\n", status,
                      wsl_http_status_text(status)) != 0 ||
      append_date_server(out) != 0) {
    out->len = mark;
    return -1;
  }
  return 0;
}

int wsl_http_response_header(wsl_buf_t *out, const char *name, size_t name_len,
                             const char *value, size_t value_len) {
  size_t mark = out->len;
  if (name_len == 0)
    return -1;
  for (size_t i = 0; i < name_len; i++)
    if (!is_tchar((unsigned char)name[i]))
      return -1;
  for (size_t i = 0; i < value_len; i++)
    if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
      return -1;
  if (wsl_buf_reserve(out, name_len + value_len + 4) != 0 ||
      wsl_buf_append(out, name, name_len) != 0 ||
      wsl_buf_append(out, ": ", 2) != 0 ||
      wsl_buf_append(out, value, value_len) != 0 ||
      wsl_buf_append(out, "\r\n", 2) != 0) {
    out->len = mark;
    return -1;
  }
  return 0;
}

int wsl_http_response_end(wsl_buf_t *out) {
  return wsl_buf_append(out, "\r\n", 2);
}

int wsl_http_error_response(wsl_buf_t *out, int status, const char *message,
                            int close) {
  size_t mark = out->len;
  if (message == NULL)
    message = wsl_http_status_text(status);
  size_t len = strlen(message);
  if (wsl_http_response_begin(out, status) != 0)
    return -1;
  if (wsl_buf_appendf(out,
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Length: %zu\r\n%s\r\n",
                      len + 1, close ? "Connection: close\r\n" : "") != 0 ||
      wsl_buf_append(out, message, len) != 0 ||
      wsl_buf_append(out, "\n", 1) != 0) {
    out->len = mark;
    return -1;
  }
  return 0;
}
