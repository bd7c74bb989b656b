/* A connection's cork: output waiting for the loop turn's flush (flush.c),
 * in order, as copied bytes and as references to shared frames, so that a
 * frame published to many connections is neither copied per connection
 * nor written per message. */
#ifndef WSL_CORK_H
#define WSL_CORK_H

#include <stdint.h>
#include <stddef.h>

#include <uv.h>

#include "proto/buf.h"

struct wsl_shared_frame;

typedef struct {
  wsl_buf_t records; /* see cork.c */
  uint32_t bytes;    /* what the records will send (at most the cork's
                        limit: conn.c CORK_MAX) */
  uint32_t pieces;   /* records: the buffers of the write */
} wsl_cork_t;

#define WSL_CORK_INIT                                                          \
  { WSL_BUF_INIT, 0, 0 }

/* Each returns 0, or -1 out of memory (the cork is then unchanged).
 * copyv copies the n buffers one after another (a frame's header and
 * payload: one reserve, one record); a copy right after a copy joins it:
 * one buffer. share takes a reference. */
int wsl_cork_copyv(wsl_cork_t *k, const uv_buf_t *bufs, unsigned n);
int wsl_cork_share(wsl_cork_t *k, struct wsl_shared_frame *f);

/* Fills bufs (k->pieces of them) with the cork's bytes in order, and
 * shared[i] with the frame whose bytes bufs[i] holds (NULL for a copy). */
void wsl_cork_fill(const wsl_cork_t *k, uv_buf_t *bufs,
                   struct wsl_shared_frame **shared);

/* Releases the references and the memory (a small buffer is kept for the
 * thread's next cork); the cork is empty after. */
void wsl_cork_free(wsl_cork_t *k);

/* Frees the buffers kept for the thread's corks (wsl_conn_thread_exit). */
void wsl_cork_thread_exit(void);

#endif
