/* wslua.Redis: this worker's Redis pub/sub client (net/redis.h) for the Lua
 * half's bus across machines: core.redis_check(url), core.redis(url,
 * anchor, fn), and methods to publish, follow the topic registry's
 * interest, and report state. */
#include "lua/redis.h"

#include <stdlib.h>
#include <string.h>

#include "lua/runtime.h"
#include "lua/topics.h"
#include "net/redis.h"

#define REDIS_MT "wslua.Redis"

typedef struct {
  wsl_redis_t *r; /* NULL once closed */
  lua_State *L;
  int fn_ref;
  int following;   /* this VM's topic registry reports interest to us */
  char prefix[64]; /* channel of a topic: prefix .. topic */
  size_t prefix_len;
} lredis_t;

static lredis_t *check_redis(lua_State *L) {
  lredis_t *lr = luaL_checkudata(L, 1, REDIS_MT);
  if (lr->r == NULL)
    luaL_error(L, "the Redis client is closed");
  return lr;
}

/* fn(channel, data), on this worker's loop. */
static void on_message(void *ud, const char *channel, size_t clen,
                       const char *data, size_t len) {
  lredis_t *lr = ud;
  lua_State *L = lr->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, lr->fn_ref);
  lua_pushlstring(L, channel, clen);
  lua_pushlstring(L, data, len);
  wsl_vm_call(L, 2, "redis message");
}

/* The registry gained its first subscriber of a topic, or lost its last:
 * so does Redis. */
static void on_interest(void *ud, const char *topic, size_t len,
                        int interested) {
  lredis_t *lr = ud;
  char small[256];
  size_t n = lr->prefix_len + len;
  char *channel = n <= sizeof small ? small : malloc(n);
  if (channel == NULL)
    return;
  memcpy(channel, lr->prefix, lr->prefix_len);
  memcpy(channel + lr->prefix_len, topic, len);
  if (interested)
    wsl_redis_subscribe(lr->r, channel, n);
  else
    wsl_redis_unsubscribe(lr->r, channel, n);
  if (channel != small)
    free(channel);
}

/* core.redis_check(url [, timeout]) -> true | nil, error: connects (within
 * timeout seconds, default 2), authenticates and PINGs, blocking. */
static int core_redis_check(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  lua_Number timeout = luaL_optnumber(L, 2, 2);
  wsl_redis_addr_t a;
  char err[512];
  if (wsl_redis_parse_url(url, &a, err, sizeof err) != 0 ||
      wsl_redis_check(&a, (int)(timeout * 1000), err, sizeof err) != 0)
    return wsl_lua_fail(L, err, 0);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.redis(url, anchor, fn) -> a client connecting (or nil, error for a
 * bad URL); fn(channel, data) for each message. anchor: a channel always
 * subscribed. */
static int core_redis(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  const char *anchor = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  wsl_redis_addr_t a;
  char err[512];
  if (wsl_redis_parse_url(url, &a, err, sizeof err) != 0)
    return wsl_lua_fail(L, err, 0);
  lredis_t *lr = lua_newuserdatauv(L, sizeof *lr, 0);
  memset(lr, 0, sizeof *lr);
  lr->L = L;
  lr->fn_ref = LUA_NOREF;
  luaL_setmetatable(L, REDIS_MT);
  lr->r = wsl_redis_new(wsl_vm()->loop, &a, anchor, on_message, lr);
  if (lr->r == NULL)
    return luaL_error(L, "out of memory");
  lua_pushvalue(L, 3);
  lr->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* redis:follow_topics(prefix): from now on, a topic of this VM's registry
 * that gains its first subscriber is subscribed in Redis as prefix..topic,
 * and unsubscribed when its last leaves. One client per VM may follow. */
static int redis_follow_topics(lua_State *L) {
  lredis_t *lr = check_redis(L);
  size_t len;
  const char *prefix = luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, len < sizeof lr->prefix, 2, "prefix too long");
  memcpy(lr->prefix, prefix, len);
  lr->prefix_len = len;
  wsl_topics_on_interest(wsl_lua_topics(L), on_interest, lr);
  lr->following = 1;
  return 0;
}

/* redis:publish(channel, data) -> true | nil, "down" | "backlog" (the
 * message was dropped and counted) */
static int redis_publish(lua_State *L) {
  lredis_t *lr = check_redis(L);
  size_t clen, len;
  const char *channel = luaL_checklstring(L, 2, &clen);
  const char *data = luaL_checklstring(L, 3, &len);
  int r = wsl_redis_publish(lr->r, channel, clen, data, len);
  if (r == UV_ENOTCONN)
    return wsl_lua_fail(L, "down", r);
  if (r != 0)
    return wsl_lua_fail(L, "backlog", r);
  lua_pushboolean(L, 1);
  return 1;
}

static int redis_subscribe(lua_State *L) {
  lredis_t *lr = check_redis(L);
  size_t len;
  const char *channel = luaL_checklstring(L, 2, &len);
  if (wsl_redis_subscribe(lr->r, channel, len) != 0)
    return luaL_error(L, "out of memory");
  return 0;
}

static int redis_unsubscribe(lua_State *L) {
  lredis_t *lr = check_redis(L);
  size_t len;
  const char *channel = luaL_checklstring(L, 2, &len);
  wsl_redis_unsubscribe(lr->r, channel, len);
  return 0;
}

/* redis:state() -> "connecting" | "up" | "down" | "closed" */
static int redis_state(lua_State *L) {
  static const char *const names[] = {"connecting", "up", "down"};
  lredis_t *lr = luaL_checkudata(L, 1, REDIS_MT);
  lua_pushstring(L, lr->r ? names[wsl_redis_state(lr->r)] : "closed");
  return 1;
}

/* redis:dropped() -> messages published that Redis never took */
static int redis_dropped(lua_State *L) {
  lredis_t *lr = check_redis(L);
  lua_pushinteger(L, (lua_Integer)wsl_redis_dropped(lr->r));
  return 1;
}

/* redis:channels() -> how many channels are wanted (the anchor included) */
static int redis_channels(lua_State *L) {
  lredis_t *lr = check_redis(L);
  lua_pushinteger(L, (lua_Integer)wsl_redis_channels(lr->r));
  return 1;
}

/* redis:close() (also __gc): disconnects; no callback after it. */
static int redis_close(lua_State *L) {
  lredis_t *lr = luaL_checkudata(L, 1, REDIS_MT);
  if (lr->r == NULL)
    return 0;
  if (lr->following)
    wsl_topics_on_interest(wsl_lua_topics(L), NULL, NULL);
  lr->following = 0;
  wsl_redis_close(lr->r);
  lr->r = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, lr->fn_ref);
  lr->fn_ref = LUA_NOREF;
  return 0;
}

static const luaL_Reg redis_methods[] = {
    {"follow_topics", redis_follow_topics},
    {"publish", redis_publish},
    {"subscribe", redis_subscribe},
    {"unsubscribe", redis_unsubscribe},
    {"state", redis_state},
    {"dropped", redis_dropped},
    {"channels", redis_channels},
    {"close", redis_close},
    {NULL, NULL},
};

static const luaL_Reg redis_functions[] = {
    {"redis_check", core_redis_check},
    {"redis", core_redis},
    {NULL, NULL},
};

void wsl_lua_open_redis(lua_State *L) {
  if (luaL_newmetatable(L, REDIS_MT)) {
    luaL_newlib(L, redis_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, redis_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, redis_functions, 0);
}
