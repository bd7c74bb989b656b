/* Handler budgets: how long a handler may run before it waits, enforced by
 * a watchdog thread that hooks an overrunning coroutine; and whether a
 * handler is running now, which the command-line host's memory cap looks
 * at. */
#ifndef WSL_LUA_BUDGET_H
#define WSL_LUA_BUDGET_H

#include <lua.h>

/* How often the watchdog looks at the clock: a handler is stopped at most
 * this long after its deadline. */
#define WSL_BUDGET_TICK_MS 10

/* How many handler coroutines are being resumed, one inside another, on
 * this thread's VM: 0 when the loop or the host's own code runs. */
int wsl_budget_depth(void);

/* Resumes co with the narg values on top of L's stack, holding the budget
 * of seconds (0: whatever is in force) while it runs, as lua_resume. co
 * must be resumable. What runs inside gets seconds as its current budget
 * (core.budget). */
int wsl_budget_resume(lua_State *L, lua_State *co, lua_Number seconds, int narg,
                      int *nres);

/* A new handler call begins inside the coroutine being resumed (several
 * messages in one resume): its budget starts again. */
void wsl_budget_restart(void);

/* Registers resume (a coroutine run under a budget), budget and set_budget
 * in the module table on top of the stack. */
void wsl_lua_open_budget(lua_State *L);

#endif
