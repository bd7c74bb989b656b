/* File facts the static file handler needs and Lua lacks: core.stat(path)
 * and core.realpath(path). Blocking calls, as io.open is: static files are
 * small and local. */
#include "lua/runtime.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/http.h"

/* core.stat(path) -> {size, mtime, type = "file"|"directory"|"other"} or
 * nil, message, errno */
static int core_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0)
    return wsl_lua_fail(L, strerror(errno), errno);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_mtime);
  lua_setfield(L, -2, "mtime");
  lua_pushstring(L, S_ISREG(st.st_mode)   ? "file"
                    : S_ISDIR(st.st_mode) ? "directory"
                                          : "other");
  lua_setfield(L, -2, "type");
  return 1;
}

/* core.realpath(path) -> the absolute path with every symlink resolved */
static int core_realpath(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char *real = realpath(path, NULL);
  if (real == NULL)
    return wsl_lua_fail(L, strerror(errno), errno);
  lua_pushstring(L, real);
  free(real);
  return 1;
}

/* core.http_date(seconds) -> "Sun, 06 Nov 1994 08:49:37 GMT" */
static int core_http_date(lua_State *L) {
  char out[30];
  wsl_http_date(out, (time_t)luaL_checkinteger(L, 1));
  lua_pushstring(L, out);
  return 1;
}

static const luaL_Reg fs_funcs[] = {
    {"http_date", core_http_date},
    {"stat", core_stat},
    {"realpath", core_realpath},
    {NULL, NULL},
};

void wsl_lua_open_fs(lua_State *L) {
  luaL_setfuncs(L, fs_funcs, 0);
}
