/* libFuzzer target: route matching. The router is Lua (lua/wslua/router.lua),
 * so this target embeds a lua_State and runs the real router, checking it
 * against a reference matcher written here in C: the plain backtracking
 * meaning of a route, where "{name}" stands for one or more characters
 * other than "/", earlier captures taking as many as they can. The
 * reference is instrumented C, so its coverage steers the fuzzer toward
 * route shapes that matter, which the Lua code (run by the uninstrumented
 * interpreter) could not. Checked: which route serves the request, every
 * captured (percent-decoded) parameter, the methods listed for a 405, and
 * that the router never raises. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fuzz.h"

#define MAX_ROUTES 6
#define MAX_ITEMS 80
#define MAX_CAPS 3  /* per route: the reference backtracks, keep it cheap */
#define MAX_PATH 64 /* request path bytes */
#define MAX_NAMES 8

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD"};

/* A compiled route: literal bytes, or a capture (CAP). */
#define CAP 256
typedef struct {
  const char *method;
  char path[MAX_ITEMS + 1];
  size_t path_len;
  int item[MAX_ITEMS];
  int nitems;
  char name[MAX_CAPS][MAX_ITEMS];
  int ncaps;
} route_t;

static int is_name_char(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || c == '_';
}

/* "{name}" with a name of [0-9A-Za-z_]+ is a capture; everything else is
 * literal, "{" included. Returns 0 if the route has too many captures. */
static int compile(route_t *r) {
  size_t i = 0;
  r->nitems = r->ncaps = 0;
  while (i < r->path_len) {
    size_t j = i + 1;
    if (r->path[i] == '{') {
      while (j < r->path_len && is_name_char((unsigned char)r->path[j]))
        j++;
      if (j > i + 1 && j < r->path_len && r->path[j] == '}') {
        if (r->ncaps == MAX_CAPS)
          return 0;
        memcpy(r->name[r->ncaps], r->path + i + 1, j - i - 1);
        r->name[r->ncaps][j - i - 1] = '\0';
        r->ncaps++;
        r->item[r->nitems++] = CAP;
        i = j + 1;
        continue;
      }
    }
    r->item[r->nitems++] = (unsigned char)r->path[i];
    i++;
  }
  return 1;
}

typedef struct {
  size_t off, len;
} span_t;

/* Backtracking match of items[k..] against s[at..n), anchored at the end. */
static int match_from(const route_t *r, int k, const char *s, size_t at,
                      size_t n, span_t *caps, int c) {
  if (k == r->nitems)
    return at == n;
  if (r->item[k] != CAP)
    return at < n && (unsigned char)s[at] == r->item[k] &&
           match_from(r, k + 1, s, at + 1, n, caps, c);
  size_t end = at;
  while (end < n && s[end] != '/')
    end++;
  for (size_t e = end; e > at; e--) { /* longest first */
    caps[c].off = at;
    caps[c].len = e - at;
    if (match_from(r, k + 1, s, e, n, caps, c + 1))
      return 1;
  }
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* %XX -> the byte; anything else as is. Returns the length. */
static size_t percent_decode(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
        hexval(s[i + 2]) >= 0) {
      out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  return o;
}

static lua_State *L;
static int router_ref;

static int on_route(lua_State *Ls) {
  lua_pushvalue(Ls, lua_upvalueindex(1));
  lua_setfield(Ls, 1, "matched");
  return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  L = luaL_newstate();
  FUZZ_CHECK(L != NULL);
  luaL_openlibs(L);
  if (luaL_dofile(L, WSLUA_LUA_DIR "/wslua/router.lua") != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    abort();
  }
  router_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in_t in = {data, size};
  route_t routes[MAX_ROUTES];
  int nroutes = 1 + fuzz_byte(&in) % MAX_ROUTES;
  const char *req_method;
  char path[MAX_PATH];
  size_t path_len = 0;
  span_t caps[MAX_CAPS];
  int want = -1; /* the route that serves, or -1 */
  const char *allowed[2 * MAX_ROUTES];
  int nallowed = 0;

  for (int i = 0; i < nroutes; i++) {
    route_t *r = &routes[i];
    r->method = methods[fuzz_byte(&in) % 4];
    r->path[0] = '/';
    r->path_len = 1;
    while (in.left > 0 && *in.p != '\n' && r->path_len < MAX_ITEMS)
      r->path[r->path_len++] = (char)fuzz_byte(&in);
    fuzz_byte(&in); /* the '\n' */
    r->path[r->path_len] = '\0';
    if (!compile(r))
      return 0;
  }
  req_method = methods[fuzz_byte(&in) % 5];
  while (in.left > 0 && path_len < MAX_PATH)
    path[path_len++] = (char)fuzz_byte(&in);

  /* The reference: the first route whose path matches and whose method
   * fits (GET routes answer HEAD) serves; routes before it that match
   * only the path name the methods for a 405. */
  for (int i = 0; i < nroutes && want < 0; i++) {
    const route_t *r = &routes[i];
    if (!match_from(r, 0, path, 0, path_len, caps, 0))
      continue;
    if (strcmp(r->method, req_method) == 0 ||
        (strcmp(r->method, "GET") == 0 && strcmp(req_method, "HEAD") == 0)) {
      want = i;
      break;
    }
    allowed[nallowed++] = r->method;
    if (strcmp(r->method, "GET") == 0)
      allowed[nallowed++] = "HEAD";
  }

  /* The router. */
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, router_ref);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  int router = lua_gettop(L);
  for (int i = 0; i < nroutes; i++) {
    lua_getfield(L, router, "route");
    lua_pushvalue(L, router);
    lua_pushstring(L, routes[i].method);
    lua_pushlstring(L, routes[i].path, routes[i].path_len);
    lua_pushinteger(L, i);
    lua_pushcclosure(L, on_route, 1);
    if (lua_pcall(L, 4, 0, 0) != LUA_OK) {
      fprintf(stderr, "route: %s\n", lua_tostring(L, -1));
      abort();
    }
  }
  lua_createtable(L, 0, 4); /* req */
  int req = lua_gettop(L);
  lua_pushstring(L, req_method);
  lua_setfield(L, req, "method");
  lua_pushlstring(L, path, path_len);
  lua_setfield(L, req, "path");
  lua_newtable(L);
  lua_setfield(L, req, "params");
  lua_getfield(L, router, "_serve");
  lua_pushvalue(L, router);
  lua_pushvalue(L, req);
  lua_newtable(L); /* res */
  if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
    fprintf(stderr, "_serve: %s\n", lua_tostring(L, -1));
    abort();
  }
  FUZZ_CHECK(lua_toboolean(L, -1) == (want >= 0));
  lua_pop(L, 1);

  lua_getfield(L, req, "matched");
  FUZZ_CHECK(want >= 0 ? lua_tointeger(L, -1) == want && lua_isinteger(L, -1)
                       : lua_isnil(L, -1));
  lua_pop(L, 1);

  /* Parameters: each name holds its (last) capture, decoded; no others. */
  lua_getfield(L, req, "params");
  int params = lua_gettop(L);
  int nnames = 0;
  if (want >= 0) {
    const route_t *r = &routes[want];
    FUZZ_CHECK(match_from(r, 0, path, 0, path_len, caps, 0));
    for (int c = 0; c < r->ncaps; c++) {
      char dec[MAX_PATH];
      size_t len;
      int later = 0;
      for (int d = c + 1; d < r->ncaps; d++)
        later |= strcmp(r->name[c], r->name[d]) == 0;
      if (later)
        continue; /* a repeated name keeps its last capture */
      nnames++;
      len = percent_decode(path + caps[c].off, caps[c].len, dec);
      lua_getfield(L, params, r->name[c]);
      size_t got_len = 0;
      const char *got = lua_tolstring(L, -1, &got_len);
      if (got == NULL || got_len != len || memcmp(got, dec, len) != 0) {
        fprintf(stderr, "param %s: want '%.*s', got '%.*s'\n", r->name[c],
                (int)len, dec, (int)got_len, got ? got : "(nil)");
        abort();
      }
      lua_pop(L, 1);
    }
  }
  lua_pushnil(L);
  while (lua_next(L, params) != 0) {
    nnames--;
    lua_pop(L, 1);
  }
  FUZZ_CHECK(nnames == 0);
  lua_pop(L, 1);

  /* The methods a 405 would list. */
  lua_getfield(L, req, "allowed");
  if (want >= 0 || nallowed == 0) {
    FUZZ_CHECK(lua_isnil(L, -1));
  } else {
    FUZZ_CHECK(lua_istable(L, -1) && (int)lua_rawlen(L, -1) == nallowed);
    for (int i = 0; i < nallowed; i++) {
      lua_rawgeti(L, -1, i + 1);
      FUZZ_CHECK(lua_isstring(L, -1) &&
                 strcmp(lua_tostring(L, -1), allowed[i]) == 0);
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
