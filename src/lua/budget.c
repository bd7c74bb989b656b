/* Handler budgets. The scheduler resumes handler coroutines with
 * core.resume, which holds the budget while the coroutine runs. The budget is
 * CPU time of the VM's thread, so a loaded machine that starves the process
 * does not stop handlers that keep to it. No hook runs while handlers keep to
 * their budgets: a watchdog thread (one per VM, started with the first budget)
 * reads the VM thread's CPU clock every WSL_BUDGET_TICK_MS and, once the
 * running handler has used its budget, sets a count hook on its coroutine,
 * as lua.c does from its SIGINT handler (lua_sethook may be called
 * asynchronously; the VM sees the hook at its next jump or call). The hook
 * raises an error, and again at every instruction so that a pcall in a loop
 * cannot hold it: the coroutine dies, and its client is closed with 1011
 * (HTTP: 500). When one resume runs several handler calls (the whole
 * messages of a read), each call starts its budget again: the VM counts
 * calls (no lock: it is on every message's path) and the watchdog restarts
 * the clock when the count has moved since its last tick.
 *
 * Not covered: a loop inside a coroutine that the handler resumes itself
 * (coroutine.wrap), until control comes back to the handler; and time spent
 * inside one C call (a huge string.rep), which is only noticed after. */
#include "lua/budget.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <lauxlib.h>
#include <uv.h>

#define WATCHDOG_MT "wslua.Watchdog"

typedef struct {
  uv_mutex_t lock; /* guards the fields below, shared with the watchdog */
  uv_cond_t tick;  /* only for its timed wait and for stopping it */
  uv_thread_t thread;
  clockid_t vm_clock; /* the CPU clock of the VM's thread */
  int stopping;
  lua_State *running;  /* the coroutine being resumed, or NULL */
  double budget;       /* seconds of CPU time; 0: none in force */
  uint64_t started;    /* the VM clock when it began (ns); 0: not yet read
                          (the watchdog reads it at its next tick); FIRED:
                          the hook is set */
  unsigned long seen;  /* calls when started was read */
  unsigned long fired; /* calls when the hook was set */
  /* Handler calls begun (wsl_budget_restart): written by the VM's thread
   * only, without the lock. */
  _Atomic unsigned long calls;
} watchdog_t;

#define FIRED UINT64_MAX

/* One VM per thread. */
static _Thread_local watchdog_t *dog;
static _Thread_local int depth;

int wsl_budget_depth(void) {
  return depth;
}

static void on_count(lua_State *L, lua_Debug *ar) {
  double budget = dog ? dog->budget : 0;
  (void)ar;
  if (dog) {
    /* The call that ran past its budget may have ended just before the
     * hook was set, and the next call of the same resume begun: that one
     * gets its own budget. */
    uv_mutex_lock(&dog->lock);
    int stale =
        atomic_load_explicit(&dog->calls, memory_order_relaxed) != dog->fired;
    if (stale && dog->started == FIRED)
      dog->started = 0;
    uv_mutex_unlock(&dog->lock);
    if (stale) {
      lua_sethook(L, NULL, 0, 0);
      return;
    }
  }
  /* Level 0 is the function the hook interrupted: say where it was. */
  luaL_where(L, 0);
  lua_pushfstring(L, "handler ran past its time budget of %f s", budget);
  lua_concat(L, 2);
  lua_error(L);
}

static uint64_t cpu_ns(clockid_t clock) {
  struct timespec ts;
  if (clock_gettime(clock, &ts) != 0)
    return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void watch(void *arg) {
  watchdog_t *d = arg;
  uv_mutex_lock(&d->lock);
  while (!d->stopping) {
    uv_cond_timedwait(&d->tick, &d->lock, WSL_BUDGET_TICK_MS * 1000000ull);
    if (d->budget <= 0 || d->running == NULL)
      continue;
    if (d->started == FIRED)
      continue;
    uint64_t now = cpu_ns(d->vm_clock);
    unsigned long calls = atomic_load_explicit(&d->calls, memory_order_relaxed);
    if (d->started == 0 || calls != d->seen) {
      d->started = now ? now : 1;
      d->seen = calls;
    } else if (now >= d->started &&
               now - d->started >= (uint64_t)(d->budget * 1e9)) {
      lua_sethook(d->running, on_count, LUA_MASKCOUNT, 1);
      d->started = FIRED;
      d->fired = calls;
    }
  }
  uv_mutex_unlock(&d->lock);
}

/* Collected at lua_close (the userdata is anchored): stop the watchdog and
 * wait for it before the state goes away. */
static int watchdog_gc(lua_State *L) {
  watchdog_t **ud = luaL_checkudata(L, 1, WATCHDOG_MT);
  watchdog_t *d = *ud;
  if (d == NULL)
    return 0;
  uv_mutex_lock(&d->lock);
  d->stopping = 1;
  uv_cond_signal(&d->tick);
  uv_mutex_unlock(&d->lock);
  uv_thread_join(&d->thread);
  uv_cond_destroy(&d->tick);
  uv_mutex_destroy(&d->lock);
  if (dog == d)
    dog = NULL;
  free(d);
  *ud = NULL;
  return 0;
}

/* The VM's watchdog, started the first time a budget is asked for. */
static watchdog_t *watchdog(lua_State *L) {
  watchdog_t **ud;
  watchdog_t *d;
  if (dog != NULL)
    return dog;
  ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  d = calloc(1, sizeof *d);
  if (d == NULL)
    luaL_error(L, "out of memory");
  if (uv_mutex_init(&d->lock) != 0) {
    free(d);
    luaL_error(L, "cannot start the handler watchdog");
  }
  if (uv_cond_init(&d->tick) != 0) {
    uv_mutex_destroy(&d->lock);
    free(d);
    luaL_error(L, "cannot start the handler watchdog");
  }
  if (pthread_getcpuclockid(pthread_self(), &d->vm_clock) != 0 ||
      uv_thread_create(&d->thread, watch, d) != 0) {
    uv_cond_destroy(&d->tick);
    uv_mutex_destroy(&d->lock);
    free(d);
    luaL_error(L, "cannot start the handler watchdog");
  }
  *ud = d;
  luaL_setmetatable(L, WATCHDOG_MT);
  luaL_ref(L, LUA_REGISTRYINDEX); /* anchored for the VM's life */
  dog = d;
  return d;
}

/* What a resume replaces in the watchdog, put back when it returns (a
 * handler may resume another coroutine, under a budget of its own). */
typedef struct {
  int tracked; /* 0: no budget was in force or asked for */
  lua_State *running;
  double budget;
  uint64_t started;
} saved_t;

/* With seconds (> 0) the coroutine must wait again before it has used that
 * much CPU time; without, it runs under whatever budget is in force (that
 * of the handler resuming it, if any). */
static void enter(lua_State *L, lua_State *co, lua_Number seconds,
                  saved_t *saved) {
  saved->tracked = 0;
  depth++;
  if (dog == NULL && seconds <= 0)
    return;
  watchdog_t *d = watchdog(L);
  /* A coroutine stopped before, whose error a pcall caught, starts again
   * without the hook. */
  if (lua_gethook(co) == on_count)
    lua_sethook(co, NULL, 0, 0);
  uv_mutex_lock(&d->lock);
  saved->tracked = 1;
  saved->running = d->running;
  saved->budget = d->budget;
  saved->started = d->started;
  d->running = co;
  if (seconds > 0) {
    d->budget = seconds;
    d->started = 0;
  }
  uv_mutex_unlock(&d->lock);
}

static void leave(const saved_t *saved) {
  if (depth > 0)
    depth--;
  if (!saved->tracked || dog == NULL)
    return;
  uv_mutex_lock(&dog->lock);
  dog->running = saved->running;
  dog->budget = saved->budget;
  dog->started = saved->started;
  uv_mutex_unlock(&dog->lock);
}

void wsl_budget_restart(void) {
  watchdog_t *d = dog;
  if (d != NULL) /* only this thread writes it: no read-modify-write */
    atomic_store_explicit(
        &d->calls, atomic_load_explicit(&d->calls, memory_order_relaxed) + 1,
        memory_order_relaxed);
}

/* The budget a coroutine spawned now gets (0: none): that of the coroutine
 * running, or of the server event being handled (core.set_budget). */
static _Thread_local lua_Number current;

int wsl_budget_resume(lua_State *L, lua_State *co, lua_Number seconds, int narg,
                      int *nres) {
  saved_t saved;
  lua_Number outer = current;
  enter(L, co, seconds, &saved);
  current = seconds;
  lua_xmove(L, co, narg);
  int status = lua_resume(co, L, narg, nres);
  current = outer;
  leave(&saved);
  return status;
}

/* core.budget() -> the seconds a coroutine spawned now would get, or nil. */
static int budget_current(lua_State *L) {
  if (current > 0)
    lua_pushnumber(L, current);
  else
    lua_pushnil(L);
  return 1;
}

/* core.set_budget(seconds | nil) -> the previous (seconds or nil): for a
 * server event handled outside any coroutine (scheduler.within). */
static int budget_set(lua_State *L) {
  lua_Number seconds = luaL_optnumber(L, 1, 0);
  budget_current(L);
  current = seconds > 0 ? seconds : 0;
  return 1;
}

/* Whether co can be resumed: suspended in a yield, or not started yet (a
 * function on its stack and no call running). */
static int resumable(lua_State *L, lua_State *co) {
  lua_Debug ar;
  if (co == L)
    return 0;
  if (lua_status(co) == LUA_YIELD)
    return 1;
  return lua_status(co) == LUA_OK && !lua_getstack(co, 0, &ar) &&
         lua_gettop(co) > 0;
}

/* core.resume(co, seconds | nil, ...) -> as coroutine.resume: true and what
 * the coroutine yielded or returned, or false and the error. The handler
 * budget is held while it runs (one C call per resume: it is on every
 * message's path). */
static int budget_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argcheck(L, co != NULL, 1, "coroutine expected");
  lua_Number seconds = luaL_optnumber(L, 2, 0);
  int narg = lua_gettop(L) - 2;
  if (!resumable(L, co)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "cannot resume non-suspended coroutine");
    return 2;
  }
  if (!lua_checkstack(co, narg)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "too many arguments to resume");
    return 2;
  }
  int nres;
  int status = wsl_budget_resume(L, co, seconds, narg, &nres);
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1); /* the error */
    return 2;
  }
  if (!lua_checkstack(L, nres + 1)) {
    lua_pop(co, nres);
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "too many results to resume");
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_xmove(co, L, nres);
  return nres + 1;
}

static const luaL_Reg budget_funcs[] = {
    {"resume", budget_resume},
    {"budget", budget_current},
    {"set_budget", budget_set},
    {NULL, NULL},
};

void wsl_lua_open_budget(lua_State *L) {
  if (luaL_newmetatable(L, WATCHDOG_MT)) {
    lua_pushcfunction(L, watchdog_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, budget_funcs, 0);
}
