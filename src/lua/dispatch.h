/* The per-message path, driven from C (dispatch.c): pooled handler
 * coroutines (core.call) and whole messages for an endpoint's clients. */
#ifndef WSL_LUA_DISPATCH_H
#define WSL_LUA_DISPATCH_H

#include <lua.h>

#include "net/conn.h"

/* Pushes deliver(owner, piece, binary, first, last), the function that
 * hands a connection's message data to its owner. */
void wsl_dispatch_push(lua_State *L);

/* Runs the owners' handlers for the n whole messages, of one connection
 * or of many (each connection's in order, and none of a connection that is
 * no longer open): an endpoint's on_message or on_data, one coroutine
 * resumed for all of them unless a handler waits. Returns how many it
 * took: fewer than n when msgs[returned]'s owner is not an endpoint's
 * client; that one goes to deliver. */
size_t wsl_dispatch_messages(lua_State *L, const wsl_message_t *msgs, size_t n);

/* The connection of the client at idx when it is the owner of the run of
 * whole messages going on (its handler is sending an answer), else NULL:
 * client:send then needs no lookup of its handle. */
wsl_conn_t *wsl_dispatch_client_conn(lua_State *L, int idx);

/* Registers call, dispatch_init and IDLE in the module table on top of the
 * stack. */
void wsl_lua_open_dispatch(lua_State *L);

#endif
