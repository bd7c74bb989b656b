/* A connection's cork. The records are written front to back and read back
 * to front: each ends with a trailer naming its kind and length, so that a
 * copy can join the copy before it without the cork keeping an index.
 *   copy:   <len bytes> <trailer {len, COPY}>
 *   shared: <frame pointer> <trailer {frame len, SHARED}>
 * Trailers and pointers are read and written with memcpy: records are not
 * aligned. */
#include "net/cork.h"

#include <string.h>

#include "net/conn_internal.h"

enum { COPY, SHARED };

typedef struct {
  size_t len;
  size_t kind;
} trailer_t;

/* Record buffers of corks just flushed, kept for the next cork to fill:
 * every busy connection fills one each loop turn, and growing a new one to
 * a turn's size took several reallocs each time. A connection's cork is
 * filled and flushed on its loop's thread, so the spares are per thread:
 * enough for a turn's worth of connections (an echo of 100 connections
 * with one message each in flight has ~80 corks a turn, and took a malloc
 * and a free per message with 4), none large beyond the first few. */
#define SPARES 256
#define LARGE_SPARES 4
#define SPARE_CAP_MAX (16 * 1024)
#define FIRST_CAP 1024

static _Thread_local wsl_buf_t spare[SPARES];
static _Thread_local int spares;

/* Room for extra more bytes, starting from a spare buffer if it has none. */
static int reserve(wsl_cork_t *k, size_t extra) {
  if (k->records.cap == 0) {
    if (spares > 0)
      k->records = spare[--spares];
    else if (wsl_buf_reserve(&k->records, FIRST_CAP) != 0)
      return -1;
  }
  return wsl_buf_reserve(&k->records, extra);
}

void wsl_cork_thread_exit(void) {
  while (spares > 0)
    wsl_buf_free(&spare[--spares]);
}

static trailer_t trailer_at(const wsl_cork_t *k, size_t end) {
  trailer_t t;
  memcpy(&t, k->records.data + end - sizeof t, sizeof t);
  return t;
}

static void put_trailer(wsl_cork_t *k, size_t len, size_t kind) {
  trailer_t t = {len, kind};
  memcpy(k->records.data + k->records.len, &t, sizeof t);
  k->records.len += sizeof t;
}

int wsl_cork_copyv(wsl_cork_t *k, const uv_buf_t *bufs, unsigned n) {
  size_t len = 0;
  for (unsigned i = 0; i < n; i++)
    len += bufs[i].len;
  if (len == 0)
    return 0;
  if (reserve(k, len + sizeof(trailer_t)) != 0)
    return -1;
  size_t joined = 0;
  if (k->pieces) {
    trailer_t last = trailer_at(k, k->records.len);
    if (last.kind == COPY) {
      /* The new bytes go over the trailer, which moves after them. */
      k->records.len -= sizeof last;
      joined = last.len;
    }
  }
  for (unsigned i = 0; i < n; i++) {
    if (bufs[i].len == 0) /* an empty payload may have no pointer */
      continue;
    memcpy(k->records.data + k->records.len, bufs[i].base, bufs[i].len);
    k->records.len += bufs[i].len;
  }
  put_trailer(k, joined + len, COPY);
  if (joined == 0)
    k->pieces++;
  k->bytes += len;
  return 0;
}

int wsl_cork_share(wsl_cork_t *k, wsl_shared_frame_t *f) {
  if (reserve(k, sizeof f + sizeof(trailer_t)) != 0)
    return -1;
  f->refs++;
  memcpy(k->records.data + k->records.len, &f, sizeof f);
  k->records.len += sizeof f;
  put_trailer(k, f->len, SHARED);
  k->pieces++;
  k->bytes += f->len;
  return 0;
}

/* Calls fn for each record, last first. */
static void each_back(const wsl_cork_t *k,
                      void (*fn)(void *ud, size_t i, char *data, size_t len,
                                 wsl_shared_frame_t *f),
                      void *ud) {
  size_t end = k->records.len, i = k->pieces;
  while (end > 0) {
    trailer_t t = trailer_at(k, end);
    end -= sizeof t;
    i--;
    if (t.kind == COPY) {
      end -= t.len;
      fn(ud, i, k->records.data + end, t.len, NULL);
    } else {
      wsl_shared_frame_t *f;
      end -= sizeof f;
      memcpy(&f, k->records.data + end, sizeof f);
      fn(ud, i, f->bytes, f->len, f);
    }
  }
}

typedef struct {
  uv_buf_t *bufs;
  wsl_shared_frame_t **shared;
} fill_t;

static void fill_one(void *ud, size_t i, char *data, size_t len,
                     wsl_shared_frame_t *f) {
  fill_t *fill = ud;
  fill->bufs[i] = uv_buf_init(data, (unsigned)len);
  fill->shared[i] = f;
}

void wsl_cork_fill(const wsl_cork_t *k, uv_buf_t *bufs,
                   wsl_shared_frame_t **shared) {
  fill_t fill = {bufs, shared};
  each_back(k, fill_one, &fill);
}

static void release_one(void *ud, size_t i, char *data, size_t len,
                        wsl_shared_frame_t *f) {
  (void)ud;
  (void)i;
  (void)data;
  (void)len;
  if (f)
    wsl__shared_frame_release(f);
}

void wsl_cork_free(wsl_cork_t *k) {
  each_back(k, release_one, NULL);
  size_t cap = k->records.cap;
  if (cap > 0 && spares < SPARES &&
      (cap <= FIRST_CAP || (cap <= SPARE_CAP_MAX && spares < LARGE_SPARES))) {
    k->records.len = 0;
    spare[spares++] = k->records;
    k->records = (wsl_buf_t)WSL_BUF_INIT;
  } else {
    wsl_buf_free(&k->records);
  }
  k->bytes = k->pieces = 0;
}
