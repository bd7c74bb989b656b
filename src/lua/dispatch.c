/* The per-message path, driven from C: every message a client receives
 * runs its endpoint's on_data in a coroutine, and this is where most of a
 * server's time goes. Done in Lua (lua/wslua/scheduler.lua has the same
 * logic for everything else) it took about three times as long: here the
 * message table is built, an idle coroutine taken from a pool and resumed
 * with the handler, and given back when the handler returns, without a Lua
 * function call in between. The whole messages of one read (the core hands
 * them over together) run one after another in one resume, each with a
 * budget of its own; a handler that waits keeps its coroutine, and the
 * next message gets another. Only the rare outcomes go back to Lua: a
 * handler that waits (it is parked) or fails (scheduler settle). */
#include "lua/dispatch.h"

#include "lua/budget.h"
#include "lua/conn.h"
#include "lua/runtime.h"
#include "proto/frame.h"

/* Coroutines kept idle for the next call. */
#define POOL_MAX 64

/* What a pooled coroutine yields when its call has returned (core.IDLE). */
static const char idle_tag;

/* The mark of a metatable of endpoint clients (core.MEMBER, a key set to
 * true in each kind, lua/wslua/endpoint.lua): such a kind holds the
 * endpoint its clients belong to. A light userdata, which scripts cannot
 * make. */
static const char member_tag;

/* Idle coroutines, each waiting in its body's yield for the next call:
 * table[1..n] (a slot above n may still name a coroutine taken from it,
 * until it is filled again: at most POOL_MAX of them). */
typedef struct {
  int table;
  int n;
} pool_t;

typedef struct {
  lua_State *L;   /* the VM these references belong to; NULL: not set up */
  int worker;     /* the body of a pooled coroutine (scheduler.lua) */
  int settle;     /* settle(co, budget, on_error, ok, ...) for the rest */
  int message;    /* the metatable of messages */
  pool_t workers; /* running worker: calls of any function */
  pool_t runners; /* running run_body: runs of whole messages */
} dispatch_t;

/* One VM per thread. */
static _Thread_local dispatch_t d;

/* Whole messages being run (wsl_dispatch_messages), of one connection or
 * of many (a loop turn's): the innermost on top (a handler may feed
 * another connection's bytes). */
typedef struct run {
  const wsl_message_t *msgs;
  size_t n, next; /* msgs[next] is the next one to run */
  lua_State *co;  /* the coroutine that takes them now, or NULL */
  /* The connection whose owner the coroutine has set up (fn, handler,
   * client on its stack), or NULL; its client, and how its handler takes
   * messages (ON_DATA or ON_MESSAGE). */
  wsl_conn_t *c;
  const void *client;
  int kind;
  /* The coroutine's stack holds (fn, handler, client) of the last owner it
   * set up: a client of the same kind takes the same fn and handler. */
  int held;
  lua_Number budget; /* the resume's: a connection with another ends it */
  int general;       /* msgs[next]'s owner is not an endpoint's client */
  struct run *outer;
} run_t;

static _Thread_local run_t *running;

/* Resumes a coroutine from the pool, or a new one running body (a registry
 * reference), with the nvalues values on top of L's stack, under budget
 * (seconds, 0: none); on_error (a stack index; 0: the owner of the run's
 * connection) is what scheduler settle calls if it fails. Pops the
 * values. A coroutine that yields IDLE goes
 * back to the pool; one that waits or fails goes to settle. With run, the
 * coroutine takes the run's messages while it is being resumed. */
static void call(lua_State *L, lua_Number budget, int on_error, int nvalues,
                 pool_t *pool, int body, run_t *run) {
  int base = lua_gettop(L) - nvalues + 1;
  lua_State *co;
  lua_rawgeti(L, LUA_REGISTRYINDEX, pool->table);
  if (pool->n > 0) {
    lua_rawgeti(L, -1, pool->n--);
    co = lua_tothread(L, -1);
  } else {
    co = lua_newthread(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, body);
    lua_xmove(L, co, 1);
  }
  /* The pool and the coroutine go below the values: the coroutine stays on
   * L's stack while it runs (nothing else may hold it). */
  lua_rotate(L, base, 2);
  luaL_checkstack(co, nvalues, "handler arguments");
  int nres;
  if (run)
    run->co = co;
  int status = wsl_budget_resume(L, co, budget, nvalues, &nres);
  if (run)
    run->co = NULL;
  if (status == LUA_YIELD && nres == 1 && lua_touserdata(co, -1) == &idle_tag) {
    lua_pop(co, 1);
    if (pool->n < POOL_MAX)
      lua_rawseti(L, base, ++pool->n);
    lua_settop(L, base - 1);
    return;
  }
  int ok = status == LUA_OK || status == LUA_YIELD;
  int moved = ok ? nres : 1; /* what it yielded, or the error */
  luaL_checkstack(L, moved + 5, "handler results");
  lua_rawgeti(L, LUA_REGISTRYINDEX, d.settle);
  lua_insert(L, -2);
  if (budget > 0)
    lua_pushnumber(L, budget);
  else
    lua_pushnil(L);
  if (on_error)
    lua_pushvalue(L, on_error);
  else if (!run->c || !wsl_lua_conn_push_owner(L, run->c))
    lua_pushnil(L);
  lua_pushboolean(L, ok);
  lua_xmove(co, L, moved);
  /* Protected: a run's resumes are not inside a pcall (run_resumes). */
  wsl_vm_call(L, 4 + moved, "handler");
  lua_settop(L, base - 1);
}

/* core.call(budget, on_error, fn, ...): fn(...) in a pooled coroutine (see
 * scheduler.call). */
static int dispatch_call(lua_State *L) {
  lua_Number budget = luaL_optnumber(L, 1, 0);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  call(L, budget, 2, lua_gettop(L) - 2, &d.workers, d.worker, NULL);
  return 0;
}

/* The field names deliver looks up, as its upvalues: a lookup by C string
 * goes through Lua's string cache and a strcmp each time. */
enum {
  K_ENDPOINT = 1,
  K_HANDLER,
  K_ON_DATA,
  K_ON_MESSAGE,
  K_BINARY,
  K_BODY,
  K_DATA,
  K_COUNT /* one past the last */
};
static const char *const keys[] = {NULL,      "endpoint",   "handler",
                                   "on_data", "on_message", "binary",
                                   "body",    "_data"};
#define KEY(k) lua_upvalueindex(k)

/* Pushes t[key] (t at idx, metamethods honoured); returns its type. */
static int get(lua_State *L, int idx, int key) {
  lua_pushvalue(L, KEY(key));
  return lua_gettable(L, idx);
}

/* Pushes a message that arrived whole: {binary =, body =}, a Message (see
 * Message.whole). */
static void push_message(lua_State *L, int binary, const char *body,
                         size_t len) {
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, KEY(K_BINARY));
  lua_pushboolean(L, binary);
  lua_rawset(L, -3);
  lua_pushvalue(L, KEY(K_BODY));
  lua_pushlstring(L, body, len);
  lua_rawset(L, -3);
  lua_rawgeti(L, LUA_REGISTRYINDEX, d.message);
  lua_setmetatable(L, -2);
}

/* Whether the table at idx is a kind of endpoint clients (member_tag). */
static int is_kind(lua_State *L, int idx) {
  int marked = lua_rawgetp(L, idx, &member_tag) == LUA_TBOOLEAN;
  lua_pop(L, 1);
  return marked;
}

/* What an endpoint's handler table takes messages with. */
enum { NOT_ENDPOINT, NO_HANDLER, ON_DATA, ON_MESSAGE };

/* When the owner at idx is an endpoint's client whose handler is a table:
 * pushes the function that takes its messages (nil: none) and the handler,
 * and returns which function it is (NO_HANDLER, ON_DATA, ON_MESSAGE). For
 * any other owner, NOT_ENDPOINT with nothing pushed. */
static int endpoint_handler(lua_State *L, int owner) {
  if (d.L == NULL || d.L != wsl_vm()->L || !lua_getmetatable(L, owner))
    return 0;
  int top = lua_gettop(L) - 1;
  if (!is_kind(L, top + 1)) {
    lua_settop(L, top);
    return 0;
  }
  lua_pushvalue(L, KEY(K_ENDPOINT));
  lua_rawget(L, top + 1);
  lua_replace(L, top + 1);
  if (lua_type(L, top + 1) != LUA_TTABLE ||
      get(L, top + 1, K_HANDLER) != LUA_TTABLE) {
    lua_settop(L, top);
    return 0;
  }
  int kind = ON_MESSAGE;
  if (get(L, top + 2, K_ON_MESSAGE) == LUA_TNIL) {
    lua_pop(L, 1);
    kind = get(L, top + 2, K_ON_DATA) == LUA_TNIL ? NO_HANDLER : ON_DATA;
  }
  lua_replace(L, top + 1); /* the function, handler */
  return kind;
}

/* Pushes what the handler function of this kind takes after (handler,
 * client): a Message, or the body and whether it is binary. Returns how
 * many. */
static int push_arguments(lua_State *L, int kind, int binary, const char *body,
                          size_t len) {
  if (kind == ON_MESSAGE) {
    lua_pushlstring(L, body, len);
    lua_pushboolean(L, binary);
    return 2;
  }
  push_message(L, binary, body, len);
  return 1;
}

/* A whole message (body at 2, binary at 3) for an endpoint's client at
 * owner whose handler is a table: on_message(handler, client, body,
 * binary) or on_data(handler, client, msg) in a pooled coroutine, under
 * budget. Returns 0 when the owner is something else (the general path
 * takes it). */
static int whole_message(lua_State *L, int owner, lua_Number budget) {
  int top = lua_gettop(L);
  int kind = endpoint_handler(L, owner);
  if (kind == NOT_ENDPOINT)
    return 0;
  if (kind == NO_HANDLER) {
    lua_settop(L, top);
    return 1;
  }
  lua_pushvalue(L, owner);
  size_t len;
  const char *body = lua_tolstring(L, 2, &len);
  int n = push_arguments(L, kind, lua_toboolean(L, 3), body, len);
  call(L, budget, owner, 3 + n, &d.workers, d.worker, NULL);
  lua_settop(L, top);
  return 1;
}

/* deliver(owner, piece, binary, first, last, budget): the core's message
 * data for the connection's owner (conn.c), with the connection's handler
 * budget. */
static int deliver(lua_State *L) {
  lua_Number budget = lua_tonumber(L, 6);
  lua_settop(L, 5);
  if (lua_toboolean(L, 4) && lua_toboolean(L, 5) && whole_message(L, 1, budget))
    return 0;
  if (get(L, 1, K_DATA) != LUA_TFUNCTION)
    return 0;
  lua_insert(L, 1);
  lua_call(L, 5, 0);
  return 0;
}

static int run_body(lua_State *co, int status, lua_KContext ctx);

static int yield_idle(lua_State *co) {
  lua_settop(co, 0);
  lua_pushlightuserdata(co, (void *)&idle_tag);
  return lua_yieldk(co, 1, 0, run_body);
}

/* Whether the owner on top of co's stack is of the same kind (has the
 * same metatable) as the client at 3. A run looks an endpoint's handler up
 * once for the clients of a kind that come one after another: a handler
 * replaced in the middle of a run serves from the next run on. */
static int same_kind(lua_State *co) {
  if (!lua_getmetatable(co, 3))
    return 0;
  if (!lua_getmetatable(co, -2)) {
    lua_pop(co, 1);
    return 0;
  }
  int same = lua_rawequal(co, -1, -2);
  lua_pop(co, 2);
  return same;
}

/* Sets the run up for msgs[next] in co: skips the messages of closed
 * connections and of owners without a handler for them, and when the
 * connection changes, leaves (fn, handler, client) of its owner on co's
 * stack. Returns 0 when this resume has nothing more to run: the end, an
 * owner that is not an endpoint's client (marked general: conn.c delivers
 * it), or a connection under another budget (the next resume takes it).
 * Here, inside the coroutine, so that the lookups (which may call
 * metamethods) are protected by the resume. */
static int next_message(lua_State *co, run_t *r) {
  while (r->next < r->n) {
    wsl_conn_t *c = r->msgs[r->next].conn;
    if (wsl_conn_state(c) != WSL_CONN_OPEN) {
      r->next++;
      continue;
    }
    if (c == r->c)
      return 1;
    if (wsl_lua_conn_budget(c) != r->budget)
      return 0;
    r->c = NULL;
    if (!wsl_lua_conn_push_owner(co, c)) { /* nobody takes its messages */
      r->next++;
      continue;
    }
    if (r->held && same_kind(co)) {
      lua_replace(co, 3);
      r->c = c;
      r->client = lua_topointer(co, 3);
      return 1;
    }
    r->held = 0;
    lua_insert(co, 1);
    lua_settop(co, 1);
    int kind = endpoint_handler(co, 1);
    if (kind == NOT_ENDPOINT) {
      r->general = 1;
      return 0;
    }
    if (kind == NO_HANDLER) {
      while (r->next < r->n && r->msgs[r->next].conn == c)
        r->next++;
      continue;
    }
    lua_rotate(co, 1, -1); /* fn, handler, client */
    r->c = c;
    r->client = lua_topointer(co, 3);
    r->kind = kind;
    r->held = 1;
    return 1;
  }
  return 0;
}

/* The body of a run's coroutine: the owner's function for each message of
 * the run while the coroutine is the one the run resumes; then it yields
 * IDLE and waits, in the pool, for the next run. All in C, with
 * continuations: a Lua body between the runs cost about as much as a
 * message. A handler that waits leaves the rest to another coroutine: when
 * it is resumed later and returns, the run has moved on (or ended), and
 * this yields IDLE to whoever resumed it (the scheduler then forgets it). */
static int run_body(lua_State *co, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  for (;;) {
    run_t *r = running;
    if (r == NULL || r->co != co || !next_message(co, r))
      return yield_idle(co);
    const wsl_message_t *m = &r->msgs[r->next++];
    wsl_budget_restart();
    /* Each call leaves the stack as it found it: fn, handler, client. */
    lua_pushvalue(co, 1);
    lua_pushvalue(co, 2);
    lua_pushvalue(co, 3);
    int n = push_arguments(co, r->kind, m->opcode == WSL_OP_BINARY, m->data,
                           m->len);
    lua_callk(co, 2 + n, 0, 0, run_body);
  }
}

static int run_start(lua_State *co) {
  return run_body(co, LUA_OK, 0);
}

/* deliver, run_messages and run_start, as closures over the keys, made once
 * per VM. */
static _Thread_local lua_State *closures_vm;
static _Thread_local int deliver_ref = LUA_NOREF, run_ref = LUA_NOREF,
                         run_start_ref = LUA_NOREF;

/* Skips the messages of closed connections; returns whether the run has
 * more for a resume to take. */
static int run_pending(run_t *r) {
  while (r->next < r->n &&
         wsl_conn_state(r->msgs[r->next].conn) != WSL_CONN_OPEN)
    r->next++;
  return r->next < r->n && !r->general;
}

/* Whether the owner of c is an endpoint's client: a run takes its
 * messages. Checked before a resume, which would find out only after. */
static int endpoint_owner(lua_State *L, wsl_conn_t *c) {
  if (!wsl_lua_conn_push_owner(L, c))
    return 0;
  int member = 0;
  if (lua_getmetatable(L, -1)) {
    member = is_kind(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return member;
}

/* Resumes coroutines for the run, one after another, until it is over or
 * reaches an owner that takes its messages one by one: one resume a
 * budget unless a handler waits. Unprotected, it stops rather than make a
 * new coroutine (lua_newthread may raise an error). */
static void run_resumes(lua_State *L, run_t *r, int protected) {
  while (run_pending(r) && (protected || d.runners.n > 0)) {
    wsl_conn_t *c = r->msgs[r->next].conn;
    if (!endpoint_owner(L, c)) {
      r->general = 1;
      return;
    }
    r->c = NULL;
    r->held = 0; /* a coroutine from the pool starts with an empty stack */
    r->budget = wsl_lua_conn_budget(c);
    call(L, r->budget, 0, 0, &d.runners, run_start_ref, r);
  }
}

/* run_messages(run): run_resumes, protected. */
static int run_messages(lua_State *L) {
  run_resumes(L, lua_touserdata(L, 1), 1);
  return 0;
}

static void push_keys(lua_State *L) {
  for (int k = K_ENDPOINT; k < K_COUNT; k++)
    lua_pushstring(L, keys[k]);
}

static void make_closures(lua_State *L) {
  if (closures_vm == wsl_vm()->L)
    return;
  closures_vm = wsl_vm()->L;
  push_keys(L);
  lua_pushcclosure(L, deliver, K_COUNT - 1);
  deliver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, run_messages);
  run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  push_keys(L);
  lua_pushcclosure(L, run_start, K_COUNT - 1);
  run_start_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void wsl_dispatch_push(lua_State *L) {
  make_closures(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, deliver_ref);
}

size_t wsl_dispatch_messages(lua_State *L, const wsl_message_t *msgs,
                             size_t n) {
  if (d.L != L) /* no endpoint in this VM */
    return 0;
  run_t r = {.msgs = msgs, .n = n, .outer = running};
  make_closures(L);
  running = &r;
  /* The usual case: pooled coroutines take the run, and nothing here can
   * raise an error (the resume protects what runs in it), so there is no
   * pcall around it, which cost as much as a tenth of a message. A run
   * that needs a new coroutine goes on inside one. */
  run_resumes(L, &r, 0);
  if (run_pending(&r)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);
    lua_pushlightuserdata(L, &r);
    wsl_vm_call(L, 1, "data handler");
  }
  running = r.outer;
  return r.next;
}

wsl_conn_t *wsl_dispatch_client_conn(lua_State *L, int idx) {
  run_t *r = running;
  return r && r->c && r->client == lua_topointer(L, idx) ? r->c : NULL;
}

/* core.dispatch_init{worker=, settle=, message=}: what the C path needs
 * from the scheduler and the messages, given once per VM. */
static int dispatch_init(lua_State *L) {
  static const char *const fields[] = {"worker", "settle", "message"};
  int *refs[] = {&d.worker, &d.settle, &d.message};
  luaL_checktype(L, 1, LUA_TTABLE);
  if (d.L != wsl_vm()->L) {
    d.L = wsl_vm()->L;
    lua_newtable(L);
    d.workers = (pool_t){luaL_ref(L, LUA_REGISTRYINDEX), 0};
    lua_newtable(L);
    d.runners = (pool_t){luaL_ref(L, LUA_REGISTRYINDEX), 0};
    for (int i = 0; i < 3; i++)
      *refs[i] = LUA_NOREF;
  }
  for (int i = 0; i < 3; i++) {
    if (lua_getfield(L, 1, fields[i]) == LUA_TNIL) {
      lua_pop(L, 1);
      continue;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, *refs[i]);
    *refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

static const luaL_Reg dispatch_funcs[] = {
    {"call", dispatch_call},
    {"dispatch_init", dispatch_init},
    {NULL, NULL},
};

void wsl_lua_open_dispatch(lua_State *L) {
  luaL_setfuncs(L, dispatch_funcs, 0);
  lua_pushlightuserdata(L, (void *)&idle_tag);
  lua_setfield(L, -2, "IDLE");
  lua_pushlightuserdata(L, (void *)&member_tag);
  lua_setfield(L, -2, "MEMBER");
}
