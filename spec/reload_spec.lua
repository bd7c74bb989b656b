-- Hot reload against the real binary: `wslua --watch` and SIGHUP on a
-- temporary app (app.lua requiring handler.lua beside it) while a client
-- stays connected: the next message on the same connection runs the new
-- code, client.data survives, broken edits change nothing, removed routes
-- close with 1001, and 200 reloads leave memory flat.
local wslua = require "wslua"
local h = require "helpers"
local http = require "helpers.http"

local quote = h.quote

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- How editors that keep a backup save: a new file, renamed over the old.
local function write_by_rename(path, text)
  write(path .. ".tmp~", text)
  assert(os.rename(path .. ".tmp~", path))
end

local function make_dir(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. quote(dir)))
  for name, text in pairs(files) do
    write(dir .. "/" .. name, text)
  end
  return dir
end

local function remove_dir(dir)
  if dir and dir:match("^/tmp/") then
    os.execute("rm -rf " .. quote(dir))
  end
end

-- app.lua: the echo endpoint from handler.lua at /ws, GET /mem (the Lua
-- heap in KiB after a full collection) and extra routes.
local function app(extra, host_options)
  return [[
local wslua = require "wslua"
local handler = require "handler"
local router = wslua.router()
  :get("/ws", wslua.websocket(handler))
  :get("/mem", function(req, res)
    collectgarbage("collect")
    collectgarbage("collect")
    res:send(string.format("%.1f", collectgarbage("count")))
  end)
]] .. (extra or "") .. [[
return wslua.host { listen = "127.0.0.1:1", ]] .. (host_options or "") .. [[ router }
]]
end

-- handler.lua: echoes each message through transform with a count kept in
-- client.data; more is added before the return (say, an on_reload).
local function handler(transform, more)
  return [[
local H = {}
function H:on_start(endpoint) self.endpoint = endpoint end
function H:on_data(client, msg)
  client.data.n = (client.data.n or 0) + 1
  client:send(]] .. transform .. [[(msg:read()) .. " " .. client.data.n)
end
]] .. (more or "") .. [[
return H
]]
end

local BROKEN_HANDLER = "local H = {}\nfunction H:on_data(client, msg)\n  client:send(msg:read() .. )\nend\nreturn H\n"

local function count(s, plain)
  local n, i = 0, 1
  while true do
    local j = s:find(plain, i, true)
    if not j then
      return n
    end
    n, i = n + 1, j + #plain
  end
end

-- Waits (at most 5 s) until the log holds n lines with plain text in them.
local function wait_log(proc, plain, n)
  local deadline = os.time() + 5
  while count(proc:log(), plain) < n and os.time() <= deadline do
    wslua.sleep(0.01)
  end
  assert(count(proc:log(), plain) >= n,
    "waited for " .. n .. " x '" .. plain .. "' in the log:\n" .. proc:log())
end

local function start(files, args)
  local dir = make_dir(files)
  local proc = h.spawn(quote(dir .. "/app.lua"), "--log-format text " .. (args or ""))
  assert(proc:alive(), proc:log())
  if args and args:find("--watch", 1, true) then
    h.run(function()
      wait_log(proc, "watching", 1)
    end)
  end
  return dir, proc
end

local function connect(proc, path)
  return assert(wslua.connect("ws://127.0.0.1:" .. proc.port .. (path or "/ws")))
end

local function echo(client, text)
  assert(client:send(text))
  return (client:receive())
end

local function get(proc, path)
  return http.get({ port = function() return proc.port end }, path)
end

describe("hot reload", function()
  local dir, proc
  after_each(function()
    if proc then
      proc:stop()
    end
    remove_dir(dir)
    dir, proc = nil, nil
  end)

  it("with --watch: an edited module serves the next message on the same connection, "
    .. "client.data and the endpoint object intact", function()
    dir, proc = start({ ["app.lua"] = app(), ["handler.lua"] = handler("tostring") }, "--watch")
    h.run(function()
      local c = connect(proc)
      assert.equal("hi 1", echo(c, "hi"))
      assert.equal("there 2", echo(c, "there"))
      write(dir .. "/handler.lua", handler("string.upper", [[
function H:on_reload(endpoint)
  self.endpoint = endpoint
  endpoint:send(nil, "reloaded with " .. endpoint.count .. " client(s)")
end
]]))
      wait_log(proc, "reloaded app.lua", 1)
      -- on_reload got the old endpoint object, its client still in it
      assert.equal("reloaded with 1 client(s)", c:receive())
      assert.equal("YO 3", echo(c, "yo"))
      assert.is_true(c:is_open())
      c:close()
    end)
    assert.matches("handler%.lua changed", proc:log())
    assert.matches("replaced GET /mem, GET /ws", proc:log())
  end)

  it("keeps a client's topics: the endpoint's publish reaches it after a reload", function()
    local function topical(version)
      return handler("tostring", [[
function H:on_open(client) client:subscribe("news") end
function H:on_reload(endpoint)
  endpoint:publish("news", "]] .. version .. [[ published to " .. endpoint:subscribers("news"))
end
]])
    end
    dir, proc = start({ ["app.lua"] = app(), ["handler.lua"] = topical("v1") })
    h.run(function()
      local c = connect(proc)
      assert.equal("a 1", echo(c, "a")) -- on_open has run
      write(dir .. "/handler.lua", topical("v2"))
      proc:signal("HUP")
      wait_log(proc, "reloaded app.lua", 1)
      assert.equal("v2 published to 1", c:receive())
      c:close()
    end)
  end)

  it("a broken edit keeps the old code and logs file and line; the next good save "
    .. "reloads", function()
    dir, proc = start({ ["app.lua"] = app(), ["handler.lua"] = handler("tostring") }, "--watch")
    h.run(function()
      local c = connect(proc)
      assert.equal("a 1", echo(c, "a"))
      -- a syntax error in the module
      write(dir .. "/handler.lua", BROKEN_HANDLER)
      wait_log(proc, "reload failed", 1)
      assert.matches("handler%.lua:3:", proc:log())
      assert.equal("b 2", echo(c, "b"))
      -- the module fixed, the app raising while it loads
      write(dir .. "/handler.lua", handler("string.upper"))
      write(dir .. "/app.lua", "local wslua = require 'wslua'\nlocal handler = require 'handler'\n"
        .. "error('no app today')\n")
      wait_log(proc, "reload failed", 2)
      assert.matches("app%.lua:3: no app today", proc:log())
      assert.equal("c 3", echo(c, "c"))
      -- no host returned
      write(dir .. "/app.lua", "local x = 1\n")
      wait_log(proc, "reload failed", 3)
      assert.matches("returned nothing", proc:log())
      assert.equal("d 4", echo(c, "d"))
      assert.equal(0, count(proc:log(), "reloaded app.lua"))
      -- a good save
      write(dir .. "/app.lua", app())
      wait_log(proc, "reloaded app.lua", 1)
      assert.equal("E 5", echo(c, "e"))
      c:close()
    end)
  end)

  it("picks up saves that write a new file and rename it over the old", function()
    dir, proc = start({ ["app.lua"] = app(), ["handler.lua"] = handler("tostring") }, "--watch")
    h.run(function()
      local c = connect(proc)
      assert.equal("x 1", echo(c, "x"))
      write_by_rename(dir .. "/handler.lua", handler("string.upper"))
      wait_log(proc, "reloaded app.lua", 1)
      assert.equal("Y 2", echo(c, "y"))
      -- the watch survives the rename: the next one is seen too
      write_by_rename(dir .. "/handler.lua", handler("string.reverse"))
      wait_log(proc, "reloaded app.lua", 2)
      assert.equal("cba 3", echo(c, "abc"))
      write_by_rename(dir .. "/app.lua", app([[
router:get("/new", function(req, res) res:send("new route") end)
]]))
      wait_log(proc, "reloaded app.lua", 3)
      assert.equal("new route", get(proc, "/new").body)
      c:close()
    end)
    -- one save, one reload
    assert.equal(3, count(proc:log(), "reloaded app.lua"))
  end)

  it("SIGHUP reloads without --watch", function()
    dir, proc = start({ ["app.lua"] = app(), ["handler.lua"] = handler("tostring") })
    h.run(function()
      local c = connect(proc)
      assert.equal("one 1", echo(c, "one"))
      write(dir .. "/handler.lua", handler("string.upper"))
      wslua.sleep(0.4)
      assert.equal("two 2", echo(c, "two")) -- not watching: nothing yet
      proc:signal("HUP")
      wait_log(proc, "reloaded app.lua", 1)
      assert.equal("THREE 3", echo(c, "three"))
      c:close()
    end)
    assert.matches("SIGHUP: reloading app%.lua", proc:log())
    assert.is_nil(proc:log():find("watching", 1, true))
  end)

  it("closes the clients of a removed route with 1001 and answers 404 there; "
    .. "reports added routes and listener settings that need a restart", function()
    local gone = [[
router:get("/gone", wslua.websocket({
  on_data = function(_, client, msg) client:send("gone " .. msg:read()) end,
}))
]]
    dir, proc = start({ ["app.lua"] = app(gone), ["handler.lua"] = handler("tostring") })
    h.run(function()
      local c = connect(proc)
      local g = connect(proc, "/gone")
      assert.equal("gone x", echo(g, "x"))
      assert.equal(426, get(proc, "/gone").status) -- an endpoint, without upgrade
      write(dir .. "/app.lua", app([[
router:get("/added", function(req, res) res:send("added") end)
]], "max_connections = 50,"))
      proc:signal("HUP")
      wait_log(proc, "reloaded app.lua", 1)
      assert.same({ nil, "closed" }, { g:receive() })
      assert.equal(1001, g.close_code)
      assert.equal(404, get(proc, "/gone").status)
      assert.equal("added", get(proc, "/added").body)
      assert.equal("still 1", echo(c, "still"))
      c:close()
    end)
    local log = proc:log()
    assert.matches("GET /gone: endpoint removed %(its route is gone%), closing its 1 client%(s%) with 1001", log)
    assert.matches("added GET /added", log)
    assert.matches("removed GET /gone", log)
    assert.matches("max_connections changed: needs a restart", log)
  end)

  it("a handler call already running finishes on the code it started with", function()
    local function slow(version)
      return [[
local wslua = require "wslua"
local H = {}
function H:on_data(client, msg)
  local body = msg:read()
  if body == "slow" then wslua.sleep(0.5) end
  client:send("]] .. version .. [[ " .. body)
end
return H
]]
    end
    dir, proc = start({ ["app.lua"] = app(), ["handler.lua"] = slow("v1") })
    h.run(function()
      local c = connect(proc)
      assert(c:send("slow"))
      wslua.sleep(0.05)
      write(dir .. "/handler.lua", slow("v2"))
      proc:signal("HUP")
      wait_log(proc, "reloaded app.lua", 1)
      assert(c:send("fast"))
      assert.equal("v2 fast", c:receive())
      assert.equal("v1 slow", c:receive())
      c:close()
    end)
  end)

  it("a one-function endpoint: new connections get the new function, an open one "
    .. "finishes on its own", function()
    local function fn(version)
      return [[
router:get("/fn", wslua.websocket(function(client)
  for msg in client:messages() do client:send("]] .. version .. [[ " .. msg:read()) end
end))
]]
    end
    dir, proc = start({ ["app.lua"] = app(fn("v1")), ["handler.lua"] = handler("tostring") })
    h.run(function()
      local old = connect(proc, "/fn")
      assert.equal("v1 a", echo(old, "a"))
      write(dir .. "/app.lua", app(fn("v2")))
      proc:signal("HUP")
      wait_log(proc, "reloaded app.lua", 1)
      local new = connect(proc, "/fn")
      assert.equal("v2 b", echo(new, "b"))
      assert.equal("v1 c", echo(old, "c"))
      old:close()
      new:close()
    end)
  end)

  it("200 reloads in a row leave the Lua heap and the RSS flat "
    .. "(growth under 1 MiB Lua, under 5 MiB RSS)", function()
    -- GET /reload?n=N reloads N times in process, the way SIGHUP does (a
    -- signal per reload would time the machine's fork, not the reload).
    local reloading = [[
router:get("/reload", function(req, res)
  local reloader = require("wslua.reload").current
  for _ = 1, tonumber(req.query.n) do
    assert(reloader:reload("GET /reload"))
  end
  res:send(tostring(reloader.count))
end)
]]
    dir, proc = start({ ["app.lua"] = app(reloading), ["handler.lua"] = handler("tostring") })
    local function rss_kib()
      local f = assert(io.open("/proc/" .. proc.pid .. "/status"))
      local s = f:read("a")
      f:close()
      return tonumber(s:match("VmRSS:%s*(%d+)"))
    end
    local function lua_kib()
      return tonumber(get(proc, "/mem").body)
    end
    local reloads = 0
    local function reload_times(n)
      reloads = reloads + n
      local res = get(proc, "/reload?n=" .. n)
      assert.equal(200, res.status, res.body)
      assert.equal(tostring(reloads), res.body)
    end
    local before, after = {}, {}
    h.run(function()
      local c = connect(proc)
      assert.equal("m 1", echo(c, "m"))
      reload_times(20) -- warm up: allocator pools, interned strings
      before.lua, before.rss = lua_kib(), rss_kib()
      reload_times(200)
      after.lua, after.rss = lua_kib(), rss_kib()
      assert.equal("n 2", echo(c, "n"))
      c:close()
    end, 60)
    assert.equal(220, count(proc:log(), "reloaded app.lua"))
    print(string.format("\n200 reloads: Lua heap %.1f -> %.1f KiB, RSS %d -> %d KiB",
      before.lua, after.lua, before.rss, after.rss))
    assert.is_true(after.lua - before.lua < 1024,
      string.format("Lua heap grew %.1f KiB", after.lua - before.lua))
    assert.is_true(after.rss - before.rss < 5 * 1024,
      string.format("RSS grew %d KiB", after.rss - before.rss))
  end)
end)
