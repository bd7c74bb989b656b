/* Redis pub/sub over hiredis's async API and its libuv adapter: a
 * subscriber connection that follows the wanted channels, a publisher
 * connection, and reconnection with backoff.
 *
 * hiredis 0.14 keeps one callback per channel and forgets it at the first
 * "unsubscribe" reply, even when a SUBSCRIBE for the same channel was sent
 * after the UNSUBSCRIBE; and it leaves subscriber mode (then asserts on the
 * next subscribe reply) when the count of subscriptions drops to zero. So
 * each channel has at most one SUBSCRIBE or UNSUBSCRIBE in flight (the
 * next is sent when its reply comes), and the anchor channel is never
 * left. */
#include "net/redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "net/log.h"

#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

/* A channel's state on the subscriber connection. */
enum { NONE, SUBSCRIBING, SUBSCRIBED, UNSUBSCRIBING };

typedef struct channel {
  struct channel *next;
  uint32_t hash;
  int want;
  int status;
  size_t len;
  char name[];
} channel_t;

struct wsl_redis {
  uv_loop_t *loop;
  wsl_redis_addr_t addr;
  char where[300]; /* host:port, for the log */
  wsl_redis_message_cb cb;
  void *ud;
  redisAsyncContext *sub; /* NULL when gone */
  redisAsyncContext *pub;
  int sub_ready; /* the anchor's subscription confirmed */
  int pub_ready; /* the publisher connected */
  wsl_redis_state_t state;
  int was_up; /* has been up once: a new connection is a reconnection */
  int closing;
  uv_timer_t timer; /* connect timeout, or the delay before a retry */
  int timer_closed;
  uint64_t backoff_ms;
  uint64_t down_since_ms;
  uint64_t dropped;
  uint64_t dropped_at_loss;
  size_t pending_bytes; /* published, not answered yet */
  uint64_t pending_msgs;
  channel_t *anchor;
  channel_t **buckets;
  size_t nbuckets, count;
};

static void connect_both(wsl_redis_t *r);
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv);

/* --- channels ------------------------------------------------------------ */

static uint32_t hash_name(const char *s, size_t len) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

static channel_t *find(const wsl_redis_t *r, const char *name, size_t len) {
  uint32_t h = hash_name(name, len);
  for (channel_t *c = r->buckets[h % r->nbuckets]; c; c = c->next)
    if (c->hash == h && c->len == len && memcmp(c->name, name, len) == 0)
      return c;
  return NULL;
}

static int grow(wsl_redis_t *r) {
  size_t n = r->nbuckets * 2;
  channel_t **b = calloc(n, sizeof *b);
  if (b == NULL)
    return UV_ENOMEM;
  for (size_t i = 0; i < r->nbuckets; i++) {
    while (r->buckets[i]) {
      channel_t *c = r->buckets[i];
      r->buckets[i] = c->next;
      c->next = b[c->hash % n];
      b[c->hash % n] = c;
    }
  }
  free(r->buckets);
  r->buckets = b;
  r->nbuckets = n;
  return 0;
}

static channel_t *create(wsl_redis_t *r, const char *name, size_t len) {
  if (r->count >= r->nbuckets && grow(r) != 0)
    return NULL;
  channel_t *c = calloc(1, sizeof *c + len + 1);
  if (c == NULL)
    return NULL;
  c->hash = hash_name(name, len);
  c->len = len;
  memcpy(c->name, name, len);
  c->next = r->buckets[c->hash % r->nbuckets];
  r->buckets[c->hash % r->nbuckets] = c;
  r->count++;
  return c;
}

static void destroy(wsl_redis_t *r, channel_t *c) {
  channel_t **p = &r->buckets[c->hash % r->nbuckets];
  while (*p != c)
    p = &(*p)->next;
  *p = c->next;
  r->count--;
  free(c);
}

/* --- the subscriber connection -------------------------------------------- */

static void send_subscription(wsl_redis_t *r, channel_t *c, int subscribe) {
  const char *argv[2] = {subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", c->name};
  size_t argvlen[2] = {subscribe ? 9 : 11, c->len};
  if (redisAsyncCommandArgv(r->sub, on_sub_reply, NULL, 2, argv, argvlen) ==
      REDIS_OK)
    c->status = subscribe ? SUBSCRIBING : UNSUBSCRIBING;
}

/* Brings the channel's subscription towards what is wanted, one command in
 * flight at a time; forgets a channel no longer wanted nor subscribed. */
static void settle(wsl_redis_t *r, channel_t *c) {
  int live = r->sub && r->sub_ready;
  if (c->want && c->status == NONE && live)
    send_subscription(r, c, 1);
  else if (!c->want && c->status == SUBSCRIBED && live)
    send_subscription(r, c, 0);
  else if (!c->want && c->status == NONE)
    destroy(r, c);
}

static void lost(wsl_redis_t *r, const char *why);

static void became_up(wsl_redis_t *r) {
  uv_timer_stop(&r->timer);
  uint64_t now = uv_now(r->loop);
  if (r->was_up) {
    wsl_log(WSL_LOG_INFO,
            "redis: reconnected to %s after %.1f s; %llu message(s) "
            "published meanwhile were dropped",
            r->where, (double)(now - r->down_since_ms) / 1000.0,
            (unsigned long long)(r->dropped - r->dropped_at_loss));
  } else {
    wsl_log(WSL_LOG_INFO, "redis: connected to %s", r->where);
  }
  r->was_up = 1;
  r->state = WSL_REDIS_UP;
  r->backoff_ms = BACKOFF_MIN_MS;
}

/* The other channels, once the anchor keeps the connection subscribed. */
static void subscribe_wanted(wsl_redis_t *r) {
  for (size_t i = 0; i < r->nbuckets; i++) {
    channel_t *c = r->buckets[i];
    while (c) {
      channel_t *next = c->next;
      if (c != r->anchor)
        settle(r, c);
      c = next;
    }
  }
}

/* Every reply on the subscriber connection: messages, and the confirmations
 * of SUBSCRIBE and UNSUBSCRIBE. */
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv) {
  (void)priv;
  wsl_redis_t *r = ac->data;
  redisReply *rep = reply;
  if (r == NULL || rep == NULL || r->closing)
    return;
  if (rep->type == REDIS_REPLY_ERROR) {
    lost(r, rep->str);
    return;
  }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
      rep->element[0]->type != REDIS_REPLY_STRING ||
      rep->element[1]->type != REDIS_REPLY_STRING)
    return;
  const char *kind = rep->element[0]->str;
  const char *name = rep->element[1]->str;
  size_t len = rep->element[1]->len;
  if (strcmp(kind, "message") == 0) {
    if (rep->element[2]->type == REDIS_REPLY_STRING)
      r->cb(r->ud, name, len, rep->element[2]->str, rep->element[2]->len);
    return;
  }
  channel_t *c = find(r, name, len);
  if (c == NULL)
    return;
  if (strcmp(kind, "subscribe") == 0) {
    c->status = SUBSCRIBED;
    if (c == r->anchor && !r->sub_ready) {
      r->sub_ready = 1;
      subscribe_wanted(r);
      if (r->pub_ready)
        became_up(r);
      return;
    }
  } else if (strcmp(kind, "unsubscribe") == 0) {
    c->status = NONE;
  } else {
    return;
  }
  settle(r, c);
}

/* --- connections ---------------------------------------------------------- */

/* Lets a context go without hearing from it again (its callbacks find no
 * owner). Safe from inside any callback but that context's connect
 * callback, where hiredis goes on using it. */
static void drop_context(redisAsyncContext *ac) {
  if (ac == NULL)
    return;
  ac->data = NULL;
  redisAsyncFree(ac);
}

static void on_retry(uv_timer_t *t) {
  connect_both(t->data);
}

static void arm_retry(wsl_redis_t *r) {
  uv_timer_start(&r->timer, on_retry, r->backoff_ms, 0);
  r->backoff_ms *= 2;
  if (r->backoff_ms > BACKOFF_MAX_MS)
    r->backoff_ms = BACKOFF_MAX_MS;
}

/* Both connections go; a retry is scheduled. why: for the log. */
static void lost(wsl_redis_t *r, const char *why) {
  if (r->closing)
    return;
  redisAsyncContext *sub = r->sub, *pub = r->pub;
  r->sub = r->pub = NULL;
  r->sub_ready = r->pub_ready = 0;
  for (size_t i = 0; i < r->nbuckets; i++)
    for (channel_t *c = r->buckets[i]; c; c = c->next)
      c->status = NONE;
  if (r->state == WSL_REDIS_UP) {
    r->down_since_ms = uv_now(r->loop);
    r->dropped_at_loss = r->dropped;
    wsl_log(WSL_LOG_WARN,
            "redis: connection to %s lost (%s); local delivery continues, "
            "reconnecting",
            r->where, why);
  } else if (r->state == WSL_REDIS_CONNECTING && !r->was_up) {
    r->down_since_ms = uv_now(r->loop);
    r->dropped_at_loss = r->dropped;
    wsl_log(WSL_LOG_WARN, "redis: cannot connect to %s (%s); retrying",
            r->where, why);
  } else {
    wsl_log(WSL_LOG_DEBUG, "redis: reconnecting to %s failed (%s)", r->where,
            why);
  }
  r->state = WSL_REDIS_DOWN;
  /* Published but never answered: counted as lost. */
  r->dropped += r->pending_msgs;
  r->pending_msgs = 0;
  r->pending_bytes = 0;
  arm_retry(r);
  drop_context(sub);
  drop_context(pub);
}

static const char *context_error(const redisAsyncContext *ac) {
  return ac->errstr[0] ? ac->errstr : "connection closed";
}

/* hiredis frees a context whose connection failed once this returns. */
static void on_connected(const redisAsyncContext *ac, int status) {
  wsl_redis_t *r = ac->data;
  if (r == NULL)
    return;
  if (status != REDIS_OK) {
    if (ac == r->sub)
      r->sub = NULL;
    else if (ac == r->pub)
      r->pub = NULL;
    ((redisAsyncContext *)ac)->data = NULL;
    lost(r, context_error(ac));
    return;
  }
  if (ac == r->pub) {
    r->pub_ready = 1;
    if (r->sub_ready)
      became_up(r);
  }
}

/* hiredis frees the context once this returns. */
static void on_disconnected(const redisAsyncContext *ac, int status) {
  (void)status;
  wsl_redis_t *r = ac->data;
  if (r == NULL)
    return;
  if (ac == r->sub)
    r->sub = NULL;
  else if (ac == r->pub)
    r->pub = NULL;
  ((redisAsyncContext *)ac)->data = NULL;
  lost(r, context_error(ac));
}

static redisAsyncContext *open_context(wsl_redis_t *r, char *err,
                                       size_t errlen) {
  redisAsyncContext *ac = redisAsyncConnect(r->addr.host, r->addr.port);
  if (ac == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (ac->err) {
    snprintf(err, errlen, "%s", ac->errstr);
    redisAsyncFree(ac);
    return NULL;
  }
  if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
    snprintf(err, errlen, "cannot watch the socket");
    redisAsyncFree(ac);
    return NULL;
  }
  ac->data = r;
  redisAsyncSetConnectCallback(ac, on_connected);
  redisAsyncSetDisconnectCallback(ac, on_disconnected);
  if (r->addr.password[0])
    redisAsyncCommand(ac, NULL, NULL, "AUTH %s", r->addr.password);
  return ac;
}

static void on_connect_timeout(uv_timer_t *t) {
  lost(t->data, "timed out");
}

static void connect_both(wsl_redis_t *r) {
  char err[256];
  if (r->closing)
    return;
  r->sub = open_context(r, err, sizeof err);
  r->pub = r->sub ? open_context(r, err, sizeof err) : NULL;
  if (r->pub == NULL) {
    lost(r, err);
    return;
  }
  /* Queued until connected: the anchor first, then the wanted channels
   * when its reply has come (subscribe_wanted). */
  send_subscription(r, r->anchor, 1);
  uv_timer_start(&r->timer, on_connect_timeout, CONNECT_TIMEOUT_MS, 0);
}

/* --- the owner's calls -----------------------------------------------------
 */

wsl_redis_t *wsl_redis_new(uv_loop_t *loop, const wsl_redis_addr_t *a,
                           const char *anchor, wsl_redis_message_cb cb,
                           void *ud) {
  wsl_redis_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->nbuckets = 16;
  r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
  if (r->buckets == NULL ||
      (r->anchor = create(r, anchor, strlen(anchor))) == NULL) {
    free(r->buckets);
    free(r);
    return NULL;
  }
  r->anchor->want = 1;
  r->loop = loop;
  r->addr = *a;
  snprintf(r->where, sizeof r->where, "%s:%d", a->host, a->port);
  r->cb = cb;
  r->ud = ud;
  r->state = WSL_REDIS_CONNECTING;
  r->backoff_ms = BACKOFF_MIN_MS;
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  connect_both(r);
  return r;
}

static void on_timer_closed(uv_handle_t *h) {
  wsl_redis_t *r = h->data;
  for (size_t i = 0; i < r->nbuckets; i++)
    while (r->buckets[i])
      destroy(r, r->buckets[i]);
  free(r->buckets);
  free(r);
}

void wsl_redis_close(wsl_redis_t *r) {
  if (r == NULL || r->closing)
    return;
  r->closing = 1;
  redisAsyncContext *sub = r->sub, *pub = r->pub;
  r->sub = r->pub = NULL;
  drop_context(sub);
  drop_context(pub);
  uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

int wsl_redis_subscribe(wsl_redis_t *r, const char *channel, size_t len) {
  channel_t *c = find(r, channel, len);
  if (c == NULL && (c = create(r, channel, len)) == NULL)
    return UV_ENOMEM;
  c->want = 1;
  settle(r, c);
  return 0;
}

void wsl_redis_unsubscribe(wsl_redis_t *r, const char *channel, size_t len) {
  channel_t *c = find(r, channel, len);
  if (c == NULL || c == r->anchor)
    return;
  c->want = 0;
  settle(r, c);
}

static void on_published(redisAsyncContext *ac, void *reply, void *priv) {
  wsl_redis_t *r = ac->data;
  size_t len = (size_t)(uintptr_t)priv;
  if (r == NULL)
    return;
  if (reply == NULL)
    r->dropped++;
  r->pending_bytes = r->pending_bytes > len ? r->pending_bytes - len : 0;
  if (r->pending_msgs)
    r->pending_msgs--;
}

int wsl_redis_publish(wsl_redis_t *r, const char *channel, size_t clen,
                      const char *data, size_t len) {
  if (r->pub == NULL || r->closing) {
    r->dropped++;
    return UV_ENOTCONN;
  }
  if (r->pending_bytes + len > WSL_REDIS_MAX_PENDING) {
    r->dropped++;
    return UV_ENOBUFS;
  }
  const char *argv[3] = {"PUBLISH", channel, data};
  size_t argvlen[3] = {7, clen, len};
  if (redisAsyncCommandArgv(r->pub, on_published, (void *)(uintptr_t)len, 3,
                            argv, argvlen) != REDIS_OK) {
    r->dropped++;
    return UV_ENOTCONN;
  }
  r->pending_bytes += len;
  r->pending_msgs++;
  return 0;
}

wsl_redis_state_t wsl_redis_state(const wsl_redis_t *r) {
  return r->state;
}

uint64_t wsl_redis_dropped(const wsl_redis_t *r) {
  return r->dropped;
}

size_t wsl_redis_channels(const wsl_redis_t *r) {
  size_t n = 0;
  for (size_t i = 0; i < r->nbuckets; i++)
    for (channel_t *c = r->buckets[i]; c; c = c->next)
      n += c->want;
  return n;
}

/* --- addresses and the check at start --------------------------------------
 */

int wsl_redis_parse_url(const char *url, wsl_redis_addr_t *a, char *err,
                        size_t errlen) {
  memset(a, 0, sizeof *a);
  a->port = 6379;
  const char *p = url;
  if (strncmp(p, "redis://", 8) != 0) {
    snprintf(err, errlen, "%s: a Redis URL must start with redis://", url);
    return -1;
  }
  p += 8;
  const char *at = strchr(p, '@');
  if (at) {
    if (*p != ':' || (size_t)(at - p - 1) >= sizeof a->password) {
      snprintf(
          err, errlen,
          "%s: only a password may stand before @ (redis://:PASSWORD@HOST)",
          url);
      return -1;
    }
    memcpy(a->password, p + 1, (size_t)(at - p - 1));
    p = at + 1;
  }
  const char *host = p, *host_end;
  if (*p == '[') {
    host = p + 1;
    host_end = strchr(host, ']');
    if (host_end == NULL) {
      snprintf(err, errlen, "%s: unclosed [ in the host", url);
      return -1;
    }
    p = host_end + 1;
  } else {
    host_end = p + strcspn(p, ":/");
    p = host_end;
  }
  size_t hlen = (size_t)(host_end - host);
  if (hlen == 0 || hlen >= sizeof a->host) {
    snprintf(err, errlen, "%s: no host", url);
    return -1;
  }
  memcpy(a->host, host, hlen);
  if (*p == ':') {
    char *end;
    long port = strtol(p + 1, &end, 10);
    if (end == p + 1 || port < 1 || port > 65535) {
      snprintf(err, errlen, "%s: bad port", url);
      return -1;
    }
    a->port = (int)port;
    p = end;
  }
  if (*p == '/')
    p += 1 + strspn(p + 1, "0123456789");
  if (*p != '\0') {
    snprintf(err, errlen, "%s: unexpected '%s'", url, p);
    return -1;
  }
  return 0;
}

int wsl_redis_check(const wsl_redis_addr_t *a, int timeout_ms, char *err,
                    size_t errlen) {
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
  if (c == NULL || c->err) {
    snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", a->host,
             a->port, c ? c->errstr : "out of memory");
    redisFree(c);
    return -1;
  }
  redisSetTimeout(c, tv);
  redisReply *rep = NULL;
  if (a->password[0])
    rep = redisCommand(c, "AUTH %s", a->password);
  if (!a->password[0] || (rep && rep->type != REDIS_REPLY_ERROR)) {
    freeReplyObject(rep);
    rep = redisCommand(c, "PING");
  }
  int ok = rep && rep->type != REDIS_REPLY_ERROR;
  if (!ok)
    snprintf(err, errlen, "Redis at %s:%d: %s", a->host, a->port,
             rep ? rep->str : c->errstr);
  freeReplyObject(rep);
  redisFree(c);
  return ok ? 0 : -1;
}
