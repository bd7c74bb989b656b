/* A minimal Lua 5.4 interpreter for sanitizer builds (make asan): the specs
 * run under it, so the sanitizer's runtime is linked in from the start. The
 * stock lua5.4 would need that runtime in LD_PRELOAD, which every process a
 * spec starts (Python, Node, Chromium) would inherit.
 * Usage: lua_sanitized SCRIPT [ARGS...], with `arg` and `...` as lua.c sets
 * them. */
#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : luaL_tolstring(L, 1, NULL), 1);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L;
  int status;
  if (argc < 2) {
    fputs("usage: lua_sanitized SCRIPT [ARGS...]\n", stderr);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL)
    return 1;
  luaL_openlibs(L);
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1); /* the script is arg[0] */
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  status = luaL_loadfile(L, argv[1]);
  if (status == LUA_OK) {
    for (int i = 2; i < argc; i++)
      lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 2, 0, 1);
  }
  if (status != LUA_OK)
    fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
