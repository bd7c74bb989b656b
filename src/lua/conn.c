/* wslua.Conn: the scripts' handle on a connection, accepted or dialled.
 * Events become calls of the handler table's functions (request, open,
 * data, close); methods answer HTTP requests, upgrade, send and close. A
 * handle outlives its connection: once the connection is gone, methods
 * return nil, "closed". */
#include "lua/conn.h"

#include <stdio.h>
#include <string.h>

#include "lua/dispatch.h"
#include "lua/worker.h"
#include "net/connect.h"
#include "net/tls.h"
#include "proto/frame.h"
#include "proto/handshake.h"

#define CONN_MT "wslua.Conn"

/* User values: 1 the owner (conn:_own) while the connection lives, then
 * its final record (a string: a wsl_conn_stats_t, then the peer's address;
 * every idle connection would otherwise carry room for them). During the
 * close handler the owner is in the registry slot that anchored the handle
 * (self_ref). Handler tables: an accepted connection's is its listener's,
 * found through its config; a dialled one has a 2nd user value for its own.
 * One user value fewer is 16 bytes less for every idle connection. */
typedef struct {
  wsl_conn_t *conn; /* NULL once the connection is gone */
  lua_Integer id;
  /* When conn:_own last gave it an owner (core.clock's seconds): a
   * session's start, for its access line, kept here rather than in a table
   * keyed by client (issue 6: ~40 bytes an idle connection). */
  double owned_at;
  /* The owner's handler budget (conn:_own; seconds, 0: none): a float,
   * which fits beside self_ref (a handle stays 32 bytes). */
  float budget;
  int self_ref; /* anchors the userdata while the connection lives; the
                   owner while it closes */
} lconn_t;

/* Ids are unique in the process: worker w of n numbers its connections
 * w, w + n, w + 2n, ... (so an id also says which worker holds it). */
static _Thread_local lua_Integer next_seq;

/* The metatable of handles, compared by address: luaL_checkudata looks it
 * up by name each time, and send is on every message's path. */
static _Thread_local const void *conn_mt;

static lconn_t *test_conn(lua_State *L, int idx) {
  lconn_t *lc = lua_touserdata(L, idx);
  if (lc == NULL || !lua_getmetatable(L, idx))
    return NULL;
  int ok = lua_topointer(L, -1) == conn_mt;
  lua_pop(L, 1);
  return ok ? lc : NULL;
}

static lconn_t *check_conn(lua_State *L, int idx) {
  lconn_t *lc = test_conn(L, idx);
  if (lc == NULL)
    luaL_typeerror(L, idx, CONN_MT);
  return lc;
}

wsl_conn_t *wsl_lua_conn_check(lua_State *L, int idx) {
  lconn_t *lc = check_conn(L, idx);
  if (lc->conn && wsl_conn_state(lc->conn) != WSL_CONN_CLOSED)
    return lc->conn;
  return NULL;
}

void wsl_lua_conn_attach(lua_State *L, wsl_conn_t *c, int handlers_idx) {
  handlers_idx = lua_absindex(L, handlers_idx);
  int dialled = wsl_conn_config(c) == NULL;
  lconn_t *lc = lua_newuserdatauv(L, sizeof *lc, dialled ? 2 : 1);
  lc->conn = c;
  lc->budget = 0;
  lc->owned_at = 0;
  lc->id = next_seq++ * wsl_worker_count() + wsl_worker_id();
  luaL_setmetatable(L, CONN_MT);
  if (dialled) {
    lua_pushvalue(L, handlers_idx);
    lua_setiuservalue(L, -2, 2);
  }
  lc->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  wsl_conn_set_data(c, lc);
}

/* Pushes the handler named event and the handle; returns 0 if there is no
 * such handler (nothing pushed). */
static int push_handler(lua_State *L, lconn_t *lc, const char *event) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->self_ref);
  const wsl_conn_config_t *config = wsl_conn_config(lc->conn);
  if (config) /* the listener's handler table (a registry ref) */
    lua_rawgeti(L, LUA_REGISTRYINDEX, *(const int *)config->owner);
  else
    lua_getiuservalue(L, -1, 2);
  if (lua_getfield(L, -1, event) != LUA_TFUNCTION) {
    lua_pop(L, 3);
    return 0;
  }
  lua_replace(L, -2); /* function, handle */
  lua_insert(L, -2);
  return 1;
}

/* --- events ------------------------------------------------------------- */

static void push_headers(lua_State *L, const wsl_http_request_t *r) {
  lua_createtable(L, 0, (int)r->nheaders);
  for (size_t i = 0; i < r->nheaders; i++) {
    const wsl_http_header_t *h = &r->headers[i];
    char name[256];
    size_t n = h->name_len < sizeof name ? h->name_len : sizeof name - 1;
    for (size_t j = 0; j < n; j++) {
      char ch = h->name[j];
      name[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    lua_pushlstring(L, name, n);
    /* Repeated headers are joined with ", " (RFC 9110 §5.3). */
    if (lua_rawget(L, -2) == LUA_TSTRING) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h->value, h->value_len);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, h->value, h->value_len);
    }
    lua_pushlstring(L, name, n);
    lua_insert(L, -2);
    lua_rawset(L, -3);
  }
}

/* The request as a table: method, path, query, url, version, headers
 * (lower-case names), body, keep_alive; for WebSocket upgrades also
 * websocket (true when valid), websocket_status and websocket_error
 * (why it is not), key, protocols (offered subprotocols). */
static void push_request(lua_State *L, const wsl_http_request_t *r) {
  lua_createtable(L, 0, 16);
  lua_pushstring(L, r->method);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, r->url, r->url_len);
  lua_setfield(L, -2, "url");
  lua_pushlstring(L, r->path, r->path_len);
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, r->query, r->query_len);
  lua_setfield(L, -2, "query");
  lua_pushfstring(L, "%d.%d", r->version_major, r->version_minor);
  lua_setfield(L, -2, "version");
  lua_pushlstring(L, r->body ? r->body : "", r->body_len);
  lua_setfield(L, -2, "_body");
  lua_pushboolean(L, r->keep_alive);
  lua_setfield(L, -2, "keep_alive");
  push_headers(L, r);
  lua_setfield(L, -2, "headers");
  if (wsl_http_header(r, "upgrade") == NULL &&
      wsl_http_header(r, "sec-websocket-key") == NULL)
    return;
  const char *why = NULL;
  int status = wsl_handshake_check(r, &why);
  lua_pushboolean(L, status == 0);
  lua_setfield(L, -2, "websocket");
  if (status != 0) {
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "websocket_status");
    lua_pushstring(L, why);
    lua_setfield(L, -2, "websocket_error");
    return;
  }
  const wsl_http_header_t *key = wsl_http_header(r, "sec-websocket-key");
  lua_pushlstring(L, key->value, key->value_len);
  lua_setfield(L, -2, "websocket_key");
  wsl_token_t tokens[32];
  size_t n = wsl_http_header_tokens(r, "sec-websocket-protocol", tokens, 32);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushlstring(L, tokens[i].s, tokens[i].len);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "protocols");
}

static void on_request(wsl_conn_t *c, const wsl_http_request_t *req) {
  lua_State *L = wsl_vm()->L;
  lconn_t *lc = wsl_conn_data(c);
  if (lc == NULL) {
    /* An accepted connection gets its handle with its first request; the
     * listener's handler table is its owner pointer (a registry ref). */
    const int *handlers_ref = wsl_conn_config(c)->owner;
    lua_rawgeti(L, LUA_REGISTRYINDEX, *handlers_ref);
    wsl_lua_conn_attach(L, c, -1);
    lua_pop(L, 1);
    lc = wsl_conn_data(c);
  }
  if (!push_handler(L, lc, "request")) {
    wsl_conn_abort(c, 0);
    return;
  }
  push_request(L, req);
  wsl_vm_call(L, 2, "request handler");
}

static void on_open(wsl_conn_t *c, const wsl_http_request_t *resp) {
  lua_State *L = wsl_vm()->L;
  lconn_t *lc = wsl_conn_data(c);
  if (!push_handler(L, lc, "open"))
    return;
  const wsl_http_header_t *p = wsl_http_header(resp, "sec-websocket-protocol");
  if (p)
    lua_pushlstring(L, p->value, p->value_len);
  else
    lua_pushnil(L);
  wsl_vm_call(L, 2, "open handler");
}

/* Pushes the connection's owner (conn:_own) and returns 1; 0 with nothing
 * pushed when it has none. */
static int push_owner(lua_State *L, lconn_t *lc) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->self_ref);
  if (lua_getiuservalue(L, -1, 1) != LUA_TTABLE) {
    lua_pop(L, 2);
    return 0;
  }
  lua_remove(L, -2);
  return 1;
}

/* Message data goes to the owner through dispatch.c, which runs an
 * endpoint's handler for a whole message without a Lua function in
 * between: it is on every message's path. */
static void on_data(wsl_conn_t *c, int opcode, const char *data, size_t len,
                    int first, int last) {
  lua_State *L = wsl_vm()->L;
  lconn_t *lc = wsl_conn_data(c);
  if (!push_owner(L, lc))
    return;
  wsl_dispatch_push(L);
  lua_insert(L, -2); /* deliver, owner */
  lua_pushlstring(L, data ? data : "", len);
  lua_pushboolean(L, opcode == WSL_OP_BINARY);
  lua_pushboolean(L, first);
  lua_pushboolean(L, last);
  lua_pushnumber(L, lc->budget);
  wsl_vm_call(L, 6, "data handler");
}

int wsl_lua_conn_push_owner(lua_State *L, wsl_conn_t *c) {
  lconn_t *lc = wsl_conn_data(c);
  return lc && lc->conn == c && push_owner(L, lc);
}

/* Whole messages (a loop turn's, or a read's): endpoints' clients' run
 * together (dispatch.c), any other owner's one by one. */
static void on_messages(const wsl_message_t *msgs, size_t n) {
  lua_State *L = wsl_vm()->L;
  for (size_t i = 0; i < n;) {
    i += wsl_dispatch_messages(L, msgs + i, n - i);
    if (i == n)
      break;
    const wsl_message_t *m = &msgs[i++];
    if (wsl_conn_state(m->conn) == WSL_CONN_OPEN)
      on_data(m->conn, m->opcode, m->data, m->len, 1, 1);
  }
}

/* Puts the value on top (popped) in the registry slot of a closing
 * connection's handle, for its close handler: false for nil, as a hole in
 * the registry's array would lead luaL_ref to hand the slot out again. */
static void keep_closing_owner(lua_State *L, lconn_t *lc) {
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 0);
  }
  lua_rawseti(L, LUA_REGISTRYINDEX, lc->self_ref);
}

static void on_close(wsl_conn_t *c, int code, const char *reason,
                     size_t reason_len, const char *error) {
  lua_State *L = wsl_vm()->L;
  lconn_t *lc = wsl_conn_data(c);
  if (lc == NULL)
    return;
  int handler = push_handler(L, lc, "close");
  /* The final counts and the peer's address replace the handler table,
   * before the handler runs: it may read them (conn:stats(),
   * conn:remote_addr(), which endpoint clients read their addresses
   * through rather than hold them). */
  wsl_conn_stats_t s;
  wsl_conn_stats(c, &s);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->self_ref);
  lua_getiuservalue(L, -1, 1); /* the owner, for the close handler */
  keep_closing_owner(L, lc);
  luaL_Buffer final;
  luaL_buffinit(L, &final);
  luaL_addlstring(&final, (const char *)&s, sizeof s);
  luaL_addstring(&final, wsl_conn_remote_addr(c));
  luaL_pushresult(&final);
  lua_setiuservalue(L, -2, 1);
  lua_pop(L, 1);
  lc->conn = NULL;
  if (handler) {
    lua_pushinteger(L, code);
    lua_pushlstring(L, reason, reason_len);
    if (error)
      lua_pushstring(L, error);
    else
      lua_pushnil(L);
    wsl_vm_call(L, 4, "close handler");
  }
  luaL_unref(L, LUA_REGISTRYINDEX, lc->self_ref);
  lc->self_ref = LUA_NOREF;
}

static void on_drain(wsl_conn_t *c) {
  lua_State *L = wsl_vm()->L;
  lconn_t *lc = wsl_conn_data(c);
  if (lc && push_handler(L, lc, "drain"))
    wsl_vm_call(L, 1, "drain handler");
}

const wsl_conn_handler_t wsl_lua_conn_handler = {
    .on_request = on_request,
    .on_open = on_open,
    .on_data = on_data,
    .on_messages = on_messages,
    .on_close = on_close,
    .on_drain = on_drain,
};

/* --- methods ------------------------------------------------------------ */

/* Returns the live connection, or NULL after pushing nil, "closed". */
static wsl_conn_t *live(lua_State *L, lconn_t *lc) {
  if (lc->conn && wsl_conn_state(lc->conn) != WSL_CONN_CLOSED)
    return lc->conn;
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return NULL;
}

static int result(lua_State *L, int r) {
  if (r == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, r == UV_ENOBUFS     ? "send buffer full"
                    : r == WSL_EDROPPED ? "dropped"
                                        : "closed");
  return 2;
}

/* conn:send(data [, binary]) */
static int conn_send(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int binary = lua_toboolean(L, 3);
  wsl_conn_t *c = live(L, lc);
  if (c == NULL)
    return 2;
  return result(
      L, wsl_conn_send(c, binary ? WSL_OP_BINARY : WSL_OP_TEXT, data, len));
}

/* core.client_send(client, payload [, mode]) -> true | nil, "closed": the
 * send method of Client objects (lua/wslua/client.lua), over client.conn.
 * In C because it is on the path of nearly every message: a Lua wrapper
 * around conn:send cost about as much as the send itself. mode: nil,
 * "text" or false; "binary" or true. */
static int client_send(lua_State *L) {
  int binary;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "bad argument #1 to 'send' (string expected, got %s)",
                      luaL_typename(L, 2));
  switch (lua_type(L, 3)) {
  case LUA_TNONE:
  case LUA_TNIL:
    binary = 0;
    break;
  case LUA_TBOOLEAN:
    binary = lua_toboolean(L, 3);
    break;
  default: /* short strings are interned: compared as values, no strcmp */
    binary = lua_rawequal(L, 3, lua_upvalueindex(2));
    if (!binary && !lua_rawequal(L, 3, lua_upvalueindex(3)))
      return luaL_error(L, "send mode must be \"text\" or \"binary\"");
  }
  size_t len;
  const char *data = lua_tolstring(L, 2, &len);
  wsl_conn_t *c = wsl_dispatch_client_conn(L, 1);
  if (c == NULL) {
    lua_pushvalue(L, lua_upvalueindex(1)); /* "conn", not looked up by name */
    lua_rawget(L, 1);
    lconn_t *lc = test_conn(L, -1);
    if (lc == NULL)
      return luaL_error(L, "send: not a client");
    if ((c = live(L, lc)) == NULL)
      return 2;
  } else if (wsl_conn_state(c) == WSL_CONN_CLOSED) {
    return result(L, UV_ECANCELED);
  }
  return result(
      L, wsl_conn_send(c, binary ? WSL_OP_BINARY : WSL_OP_TEXT, data, len));
}

static int conn_ping(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  size_t len = 0;
  const char *data = luaL_optlstring(L, 2, "", &len);
  luaL_argcheck(L, len <= 125, 2, "ping payload over 125 bytes");
  wsl_conn_t *c = live(L, lc);
  if (c == NULL)
    return 2;
  return result(L, wsl_conn_ping(c, data, len));
}

/* conn:close([code [, reason]]): the closing handshake, or for a connection
 * still in HTTP, closing it. */
static int conn_close(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  size_t len = 0;
  const char *reason = luaL_optlstring(L, 3, "", &len);
  luaL_argcheck(L,
                code == 1000 || (code >= 3000 && code <= 4999) ||
                    (code >= 1001 && code <= 1014 && code != 1004 &&
                     code != 1005 && code != 1006),
                2, "not a close code an endpoint may send");
  luaL_argcheck(L, len <= 123, 3, "close reason over 123 bytes");
  wsl_conn_t *c = live(L, lc);
  if (c == NULL)
    return 2;
  if (wsl_conn_state(c) == WSL_CONN_OPEN)
    return result(L, wsl_conn_close(c, (int)code, reason, len));
  wsl_conn_abort(c, 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int conn_abort(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  if (lc->conn)
    wsl_conn_abort(lc->conn, lua_toboolean(L, 2));
  return 0;
}

/* Appends the headers of the array at idx ({name, value} pairs) to out.
 * Returns -1 with the offending name on the stack when one is not a valid
 * header (no header injection). */
static int append_headers(lua_State *L, int idx, wsl_buf_t *out) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = luaL_len(L, idx);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    size_t nlen, vlen;
    const char *name = lua_tolstring(L, -2, &nlen);
    const char *value = lua_tolstring(L, -1, &vlen);
    if (name == NULL || value == NULL ||
        wsl_http_response_header(out, name, nlen, value, vlen) != 0) {
      lua_pushstring(L, name ? name : "(not a string)");
      return -1;
    }
    lua_pop(L, 3);
  }
  return 0;
}

/* conn:write_head(status, headers): headers an array of {name, value}. */
static int conn_write_head(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  int status = (int)luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  wsl_conn_t *c = live(L, lc);
  if (c == NULL)
    return 2;
  wsl_buf_t out = WSL_BUF_INIT;
  wsl_http_response_begin(&out, status);
  if (append_headers(L, 3, &out) != 0) {
    wsl_buf_free(&out);
    return luaL_error(L, "invalid response header %s", lua_tostring(L, -1));
  }
  wsl_http_response_end(&out);
  int r = wsl_conn_write(c, out.data, out.len);
  wsl_buf_free(&out);
  return result(L, r);
}

static int conn_write(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  wsl_conn_t *c = live(L, lc);
  if (c == NULL)
    return 2;
  return result(L, wsl_conn_write(c, data, len));
}

static int conn_finish(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  int keep_alive = lua_toboolean(L, 2);
  wsl_conn_t *c = live(L, lc);
  if (c == NULL)
    return 2;
  return result(L, wsl_conn_http_finish(c, keep_alive));
}

/* options.compression = true | {level, mem_level, window_bits,
 * peer_window_bits, threshold, server_no_context_takeover,
 * client_no_context_takeover} */
static void read_deflate_options(lua_State *L, int idx, wsl_ws_options_t *o,
                                 wsl_role_t role) {
  int t = lua_getfield(L, idx, "compression");
  if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
    lua_pop(L, 1);
    return;
  }
  wsl_deflate_config_t *c = &o->deflate_config;
  o->deflate = 1;
  /* Each message compressed on its own (no context kept, the default) is
   * small as a rule, and zlib's level 1 makes it nearly as small as level
   * 6 (chat JSON of 430 bytes: 47.0% against 46.3%) at a good part less of
   * the cost (7% more messages/s in the bench's echo); a kept context,
   * which finds its matches in earlier messages, keeps level 6. */
  int ours_kept = role == WSL_ROLE_SERVER ? !c->server_no_context_takeover
                                          : !c->client_no_context_takeover;
  if (c->level < 0)
    c->level = ours_kept ? 6 : WSL_DEFLATE_SHARED_LEVEL;
  if (t == LUA_TTABLE) {
    int ct = lua_gettop(L);
    lua_getfield(L, ct, "server_no_context_takeover");
    if (!lua_isnil(L, -1))
      c->server_no_context_takeover = lua_toboolean(L, -1);
    lua_getfield(L, ct, "client_no_context_takeover");
    if (!lua_isnil(L, -1))
      c->client_no_context_takeover = lua_toboolean(L, -1);
    lua_pop(L, 2);
    /* A context kept between messages is a connection's own for its whole
     * life: its defaults are smaller windows, so that an active connection
     * stays under 64 KiB (zlib's 15-bit windows and memory level 8 take
     * about 300 KB); a 4 KiB window still reaches back over dozens of chat
     * messages. Without a kept context the deflater and the
     * inflater are the thread's, so the full sizes cost nothing per
     * connection. */
    int ours = role == WSL_ROLE_SERVER ? c->server_no_context_takeover
                                       : c->client_no_context_takeover;
    int peers = role == WSL_ROLE_SERVER ? c->client_no_context_takeover
                                        : c->server_no_context_takeover;
    if (!ours) {
      c->window_bits = WSL_DEFLATE_KEPT_WINDOW_BITS;
      c->mem_level = WSL_DEFLATE_KEPT_MEM_LEVEL;
    }
    if (!peers)
      c->peer_window_bits = WSL_DEFLATE_KEPT_WINDOW_BITS;
    c->level = (int)wsl_lua_optfield(L, ct, "level",
                                     ours ? WSL_DEFLATE_SHARED_LEVEL : 6);
    c->mem_level = (int)wsl_lua_optfield(L, ct, "mem_level", c->mem_level);
    c->window_bits =
        (int)wsl_lua_optfield(L, ct, "window_bits", c->window_bits);
    c->peer_window_bits =
        (int)wsl_lua_optfield(L, ct, "peer_window_bits", c->peer_window_bits);
    c->threshold =
        (size_t)wsl_lua_optfield(L, ct, "threshold", (lua_Number)c->threshold);
  }
  lua_pop(L, 1);
}

static void read_ws_options(lua_State *L, int idx, wsl_ws_options_t *o,
                            wsl_role_t role) {
  wsl_ws_options_default(o);
  if (lua_isnoneornil(L, idx))
    return;
  luaL_checktype(L, idx, LUA_TTABLE);
  o->max_message = (uint64_t)wsl_lua_optfield(L, idx, "max_message",
                                              (lua_Number)o->max_message);
  o->max_frame = (uint64_t)wsl_lua_optfield(L, idx, "max_frame", 0);
  o->idle_timeout_ms =
      (uint64_t)(wsl_lua_optfield(L, idx, "idle_timeout",
                                  o->idle_timeout_ms / 1000.0) *
                 1000);
  o->close_timeout_ms =
      (uint64_t)(wsl_lua_optfield(L, idx, "close_timeout",
                                  o->close_timeout_ms / 1000.0) *
                 1000);
  o->max_backpressure = (size_t)wsl_lua_optfield(
      L, idx, "max_backpressure", (lua_Number)o->max_backpressure);
  o->low_water = (size_t)wsl_lua_optfield(L, idx, "low_water", 0);
  o->ping_interval_ms =
      (uint64_t)(wsl_lua_optfield(L, idx, "ping_interval", 0) * 1000);
  lua_getfield(L, idx, "backpressure");
  const char *policy = luaL_optstring(L, -1, "close");
  if (strcmp(policy, "drop") == 0)
    o->backpressure_drop = 1;
  else if (strcmp(policy, "close") != 0)
    luaL_error(L, "option 'backpressure' must be \"close\" or \"drop\"");
  lua_pop(L, 1);
  read_deflate_options(L, idx, o, role);
}

/* conn:upgrade(key, protocol|nil, headers|nil, options|nil, offer|nil):
 * the 101 response, then the WebSocket session. With options.compression
 * and the client's Sec-WebSocket-Extensions offer, permessage-deflate is
 * negotiated. Returns true and the extensions agreed (or nil). */
static int conn_upgrade(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  size_t key_len;
  const char *key = luaL_checklstring(L, 2, &key_len);
  const char *protocol = luaL_optstring(L, 3, NULL);
  wsl_ws_options_t options;
  read_ws_options(L, 5, &options, WSL_ROLE_SERVER);
  wsl_conn_t *c = live(L, lc);
  if (c == NULL)
    return 2;
  char accept[WSL_ACCEPT_LEN + 1];
  wsl_handshake_accept(key, key_len, accept);
  size_t offer_len = 0;
  const char *offer = luaL_optlstring(L, 6, NULL, &offer_len);
  wsl_buf_t extensions = WSL_BUF_INIT;
  if (options.deflate)
    options.deflate = offer && wsl_deflate_negotiate(
                                   offer, offer_len, &options.deflate_config,
                                   &options.deflate_params, &extensions) == 1;
  wsl_buf_append(&extensions, "", 1); /* NUL-terminated */
  wsl_buf_t out = WSL_BUF_INIT;
  wsl_handshake_response(&out, accept, protocol,
                         options.deflate ? extensions.data : NULL);
  if (!lua_isnoneornil(L, 4) && append_headers(L, 4, &out) != 0) {
    wsl_buf_free(&out);
    wsl_buf_free(&extensions);
    return luaL_error(L, "invalid response header %s", lua_tostring(L, -1));
  }
  wsl_http_response_end(&out);
  int r = wsl_conn_upgrade(c, out.data, out.len, &options);
  wsl_buf_free(&out);
  if (r != 0) {
    wsl_buf_free(&extensions);
    return result(L, r);
  }
  lua_pushboolean(L, 1);
  if (options.deflate)
    lua_pushstring(L, extensions.data);
  else
    lua_pushnil(L);
  wsl_buf_free(&extensions);
  return 2;
}

/* The final record a closed connection's handle keeps (on_close): its
 * counts, then its peer's address. NULL before the close. */
static const char *final_record(lua_State *L, lconn_t *lc, size_t *len) {
  lua_getiuservalue(L, 1, 1);
  const char *saved = lua_tolstring(L, -1, len);
  lua_pop(L, 1); /* the handle's user value keeps the string */
  if (lc->conn || saved == NULL || *len < sizeof(wsl_conn_stats_t))
    return NULL;
  return saved;
}

/* conn:remote_addr() -> "1.2.3.4:5678" or "[::1]:5678", the TCP peer's,
 * also once the connection is gone. */
static int conn_remote_addr(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  if (lc->conn) {
    lua_pushstring(L, wsl_conn_remote_addr(lc->conn));
    return 1;
  }
  size_t len;
  const char *saved = final_record(L, lc, &len);
  if (saved == NULL || len == sizeof(wsl_conn_stats_t))
    return 0;
  lua_pushlstring(L, saved + sizeof(wsl_conn_stats_t),
                  len - sizeof(wsl_conn_stats_t));
  return 1;
}

static int conn_buffered(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  lua_pushinteger(L, lc->conn ? (lua_Integer)wsl_conn_buffered(lc->conn) : 0);
  return 1;
}

/* conn:draining(): true while the send queue is above its low-water mark
 * (a drain event follows unless the connection goes first). */
static int conn_draining(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  lua_pushboolean(L, lc->conn && wsl_conn_draining(lc->conn));
  return 1;
}

static int conn_dropped(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  lua_pushinteger(L, lc->conn ? (lua_Integer)wsl_conn_dropped(lc->conn) : 0);
  return 1;
}

/* conn:stats(): bytes in, bytes out, messages in, messages out (see
 * wsl_conn_stats) and who closed first ("peer", "local" or nil); the final
 * counts once the connection is gone. */
static int conn_stats(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  wsl_conn_stats_t final = {0}, *s = &final;
  if (lc->conn) {
    wsl_conn_stats(lc->conn, &final);
  } else {
    size_t len;
    const char *saved = final_record(L, lc, &len);
    if (saved)
      memcpy(&final, saved, sizeof final);
  }
  lua_pushinteger(L, (lua_Integer)s->bytes_in);
  lua_pushinteger(L, (lua_Integer)s->bytes_out);
  lua_pushinteger(L, (lua_Integer)s->messages_in);
  lua_pushinteger(L, (lua_Integer)s->messages_out);
  if (s->closer == WSL_CLOSER_PEER)
    lua_pushliteral(L, "peer");
  else if (s->closer == WSL_CLOSER_LOCAL)
    lua_pushliteral(L, "local");
  else
    lua_pushnil(L);
  return 5;
}

static int conn_id(lua_State *L) {
  lua_pushinteger(L, check_conn(L, 1)->id);
  return 1;
}

/* conn:_own(owner [, budget]): the object whose _data method gets the
 * connection's message data (a Client); nil: none. Set by owners.set. With
 * budget (seconds, nil: none), the owner's handler calls are held to it
 * (conn:_budget(); dispatch.c reads it here, not from the owner: one field
 * less for every idle client). conn:_owned_at() says when. */
static int conn_own(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  if (!lua_isnone(L, 3))
    lc->budget = (float)luaL_optnumber(L, 3, 0);
  lc->owned_at = (double)uv_hrtime() / 1e9;
  lua_settop(L, 2);
  if (lc->conn)
    lua_setiuservalue(L, 1, 1);
  else if (lc->self_ref != LUA_NOREF) /* in the close handler */
    keep_closing_owner(L, lc);
  return 0;
}

/* Pushes v, or nil when it is not positive (never set); returns 1. */
static int push_positive(lua_State *L, lua_Number v) {
  if (v > 0)
    lua_pushnumber(L, v);
  else
    lua_pushnil(L);
  return 1;
}

/* conn:_budget() -> the budget conn:_own set, or nil. */
static int conn_budget(lua_State *L) {
  return push_positive(L, check_conn(L, 1)->budget);
}

lua_Number wsl_lua_conn_budget(const wsl_conn_t *c) {
  const lconn_t *lc = wsl_conn_data(c);
  return lc ? lc->budget : 0;
}

/* conn:_owned_at() -> when conn:_own last set the owner, in core.clock's
 * seconds; nil if it never did. */
static int conn_owned_at(lua_State *L) {
  return push_positive(L, check_conn(L, 1)->owned_at);
}

/* conn:_owner() -> what conn:_own set, or nil. */
static int conn_owner(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  if (lc->conn)
    lua_getiuservalue(L, 1, 1);
  else if (lc->self_ref == LUA_NOREF || /* in the close handler: */
           lua_rawgeti(L, LUA_REGISTRYINDEX, lc->self_ref) == LUA_TBOOLEAN)
    lua_pushnil(L);
  return 1;
}

static int conn_compressed(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  lua_pushboolean(L, lc->conn && wsl_conn_compressed(lc->conn));
  return 1;
}

static int conn_is_open(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  lua_pushboolean(L, lc->conn && wsl_conn_state(lc->conn) == WSL_CONN_OPEN);
  return 1;
}

static int conn_tostring(lua_State *L) {
  lconn_t *lc = check_conn(L, 1);
  if (lc->conn)
    lua_pushfstring(L, "wslua.Conn %I (%s)", lc->id,
                    wsl_conn_remote_addr(lc->conn));
  else
    lua_pushfstring(L, "wslua.Conn %I (closed)", lc->id);
  return 1;
}

/* A live connection anchors its handle (self_ref), so this runs in
 * lua_close, for connections still open then (a graceful stop that timed
 * out, a dialled connection the app kept): each is aborted and forgets the
 * handle, whose memory goes with the VM, so that its close callback, which
 * the host's last uv_run runs, finds no owner and calls nothing in the
 * closed VM. A closed connection's handle has nothing to do. */
static int conn_gc(lua_State *L) {
  lconn_t *lc = lua_touserdata(L, 1);
  wsl_conn_t *c = lc->conn;
  if (c) {
    lc->conn = NULL;
    wsl_conn_set_data(c, NULL);
    wsl_conn_abort(c, 0);
  }
  return 0;
}

/* core.broadcast(conns, data [, binary]): one message to every open
 * connection of the array, each distinct frame built once; returns how many
 * it was queued for. */
static int core_broadcast(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int binary = lua_toboolean(L, 3);
  wsl_broadcast_t *b =
      wsl_broadcast_new(binary ? WSL_OP_BINARY : WSL_OP_TEXT, data, len);
  if (b == NULL)
    return luaL_error(L, "out of memory");
  lua_Integer sent = 0, n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    lconn_t *lc = luaL_testudata(L, -1, CONN_MT);
    if (lc && lc->conn && wsl_conn_send_broadcast(lc->conn, b) == 0)
      sent++;
    lua_pop(L, 1);
  }
  wsl_broadcast_free(b);
  lua_pushinteger(L, sent);
  return 1;
}

/* Client TLS contexts, one per (CA file, insecure) pair, the first 8 kept
 * for the thread's life: contexts are costly to make and outbound
 * connections reuse few. Returns a reference the caller owns (the dial
 * takes its own), so a context beyond the 8 goes with its last
 * connection. */
static wsl_tls_ctx_t *client_tls(lua_State *L, const char *ca, int insecure) {
  static _Thread_local struct {
    char ca[256];
    int insecure;
    wsl_tls_ctx_t *ctx;
  } cache[8];
  static _Thread_local int used;
  for (int i = 0; i < used; i++)
    if (cache[i].insecure == insecure && strcmp(cache[i].ca, ca ? ca : "") == 0)
      return wsl_tls_ctx_ref(cache[i].ctx);
  char err[512];
  wsl_tls_ctx_t *ctx = wsl_tls_client_ctx_new(ca, insecure, err, sizeof err);
  if (ctx == NULL)
    luaL_error(L, "%s", err);
  if (used < 8) {
    snprintf(cache[used].ca, sizeof cache[used].ca, "%s", ca ? ca : "");
    cache[used].insecure = insecure;
    cache[used].ctx = wsl_tls_ctx_ref(ctx);
    used++;
  }
  return ctx;
}

/* core.connect(opts, handlers): opts host, port, path, host_header,
 * protocols, headers (raw "Name: value\r\n" lines), handshake_timeout and
 * the WebSocket options. */
static int core_connect(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  wsl_dial_t dial = {0};
  lua_getfield(L, 1, "host");
  dial.host = luaL_checkstring(L, -1);
  lua_getfield(L, 1, "port");
  dial.port = (int)luaL_checkinteger(L, -1);
  lua_getfield(L, 1, "path");
  dial.path = luaL_optstring(L, -1, "/");
  lua_getfield(L, 1, "host_header");
  dial.host_header = luaL_optstring(L, -1, dial.host);
  lua_getfield(L, 1, "protocols");
  dial.protocols = luaL_optstring(L, -1, NULL);
  lua_getfield(L, 1, "headers");
  dial.extra_headers = luaL_optstring(L, -1, NULL);
  dial.handshake_timeout_ms =
      (uint64_t)(wsl_lua_optfield(L, 1, "handshake_timeout", 10) * 1000);
  lua_getfield(L, 1, "server_name");
  dial.server_name = lua_tostring(L, -1);
  wsl_ws_options_t options;
  read_ws_options(L, 1, &options, WSL_ROLE_CLIENT);
  /* Last of what may raise an error: the context reference is ours. */
  if (lua_getfield(L, 1, "tls") == LUA_TTABLE) {
    lua_getfield(L, -1, "ca");
    lua_getfield(L, -2, "insecure");
    dial.tls = client_tls(L, lua_tostring(L, -2), lua_toboolean(L, -1));
  }
  wsl_conn_t *c =
      wsl_connect(wsl_vm()->loop, &dial, &options, &wsl_lua_conn_handler, NULL);
  wsl_tls_ctx_free(dial.tls);
  if (c == NULL)
    return luaL_error(L, "out of memory");
  wsl_lua_conn_attach(L, c, 2);
  lconn_t *lc = wsl_conn_data(c);
  lua_rawgeti(L, LUA_REGISTRYINDEX, lc->self_ref);
  return 1;
}

static const luaL_Reg conn_methods[] = {
    {"send", conn_send},
    {"ping", conn_ping},
    {"close", conn_close},
    {"abort", conn_abort},
    {"write_head", conn_write_head},
    {"write", conn_write},
    {"finish", conn_finish},
    {"upgrade", conn_upgrade},
    {"remote_addr", conn_remote_addr},
    {"buffered", conn_buffered},
    {"draining", conn_draining},
    {"dropped", conn_dropped},
    {"stats", conn_stats},
    {"id", conn_id},
    {"is_open", conn_is_open},
    {"compressed", conn_compressed},
    {"_own", conn_own},
    {"_owner", conn_owner},
    {"_owned_at", conn_owned_at},
    {"_budget", conn_budget},
    {NULL, NULL},
};

void wsl_lua_open_conn(lua_State *L) {
  if (luaL_newmetatable(L, CONN_MT)) {
    luaL_newlib(L, conn_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, conn_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, conn_gc);
    lua_setfield(L, -2, "__gc");
  }
  conn_mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  lua_pushcfunction(L, core_broadcast);
  lua_setfield(L, -2, "broadcast");
  lua_pushcfunction(L, core_connect);
  lua_setfield(L, -2, "connect");
  lua_pushliteral(L, "conn");
  lua_pushliteral(L, "binary");
  lua_pushliteral(L, "text");
  lua_pushcclosure(L, client_send, 3);
  lua_setfield(L, -2, "client_send");
}
