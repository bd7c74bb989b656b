/* The per-message path, driven from C (dispatch.c): pooled handler
 * coroutines (core.call) and whole messages for an endpoint's clients. */
#ifndef WSL_LUA_DISPATCH_H
#define WSL_LUA_DISPATCH_H

#include <lua.h>

#include "net/conn.h"

/* Pushes deliver(owner, piece, binary, first, last), the function that
 * hands a connection's message data to its owner. */
void wsl_dispatch_push(lua_State *L);

/* Runs the owner's handler for each of the n whole messages of c (the
 * owner on top of L's stack, popped) while c stays open: an endpoint's
 * on_data, in one coroutine unless a handler waits. Returns how many it
 * took: fewer than n when the owner is not an endpoint's client, and the
 * rest go to deliver one by one. */
size_t wsl_dispatch_messages(lua_State *L, wsl_conn_t *c,
                             const wsl_message_t *msgs, size_t n);

/* The connection of the client at idx when it is the owner of the run of
 * whole messages going on (its handler is sending an answer), else NULL:
 * client:send then needs no lookup of its handle. */
wsl_conn_t *wsl_dispatch_client_conn(lua_State *L, int idx);

/* Registers call, dispatch_init and IDLE in the module table on top of the
 * stack. */
void wsl_lua_open_dispatch(lua_State *L);

#endif
