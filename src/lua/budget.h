/* Handler budgets: how long a handler may run before it yields, enforced
 * by a count hook on its coroutine; and whether a handler is running now,
 * which the command-line host's memory cap looks at. */
#ifndef WSL_LUA_BUDGET_H
#define WSL_LUA_BUDGET_H

#include <lua.h>

/* Lua instructions between two looks at the clock. */
#define WSL_BUDGET_STEP 1000

/* How many handler coroutines are being resumed, one inside another, on
 * this thread's VM: 0 when the loop or the host's own code runs. */
int wsl_budget_depth(void);

/* Registers budget_enter and budget_leave in the module table on top of the
 * stack. */
void wsl_lua_open_budget(lua_State *L);

#endif
