/* One-shot timers by the thousand on one libuv timer per loop: a
 * connection's timeouts (handshake, keep-alive, idle, close wait) cost 16
 * bytes in it instead of a 152-byte uv_timer_t (issue 6). They fire in the
 * order libuv's own would among themselves: by due time, then by when they
 * were started. */
#ifndef WSL_TIMERS_H
#define WSL_TIMERS_H

#include <stdint.h>

#include <uv.h>

/* Embedded in its owner, zeroed (stopped) before use. */
typedef struct wsl_timer {
  uint64_t due;  /* uv_now when it fires */
  uint32_t seq;  /* start order, for timers due at the same time */
  uint32_t slot; /* 1 + its place in the loop's heap; 0 when stopped */
} wsl_timer_t;

typedef void (*wsl_timer_cb)(wsl_timer_t *t);

/* Every owner of timers on a loop attaches before its first start and
 * detaches once they are stopped for good; the loop's libuv timer is closed
 * when the last one detaches, so that the loop can be closed. All timers of
 * a loop share one callback (the first attach sets it). Returns 0, or
 * UV_ENOMEM. Thread: the loop's. */
int wsl_timers_attach(uv_loop_t *loop, wsl_timer_cb cb);
void wsl_timers_detach(uv_loop_t *loop);

/* (Re)starts t to fire once after ms (0: at the loop's next timers phase);
 * an attached loop is required. Returns 0, or UV_ENOMEM (t is then
 * stopped). */
int wsl_timer_start(uv_loop_t *loop, wsl_timer_t *t, uint64_t ms);
void wsl_timer_stop(uv_loop_t *loop, wsl_timer_t *t);

#endif
