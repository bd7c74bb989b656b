/* One message to many connections: each distinct frame is built once (plain,
 * and compressed once per set of settings that keeps no context) and its
 * bytes are shared by every connection's write queue. */
#include "net/conn_internal.h"

#include <stdlib.h>

#define MAX_VARIANTS 8

struct wsl_broadcast {
  int opcode;
  const void *data; /* the caller's, alive until wsl_broadcast_free */
  size_t len;
  wsl_shared_frame_t *plain;
  struct {
    int key; /* wsl__compress_share_key */
    wsl_shared_frame_t *frame;
  } compressed[MAX_VARIANTS];
  int variants;
};

wsl_broadcast_t *wsl_broadcast_new(int opcode, const void *data, size_t len) {
  wsl_broadcast_t *b = calloc(1, sizeof *b);
  if (b == NULL)
    return NULL;
  b->opcode = opcode;
  b->data = data;
  b->len = len;
  return b;
}

void wsl_broadcast_free(wsl_broadcast_t *b) {
  if (b->plain)
    wsl__shared_frame_release(b->plain);
  for (int i = 0; i < b->variants; i++)
    wsl__shared_frame_release(b->compressed[i].frame);
  free(b);
}

/* The compressed frame for these settings, made on first use; NULL when it
 * cannot be shared (the connection then compresses for itself). */
static wsl_shared_frame_t *compressed_frame(wsl_broadcast_t *b,
                                            wsl_conn_t *c) {
  int key = wsl__compress_share_key(c);
  if (key == 0)
    return NULL;
  for (int i = 0; i < b->variants; i++)
    if (b->compressed[i].key == key)
      return b->compressed[i].frame;
  if (b->variants == MAX_VARIANTS)
    return NULL;
  wsl_buf_t packed = WSL_BUF_INIT;
  wsl_shared_frame_t *f = NULL;
  if (wsl__compress_message(c, b->data, b->len, &packed) == 1)
    f = wsl__shared_frame_new(b->opcode, WSL_RSV1, packed.data, packed.len);
  wsl_buf_free(&packed);
  if (f) {
    b->compressed[b->variants].key = key;
    b->compressed[b->variants].frame = f;
    b->variants++;
  }
  return f;
}

int wsl_conn_send_broadcast(wsl_conn_t *c, wsl_broadcast_t *b) {
  if (c->state != WSL_CONN_OPEN)
    return UV_ECANCELED;
  if (c->role != WSL_ROLE_SERVER)
    return wsl_conn_send(c, b->opcode, b->data, b->len); /* masked per frame */
  if (c->compress && b->len >= c->ws->deflate_config.threshold) {
    wsl_shared_frame_t *f = compressed_frame(b, c);
    if (f == NULL)
      return wsl_conn_send(c, b->opcode, b->data, b->len);
    return wsl__conn_write_shared(c, f);
  }
  if (b->plain == NULL) {
    b->plain = wsl__shared_frame_new(b->opcode, 0, b->data, b->len);
    if (b->plain == NULL)
      return UV_ENOMEM;
  }
  return wsl__conn_write_shared(c, b->plain);
}
