/* Many one-shot timers on one libuv timer per loop: a binary heap ordered
 * as libuv orders its own (due time, then start order), and the libuv timer
 * armed for the earliest. */
#include "net/timers.h"

#include <stdlib.h>

typedef struct wsl_timers {
  uv_timer_t handle; /* armed for heap[0] whenever the heap is not empty */
  uv_loop_t *loop;
  wsl_timer_cb cb;
  size_t owners;
  wsl_timer_t **heap;
  uint32_t len, cap;
  uint32_t seq;
  int dispatching; /* inside on_fire: it re-arms when done */
  struct wsl_timers *next;
} wsl_timers_t;

/* This thread's loops with timers (nearly always one). */
static _Thread_local wsl_timers_t *loops;

static wsl_timers_t *find(uv_loop_t *loop) {
  for (wsl_timers_t *m = loops; m; m = m->next)
    if (m->loop == loop)
      return m;
  return NULL;
}

/* The sequence numbers wrap; timers started 2^31 starts apart are never
 * due at the same time. */
static int before(const wsl_timer_t *a, const wsl_timer_t *b) {
  if (a->due != b->due)
    return a->due < b->due;
  return (int32_t)(a->seq - b->seq) < 0;
}

static void place(wsl_timers_t *m, uint32_t i, wsl_timer_t *t) {
  m->heap[i] = t;
  t->slot = i + 1;
}

static void sift_up(wsl_timers_t *m, uint32_t i) {
  wsl_timer_t *t = m->heap[i];
  while (i > 0 && before(t, m->heap[(i - 1) / 2])) {
    place(m, i, m->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  place(m, i, t);
}

static void sift_down(wsl_timers_t *m, uint32_t i) {
  wsl_timer_t *t = m->heap[i];
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= m->len)
      break;
    if (child + 1 < m->len && before(m->heap[child + 1], m->heap[child]))
      child++;
    if (!before(m->heap[child], t))
      break;
    place(m, i, m->heap[child]);
    i = child;
  }
  place(m, i, t);
}

static void heap_remove(wsl_timers_t *m, wsl_timer_t *t) {
  uint32_t i = t->slot - 1;
  wsl_timer_t *last = m->heap[--m->len];
  t->slot = 0;
  if (last == t)
    return;
  place(m, i, last);
  sift_up(m, i);
  sift_down(m, last->slot - 1);
}

static void on_fire(uv_timer_t *h);

static void rearm(wsl_timers_t *m) {
  if (m->dispatching)
    return;
  if (m->len == 0) {
    uv_timer_stop(&m->handle);
    return;
  }
  uint64_t now = uv_now(m->loop), due = m->heap[0]->due;
  uv_timer_start(&m->handle, on_fire, due > now ? due - now : 0, 0);
}

static void on_fire(uv_timer_t *h) {
  wsl_timers_t *m = h->data;
  uint64_t now = uv_now(m->loop);
  /* Those that callbacks start due now run in this pass too, as libuv runs
   * its own. */
  m->dispatching = 1;
  while (m->len > 0 && m->heap[0]->due <= now) {
    wsl_timer_t *t = m->heap[0];
    heap_remove(m, t);
    m->cb(t);
  }
  m->dispatching = 0;
  rearm(m);
}

static void on_closed(uv_handle_t *h) {
  wsl_timers_t *m = h->data;
  free(m->heap);
  free(m);
}

int wsl_timers_attach(uv_loop_t *loop, wsl_timer_cb cb) {
  wsl_timers_t *m = find(loop);
  if (m == NULL) {
    m = calloc(1, sizeof *m);
    if (m == NULL)
      return UV_ENOMEM;
    uv_timer_init(loop, &m->handle);
    m->handle.data = m;
    m->loop = loop;
    m->cb = cb;
    m->next = loops;
    loops = m;
  }
  /* Room for every owner's timer now, so that starting one never fails. */
  if (m->owners + 1 > m->cap) {
    uint32_t cap = m->cap ? m->cap * 2 : 64;
    wsl_timer_t **heap = realloc(m->heap, cap * sizeof *heap);
    if (heap == NULL) {
      if (m->owners == 0)
        wsl_timers_detach(loop);
      return UV_ENOMEM;
    }
    m->heap = heap;
    m->cap = cap;
  }
  m->owners++;
  return 0;
}

void wsl_timers_detach(uv_loop_t *loop) {
  wsl_timers_t *m = find(loop);
  if (m == NULL || (m->owners > 0 && --m->owners > 0))
    return;
  wsl_timers_t **p = &loops;
  while (*p != m)
    p = &(*p)->next;
  *p = m->next;
  uv_close((uv_handle_t *)&m->handle, on_closed);
}

int wsl_timer_start(uv_loop_t *loop, wsl_timer_t *t, uint64_t ms) {
  wsl_timers_t *m = find(loop);
  if (m == NULL)
    return UV_EINVAL;
  if (t->slot)
    heap_remove(m, t);
  uint64_t now = uv_now(loop);
  t->due = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
  t->seq = m->seq++;
  place(m, m->len++, t);
  sift_up(m, m->len - 1);
  rearm(m);
  return 0;
}

void wsl_timer_stop(uv_loop_t *loop, wsl_timer_t *t) {
  if (t->slot == 0)
    return;
  wsl_timers_t *m = find(loop);
  heap_remove(m, t);
  rearm(m);
}
