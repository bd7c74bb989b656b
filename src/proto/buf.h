/* A growable byte buffer: the one way the core builds output and keeps input. */
#ifndef WSL_BUF_H
#define WSL_BUF_H

#include <stddef.h>

typedef struct {
  char *data;
  size_t len; /* bytes in use, from data[0] */
  size_t cap; /* bytes allocated */
} wsl_buf_t;

#define WSL_BUF_INIT {NULL, 0, 0}

/* Each returns 0, or -1 when memory could not be had (the buffer is then
 * unchanged). */
int wsl_buf_reserve(wsl_buf_t *b, size_t extra);
int wsl_buf_append(wsl_buf_t *b, const void *data, size_t len);
int wsl_buf_append_str(wsl_buf_t *b, const char *s);
int wsl_buf_appendf(wsl_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Drops the first n bytes (n <= len), keeping the rest. */
void wsl_buf_consume(wsl_buf_t *b, size_t n);
/* Hands the bytes to the caller (who frees them) and leaves b empty. */
char *wsl_buf_detach(wsl_buf_t *b);
void wsl_buf_free(wsl_buf_t *b);

#endif
