/* Unit tests for src/net/timers.c: order (due time, then start order),
 * stops, restarts from a callback, many timers, and a loop that closes
 * once the last owner detaches. Every callback is counted. */
#include "net/timers.h"

#include <stdlib.h>

#include "test.h"

enum { MANY = 2000 };

typedef struct {
  wsl_timer_t timer; /* first: the callback gets the owner back */
  int id;
  int fired;
  uint64_t due;
  uint32_t seq;
} owner_t;

static int order[MANY];
static int nfired;
static owner_t *restart_me;
static uv_loop_t *loop;

static void on_timer(wsl_timer_t *t) {
  owner_t *o = (owner_t *)t;
  o->fired++;
  if (nfired < MANY)
    order[nfired] = o->id;
  nfired++;
  CHECK(t->slot == 0);
  CHECK(uv_now(loop) >= o->due);
  if (o == restart_me) {
    restart_me = NULL;
    wsl_timer_start(loop, t, 0);
  }
}

static void test_order_and_stop(void) {
  owner_t o[4] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}};
  nfired = 0;
  for (int i = 0; i < 4; i++)
    CHECK_EQ_INT(wsl_timers_attach(loop, on_timer), 0);
  wsl_timer_start(loop, &o[0].timer, 30);
  wsl_timer_start(loop, &o[1].timer, 10);
  wsl_timer_start(loop, &o[2].timer, 10);
  wsl_timer_start(loop, &o[3].timer, 5);
  for (int i = 0; i < 4; i++)
    o[i].due = o[i].timer.due;
  wsl_timer_stop(loop, &o[3].timer);
  wsl_timer_stop(loop, &o[3].timer); /* stopping twice is harmless */
  /* 1 fires first, restarts itself at 0: it comes again before 0. */
  restart_me = &o[1];
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(nfired, 4);
  CHECK_EQ_INT(order[0], 1);
  CHECK_EQ_INT(order[1], 2);
  CHECK_EQ_INT(order[2], 1);
  CHECK_EQ_INT(order[3], 0);
  CHECK_EQ_INT(o[3].fired, 0);
  for (int i = 0; i < 4; i++)
    wsl_timers_detach(loop);
  /* The shared libuv timer closes with the last owner: the loop can go. */
  uv_run(loop, UV_RUN_DEFAULT);
}

static void test_many(void) {
  static owner_t o[MANY];
  nfired = 0;
  srand(6);
  for (int i = 0; i < MANY; i++) {
    o[i] = (owner_t){.id = i};
    CHECK_EQ_INT(wsl_timers_attach(loop, on_timer), 0);
    wsl_timer_start(loop, &o[i].timer, (uint64_t)(rand() % 40));
  }
  /* Restart some, stop some: the heap must stay in order. */
  int stopped = 0;
  for (int i = 0; i < MANY; i += 7)
    wsl_timer_start(loop, &o[i].timer, (uint64_t)(rand() % 40));
  for (int i = 3; i < MANY; i += 11) {
    wsl_timer_stop(loop, &o[i].timer);
    stopped++;
  }
  for (int i = 0; i < MANY; i++) {
    o[i].due = o[i].timer.due;
    o[i].seq = o[i].timer.seq;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(nfired, MANY - stopped);
  int in_order = 1;
  for (int i = 1; i < nfired && i < MANY; i++) {
    owner_t *a = &o[order[i - 1]], *b = &o[order[i]];
    if (a->due > b->due || (a->due == b->due && a->seq > b->seq))
      in_order = 0;
  }
  CHECK(in_order);
  for (int i = 0; i < MANY; i++)
    CHECK(o[i].fired == ((i % 11 == 3) ? 0 : 1));
  for (int i = 0; i < MANY; i++)
    wsl_timers_detach(loop);
  uv_run(loop, UV_RUN_DEFAULT);
}

int main(void) {
  uv_loop_t l;
  CHECK_EQ_INT(uv_loop_init(&l), 0);
  loop = &l;
  test_order_and_stop();
  test_many();
  CHECK_EQ_INT(uv_loop_close(&l), 0);
  return TEST_REPORT();
}
