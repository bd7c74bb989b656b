/* The command-line host: wslua [options] app.lua [options]. Sets up the Lua
 * VM (the app's folder and wslua's Lua half on package.path, the core
 * preloaded) and hands over to lua/wslua/app.lua. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua/budget.h"
#include "lua/runtime.h"
#include "lua/worker.h"
#include "proto/handshake.h"
#include "net/log.h"
#include "net/server.h"

static const char usage[] =
    "usage: wslua [options] app.lua [options]\n"
    "\n"
    "Serves the wslua.host{...} that app.lua returns.\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT  listen there instead of the app's first address\n"
    "  --log-level LEVEL   error, warn, info (default) or debug\n"
    "  --watch             reload when the app or a Lua file it loaded from\n"
    "                      its folder changes (SIGHUP reloads too)\n"
    "  --dev               serve the dev console at /_wslua (routes, a client\n"
    "                      for any WebSocket route, live events); not in\n"
    "                      production\n"
    "  --log-format FORMAT text or json (default: text on a terminal, else "
    "json)\n"
    "  --tls-cert FILE     serve TLS (https://, wss://) with this PEM "
    "certificate\n"
    "  --tls-key FILE      its private key (if not inside the certificate "
    "file)\n"
    "  --max-memory MB     cap the Lua heap: a handler that would pass it "
    "gets\n"
    "                      a \"not enough memory\" error (default: no cap)\n"
    "  --workers N         N threads, each with its own loop and Lua VM, "
    "sharing\n"
    "                      the listen addresses (default 1)\n"
    "  --redis URL         carry topics and broadcasts across processes over\n"
    "                      Redis pub/sub (redis://HOST:PORT)\n"
    "  --version           print the version and exit\n"
    "  --help              print this and exit\n";

typedef struct {
  const char *app;
  const char *listen;
  const char *tls_cert;
  const char *tls_key;
  int watch;
  int dev;
  int workers;
  const char *redis;
  size_t max_memory; /* bytes; 0: no cap */
} options_t;

/* Returns -1 to exit with failure, 1 to exit with success, 0 to run. */
static int parse_args(int argc, char **argv, options_t *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return 1;
    } else if (strcmp(a, "--version") == 0) {
      printf("wslua %s\n", WSLUA_VERSION);
      return 1;
    } else if (strcmp(a, "--watch") == 0) {
      o->watch = 1;
    } else if (strcmp(a, "--dev") == 0) {
      o->dev = 1;
    } else if (strcmp(a, "--log-format") == 0) {
      if (value == NULL || wsl_log_parse_format(value) < 0) {
        fprintf(stderr, "wslua: --log-format must be text or json\n");
        return -1;
      }
      i++;
      wsl_log_set_format((wsl_log_format_t)wsl_log_parse_format(value));
    } else if (strcmp(a, "--listen") == 0 || strcmp(a, "--log-level") == 0 ||
               strcmp(a, "--tls-cert") == 0 || strcmp(a, "--tls-key") == 0) {
      if (value == NULL) {
        fprintf(stderr, "wslua: %s needs a value\n", a);
        return -1;
      }
      i++;
      if (strcmp(a, "--listen") == 0) {
        o->listen = value;
      } else if (strcmp(a, "--tls-cert") == 0) {
        o->tls_cert = value;
      } else if (strcmp(a, "--tls-key") == 0) {
        o->tls_key = value;
      } else if (wsl_log_parse_level(value) < 0) {
        fprintf(stderr, "wslua: --log-level must be error, warn, info or "
                        "debug\n");
        return -1;
      } else {
        wsl_log_set_level((wsl_log_level_t)wsl_log_parse_level(value));
      }
    } else if (strcmp(a, "--max-memory") == 0) {
      char *end = NULL;
      double mb = value ? strtod(value, &end) : 0;
      if (value == NULL || end == value || *end != '\0' || !(mb >= 1) ||
          mb > 1e9) {
        fputs("wslua: --max-memory needs a size in MiB, at least 1\n", stderr);
        return -1;
      }
      i++;
      o->max_memory = (size_t)(mb * 1024 * 1024);
    } else if (strcmp(a, "--workers") == 0) {
      char *end = NULL;
      long n = value ? strtol(value, &end, 10) : 0;
      if (value == NULL || end == value || *end != '\0' || n < 1 || n > 256) {
        fputs("wslua: --workers needs a number from 1 to 256\n", stderr);
        return -1;
      }
      i++;
      o->workers = (int)n;
    } else if (strcmp(a, "--redis") == 0) {
      if (value == NULL) {
        fputs("wslua: --redis needs a URL (redis://HOST:PORT)\n", stderr);
        return -1;
      }
      i++;
      o->redis = value;
    } else if (a[0] == '-') {
      fprintf(stderr, "wslua: unknown option %s\n%s", a, usage);
      return -1;
    } else if (o->app == NULL) {
      o->app = a;
    } else {
      fprintf(stderr, "wslua: one app file only (got %s and %s)\n", o->app, a);
      return -1;
    }
  }
  if (o->app == NULL) {
    fputs(usage, stderr);
    return -1;
  }
  if (o->tls_key && !o->tls_cert) {
    fputs("wslua: --tls-key needs --tls-cert\n", stderr);
    return -1;
  }
  return 0;
}

/* package.path: the app's folder first, then wslua's own Lua files. */
static void set_paths(lua_State *L, const char *app) {
  const char *slash = strrchr(app, '/');
  int dir_len = slash ? (int)(slash - app) : 1;
  const char *dir = slash ? app : ".";
  const char *lua_dir = getenv("WSLUA_LUA_DIR");
  if (lua_dir == NULL)
    lua_dir = WSLUA_LUA_DIR;
  lua_getglobal(L, "package");
  lua_pushlstring(L, dir, (size_t)dir_len);
  const char *d = lua_tostring(L, -1);
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s/?.lua;%s/?/init.lua;", d, d,
                  lua_dir, lua_dir);
  lua_remove(L, -2);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_wslua_core);
  lua_setfield(L, -2, "wslua.core");
  lua_pop(L, 2);
}

/* The Lua heap, counted, and capped while handlers run (--max-memory). */
typedef struct {
  size_t used;
  size_t limit; /* 0: no cap */
} heap_t;

/* lua_Alloc over realloc and free (as luaL_newstate's, so it can take over a
 * state made there). Only growth asked for while a handler runs is refused
 * (wsl_budget_depth): Lua then collects garbage, tries again, and failing
 * raises "not enough memory" in that handler, whose client is closed with
 * 1011 (HTTP: 500). Work the host does outside handlers (loading the app,
 * handing a message over) is bounded by the protocol limits instead and is
 * never refused, so such an error is never raised where nothing catches it.
 */
static void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  heap_t *h = ud;
  size_t old = ptr ? osize : 0;
  void *p;
  if (nsize == 0) {
    free(ptr);
    h->used -= old;
    return NULL;
  }
  if (h->limit && nsize > old && h->used - old + nsize > h->limit &&
      wsl_budget_depth() > 0)
    return NULL;
  p = ptr ? realloc(ptr, nsize) : malloc(nsize);
  if (p != NULL)
    h->used = h->used - old + nsize;
  return p;
}

static int run_app(lua_State *L) {
  const options_t *o = lua_touserdata(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "wslua.app");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  lua_createtable(L, 0, 5);
  lua_pushstring(L, o->app);
  lua_setfield(L, -2, "app");
  lua_pushstring(L, o->listen);
  lua_setfield(L, -2, "listen");
  lua_pushstring(L, o->tls_cert);
  lua_setfield(L, -2, "tls_cert");
  lua_pushstring(L, o->tls_key);
  lua_setfield(L, -2, "tls_key");
  lua_pushboolean(L, o->watch);
  lua_setfield(L, -2, "watch");
  lua_pushboolean(L, o->dev);
  lua_setfield(L, -2, "dev");
  lua_pushstring(L, o->redis);
  lua_setfield(L, -2, "redis");
  lua_call(L, 1, 1);
  return 1;
}

/* One VM on loop, running the app until it stops; returns the exit status.
 * With workers, each worker's thread runs this. */
static int run_vm(uv_loop_t *loop, void *arg) {
  const options_t *o = arg;
  heap_t heap = {0};
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fputs("wslua: cannot create the Lua state\n", stderr);
    return 1;
  }
  heap.used =
      (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
  heap.limit = o->max_memory;
  lua_setallocf(L, heap_alloc, &heap);
  luaL_openlibs(L);
  /* Generational collection (Lua 5.4): most of what a server allocates dies
   * young (a handshake's request and headers, a message and its body), and
   * minor collections free it at once, where the incremental collector
   * waited for the heap to double (an idle connection held about 2.4 KB of
   * RSS after a burst of handshakes that way, 1.4 KB this way).
   * While the heap grows with live data (a burst of connections that stay),
   * a major collection frees little and the collector falls back to full
   * collections spaced by its pause (Lua 5.4's "bad collection" mode): at
   * the default 200 the garbage can reach the live heap's size before the
   * next one, 0 to 100% of it at any moment, so 10,000 idle connections
   * held 1,550 to 1,600 B of RSS each depending on where the burst ended.
   * A pause of 120 bounds it to a fifth: about 1,380 B (issue 6,
   * bench/results/2026-11-23-idle2.md; 150: 1,480, 100: no better). Minor
   * collections, and so the per-message path, do not use it. The major
   * multiplier stays at its default (100): at 50, an echo of 64 KiB messages (a
   * heap that swings by whole messages) ran major collections so often that it
   * took 32 µs of core per message instead of 18. */
  lua_gc(L, LUA_GCINC, 120, 0, 0);
  lua_gc(L, LUA_GCGEN, 0, 0);
  wsl_vm_init(L, loop);
  set_paths(L, o->app);

  lua_pushcfunction(L, run_app);
  lua_pushlightuserdata(L, (void *)o);
  int status = 1;
  if (lua_pcall(L, 1, 1, 0) != LUA_OK)
    wsl_log(WSL_LOG_ERROR, "%s", lua_tostring(L, -1));
  else
    status = (int)lua_tointeger(L, -1);
  /* Messages read in the last turn before the loop stopped would reach
   * handlers of a closed VM. */
  wsl_conn_turn_clear();
  lua_close(L);
  /* Handles whose memory Lua owned are closed by now (__gc); let libuv run
   * their close callbacks before leaving. */
  uv_run(loop, UV_RUN_NOWAIT);
  return status;
}

int main(int argc, char **argv) {
  options_t o = {0};
  int r = parse_args(argc, argv, &o);
  if (r != 0)
    return r > 0 ? 0 : 2;
  signal(SIGPIPE, SIG_IGN);
  wsl_handshake_init();
  if (o.workers > 1) {
    wsl_server_share_ports(1);
    return wsl_workers_run(o.workers, run_vm, &o);
  }
  return run_vm(uv_default_loop(), &o);
}
