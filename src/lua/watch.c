/* wslua.Watch: core.watch(path, fn) calls fn(name, event) when the file or
 * folder at path changes (uv_fs_event; inotify on Linux), until closed. For
 * a folder, name is the entry that changed. What hot reload builds on. */
#include "lua/runtime.h"

#include <stdlib.h>

#define WATCH_MT "wslua.Watch"

/* The libuv handle lives outside the userdata: it must outlive the userdata
 * until libuv's close callback, which frees it. */
typedef struct {
  uv_fs_event_t handle;
  int self_ref; /* the userdata, anchored until closed */
  int fn_ref;
} watch_t_;

typedef struct {
  watch_t_ *w;
} lwatch_t;

static void on_closed(uv_handle_t *h) {
  free(h);
}

/* Calls fn(name, "rename" | "change" | "rename change"), or fn(nil, nil,
 * message) if libuv reports an error. Never raises into libuv. */
static void on_event(uv_fs_event_t *h, const char *name, int events,
                     int status) {
  watch_t_ *w = h->data;
  lua_State *L = wsl_vm()->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->fn_ref);
  if (status < 0) {
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushstring(L, uv_strerror(status));
    wsl_vm_call(L, 3, "watch callback");
    return;
  }
  if (name)
    lua_pushstring(L, name);
  else
    lua_pushnil(L);
  if ((events & UV_RENAME) && (events & UV_CHANGE))
    lua_pushliteral(L, "rename change");
  else if (events & UV_RENAME)
    lua_pushliteral(L, "rename");
  else
    lua_pushliteral(L, "change");
  wsl_vm_call(L, 2, "watch callback");
}

/* Stops watching, lets go of fn and the anchor, and closes the handle (its
 * memory goes in the close callback). Safe to call twice, and from fn. */
static void watch_release(lua_State *L, lwatch_t *lw) {
  watch_t_ *w = lw->w;
  if (w == NULL)
    return;
  lw->w = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, w->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, w->self_ref);
  uv_close((uv_handle_t *)&w->handle, on_closed);
}

/* core.watch(path, fn) -> watch | nil, message, code. The handle is
 * unreferenced: a watch alone does not keep the loop running. */
static int core_watch(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lwatch_t *lw = lua_newuserdatauv(L, sizeof *lw, 0);
  lw->w = NULL;
  luaL_setmetatable(L, WATCH_MT);
  watch_t_ *w = malloc(sizeof *w);
  if (w == NULL)
    return luaL_error(L, "out of memory");
  int r = uv_fs_event_init(wsl_vm()->loop, &w->handle);
  if (r < 0) {
    free(w);
    return wsl_lua_fail(L, uv_strerror(r), r);
  }
  w->handle.data = w;
  r = uv_fs_event_start(&w->handle, on_event, path, 0);
  if (r < 0) {
    uv_close((uv_handle_t *)&w->handle, on_closed);
    return wsl_lua_fail(L, uv_strerror(r), r);
  }
  uv_unref((uv_handle_t *)&w->handle);
  lua_pushvalue(L, 2);
  w->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  w->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lw->w = w;
  return 1;
}

static int watch_close(lua_State *L) {
  watch_release(L, luaL_checkudata(L, 1, WATCH_MT));
  return 0;
}

static int watch_is_open(lua_State *L) {
  lwatch_t *lw = luaL_checkudata(L, 1, WATCH_MT);
  lua_pushboolean(L, lw->w != NULL);
  return 1;
}

static int watch_tostring(lua_State *L) {
  lwatch_t *lw = luaL_checkudata(L, 1, WATCH_MT);
  if (lw->w == NULL) {
    lua_pushliteral(L, "wslua.Watch (closed)");
    return 1;
  }
  char path[4096];
  size_t size = sizeof path;
  if (uv_fs_event_getpath(&lw->w->handle, path, &size) != 0)
    size = 0;
  lua_pushliteral(L, "wslua.Watch (");
  lua_pushlstring(L, path, size);
  lua_pushliteral(L, ")");
  lua_concat(L, 3);
  return 1;
}

static const luaL_Reg watch_methods[] = {
    {"close", watch_close},
    {"is_open", watch_is_open},
    {NULL, NULL},
};

void wsl_lua_open_watch(lua_State *L) {
  if (luaL_newmetatable(L, WATCH_MT)) {
    luaL_newlib(L, watch_methods);
    lua_setfield(L, -2, "__index");
    /* An open watch is anchored, so __gc runs only at lua_close. */
    lua_pushcfunction(L, watch_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, watch_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, watch_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, core_watch);
  lua_setfield(L, -2, "watch");
}
