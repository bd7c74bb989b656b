-- Route matching, without a server: which route serves, the captures, the
-- 405 methods; and time linear in the path, whatever the route (found while
-- writing tests/fuzz/fuzz_router.c: a route such as "/{a}-{b}-{c}" made
-- Lua's pattern matcher backtrack for seconds on a long path, in C, where
-- no handler budget can stop it).
local Router = require "wslua.router"

-- Serves a request for path; returns the route that served (its path),
-- the params and the methods a 405 would name.
local function serve(router, method, path)
  local req = { method = method, path = path, params = {} }
  local served
  for _, r in ipairs(router.routes) do
    r.handler = function(q)
      served = r.path
      q.served = true
    end
  end
  router:_serve(req, {})
  return served, req.params, req.allowed
end

local function router_of(...)
  local r = Router.new()
  for _, p in ipairs { ... } do
    r:get(p, function() end)
  end
  return r
end

describe("route matching", function()
  it("matches segment by segment; a capture takes one or more characters", function()
    local r = router_of("/", "/a/{x}", "/a/{x}/b", "/lit/x.y")
    assert.equal("/", (serve(r, "GET", "/")))
    assert.equal("/a/{x}", (serve(r, "GET", "/a/1")))
    assert.same({ x = "1" }, select(2, serve(r, "GET", "/a/1/b")))
    assert.is_nil((serve(r, "GET", "/a/")))
    assert.is_nil((serve(r, "GET", "/a/1/")))
    assert.is_nil((serve(r, "GET", "/lit/xzy"))) -- "." is not a pattern
    assert.equal("/lit/x.y", (serve(r, "GET", "/lit/x.y")))
    assert.is_nil((serve(r, "GET", "")))
  end)

  it("tries routes in order, exact paths and captures alike", function()
    local r = router_of("/a/{x}", "/a/b", "/c", "/c/")
    assert.equal("/a/{x}", (serve(r, "GET", "/a/b")))
    assert.equal("/c", (serve(r, "GET", "/c")))
    assert.equal("/c/", (serve(r, "GET", "/c/")))
    assert.is_nil((serve(r, "GET", "/c//")))
    r = router_of("/a/b", "/a/{x}")
    assert.equal("/a/b", (serve(r, "GET", "/a/b")))
    assert.same({ x = "c" }, select(2, serve(r, "GET", "/a/c")))
  end)

  it("gives earlier captures of a segment as much as they can take", function()
    local r = router_of("/f/{name}.{ext}", "/{a}-{b}-{c}", "/p/{p}{q}")
    assert.same({ name = "a.b", ext = "c" }, select(2, serve(r, "GET", "/f/a.b.c")))
    assert.is_nil((serve(r, "GET", "/f/abc")))
    assert.same({ a = "1-2", b = "3", c = "4" }, select(2, serve(r, "GET", "/1-2-3-4")))
    assert.same({ p = "ab", q = "c" }, select(2, serve(r, "GET", "/p/abc")))
    assert.is_nil((serve(r, "GET", "/p/a")))
  end)

  it("percent-decodes captures and treats {bad names} as text", function()
    local r = router_of("/u/{name}", "/k/{a-b}")
    assert.same({ name = "a b%zz" }, select(2, serve(r, "GET", "/u/a%20b%zz")))
    assert.equal("/k/{a-b}", (serve(r, "GET", "/k/{a-b}")))
  end)

  it("names the methods of routes that match only by path", function()
    local r = Router.new():post("/b", function() end):get("/b", function() end)
    local served, _, allowed = serve(r, "DELETE", "/b")
    assert.is_nil(served)
    assert.same({ "POST", "GET", "HEAD" }, allowed)
    assert.equal("/b", (serve(r, "HEAD", "/b")))
  end)

  it("takes time linear in the path, whatever the route", function()
    local r = router_of("/{a}-{b}-{c}", "/{a}{b}{c}{d}", "/x/{a}.{b}.{c}.{d}")
    local long = "/" .. ("-"):rep(8000)
    local started = os.clock()
    assert.is_nil((serve(r, "GET", long .. "/")))
    assert.is_nil((serve(r, "GET", "/x/" .. ("."):rep(8000) .. "/")))
    assert.is_truthy((serve(r, "GET", long)))
    assert.is_truthy((serve(r, "GET", "/x/" .. ("."):rep(8000))))
    assert.is_true(os.clock() - started < 0.5)
  end)
end)
