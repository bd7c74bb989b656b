/* wslua.Redis: a worker's Redis pub/sub client for the scripts (see
 * redis.c). */
#ifndef WSL_LUA_REDIS_H
#define WSL_LUA_REDIS_H

#include <lua.h>

/* Registers redis_check and redis in the module table on top of the stack. */
void wsl_lua_open_redis(lua_State *L);

#endif
