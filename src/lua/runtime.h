/* What every binding file shares: the VM's event loop, protected calls into
 * Lua from libuv callbacks, and anchoring objects in the registry. */
#ifndef WSL_LUA_RUNTIME_H
#define WSL_LUA_RUNTIME_H

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

/* One VM per thread, one loop per VM. */
typedef struct {
  lua_State *L;
  uv_loop_t *loop;
} wsl_vm_t;

/* The VM of this thread; set by wsl_vm_init (the module does it on load). */
wsl_vm_t *wsl_vm(void);
void wsl_vm_init(lua_State *L, uv_loop_t *loop);

/* Calls the function under nargs arguments on the VM's main stack, in
 * protected mode with a traceback; an error is logged, never raised.
 * Returns 0 when the call succeeded. Pops the function and arguments. */
int wsl_vm_call(lua_State *L, int nargs, const char *what);

/* Returns nil, message, code: how I/O failures reach scripts. */
int wsl_lua_fail(lua_State *L, const char *message, int code);

/* Reads an optional non-negative number field of the table at idx. */
lua_Number wsl_lua_optfield(lua_State *L, int idx, const char *name,
                            lua_Number def);

/* Each binding file registers its functions into the module table on top of
 * the stack. */
void wsl_lua_open_runtime(lua_State *L);
void wsl_lua_open_timer(lua_State *L);
void wsl_lua_open_server(lua_State *L);
void wsl_lua_open_conn(lua_State *L);
void wsl_lua_open_fs(lua_State *L);
void wsl_lua_open_tcp(lua_State *L);
void wsl_lua_open_topics(lua_State *L);
void wsl_lua_open_watch(lua_State *L);

int luaopen_wslua_core(lua_State *L);

#endif
