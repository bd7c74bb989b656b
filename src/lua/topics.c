/* Topics for the scripts: the core functions subscribe, unsubscribe,
 * topics, publish and subscribers over this thread's registry
 * (net/topics.h). Groups are the Lua half's endpoints; 0 means all. */
#include "lua/topics.h"

#include "lua/conn.h"
#include "proto/frame.h"

/* One registry per VM, that is per thread and loop; made on first use and
 * kept for the life of the thread. */
static _Thread_local wsl_topics_t *registry;

wsl_topics_t *wsl_lua_topics(lua_State *L) {
  if (registry == NULL && (registry = wsl_topics_new()) == NULL)
    luaL_error(L, "out of memory");
  return registry;
}

static unsigned check_group(lua_State *L, int idx) {
  lua_Integer g = luaL_optinteger(L, idx, 0);
  luaL_argcheck(L, g >= 0 && g <= 0x7fffffff, idx, "group out of range");
  return (unsigned)g;
}

void wsl_lua_topics_release(void) {
  wsl_topics_free(registry);
  registry = NULL;
}

/* core.subscribe(conn, topic [, group]) -> true (new) | false (already) |
 * nil, "closed" */
static int core_subscribe(lua_State *L) {
  size_t len;
  const char *topic = luaL_checklstring(L, 2, &len);
  unsigned group = check_group(L, 3);
  wsl_conn_t *c = wsl_lua_conn_check(L, 1);
  int r = c ? wsl_topics_subscribe(wsl_lua_topics(L), c, topic, len, group)
            : UV_ECANCELED;
  if (r == UV_ENOMEM)
    return luaL_error(L, "out of memory");
  if (r < 0)
    return wsl_lua_fail(L, "closed", 0);
  lua_pushboolean(L, r);
  return 1;
}

/* core.unsubscribe(conn, topic) -> whether it was subscribed */
static int core_unsubscribe(lua_State *L) {
  size_t len;
  const char *topic = luaL_checklstring(L, 2, &len);
  wsl_conn_t *c = wsl_lua_conn_check(L, 1);
  lua_pushboolean(
      L, c && wsl_topics_unsubscribe(wsl_lua_topics(L), c, topic, len));
  return 1;
}

/* core.topics(conn) -> the list of its topics, in subscription order */
static int core_topics(lua_State *L) {
  wsl_conn_t *c = wsl_lua_conn_check(L, 1);
  lua_newtable(L);
  void *it = NULL;
  size_t len;
  const char *name;
  for (lua_Integer i = 1; c && (name = wsl_topics_next(c, &it, &len)); i++) {
    lua_pushlstring(L, name, len);
    lua_rawseti(L, -2, i);
  }
  return 1;
}

/* core.publish(topic, data [, binary [, group]]) -> how many subscribers
 * the message was queued for */
static int core_publish(lua_State *L) {
  size_t tlen, len;
  const char *topic = luaL_checklstring(L, 1, &tlen);
  const char *data = luaL_checklstring(L, 2, &len);
  int binary = lua_toboolean(L, 3);
  unsigned group = check_group(L, 4);
  size_t sent;
  if (wsl_topics_publish(wsl_lua_topics(L), topic, tlen, group,
                         binary ? WSL_OP_BINARY : WSL_OP_TEXT, data, len,
                         &sent) != 0)
    return luaL_error(L, "out of memory");
  lua_pushinteger(L, (lua_Integer)sent);
  return 1;
}

/* core.subscribers(topic [, group]) -> how many */
static int core_subscribers(lua_State *L) {
  size_t len;
  const char *topic = luaL_checklstring(L, 1, &len);
  lua_pushinteger(L, (lua_Integer)wsl_topics_count(wsl_lua_topics(L), topic,
                                                   len, check_group(L, 2)));
  return 1;
}

static const luaL_Reg topic_functions[] = {
    {"subscribe", core_subscribe},
    {"unsubscribe", core_unsubscribe},
    {"topics", core_topics},
    {"publish", core_publish},
    {"subscribers", core_subscribers},
    {NULL, NULL},
};

void wsl_lua_open_topics(lua_State *L) {
  luaL_setfuncs(L, topic_functions, 0);
}
