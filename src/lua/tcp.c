/* wslua.Tcp: a raw TCP client stream, for scripts that speak something other
 * than WebSocket and for tests that must send arbitrary bytes.
 * core.tcp_connect(host, port, handlers) calls handlers.open(tcp, err),
 * handlers.data(tcp, bytes) and handlers.close(tcp) from the loop. */
#include "lua/runtime.h"

#include <stdlib.h>
#include <string.h>

#define TCP_MT "wslua.Tcp"

typedef struct {
  uv_tcp_t handle;
  uv_connect_t connect;
  uv_getaddrinfo_t resolve;
  int self_ref; /* the userdata while the stream lives */
  int closing;
  int resolving; /* the address lookup has not called back yet */
  int closed;    /* the handle's close callback came (while resolving) */
  int orphan;    /* its VM is being closed: no more Lua calls (tcp_gc) */
  int port;
} stream_t;

typedef struct {
  stream_t *s; /* NULL once closed */
} ltcp_t;

typedef struct {
  uv_write_t req;
  char bytes[];
} write_t;

/* Calls handlers[event](tcp, <the nargs values on the stack>). */
static void call(stream_t *s, const char *event, int nargs) {
  lua_State *L = wsl_vm()->L;
  int base = lua_gettop(L) - nargs;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
  lua_getiuservalue(L, -1, 1);
  lua_getfield(L, -1, event);
  lua_replace(L, -2);      /* args..., tcp, fn */
  lua_insert(L, base + 1); /* fn, args..., tcp */
  lua_insert(L, base + 2); /* fn, tcp, args... */
  if (lua_isfunction(L, base + 1))
    wsl_vm_call(L, nargs + 1, "tcp handler");
  else
    lua_settop(L, base);
}

static void on_closed(uv_handle_t *h) {
  stream_t *s = h->data;
  if (s->orphan) {
    s->closed = 1;
    if (!s->resolving)
      free(s);
    return;
  }
  lua_State *L = wsl_vm()->L;
  call(s, "close", 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
  ltcp_t *lt = lua_touserdata(L, -1);
  lt->s = NULL;
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
  /* A lookup still running gets s in its callback, which frees it. */
  s->closed = 1;
  if (!s->resolving)
    free(s);
}

static void close_stream(stream_t *s) {
  if (s->closing)
    return;
  s->closing = 1;
  uv_close((uv_handle_t *)&s->handle, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static _Thread_local char shared[65536];
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(shared, sizeof shared);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  stream_t *s = st->data;
  if (n < 0) {
    close_stream(s);
    return;
  }
  if (n == 0)
    return;
  lua_pushlstring(wsl_vm()->L, buf->base, (size_t)n);
  call(s, "data", 1);
}

static void on_connect(uv_connect_t *req, int status) {
  stream_t *s = req->data;
  if (s->closing)
    return;
  lua_State *L = wsl_vm()->L;
  if (status < 0) {
    lua_pushstring(L, uv_strerror(status));
    call(s, "open", 1);
    close_stream(s);
    return;
  }
  uv_tcp_nodelay(&s->handle, 1);
  uv_read_start((uv_stream_t *)&s->handle, on_alloc, on_read);
  lua_pushnil(L);
  call(s, "open", 1);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  stream_t *s = req->data;
  s->resolving = 0;
  if (s->closed) { /* closed while looking the address up */
    uv_freeaddrinfo(res);
    free(s);
    return;
  }
  int r = status;
  if (r == 0 && !s->closing) {
    s->connect.data = s;
    r = uv_tcp_connect(&s->connect, &s->handle, res->ai_addr, on_connect);
  }
  uv_freeaddrinfo(res);
  if (r != 0 && !s->closing) {
    lua_pushstring(wsl_vm()->L, uv_strerror(r));
    call(s, "open", 1);
    close_stream(s);
  }
}

static int core_tcp_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  ltcp_t *lt = lua_newuserdatauv(L, sizeof *lt, 1);
  lt->s = calloc(1, sizeof *lt->s);
  if (lt->s == NULL)
    return luaL_error(L, "out of memory");
  luaL_setmetatable(L, TCP_MT);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, 1);
  stream_t *s = lt->s;
  uv_tcp_init(wsl_vm()->loop, &s->handle);
  s->handle.data = s;
  s->resolve.data = s;
  s->resolving = 1;
  lua_pushvalue(L, -1);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  char port_s[16];
  snprintf(port_s, sizeof port_s, "%d", port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  int r = uv_getaddrinfo(wsl_vm()->loop, &s->resolve, on_resolved, host, port_s,
                         &hints);
  if (r != 0) {
    s->resolving = 0;
    close_stream(s);
    return wsl_lua_fail(L, uv_strerror(r), r);
  }
  return 1;
}

static void on_write(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

/* tcp:write(bytes) -> true | nil, "closed" */
static int tcp_write(lua_State *L) {
  ltcp_t *lt = luaL_checkudata(L, 1, TCP_MT);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (lt->s == NULL || lt->s->closing)
    return wsl_lua_fail(L, "closed", 0);
  write_t *w = malloc(sizeof *w + len);
  if (w == NULL)
    return luaL_error(L, "out of memory");
  memcpy(w->bytes, data, len);
  uv_buf_t b = uv_buf_init(w->bytes, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&lt->s->handle, &b, 1, on_write) != 0) {
    free(w);
    return wsl_lua_fail(L, "closed", 0);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int tcp_close(lua_State *L) {
  ltcp_t *lt = luaL_checkudata(L, 1, TCP_MT);
  if (lt->s)
    close_stream(lt->s);
  return 0;
}

/* tcp:shutdown(): no more writes (a FIN), reading goes on. */
static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  free(req);
}

static int tcp_shutdown(lua_State *L) {
  ltcp_t *lt = luaL_checkudata(L, 1, TCP_MT);
  if (lt->s == NULL || lt->s->closing)
    return wsl_lua_fail(L, "closed", 0);
  uv_shutdown_t *req = malloc(sizeof *req);
  if (req == NULL ||
      uv_shutdown(req, (uv_stream_t *)&lt->s->handle, on_shutdown) != 0) {
    free(req);
    return wsl_lua_fail(L, "closed", 0);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* tcp:pause(), tcp:resume(): stop and restart reading, so that the kernel's
 * buffers fill and the peer sees a reader that does not keep up. */
static int tcp_pause(lua_State *L) {
  ltcp_t *lt = luaL_checkudata(L, 1, TCP_MT);
  if (lt->s == NULL || lt->s->closing)
    return wsl_lua_fail(L, "closed", 0);
  uv_read_stop((uv_stream_t *)&lt->s->handle);
  lua_pushboolean(L, 1);
  return 1;
}

static int tcp_resume(lua_State *L) {
  ltcp_t *lt = luaL_checkudata(L, 1, TCP_MT);
  if (lt->s == NULL || lt->s->closing)
    return wsl_lua_fail(L, "closed", 0);
  uv_read_start((uv_stream_t *)&lt->s->handle, on_alloc, on_read);
  lua_pushboolean(L, 1);
  return 1;
}

/* A stream anchors its handle while it lives, so this runs only in
 * lua_close, for a stream still open then: it closes without calling into
 * the VM that is going away (the host may run its loop once more). */
static int tcp_gc(lua_State *L) {
  ltcp_t *lt = lua_touserdata(L, 1);
  stream_t *s = lt->s;
  if (s) {
    lt->s = NULL;
    s->orphan = 1;
    close_stream(s);
  }
  return 0;
}

static const luaL_Reg tcp_methods[] = {
    {"write", tcp_write}, {"pause", tcp_pause},       {"resume", tcp_resume},
    {"close", tcp_close}, {"shutdown", tcp_shutdown}, {NULL, NULL},
};

void wsl_lua_open_tcp(lua_State *L) {
  if (luaL_newmetatable(L, TCP_MT)) {
    luaL_newlib(L, tcp_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, tcp_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, core_tcp_connect);
  lua_setfield(L, -2, "tcp_connect");
}
