/* The core module, require "wslua.core": what the Lua half of wslua (lua/wslua)
 * builds on. Built into the wslua executable and as a Lua C module. */
#include "lua/runtime.h"

int luaopen_wslua_core(lua_State *L) {
  if (wsl_vm() == NULL)
    wsl_vm_init(L, uv_default_loop());
  lua_newtable(L);
  wsl_lua_open_runtime(L);
  wsl_lua_open_timer(L);
  wsl_lua_open_server(L);
  wsl_lua_open_conn(L);
  wsl_lua_open_fs(L);
  wsl_lua_open_tcp(L);
  lua_pushstring(L, WSLUA_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
