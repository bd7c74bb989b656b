/* The thread's flush list: connections whose small writes wait in their
 * cork, each sent in one write per loop turn by a prepare handle. Prepare
 * runs after the timers and I/O callbacks of a turn and just before the
 * loop polls, so batching adds no latency: a publish to N subscribers, or
 * many replies to one read, costs one system call per connection.
 *
 * One flusher per thread (each worker is a thread with its own loop). Its
 * handles live while the thread has connections that are not closing, and
 * is closed with the last of them, so that the owner's teardown (close the
 * connections, run the loop once, uv_loop_close) finds no handle left. */
#include "net/conn_internal.h"

#include <stdlib.h>

/* The flusher's handles, freed once both are closed. The check runs the
 * loop turn's whole messages (turn.c) right after its reads; the prepare
 * runs any that came later (from a timer, say) and then the writes. */
typedef struct {
  uv_prepare_t prepare;
  uv_check_t check;
  int open; /* handles not closed yet */
} handles_t;

typedef struct {
  handles_t *h;      /* NULL: none (closed with the last connection) */
  uv_loop_t *loop;   /* the loop it runs on */
  size_t conns;      /* batched connections not closing */
  wsl_conn_t **list; /* the listed ones; NULL for one that was unlisted */
  size_t len, cap;
  int flushing; /* inside on_prepare: the list stays until it is done */
} flusher_t;

static _Thread_local flusher_t fl;

static void on_handle_closed(uv_handle_t *h) {
  handles_t *hs = h->data;
  if (--hs->open == 0)
    free(hs);
}

static void free_list(void) {
  free(fl.list);
  fl.list = NULL;
  fl.len = fl.cap = 0;
}

static void on_check(uv_check_t *chk) {
  wsl__turn_run();
  /* The run may have closed the last connection, and the handle with it. */
  if (fl.h && &fl.h->check == chk)
    uv_check_stop(chk);
}

static void on_prepare(uv_prepare_t *p) {
  /* Messages that came after the check (turn.c) first: what their
   * handlers write leaves with the rest. */
  wsl__turn_run();
  /* A flush calls no owner code, so it lists no connection; it may close
   * one (a write error), the last one even, which unlists it. */
  fl.flushing = 1;
  for (size_t i = 0; i < fl.len; i++) {
    wsl_conn_t *c = fl.list[i];
    if (c == NULL)
      continue;
    c->flush_slot = 0;
    wsl__conn_flush(c);
  }
  fl.flushing = 0;
  if (fl.h == NULL || &fl.h->prepare != p) {
    free_list(); /* the handle was closed with the last connection */
    return;
  }
  fl.len = 0;
  uv_prepare_stop(p);
}

int wsl__flush_attach(wsl_conn_t *c) {
  uv_loop_t *loop = c->tcp.loop;
  if (fl.h == NULL) {
    fl.h = malloc(sizeof *fl.h);
    if (fl.h == NULL)
      return 0;
    uv_prepare_init(loop, &fl.h->prepare);
    uv_check_init(loop, &fl.h->check);
    fl.h->prepare.data = fl.h->check.data = fl.h;
    fl.h->open = 2;
    fl.loop = loop;
  } else if (fl.loop != loop) {
    return 0; /* a second loop on this thread: its writes go at once */
  }
  fl.conns++;
  return 1;
}

void wsl__flush_detach(wsl_conn_t *c) {
  wsl__flush_unlist(c);
  if (--fl.conns > 0)
    return;
  /* Closed in the same loop turn as the last connection's handles. */
  uv_close((uv_handle_t *)&fl.h->prepare, on_handle_closed);
  uv_close((uv_handle_t *)&fl.h->check, on_handle_closed);
  fl.h = NULL;
  fl.loop = NULL;
  if (!fl.flushing)
    free_list();
}

int wsl__flush_list(wsl_conn_t *c) {
  if (c->flush_slot)
    return 0;
  if (fl.len == fl.cap) {
    size_t cap = fl.cap ? fl.cap * 2 : 64;
    wsl_conn_t **list = realloc(fl.list, cap * sizeof *list);
    if (list == NULL)
      return -1;
    fl.list = list;
    fl.cap = cap;
  }
  if (fl.len == 0)
    uv_prepare_start(&fl.h->prepare, on_prepare);
  fl.list[fl.len++] = c;
  c->flush_slot = (unsigned)fl.len;
  return 0;
}

void wsl__flush_wake(wsl_conn_t *c) {
  (void)c; /* batched: its thread's flusher exists */
  if (fl.h) {
    uv_check_start(&fl.h->check, on_check);
    uv_prepare_start(&fl.h->prepare, on_prepare);
  }
}

void wsl__flush_unlist(wsl_conn_t *c) {
  if (c->flush_slot == 0)
    return;
  fl.list[c->flush_slot - 1] = NULL;
  c->flush_slot = 0;
}
