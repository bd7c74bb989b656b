/* The core module, require "wslua.core": what the Lua half of wslua (lua/wslua)
 * builds on. Built into the wslua executable and as a Lua C module. */
#include "lua/runtime.h"
#include "lua/redis.h"
#include "lua/worker.h"
#include "lua/budget.h"
#include "lua/dispatch.h"

#ifdef WSLUA_MODULE
#include <dlfcn.h>

/* libuv keeps its loop in static memory and calls back into this module;
 * unloading them at lua_close would pull that memory away under pending
 * handles. Pin the module (and so libuv) for the life of the process. */
static void pin_module(void) {
  Dl_info info;
  if (dladdr((void *)pin_module, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
}
#endif

int luaopen_wslua_core(lua_State *L) {
#ifdef WSLUA_MODULE
  pin_module();
#endif
  if (wsl_vm() == NULL)
    wsl_vm_init(L, uv_default_loop());
  lua_newtable(L);
  wsl_lua_open_runtime(L);
  wsl_lua_open_timer(L);
  wsl_lua_open_server(L);
  wsl_lua_open_conn(L);
  wsl_lua_open_fs(L);
  wsl_lua_open_tcp(L);
  wsl_lua_open_topics(L);
  wsl_lua_open_watch(L);
  wsl_lua_open_worker(L);
  wsl_lua_open_redis(L);
  wsl_lua_open_budget(L);
  wsl_lua_open_dispatch(L);
  lua_pushstring(L, WSLUA_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
