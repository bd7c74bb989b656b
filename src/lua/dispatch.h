/* The per-message path, driven from C (dispatch.c): pooled handler
 * coroutines (core.call) and whole messages for an endpoint's clients. */
#ifndef WSL_LUA_DISPATCH_H
#define WSL_LUA_DISPATCH_H

#include <lua.h>

/* Pushes deliver(owner, piece, binary, first, last), the function that
 * hands a connection's message data to its owner. */
void wsl_dispatch_push(lua_State *L);

/* Registers call, dispatch_init and IDLE in the module table on top of the
 * stack. */
void wsl_lua_open_dispatch(lua_State *L);

#endif
