/* wslua.Server: core.listen(opts, handlers) accepts connections whose events
 * go to the handler table (request, data, close: see conn.c). */
#include "lua/conn.h"

#include <stdio.h>

#include "net/server.h"
#include "net/tls.h"

#define SERVER_MT "wslua.Server"

/* A stopped server stays until __gc releases it: a graceful stop counts
 * the connections it still has (server:connections) until they are gone. */
typedef struct {
  wsl_server_t *server; /* NULL once released */
  int handlers_ref;     /* the conn config's owner points here */
  int stopped;          /* no longer accepting */
} lserver_t;

static lserver_t *check_server(lua_State *L) {
  return luaL_checkudata(L, 1, SERVER_MT);
}

static const char *optstring(lua_State *L, int idx, const char *name) {
  lua_getfield(L, idx, name);
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1); /* the table keeps the string alive */
  return s;
}

/* The table at t, {cert, key, chain, names = {[name] = {cert, key}}}: a
 * server TLS context, or NULL with err filled when a file cannot be used.
 * A malformed table raises. */
static wsl_tls_ctx_t *tls_context(lua_State *L, int t, char *err,
                                  size_t errlen) {
  const char *cert = optstring(L, t, "cert");
  if (cert == NULL)
    luaL_error(L, "tls needs a cert file");
  wsl_tls_ctx_t *ctx = wsl_tls_server_ctx_new(
      cert, optstring(L, t, "key"), optstring(L, t, "chain"), err, errlen);
  if (ctx && lua_getfield(L, t, "names") == LUA_TTABLE) {
    lua_pushnil(L);
    while (ctx && lua_next(L, -2)) {
      /* lua_tostring on a number key would confuse lua_next. */
      const char *name =
          lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      const char *name_cert =
          lua_istable(L, -1) ? optstring(L, -1, "cert") : NULL;
      if (name == NULL || name_cert == NULL) {
        wsl_tls_ctx_free(ctx);
        luaL_error(L, "tls.names must map names to {cert = ..., key = ...}");
      }
      if (wsl_tls_ctx_add_name(ctx, name, name_cert, optstring(L, -1, "key"),
                               err, errlen) != 0) {
        wsl_tls_ctx_free(ctx);
        ctx = NULL;
      }
      lua_pop(L, 1);
    }
  }
  lua_settop(L, t);
  if (ctx == NULL && err[0] == '\0')
    snprintf(err, errlen, "out of memory");
  return ctx;
}

/* core.listen{host, port, max_connections, handshake_timeout,
 * keepalive_timeout, max_header_bytes, max_headers, max_url, max_body,
 * tls} */
static int core_listen(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 1, "host");
  const char *host = luaL_optstring(L, -1, "127.0.0.1");
  int port = (int)wsl_lua_optfield(L, 1, "port", 0);
  wsl_conn_config_t config = {.handler = &wsl_lua_conn_handler};
  wsl_http_limits_default(&config.http_limits);
  wsl_http_limits_t *hl = &config.http_limits;
  hl->max_header_bytes = (size_t)wsl_lua_optfield(
      L, 1, "max_header_bytes", (lua_Number)hl->max_header_bytes);
  hl->max_headers = (size_t)wsl_lua_optfield(L, 1, "max_headers",
                                             (lua_Number)hl->max_headers);
  hl->max_url =
      (size_t)wsl_lua_optfield(L, 1, "max_url", (lua_Number)hl->max_url);
  hl->max_body =
      (size_t)wsl_lua_optfield(L, 1, "max_body", (lua_Number)hl->max_body);
  config.handshake_timeout_ms =
      (uint64_t)(wsl_lua_optfield(L, 1, "handshake_timeout", 10) * 1000);
  config.keepalive_timeout_ms =
      (uint64_t)(wsl_lua_optfield(L, 1, "keepalive_timeout", 10) * 1000);
  size_t max_connections = (size_t)wsl_lua_optfield(L, 1, "max_connections", 0);
  char err[512] = "";
  if (lua_getfield(L, 1, "tls") == LUA_TTABLE) {
    config.tls = tls_context(L, lua_gettop(L), err, sizeof err);
    if (config.tls == NULL)
      return wsl_lua_fail(L, err, 0);
  }
  lua_pop(L, 1);

  lserver_t *ls = lua_newuserdatauv(L, sizeof *ls, 0);
  ls->server = NULL;
  ls->stopped = 0;
  lua_pushvalue(L, 2);
  ls->handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_setmetatable(L, SERVER_MT);
  config.owner = &ls->handlers_ref;
  /* The server owns config.tls from here, even if listening fails. */
  ls->server = wsl_server_listen(wsl_vm()->loop, host, port, &config,
                                 max_connections, err, sizeof err);
  if (ls->server == NULL)
    return wsl_lua_fail(L, err, 0);
  /* Anchored for as long as it may have connections. */
  lua_pushvalue(L, -1);
  luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int server_port(lua_State *L) {
  lserver_t *ls = check_server(L);
  if (ls->server == NULL || ls->stopped)
    return 0;
  lua_pushinteger(L, wsl_server_port(ls->server));
  return 1;
}

static int server_connections(lua_State *L) {
  lserver_t *ls = check_server(L);
  lua_pushinteger(
      L, ls->server ? (lua_Integer)wsl_server_connections(ls->server) : 0);
  return 1;
}

/* server:set_tls(tls): loads the certificates of tls (core.listen's tls
 * table) again, for the connections accepted from now on; those open keep
 * theirs. Returns true, or nil and the error naming the file, the server
 * keeping the certificates it had. */
static int server_set_tls(lua_State *L) {
  lserver_t *ls = check_server(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (ls->server == NULL || ls->stopped)
    return wsl_lua_fail(L, "stopped", 0);
  char err[512] = "";
  wsl_tls_ctx_t *ctx = tls_context(L, 2, err, sizeof err);
  if (ctx == NULL)
    return wsl_lua_fail(L, err, 0);
  wsl_server_set_tls(ls->server, ctx);
  lua_pushboolean(L, 1);
  return 1;
}

/* server:stop(): no new connections; idle HTTP connections are closed. The
 * WebSocket sessions are the Lua layer's to close; server:connections()
 * goes on counting them until they are gone. */
static int server_stop(lua_State *L) {
  lserver_t *ls = check_server(L);
  if (ls->server && !ls->stopped) {
    ls->stopped = 1;
    wsl_server_stop(ls->server);
    wsl_server_close_idle(ls->server);
  }
  return 0;
}

/* Collected only by lua_close (the userdata is anchored): stops, closes the
 * connections that have no handle yet (those with one are closed by theirs,
 * conn.c), and lets the server go once they are. Its memory goes when the
 * host's last uv_run has run the close callbacks. */
static int server_gc(lua_State *L) {
  lserver_t *ls = check_server(L);
  if (ls->server) {
    wsl_server_stop(ls->server);
    wsl_server_close_idle(ls->server);
    wsl_server_release(ls->server);
    ls->server = NULL;
  }
  return 0;
}

static const luaL_Reg server_methods[] = {
    {"port", server_port},
    {"connections", server_connections},
    {"set_tls", server_set_tls},
    {"stop", server_stop},
    {NULL, NULL},
};

void wsl_lua_open_server(lua_State *L) {
  if (luaL_newmetatable(L, SERVER_MT)) {
    luaL_newlib(L, server_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, server_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, core_listen);
  lua_setfield(L, -2, "listen");
}
