/* Workers: the threads of --workers N and what the scripts see of them,
 * core.worker, core.worker_ready, core.worker_ports, core.instance and
 * core.bus (wslua.Bus: messages to the other workers). */
#include "lua/worker.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/runtime.h"
#include "lua/topics.h"
#include "net/bus.h"
#include "net/log.h"

#define BUS_MT "wslua.Bus"

enum { STARTING, READY, DONE };

typedef struct {
  int id;
  uv_thread_t thread;
  uv_loop_t loop;
  atomic_int state;
  int status;
  int running; /* created and not joined yet (main thread only) */
} worker_t;

/* The run: written by the main thread before the threads start. */
static struct {
  wsl_worker_fn fn;
  void *arg;
  worker_t *workers;
  int n;
  uv_async_t notify; /* a worker is ready or done */
  uv_signal_t signals[3];
  int others_started;
  int stopping;
  int serving; /* every worker has said it is ready */
  int status;
} run;

/* The bus between the workers: NULL with one worker. */
static wsl_bus_t *bus;
/* Worker 1's ports ("8080,8443"), written before the others start. */
static char first_ports[512];

static _Thread_local worker_t *self;
static _Thread_local int worker_id = 1;
static _Thread_local int worker_count = 1;

/* --- the threads ---------------------------------------------------------- */

static void worker_main(void *p) {
  worker_t *w = p;
  self = w;
  worker_id = w->id;
  worker_count = run.n;
  int status = 1;
  if (uv_loop_init(&w->loop) == 0) {
    status = run.fn(&w->loop, run.arg);
    /* Nothing is delivered to this worker any more. */
    wsl_bus_detach(bus, w->id);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    uv_loop_close(&w->loop);
    /* What the thread kept for its connections goes with it. */
    wsl_lua_topics_release();
    wsl_conn_thread_exit();
  } else {
    wsl_bus_detach(bus, w->id);
  }
  w->status = status;
  atomic_store(&w->state, DONE);
  uv_async_send(&run.notify);
}

static void start(worker_t *w) {
  if (uv_thread_create(&w->thread, worker_main, w) == 0) {
    w->running = 1;
  } else {
    wsl_log(WSL_LOG_ERROR, "cannot start worker %d", w->id);
    wsl_bus_detach(bus, w->id);
    atomic_store(&w->state, DONE);
    w->status = 1;
  }
}

/* Sends every running worker a command (a second stop: exit at once). */
static void command_all(const char *command) {
  for (int i = 0; i < run.n; i++)
    if (run.workers[i].running)
      wsl_bus_send(bus, run.workers[i].id, 0, WSL_BUS_COMMAND, command,
                   strlen(command));
}

static void stop_all(int signum) {
  char command[32];
  snprintf(command, sizeof command, "stop %d", signum);
  run.stopping = 1;
  command_all(command);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  if (signum == SIGHUP)
    command_all("reload");
  else
    stop_all(signum);
}

static void on_closed(uv_handle_t *h) {
  (void)h;
}

/* A worker is ready or done: join the done, start the rest once the first
 * is serving, stop everyone when one fails, close up when all are done. */
static void on_notify(uv_async_t *h) {
  (void)h;
  int running = 0;
  for (int i = 0; i < run.n; i++) {
    worker_t *w = &run.workers[i];
    if (w->running && atomic_load(&w->state) == DONE) {
      uv_thread_join(&w->thread);
      w->running = 0;
      if (w->status != 0 && run.status == 0)
        run.status = w->status;
      if (w->status != 0 && !run.stopping && run.others_started) {
        wsl_log(WSL_LOG_ERROR, "worker %d failed: stopping the others", w->id);
        stop_all(SIGTERM);
      }
    }
  }
  worker_t *first = &run.workers[0];
  if (!run.others_started && !run.stopping &&
      atomic_load(&first->state) == READY) {
    run.others_started = 1;
    for (int i = 1; i < run.n; i++)
      start(&run.workers[i]);
  }
  int ready = 0;
  for (int i = 0; i < run.n; i++) {
    running += run.workers[i].running;
    ready += atomic_load(&run.workers[i].state) == READY;
  }
  if (ready == run.n && !run.serving) {
    run.serving = 1;
    wsl_log(WSL_LOG_INFO, "%d workers serving", run.n);
  }
  if (running == 0 && (run.others_started || !first->running)) {
    for (int i = 0; i < 3; i++)
      uv_close((uv_handle_t *)&run.signals[i], on_closed);
    uv_close((uv_handle_t *)&run.notify, on_closed);
  }
}

int wsl_workers_run(int n, wsl_worker_fn fn, void *arg) {
  static const int signums[3] = {SIGINT, SIGTERM, SIGHUP};
  uv_loop_t *loop = uv_default_loop();
  memset(&run, 0, sizeof run);
  run.fn = fn;
  run.arg = arg;
  run.n = n;
  run.workers = calloc((size_t)n, sizeof *run.workers);
  bus = wsl_bus_new(n);
  if (run.workers == NULL || bus == NULL) {
    fputs("wslua: out of memory\n", stderr);
    free(run.workers);
    wsl_bus_free(bus);
    return 1;
  }
  for (int i = 0; i < n; i++) {
    run.workers[i].id = i + 1;
    atomic_init(&run.workers[i].state, STARTING);
  }
  uv_async_init(loop, &run.notify, on_notify);
  for (int i = 0; i < 3; i++) {
    uv_signal_init(loop, &run.signals[i]);
    uv_signal_start(&run.signals[i], on_signal, signums[i]);
  }
  start(&run.workers[0]);
  if (!run.workers[0].running)
    uv_async_send(&run.notify);
  uv_run(loop, UV_RUN_DEFAULT);
  wsl_bus_free(bus);
  bus = NULL;
  free(run.workers);
  return run.status;
}

/* --- core.worker and friends ---------------------------------------------- */

int wsl_worker_id(void) {
  return worker_id;
}

int wsl_worker_count(void) {
  return worker_count;
}

/* core.worker() -> this worker's number (from 1), how many there are */
static int core_worker(lua_State *L) {
  lua_pushinteger(L, worker_id);
  lua_pushinteger(L, worker_count);
  return 2;
}

/* core.worker_ready(ports): this worker serves, on these ports ("8080,...");
 * the first worker's ready starts the others. */
static int core_worker_ready(lua_State *L) {
  const char *ports = luaL_optstring(L, 1, "");
  if (self == NULL)
    return 0;
  if (self->id == 1)
    snprintf(first_ports, sizeof first_ports, "%s", ports);
  int starting = STARTING;
  if (atomic_compare_exchange_strong(&self->state, &starting, READY))
    uv_async_send(&run.notify);
  return 0;
}

/* core.worker_ports() -> the first worker's ports ("8080,8443"), for the
 * others to listen on the same (its port 0 became a real one); nil in the
 * first worker and without workers. */
static int core_worker_ports(lua_State *L) {
  if (self == NULL || self->id == 1)
    return 0;
  lua_pushstring(L, first_ports);
  return 1;
}

static uv_once_t instance_once = UV_ONCE_INIT;
static char instance[17];

static void make_instance(void) {
  unsigned char b[8] = {0};
  if (uv_random(NULL, NULL, b, sizeof b, 0, NULL) != 0) {
    uint64_t t = uv_hrtime() ^ (uint64_t)uv_os_getpid() << 32;
    memcpy(b, &t, sizeof b);
  }
  for (int i = 0; i < 8; i++)
    snprintf(instance + 2 * i, 3, "%02x", b[i]);
}

/* core.instance() -> a random id of this process (16 hex digits), the same
 * in every worker: messages from Redis carry it, so that an instance
 * ignores its own. */
static int core_instance(lua_State *L) {
  uv_once(&instance_once, make_instance);
  lua_pushstring(L, instance);
  return 1;
}

/* --- wslua.Bus --------------------------------------------------------------
 */

typedef struct {
  int attached;
  int fn_ref;
  lua_State *L;
} lbus_t;

/* Runs on this worker's loop: fn(kind, from, data). */
static void on_bus_message(void *ud, int kind, int from, const char *data,
                           size_t len) {
  lbus_t *b = ud;
  lua_State *L = b->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, b->fn_ref);
  lua_pushinteger(L, kind);
  lua_pushinteger(L, from);
  lua_pushlstring(L, data, len);
  wsl_vm_call(L, 3, "bus message");
}

static lbus_t *check_bus(lua_State *L) {
  lbus_t *b = luaL_checkudata(L, 1, BUS_MT);
  if (!b->attached)
    luaL_error(L, "the bus is closed");
  return b;
}

/* core.bus(fn) -> the bus between this worker and the others, fn(kind,
 * from, data) called for each message (kind 0: a command from the main
 * thread, such as "stop 15" or "reload"); nil without workers. Once per
 * worker. */
static int core_bus(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (bus == NULL || self == NULL)
    return 0;
  lbus_t *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->attached = 0;
  b->L = L;
  luaL_setmetatable(L, BUS_MT);
  if (wsl_bus_attach(bus, self->id, wsl_vm()->loop, on_bus_message, b) != 0)
    return luaL_error(L, "the bus is open already in this worker");
  b->attached = 1;
  lua_pushvalue(L, 1);
  b->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* bus:send(to, kind, data) -> how many workers it was queued for; to 0:
 * every other worker. kind: 1-127 (0 is the main thread's). */
static int bus_send(lua_State *L) {
  check_bus(L);
  lua_Integer to = luaL_checkinteger(L, 2);
  lua_Integer kind = luaL_checkinteger(L, 3);
  size_t len;
  const char *data = luaL_checklstring(L, 4, &len);
  luaL_argcheck(L, to >= 0 && to <= worker_count, 2, "no such worker");
  luaL_argcheck(L, kind > 0 && kind < 128, 3, "kind must be 1-127");
  int n = wsl_bus_send(bus, (int)to, worker_id, (int)kind, data, len);
  if (n < 0)
    return luaL_error(L, "out of memory");
  lua_pushinteger(L, n);
  return 1;
}

/* bus:dropped() -> messages for this worker dropped because its queue was
 * full (a worker too busy to keep up). */
static int bus_dropped(lua_State *L) {
  check_bus(L);
  lua_pushinteger(L, (lua_Integer)wsl_bus_dropped(bus, worker_id));
  return 1;
}

/* bus:close() (also __gc): no message reaches this worker after it. */
static int bus_close(lua_State *L) {
  lbus_t *b = luaL_checkudata(L, 1, BUS_MT);
  if (b->attached) {
    b->attached = 0;
    wsl_bus_detach(bus, worker_id);
    luaL_unref(L, LUA_REGISTRYINDEX, b->fn_ref);
  }
  return 0;
}

static const luaL_Reg bus_methods[] = {
    {"send", bus_send},
    {"dropped", bus_dropped},
    {"close", bus_close},
    {NULL, NULL},
};

static const luaL_Reg worker_functions[] = {
    {"worker", core_worker},
    {"worker_ready", core_worker_ready},
    {"worker_ports", core_worker_ports},
    {"instance", core_instance},
    {"bus", core_bus},
    {NULL, NULL},
};

void wsl_lua_open_worker(lua_State *L) {
  if (luaL_newmetatable(L, BUS_MT)) {
    luaL_newlib(L, bus_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, bus_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, worker_functions, 0);
}
