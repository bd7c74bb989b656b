/* Handler budgets. The scheduler calls budget_enter before it resumes a
 * handler coroutine and budget_leave after; with a budget, enter arms a
 * count hook on the coroutine that compares the clock with a deadline every
 * WSL_BUDGET_STEP instructions. A handler past its deadline gets an error,
 * raised again at every instruction so that a pcall in a loop cannot hold
 * it: the coroutine dies, and its client is closed with 1011 (HTTP: 500).
 * Coroutines the handler creates inherit the hook (lua_newthread copies
 * it), so they are held to the same deadline. What runs in C (a long
 * string.rep, a pattern) is not interrupted; the clock is read when Lua
 * runs again. */
#include "lua/budget.h"

#include <stdint.h>

#include <lauxlib.h>
#include <uv.h>


/* The deadline of the innermost handler being resumed (uv_hrtime ns; 0:
 * none), its budget, and the nesting depth. One VM per thread. */
static _Thread_local uint64_t deadline;
static _Thread_local double budget;
static _Thread_local int depth;

int wsl_budget_depth(void) {
  return depth;
}

static void on_count(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if (deadline == 0 || uv_hrtime() < deadline)
    return;
  /* From now on every instruction raises, until budget_enter re-arms. */
  lua_sethook(L, on_count, LUA_MASKCOUNT, 1);
  /* Level 0 is the function the hook interrupted: say where it was. */
  luaL_where(L, 0);
  lua_pushfstring(L, "handler ran past its time budget of %f s", budget);
  lua_concat(L, 2);
  lua_error(L);
}

/* core.budget_enter(co, seconds | nil) -> previous deadline, previous
 * budget. seconds nil or 0: the coroutine runs under whatever deadline is
 * in force (that of the handler resuming it, if any). */
static int budget_enter(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  lua_Number seconds = luaL_optnumber(L, 2, 0);
  luaL_argcheck(L, co != NULL, 1, "coroutine expected");
  lua_pushinteger(L, (lua_Integer)deadline);
  lua_pushnumber(L, budget);
  depth++;
  if (seconds > 0) {
    deadline = uv_hrtime() + (uint64_t)(seconds * 1e9);
    budget = seconds;
    lua_sethook(co, on_count, LUA_MASKCOUNT, WSL_BUDGET_STEP);
  }
  return 2;
}

/* core.budget_leave(previous deadline, previous budget): after the resume
 * returned, whatever it returned. */
static int budget_leave(lua_State *L) {
  deadline = (uint64_t)luaL_checkinteger(L, 1);
  budget = luaL_checknumber(L, 2);
  if (depth > 0)
    depth--;
  return 0;
}

static const luaL_Reg budget_funcs[] = {
    {"budget_enter", budget_enter},
    {"budget_leave", budget_leave},
    {NULL, NULL},
};

void wsl_lua_open_budget(lua_State *L) {
  luaL_setfuncs(L, budget_funcs, 0);
}
