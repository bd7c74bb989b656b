/* Topics for the scripts (see topics.c): this thread's registry, which the
 * Redis binding follows to subscribe where there is interest. */
#ifndef WSL_LUA_TOPICS_H
#define WSL_LUA_TOPICS_H

#include "lua/runtime.h"
#include "net/topics.h"

/* This VM's registry, made on first use (raises when out of memory). */
wsl_topics_t *wsl_lua_topics(lua_State *L);
/* Frees this thread's registry (a worker thread that ends). */
void wsl_lua_topics_release(void);

#endif
