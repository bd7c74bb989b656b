/* The VM's loop and protected calls; the loop and log functions of the core
 * module: run, run_once, stop, now, log, set_log_level, signal. */
#include "lua/runtime.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "net/log.h"

static _Thread_local wsl_vm_t *current_vm;
static _Thread_local wsl_vm_t vm_storage;

wsl_vm_t *wsl_vm(void) {
  return current_vm;
}

void wsl_vm_init(lua_State *L, uv_loop_t *loop) {
  /* A peer that vanished must give EPIPE, not kill the process. */
  signal(SIGPIPE, SIG_IGN);
  vm_storage.L = L;
  vm_storage.loop = loop;
  current_vm = &vm_storage;
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL)
    msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int wsl_vm_call(lua_State *L, int nargs, const char *what) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  int r = lua_pcall(L, nargs, 0, base);
  if (r != LUA_OK) {
    wsl_log(WSL_LOG_ERROR, "%s: %s", what, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_remove(L, base);
  return r;
}

int wsl_lua_fail(lua_State *L, const char *message, int code) {
  lua_pushnil(L);
  lua_pushstring(L, message);
  lua_pushinteger(L, code);
  return 3;
}

lua_Number wsl_lua_optfield(lua_State *L, int idx, const char *name,
                            lua_Number def) {
  lua_Number v = def;
  if (lua_getfield(L, idx, name) != LUA_TNIL) {
    int ok;
    v = lua_tonumberx(L, -1, &ok);
    if (!ok || v < 0)
      luaL_error(L, "option '%s' must be a non-negative number", name);
  }
  lua_pop(L, 1);
  return v;
}

/* Set while uv_run runs: libuv's loop must not run inside itself (a
 * callback that ran it again would free handles the outer run is still
 * walking), so wslua.run from inside a handler raises instead. */
static _Thread_local int loop_running;

static int enter_loop(lua_State *L) {
  if (loop_running)
    return luaL_error(L, "the event loop is already running: wslua.run "
                         "cannot be called from a handler or inside "
                         "wslua.run");
  loop_running = 1;
  return 0;
}

static int core_run(lua_State *L) {
  enter_loop(L);
  uv_run(wsl_vm()->loop, UV_RUN_DEFAULT);
  loop_running = 0;
  return 0;
}

/* Runs one turn of the loop, waiting for an event; returns whether anything
 * is still active. */
static int core_run_once(lua_State *L) {
  enter_loop(L);
  int alive = uv_run(wsl_vm()->loop, UV_RUN_ONCE);
  loop_running = 0;
  lua_pushboolean(L, alive);
  return 1;
}

static int core_stop(lua_State *L) {
  (void)L;
  uv_stop(wsl_vm()->loop);
  return 0;
}

/* Seconds, from the loop's clock, brought up to date first: between runs
 * of the loop (a script working before wslua.run) the cached time stands
 * still, and timers armed from it would fire early. */
static int core_now(lua_State *L) {
  uv_update_time(wsl_vm()->loop);
  lua_pushnumber(L, (lua_Number)uv_now(wsl_vm()->loop) / 1000.0);
  return 1;
}

/* Seconds from an arbitrary point, with the clock's full resolution (for
 * durations under a millisecond; core.now is the loop's, in milliseconds). */
static int core_clock(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

#define LOG_FIELDS_MAX 32

/* core.log(level, msg [, key, value, ...]): with fields, a structured line
 * (wsl_log_fields): strings, integers, numbers and booleans keep their
 * type; a nil value leaves its field out. */
static int core_log(lua_State *L) {
  static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
  int level = luaL_checkoption(L, 1, NULL, levels);
  const char *msg = luaL_checkstring(L, 2);
  if (level > (int)wsl_log_get_level())
    return 0; /* not written: no need to look at the fields */
  int top = lua_gettop(L);
  if (top <= 2) {
    wsl_log((wsl_log_level_t)level, "%s", msg);
    return 0;
  }
  luaL_argcheck(L, (top - 2) % 2 == 0, top, "fields come as key, value pairs");
  luaL_argcheck(L, (top - 2) / 2 <= LOG_FIELDS_MAX, top, "too many fields");
  wsl_log_field_t fields[LOG_FIELDS_MAX];
  size_t n = 0;
  for (int i = 3; i < top; i += 2) {
    wsl_log_field_t *f = &fields[n];
    f->key = luaL_checkstring(L, i);
    switch (lua_type(L, i + 1)) {
    case LUA_TNIL:
      continue;
    case LUA_TBOOLEAN:
      f->kind = WSL_LOG_BOOLEAN;
      f->i = lua_toboolean(L, i + 1);
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, i + 1)) {
        f->kind = WSL_LOG_INTEGER;
        f->i = (long long)lua_tointeger(L, i + 1);
      } else {
        f->kind = WSL_LOG_NUMBER;
        f->n = (double)lua_tonumber(L, i + 1);
      }
      break;
    default:
      f->kind = WSL_LOG_STRING;
      f->s = luaL_tolstring(L, i + 1, &f->len);
      lua_replace(L, i + 1); /* keeps the string alive on the stack */
      break;
    }
    n++;
  }
  wsl_log_fields((wsl_log_level_t)level, msg, fields, n);
  return 0;
}

static int core_set_log_level(lua_State *L) {
  int level = wsl_log_parse_level(luaL_checkstring(L, 1));
  if (level < 0)
    return luaL_argerror(L, 1, "expected error, warn, info or debug");
  wsl_log_set_level((wsl_log_level_t)level);
  return 0;
}

/* core.log_enabled(level) -> whether lines of that level are written. */
static int core_log_enabled(lua_State *L) {
  static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
  int level = luaL_checkoption(L, 1, NULL, levels);
  lua_pushboolean(L, level <= (int)wsl_log_get_level());
  return 1;
}

static int core_log_level(lua_State *L) {
  lua_pushstring(L, wsl_log_level_name(wsl_log_get_level()));
  return 1;
}

/* --- signals ------------------------------------------------------------ */

#define SIGNAL_MT "wslua.Signal"

/* The libuv handle lives outside the userdata: lua_close frees the userdata,
 * but the handle's memory must last until libuv's close callback. */
typedef struct {
  uv_signal_t handle;
  int fn_ref;
} signal_t_;

typedef struct {
  signal_t_ *s;
} lsignal_t;

static void on_signal(uv_signal_t *h, int signum) {
  signal_t_ *s = h->data;
  lua_State *L = wsl_vm()->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref);
  lua_pushinteger(L, signum);
  wsl_vm_call(L, 1, "signal handler");
}

static void on_signal_closed(uv_handle_t *h) {
  free(h->data);
}

/* Collected only by lua_close (the userdata is anchored): close the handle;
 * its memory goes in the close callback, which the host's last uv_run runs. */
static int signal_gc(lua_State *L) {
  lsignal_t *ls = luaL_checkudata(L, 1, SIGNAL_MT);
  if (ls->s) {
    uv_close((uv_handle_t *)&ls->s->handle, on_signal_closed);
    ls->s = NULL;
  }
  return 0;
}

/* core.signal(name, fn): fn(signum) on each delivery, for the VM's life. The
 * handle is unreferenced so that it alone does not keep the loop running. */
static int core_signal(lua_State *L) {
  static const char *const names[] = {"SIGINT", "SIGTERM", "SIGHUP", NULL};
  static const int numbers[] = {SIGINT, SIGTERM, SIGHUP};
  int which = luaL_checkoption(L, 1, NULL, names);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lsignal_t *ls = lua_newuserdatauv(L, sizeof *ls, 0);
  ls->s = malloc(sizeof *ls->s);
  if (ls->s == NULL)
    return luaL_error(L, "out of memory");
  signal_t_ *s = ls->s;
  uv_signal_init(wsl_vm()->loop, &s->handle);
  s->handle.data = s;
  luaL_setmetatable(L, SIGNAL_MT);
  lua_pushvalue(L, 2);
  s->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  luaL_ref(L, LUA_REGISTRYINDEX); /* anchored for the VM's life */
  uv_signal_start(&s->handle, on_signal, numbers[which]);
  uv_unref((uv_handle_t *)&s->handle);
  return 1;
}

static const luaL_Reg runtime_funcs[] = {
    {"run", core_run},
    {"run_once", core_run_once},
    {"stop", core_stop},
    {"now", core_now},
    {"clock", core_clock},
    {"log", core_log},
    {"set_log_level", core_set_log_level},
    {"log_level", core_log_level},
    {"log_enabled", core_log_enabled},
    {"signal", core_signal},
    {NULL, NULL},
};

void wsl_lua_open_runtime(lua_State *L) {
  if (luaL_newmetatable(L, SIGNAL_MT)) {
    lua_pushcfunction(L, signal_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, runtime_funcs, 0);
}
