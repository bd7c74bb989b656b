/* The small whole messages of a loop turn, from every connection of the
 * thread, handed to their owners together once the turn's reads are done
 * (the flusher's check handle, flush.c; their answers leave with the
 * turn's other writes): an owner that runs a
 * script per message then sets up once for all of them instead of once per
 * read. With one message in flight on each of 100 connections, every read
 * brings one message, and that setup (a coroutine resumed, a handler
 * found) cost as much as the message itself.
 *
 * Their bytes are copied here: a read's buffer is the thread's, reused by
 * the next read. Only a read's few small messages come here (conn_ws.c):
 * a read that brings many has them run together as it is.
 * Order per connection is kept by running what waits before anything else
 * of any connection reaches an owner or a peer (conn_ws.c sync_messages),
 * and before the end of a peer's input (conn.c on_read); a connection
 * closed otherwise has its messages dropped (conn.c close_now). */
#include "net/conn_internal.h"

#include <string.h>

#define TURN_MAX 512
#define TURN_BYTES (32 * 1024)

typedef struct {
  wsl_message_t m[TURN_MAX];
  size_t n;
  size_t used; /* bytes of bytes[] taken */
  int running; /* inside wsl__turn_run: nothing joins until it is done */
  char bytes[TURN_BYTES];
} turn_t;

static _Thread_local turn_t turn;

int wsl__turn_add(const wsl_message_t *m) {
  wsl_conn_t *c = m->conn;
  if (turn.running || !c->batched || c->handler->on_messages == NULL ||
      m->len > WSL_TURN_MESSAGE_MAX)
    return 0;
  if (turn.n == TURN_MAX || turn.used + m->len > TURN_BYTES)
    wsl__turn_run(); /* makes room: what waits goes first */
  if (turn.n == 0)
    wsl__flush_wake(c);
  char *copy = turn.bytes + turn.used;
  if (m->len)
    memcpy(copy, m->data, m->len);
  turn.used += m->len;
  turn.m[turn.n] = *m;
  turn.m[turn.n++].data = copy;
  return 1;
}

void wsl__turn_forget(wsl_conn_t *c) {
  /* During a run its messages are skipped (it is no longer open), and it
   * is freed only after the run (by a close callback). */
  if (turn.running)
    return;
  size_t kept = 0;
  for (size_t i = 0; i < turn.n; i++)
    if (turn.m[i].conn != c)
      turn.m[kept++] = turn.m[i];
  turn.n = kept;
}

void wsl__turn_run(void) {
  if (turn.n == 0 || turn.running)
    return;
  /* A connection in the turn cannot be freed before the end of the run:
   * it is freed by a close callback, after its close took its messages
   * out (close_now), or after the run. */
  turn.running = 1;
  for (size_t i = 0; i < turn.n;) {
    const wsl_conn_handler_t *h = turn.m[i].conn->handler;
    size_t j = i + 1;
    while (j < turn.n && turn.m[j].conn->handler == h)
      j++;
    h->on_messages(turn.m + i, j - i);
    i = j;
  }
  turn.n = 0;
  turn.used = 0;
  turn.running = 0;
}

void wsl_conn_turn_clear(void) {
  if (!turn.running)
    turn.n = turn.used = 0;
}
