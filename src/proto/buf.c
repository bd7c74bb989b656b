/* A growable byte buffer. */
#include "proto/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wsl_buf_reserve(wsl_buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra)
    return 0;
  if (extra > (size_t)-1 / 2 - b->len)
    return -1;
  size_t cap = b->cap ? b->cap : 64;
  while (cap - b->len < extra)
    cap *= 2;
  char *data = realloc(b->data, cap);
  if (data == NULL)
    return -1;
  b->data = data;
  b->cap = cap;
  return 0;
}

int wsl_buf_append(wsl_buf_t *b, const void *data, size_t len) {
  if (len == 0)
    return 0;
  if (wsl_buf_reserve(b, len) != 0)
    return -1;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

int wsl_buf_append_str(wsl_buf_t *b, const char *s) {
  return wsl_buf_append(b, s, strlen(s));
}

int wsl_buf_appendf(wsl_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || wsl_buf_reserve(b, (size_t)n + 1) != 0)
    return -1;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void wsl_buf_consume(wsl_buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

char *wsl_buf_detach(wsl_buf_t *b) {
  char *data = b->data;
  b->data = NULL;
  b->len = b->cap = 0;
  return data;
}

void wsl_buf_free(wsl_buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
