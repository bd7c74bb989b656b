/* wslua.Conn: the scripts' handle on a connection (see conn.c). */
#ifndef WSL_LUA_CONN_H
#define WSL_LUA_CONN_H

#include "lua/runtime.h"
#include "net/conn.h"

/* Events of every connection the Lua layer owns, accepted or dialled. */
extern const wsl_conn_handler_t wsl_lua_conn_handler;

/* Makes the handle of a connection, with the handler table at idx (fields
 * request, open, data, close), anchored until the connection is gone. */
void wsl_lua_conn_attach(lua_State *L, wsl_conn_t *c, int handlers_idx);

/* The connection of the wslua.Conn at idx (raises if it is not one), or NULL
 * once it is gone. */
wsl_conn_t *wsl_lua_conn_check(lua_State *L, int idx);

/* The handler budget (seconds, 0: none) its owner's calls get (conn:_own). */
lua_Number wsl_lua_conn_budget(const wsl_conn_t *c);
/* Pushes what conn:_own set for c (its owner) and returns 1; 0 (nothing
 * pushed) when it has none. */
int wsl_lua_conn_push_owner(lua_State *L, wsl_conn_t *c);

#endif
