/* Redis pub/sub for one event loop (hiredis and its libuv adapter): the
 * channels this loop wants, kept subscribed across reconnections, and
 * PUBLISH. Two connections: one in subscriber mode, one for PUBLISH.
 *
 * Lost while running: what is published meanwhile is dropped and counted,
 * and the client reconnects with a growing delay (100 ms to 2 s), logging
 * each change of state. Interest, not traffic, decides the subscriptions:
 * the owner subscribes a channel when its loop gains the first local
 * subscriber and unsubscribes when the last leaves. */
#ifndef WSL_REDIS_H
#define WSL_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct wsl_redis wsl_redis_t;

typedef struct {
  char host[256];
  int port;
  char password[256]; /* empty: no AUTH */
} wsl_redis_addr_t;

typedef enum {
  WSL_REDIS_CONNECTING, /* the first connection, not up yet */
  WSL_REDIS_UP,
  WSL_REDIS_DOWN /* lost; reconnecting */
} wsl_redis_state_t;

/* Parses redis://[:password@]host[:port][/db] (port 6379 by default; the
 * database number is accepted and ignored: pub/sub spans databases).
 * Returns 0, or -1 with err filled. */
int wsl_redis_parse_url(const char *url, wsl_redis_addr_t *a, char *err,
                        size_t errlen);

/* Blocking: connects within timeout_ms, authenticates, PINGs. For a clear
 * error at start. Returns 0, or -1 with err filled. */
int wsl_redis_check(const wsl_redis_addr_t *a, int timeout_ms, char *err,
                    size_t errlen);

/* A message on a subscribed channel. The callback may publish, subscribe,
 * unsubscribe, or close the client. */
typedef void (*wsl_redis_message_cb)(void *ud, const char *channel, size_t clen,
                                     const char *data, size_t len);

/* Starts connecting. anchor: a channel subscribed first on every
 * connection and never left (it keeps the subscriber connection in
 * subscriber mode whatever the other channels do). NULL when out of memory. */
wsl_redis_t *wsl_redis_new(uv_loop_t *loop, const wsl_redis_addr_t *a,
                           const char *anchor, wsl_redis_message_cb cb,
                           void *ud);
/* Disconnects; no callback after this. Memory goes once libuv has closed
 * the handles. */
void wsl_redis_close(wsl_redis_t *r);

/* Wants the channel (subscribed now if up, else on connection). Returns 0
 * or UV_ENOMEM. Subscribing twice is the same as once. */
int wsl_redis_subscribe(wsl_redis_t *r, const char *channel, size_t len);
void wsl_redis_unsubscribe(wsl_redis_t *r, const char *channel, size_t len);

/* PUBLISH. Returns 0 when sent (or queued while connecting), UV_ENOTCONN
 * when down and UV_ENOBUFS when more than WSL_REDIS_MAX_PENDING bytes await
 * Redis's answer: then the message is dropped and counted. */
int wsl_redis_publish(wsl_redis_t *r, const char *channel, size_t clen,
                      const char *data, size_t len);
#define WSL_REDIS_MAX_PENDING (16u * 1024 * 1024)

wsl_redis_state_t wsl_redis_state(const wsl_redis_t *r);
/* Messages published but lost: while down, over the pending limit, or
 * sent but never answered because the connection went. */
uint64_t wsl_redis_dropped(const wsl_redis_t *r);
/* Channels wanted (the anchor included). */
size_t wsl_redis_channels(const wsl_redis_t *r);

#endif
