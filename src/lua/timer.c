/* wslua.Timer: core.timer(seconds, repeat_seconds, fn) calls fn from the
 * loop after a delay, once or repeatedly, until stopped. An active timer is
 * anchored in the registry, so a script need not keep it. */
#include "lua/runtime.h"

#include <stdlib.h>

#define TIMER_MT "wslua.Timer"

/* The libuv handle lives outside the userdata: it must outlive the userdata
 * until libuv's close callback. */
typedef struct {
  uv_timer_t handle;
  int self_ref; /* the userdata, anchored while the timer is active */
  int fn_ref;
} timer_t_;

typedef struct {
  timer_t_ *t;
} ltimer_t;

static void on_closed(uv_handle_t *h) {
  free(h->data);
}

static void unanchor(lua_State *L, timer_t_ *t) {
  luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
  t->self_ref = LUA_NOREF;
}

static void on_timer(uv_timer_t *h) {
  timer_t_ *t = h->data;
  lua_State *L = wsl_vm()->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);
  /* A one-shot timer lets go of itself before its call. */
  if (uv_timer_get_repeat(h) == 0)
    unanchor(L, t);
  wsl_vm_call(L, 0, "timer callback");
}

static int core_timer(lua_State *L) {
  lua_Number delay = luaL_checknumber(L, 1);
  lua_Number repeat = luaL_optnumber(L, 2, 0);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  luaL_argcheck(L, delay >= 0, 1, "must not be negative");
  luaL_argcheck(L, repeat >= 0, 2, "must not be negative");
  ltimer_t *lt = lua_newuserdatauv(L, sizeof *lt, 0);
  lt->t = malloc(sizeof *lt->t);
  if (lt->t == NULL)
    return luaL_error(L, "out of memory");
  timer_t_ *t = lt->t;
  lua_pushvalue(L, 3);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_setmetatable(L, TIMER_MT);
  uv_timer_init(wsl_vm()->loop, &t->handle);
  t->handle.data = t;
  uv_timer_start(&t->handle, on_timer, (uint64_t)(delay * 1000),
                 (uint64_t)(repeat * 1000));
  lua_pushvalue(L, -1);
  t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int timer_stop(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  if (lt->t) {
    uv_timer_stop(&lt->t->handle);
    unanchor(L, lt->t);
  }
  return 0;
}

static int timer_active(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  lua_pushboolean(L,
                  lt->t && uv_is_active((uv_handle_t *)&lt->t->handle));
  return 1;
}

/* Collected only once unanchored (stopped or fired): close the handle; its
 * memory goes in the close callback. */
static int timer_gc(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  if (lt->t) {
    luaL_unref(L, LUA_REGISTRYINDEX, lt->t->fn_ref);
    uv_close((uv_handle_t *)&lt->t->handle, on_closed);
    lt->t = NULL;
  }
  return 0;
}

static const luaL_Reg timer_methods[] = {
    {"stop", timer_stop},
    {"active", timer_active},
    {NULL, NULL},
};

void wsl_lua_open_timer(lua_State *L) {
  if (luaL_newmetatable(L, TIMER_MT)) {
    luaL_newlib(L, timer_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, timer_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, core_timer);
  lua_setfield(L, -2, "timer");
}
