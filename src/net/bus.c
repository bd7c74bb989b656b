/* The in-process bus between workers: per-member queues of reference
 * counted messages, a mutex each, woken by uv_async_send. */
#include "net/bus.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* At most this many messages are delivered per wake-up; the rest wait for
 * the next turn of the loop, so other handles get theirs. */
#define BATCH 256

typedef struct {
  atomic_int refs;
  int kind;
  int from;
  size_t len;
  char data[];
} msg_t;

enum { WAITING, ATTACHED, GONE };

typedef struct {
  uv_mutex_t lock;
  int state;
  uv_async_t *async; /* while ATTACHED */
  wsl_bus_cb cb;
  void *ud;
  msg_t **ring; /* a circular queue: count items from head */
  size_t cap, head, count;
  size_t queued_bytes;
  uint64_t dropped;
} member_t;

struct wsl_bus {
  int n;
  member_t members[];
};

static void release(msg_t *m) {
  if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
    free(m);
}

wsl_bus_t *wsl_bus_new(int members) {
  if (members < 1)
    return NULL;
  wsl_bus_t *b = calloc(1, sizeof *b + (size_t)members * sizeof(member_t));
  if (b == NULL)
    return NULL;
  b->n = members;
  for (int i = 0; i < members; i++) {
    if (uv_mutex_init(&b->members[i].lock) != 0) {
      while (i-- > 0)
        uv_mutex_destroy(&b->members[i].lock);
      free(b);
      return NULL;
    }
  }
  return b;
}

/* Drops every queued message of m; called with m->lock held. */
static void drop_queue(member_t *m) {
  for (size_t i = 0; i < m->count; i++)
    release(m->ring[(m->head + i) % m->cap]);
  free(m->ring);
  m->ring = NULL;
  m->cap = m->head = m->count = 0;
  m->queued_bytes = 0;
}

void wsl_bus_free(wsl_bus_t *b) {
  if (b == NULL)
    return;
  for (int i = 0; i < b->n; i++) {
    drop_queue(&b->members[i]);
    uv_mutex_destroy(&b->members[i].lock);
  }
  free(b);
}

int wsl_bus_members(const wsl_bus_t *b) {
  return b->n;
}

static member_t *member(wsl_bus_t *b, int id) {
  return id >= 1 && id <= b->n ? &b->members[id - 1] : NULL;
}

/* Delivers up to BATCH messages; wakes itself again if more are waiting.
 * The callback runs without the lock held, so it may send. */
static void on_wake(uv_async_t *h) {
  member_t *m = h->data;
  msg_t *batch[BATCH];
  size_t n = 0;
  uv_mutex_lock(&m->lock);
  while (n < BATCH && m->count > 0) {
    batch[n] = m->ring[m->head];
    m->head = (m->head + 1) % m->cap;
    m->count--;
    m->queued_bytes -= batch[n]->len;
    n++;
  }
  int more = m->count > 0;
  uv_mutex_unlock(&m->lock);
  if (more)
    uv_async_send(h);
  for (size_t i = 0; i < n; i++) {
    /* A detach from inside a callback: the rest is dropped. */
    if (m->state == ATTACHED)
      m->cb(m->ud, batch[i]->kind, batch[i]->from, batch[i]->data,
            batch[i]->len);
    release(batch[i]);
  }
}

static void on_async_closed(uv_handle_t *h) {
  free(h);
}

int wsl_bus_attach(wsl_bus_t *b, int id, uv_loop_t *loop, wsl_bus_cb cb,
                   void *ud) {
  member_t *m = member(b, id);
  if (m == NULL || m->state != WAITING)
    return UV_EINVAL;
  uv_async_t *a = malloc(sizeof *a);
  if (a == NULL)
    return UV_ENOMEM;
  int r = uv_async_init(loop, a, on_wake);
  if (r != 0) {
    free(a);
    return r;
  }
  a->data = m;
  uv_mutex_lock(&m->lock);
  m->cb = cb;
  m->ud = ud;
  m->async = a;
  m->state = ATTACHED;
  if (m->count > 0)
    uv_async_send(a);
  uv_mutex_unlock(&m->lock);
  return 0;
}

void wsl_bus_detach(wsl_bus_t *b, int id) {
  member_t *m = member(b, id);
  if (m == NULL || m->state == GONE)
    return;
  uv_mutex_lock(&m->lock);
  m->state = GONE;
  uv_async_t *a = m->async;
  m->async = NULL;
  drop_queue(m);
  uv_mutex_unlock(&m->lock);
  if (a)
    uv_close((uv_handle_t *)a, on_async_closed);
}

/* Appends msg to m's queue; called with m->lock held. Returns 1 if queued. */
static int push(member_t *m, msg_t *msg) {
  if (m->state == GONE)
    return 0;
  if (msg->kind != WSL_BUS_COMMAND &&
      m->queued_bytes + msg->len > WSL_BUS_MAX_QUEUED) {
    m->dropped++;
    return 0;
  }
  if (m->count == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    msg_t **ring = malloc(cap * sizeof *ring);
    if (ring == NULL)
      return 0;
    for (size_t i = 0; i < m->count; i++)
      ring[i] = m->ring[(m->head + i) % m->cap];
    free(m->ring);
    m->ring = ring;
    m->cap = cap;
    m->head = 0;
  }
  m->ring[(m->head + m->count) % m->cap] = msg;
  m->count++;
  m->queued_bytes += msg->len;
  atomic_fetch_add_explicit(&msg->refs, 1, memory_order_relaxed);
  if (m->async)
    uv_async_send(m->async);
  return 1;
}

int wsl_bus_send(wsl_bus_t *b, int to, int from, int kind, const void *data,
                 size_t len) {
  if (to != 0 && member(b, to) == NULL)
    return 0;
  msg_t *msg = malloc(sizeof *msg + len);
  if (msg == NULL)
    return UV_ENOMEM;
  /* The sender's own reference, given up below: a receiver on another
   * thread may finish with the message before the loop ends. */
  atomic_init(&msg->refs, 1);
  msg->kind = kind;
  msg->from = from;
  msg->len = len;
  if (len)
    memcpy(msg->data, data, len);
  int queued = 0;
  for (int i = 1; i <= b->n; i++) {
    if ((to != 0 && i != to) || (to == 0 && i == from))
      continue;
    member_t *m = &b->members[i - 1];
    uv_mutex_lock(&m->lock);
    queued += push(m, msg);
    uv_mutex_unlock(&m->lock);
  }
  release(msg);
  return queued;
}

uint64_t wsl_bus_dropped(wsl_bus_t *b, int id) {
  member_t *m = member(b, id);
  if (m == NULL)
    return 0;
  uv_mutex_lock(&m->lock);
  uint64_t n = m->dropped;
  uv_mutex_unlock(&m->lock);
  return n;
}
