/* The WebSocket opening handshake, RFC 6455 §4. */
#include "proto/handshake.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

/* §1.3: the GUID every server appends to the client's key. */
static const char wsl_ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* SHA-1 as OpenSSL's default provider has it, fetched once (wsl_handshake_
 * init): EVP_sha1() fetches it again at every digest, and the first fetch
 * loads OpenSSL's configuration and providers, about 2 MB resident, which
 * belongs to the server's start rather than to its first client. */
static EVP_MD *sha1;

void wsl_handshake_init(void) {
  if (sha1 == NULL)
    sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
}

int wsl_handshake_accept(const char *key, size_t key_len,
                         char out[WSL_ACCEPT_LEN + 1]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx != NULL &&
           EVP_DigestInit_ex(ctx, sha1 ? sha1 : EVP_sha1(), NULL) == 1 &&
           EVP_DigestUpdate(ctx, key, key_len) == 1 &&
           EVP_DigestUpdate(ctx, wsl_ws_guid, sizeof(wsl_ws_guid) - 1) == 1 &&
           EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 20;
  EVP_MD_CTX_free(ctx);
  out[0] = '\0';
  if (!ok)
    return -1;
  EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 chars and a NUL */
  return 0;
}

static int is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* §4.1: the key is 16 bytes in base64, which is always 22 characters and
 * "==". EVP_DecodeBlock alone would skip blanks and not count the padding,
 * so the shape is checked first. */
static int key_is_valid(const char *s, size_t len) {
  unsigned char raw[18];
  if (len != WSL_KEY_LEN || s[22] != '=' || s[23] != '=')
    return 0;
  for (size_t i = 0; i < 22; i++)
    if (!is_base64_char(s[i]))
      return 0;
  return EVP_DecodeBlock(raw, (const unsigned char *)s, WSL_KEY_LEN) == 18;
}

static int refuse(const char **error, int status, const char *why) {
  if (error != NULL)
    *error = why;
  return status;
}

int wsl_handshake_check(const wsl_http_request_t *req, const char **error) {
  if (req->method == NULL || strcmp(req->method, "GET") != 0)
    return refuse(error, 405, "method not GET");
  if (req->version_major < 1 ||
      (req->version_major == 1 && req->version_minor < 1))
    return refuse(error, 400, "HTTP version below 1.1");
  /* RFC 9112 §3.2: no Host, or more than one, is a bad request. */
  size_t hosts = wsl_http_header_count(req, "Host");
  if (hosts == 0)
    return refuse(error, 400, "Host missing");
  if (hosts > 1)
    return refuse(error, 400, "Host repeated");
  if (!wsl_http_header_has_token(req, "Upgrade", "websocket"))
    return refuse(error, 400, "Upgrade lacks websocket");
  if (!wsl_http_header_has_token(req, "Connection", "upgrade"))
    return refuse(error, 400, "Connection lacks upgrade");
  size_t keys = wsl_http_header_count(req, "Sec-WebSocket-Key");
  if (keys == 0)
    return refuse(error, 400, "Sec-WebSocket-Key missing");
  if (keys > 1)
    return refuse(error, 400, "Sec-WebSocket-Key repeated");
  const wsl_http_header_t *key = wsl_http_header(req, "Sec-WebSocket-Key");
  if (!key_is_valid(key->value, key->value_len))
    return refuse(error, 400, "Sec-WebSocket-Key is not 16 bytes in base64");
  /* §4.2.2: any version but 13 gets 426 and the version we speak. */
  size_t versions = wsl_http_header_count(req, "Sec-WebSocket-Version");
  if (versions == 0)
    return refuse(error, 426, "Sec-WebSocket-Version missing");
  const wsl_http_header_t *v = wsl_http_header(req, "Sec-WebSocket-Version");
  if (versions > 1 || v->value_len != 2 || memcmp(v->value, "13", 2) != 0)
    return refuse(error, 426, "Sec-WebSocket-Version not 13");
  return 0;
}

static int add_header(wsl_buf_t *out, const char *name, const char *value) {
  return wsl_http_response_header(out, name, strlen(name), value,
                                  strlen(value));
}

static int add_date_server(wsl_buf_t *out) {
  char date[30];
  wsl_http_date(date, time(NULL));
  return wsl_buf_appendf(out, "Date: %s\r\nServer: wslua\r\n", date);
}

int wsl_handshake_response(wsl_buf_t *out, const char *accept,
                           const char *protocol, const char *extensions) {
  size_t mark = out->len;
  if (wsl_buf_append_str(out, "HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n") != 0 ||
      add_header(out, "Sec-WebSocket-Accept", accept) != 0 ||
      (protocol != NULL &&
       add_header(out, "Sec-WebSocket-Protocol", protocol) != 0) ||
      (extensions != NULL &&
       add_header(out, "Sec-WebSocket-Extensions", extensions) != 0) ||
      add_date_server(out) != 0) {
    out->len = mark;
    return -1;
  }
  return 0;
}

int wsl_handshake_client_key(char out[WSL_KEY_LEN + 1],
                             const uint8_t random16[16]) {
  EVP_EncodeBlock((unsigned char *)out, random16, 16); /* 24 chars, NUL */
  return 0;
}

/* A request target in origin form has no spaces or controls (RFC 9112
 * §3.2); anything else would let a path rewrite the request line. */
static int path_is_valid(const char *path) {
  for (const unsigned char *s = (const unsigned char *)path; *s; s++)
    if (*s <= ' ' || *s == 0x7f)
      return 0;
  return 1;
}

int wsl_handshake_client_request(wsl_buf_t *out, const char *host_header,
                                 const char *path, const char *key,
                                 const char *protocols) {
  size_t mark = out->len;
  if (path == NULL || *path == '\0')
    path = "/";
  if (host_header == NULL || key == NULL || !path_is_valid(path))
    return -1;
  if (wsl_buf_appendf(out, "GET %s HTTP/1.1\r\n", path) != 0 ||
      add_header(out, "Host", host_header) != 0 ||
      wsl_buf_append_str(out, "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n") != 0 ||
      add_header(out, "Sec-WebSocket-Key", key) != 0 ||
      wsl_buf_append_str(out, "Sec-WebSocket-Version: 13\r\n") != 0 ||
      (protocols != NULL &&
       add_header(out, "Sec-WebSocket-Protocol", protocols) != 0)) {
    out->len = mark;
    return -1;
  }
  return 0;
}

static int client_fail(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int client_fail(char *errbuf, size_t errlen, const char *fmt, ...) {
  if (errbuf != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int is_ows(char c) {
  return c == ' ' || c == '\t';
}

/* 1 if the comma list holds exactly the token s[0..len): subprotocol names
 * are compared as they are, case included (RFC 6455 §4.1 wants the one the
 * client asked for). */
static int list_has(const char *list, const char *s, size_t len) {
  while (*list) {
    const char *end = strchr(list, ',');
    if (end == NULL)
      end = list + strlen(list);
    const char *a = list, *b = end;
    while (a < b && is_ows(*a))
      a++;
    while (b > a && is_ows(b[-1]))
      b--;
    if ((size_t)(b - a) == len && len > 0 && memcmp(a, s, len) == 0)
      return 1;
    list = *end ? end + 1 : end;
  }
  return 0;
}

int wsl_handshake_client_check(const wsl_http_request_t *resp, const char *key,
                               const char *offered_protocols,
                               int extensions_offered, char *errbuf,
                               size_t errlen) {
  if (resp->status != 101)
    return client_fail(errbuf, errlen, "unexpected status %d", resp->status);
  if (!wsl_http_header_has_token(resp, "Upgrade", "websocket"))
    return client_fail(errbuf, errlen, "Upgrade lacks websocket");
  if (!wsl_http_header_has_token(resp, "Connection", "upgrade"))
    return client_fail(errbuf, errlen, "Connection lacks upgrade");
  size_t accepts = wsl_http_header_count(resp, "Sec-WebSocket-Accept");
  if (accepts != 1)
    return client_fail(errbuf, errlen, "Sec-WebSocket-Accept %s",
                       accepts ? "repeated" : "missing");
  char expected[WSL_ACCEPT_LEN + 1];
  const wsl_http_header_t *a = wsl_http_header(resp, "Sec-WebSocket-Accept");
  if (wsl_handshake_accept(key, strlen(key), expected) != 0)
    return client_fail(errbuf, errlen, "SHA-1 failed");
  if (a->value_len != WSL_ACCEPT_LEN ||
      memcmp(a->value, expected, WSL_ACCEPT_LEN) != 0)
    return client_fail(errbuf, errlen, "Sec-WebSocket-Accept mismatch");
  size_t protocols = wsl_http_header_count(resp, "Sec-WebSocket-Protocol");
  if (protocols > 1)
    return client_fail(errbuf, errlen, "Sec-WebSocket-Protocol repeated");
  if (protocols == 1) {
    const wsl_http_header_t *p =
        wsl_http_header(resp, "Sec-WebSocket-Protocol");
    if (offered_protocols == NULL ||
        !list_has(offered_protocols, p->value, p->value_len))
      return client_fail(
          errbuf, errlen, "Sec-WebSocket-Protocol %.*s not offered",
          (int)(p->value_len > 64 ? 64 : p->value_len), p->value);
  }
  /* §4.1: extensions the client did not offer fail the connection. */
  if (!extensions_offered &&
      wsl_http_header_count(resp, "Sec-WebSocket-Extensions") > 0)
    return client_fail(errbuf, errlen, "Sec-WebSocket-Extensions not offered");
  return 0;
}
