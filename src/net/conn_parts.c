/* The parts of a connection that are made only when first needed (see
 * conn_internal.h): the rare part and the extra part. */
#include "net/conn_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

wsl_conn_rare_t *wsl__conn_rare(wsl_conn_t *c) {
  if (c->rare == NULL)
    c->rare = calloc(1, sizeof *c->rare);
  return c->rare;
}

wsl_conn_extra_t *wsl__conn_extra(wsl_conn_t *c) {
  if (c->extra == NULL)
    c->extra = calloc(1, sizeof *c->extra);
  return c->extra;
}

void wsl__conn_extra_trim(wsl_conn_t *c) {
  wsl_conn_extra_t *x = c->extra;
  if (x == NULL || x->dial || x->next_ping_ms || x->deflater || x->inflater ||
      x->ctrl)
    return;
  free(x);
  c->extra = NULL;
}

void wsl__conn_parts_free(wsl_conn_t *c) {
  wsl_conn_rare_t *r = c->rare;
  if (r) {
    if (r->pending) {
      wsl_buf_free(r->pending);
      free(r->pending);
    }
    free(r->close_reason);
    free(r->error_buf);
    free(r);
    c->rare = NULL;
  }
  if (c->extra) {
    free(c->extra->ctrl);
    free(c->extra);
    c->extra = NULL;
  }
}

wsl_dial_state_t *wsl__conn_dial(const wsl_conn_t *c) {
  return c->extra ? c->extra->dial : NULL;
}

const char *wsl__conn_error_text(wsl_conn_t *c, const char *fallback,
                                 const char *fmt, ...) {
  /* Made once per connection at most (the error that closes it), so the
   * buffer is kept until the connection is freed: c->error may point in. */
  enum { ERROR_TEXT_MAX = 128 };
  wsl_conn_rare_t *r = wsl__conn_rare(c);
  if (r == NULL ||
      (r->error_buf == NULL && (r->error_buf = malloc(ERROR_TEXT_MAX)) == NULL))
    return fallback;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->error_buf, ERROR_TEXT_MAX, fmt, ap);
  va_end(ap);
  return r->error_buf;
}
