-- Handlers that misbehave hurt only their own client: one that loops is
-- interrupted after its time budget (1011, or 500 over HTTP) and the server
-- answers everyone else; one that eats memory past --max-memory gets a
-- "not enough memory" error; an error or a loop in on_start, or while the
-- app loads, is a clear startup error and a non-zero exit.
local wslua = require "wslua"
local h = require "helpers"
local http = require "helpers.http"

local quote = h.quote

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local slurp = h.slurp

-- Spins for seconds of CPU time without yielding.
local function spin(seconds)
  local stop = os.clock() + seconds
  while os.clock() < stop do
  end
end

-- Handlers that misbehave on request: the message (or the path) says how.
local misdeeds = {
  loop = function()
    while true do
    end
  end,
  pcall_loop = function()
    while true do
      pcall(function()
        while true do
        end
      end)
    end
  end,
  -- Three pieces of work, 0.6 s of CPU time each: 1.8 s in all, past a
  -- 1.5 s budget that each piece keeps to (the budget is CPU time too).
  spin_yield_spin = function()
    for _ = 1, 3 do
      spin(0.6)
      wslua.sleep(0.01)
    end
  end,
  nothing = function() end,
  timer_loop = function()
    wslua.after(0, function()
      while true do
      end
    end)
  end,
}

local function app(host_options)
  local Echo = {}
  function Echo:on_data(client, msg)
    local body = msg:read()
    if misdeeds[body] then
      misdeeds[body]()
    end
    client:send(body)
  end
  local router = wslua.router()
    :get("/ws", wslua.websocket(Echo))
    :get("/do/{what}", function(req, res)
      misdeeds[req.params.what]()
      res:send("done " .. req.params.what)
    end)
  local t = host_options or {}
  t[1] = router
  return wslua.host(t)
end

-- Sends text on a new client; returns what came back and the close code.
local function ask(server, text)
  local c = assert(wslua.connect(server:url("/ws")))
  c:send(text)
  local reply = c:receive()
  if reply == nil then
    return nil, c.close_code
  end
  c:close()
  return reply
end

-- CPU seconds the stop may take, the client's connection included: under
-- valgrind (make memcheck) the process's CPU time also counts valgrind's
-- translation of each code path the first time it runs, 0.4 s to 2.3 s
-- here from run to run.
local STOP_CPU = os.getenv("WSLUA_MEMCHECK") == "1" and 10 or 2

describe("a handler that runs too long", function()
  for _, how in ipairs { "loop", "pcall_loop" } do
    it("is stopped (" .. how .. "): its client gets 1011, the others are answered", function()
      local server = h.serve(app { handler_budget = 0.2 })
      h.run(function()
        local bystander = assert(wslua.connect(server:url("/ws")))
        local started = os.clock() -- the budget is CPU time
        local reply, code = ask(server, how)
        assert.is_nil(reply)
        assert.equal(1011, code)
        assert.is_true(os.clock() - started < STOP_CPU)
        bystander:send("still there?")
        assert.equal("still there?", (bystander:receive()))
        assert.equal("hello", (ask(server, "hello")))
        bystander:close()
        h.stop(server)
      end)
    end)
  end

  it("is stopped over HTTP with a 500, and the next request is served", function()
    local server = h.serve(app { handler_budget = 0.2 })
    h.run(function()
      local res = assert(http.get(server, "/do/loop"))
      assert.equal(500, res.status)
      res = assert(http.get(server, "/do/nothing"))
      assert.equal(200, res.status)
      assert.equal("done nothing", res.body)
      h.stop(server)
    end)
  end)

  it("has the budget each time it runs, not in all: waiting resets it", function()
    local server = h.serve(app { handler_budget = 1.5 })
    h.run(function()
      assert.equal("spin_yield_spin", (ask(server, "spin_yield_spin")))
      h.stop(server)
    end)
  end)

  it("holds a timer's coroutine to the budget of the handler that set it", function()
    local server = h.serve(app { handler_budget = 0.2 })
    h.run(function()
      assert.equal("timer_loop", (ask(server, "timer_loop")))
      wslua.sleep(0.4) -- the timer ran, was stopped, and the loop goes on
      assert.equal("after", (ask(server, "after")))
      h.stop(server)
    end)
  end)

  it("has 0.5 s by default; handler_budget = 0 turns the budget off", function()
    local server = h.serve(app())
    h.run(function()
      local t0 = os.clock() -- the budget is CPU time, as os.clock is
      local _, code = ask(server, "loop")
      assert.equal(1011, code)
      local took = os.clock() - t0
      assert.is_true(took >= 0.45 and took < 2, "took " .. took)
      h.stop(server)
    end)
    local Slow = {}
    function Slow:on_data(client, msg)
      msg:read()
      spin(0.7)
      client:send("finished")
    end
    server = h.serve(wslua.host { handler_budget = 0,
      wslua.router():get("/ws", wslua.websocket(Slow)) })
    h.run(function()
      assert.equal("finished", (ask(server, "x")))
      h.stop(server)
    end)
  end)

  it("checks the option", function()
    assert.has_error(function()
      wslua.host { handler_budget = "fast" }
    end, "option 'handler_budget' in host options must be a non-negative number, got string")
  end)

  it("in on_start stops the server's start with the budget's error", function()
    local Stuck = {}
    function Stuck:on_start()
      while true do
      end
    end
    local ok, err = pcall(wslua.serve, wslua.host { handler_budget = 0.1,
      wslua.router():get("/ws", wslua.websocket(Stuck)) }, { listen = "127.0.0.1:0" })
    assert.is_false(ok)
    assert.matches("on_start failed: .*time budget of 0.1 s", err)
  end)
end)

-- The binary: the memory cap, the log lines, startup failures.
describe("the wslua binary", function()
  local dir

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir)))
  end)

  after_each(function()
    if dir and dir:match("^/tmp/") then
      os.execute("rm -rf " .. quote(dir))
    end
  end)

  -- Runs the binary to its end (10 s at most); returns exit code, stderr.
  local function run(args)
    local err = dir .. "/stderr"
    local _, _, code = os.execute(string.format("timeout 10 %s %s >/dev/null 2>%s",
      quote(h.bin), args, quote(err)))
    return code, slurp(err) or ""
  end

  local hog_app = [[
local wslua = require "wslua"
local Hog = {}
function Hog:on_data(client, msg)
  local body = msg:read()
  if body == "hog" then
    local t = {}
    for i = 1, math.huge do t[i] = ("x"):rep(1e6) .. i end
  elseif body == "loop" then
    while true do end
  end
  client:send(body)
end
return wslua.host { wslua.router()
  :get("/ws", wslua.websocket(Hog))
  :get("/hog", function(req, res)
    local t = {}
    for i = 1, math.huge do t[i] = ("y"):rep(1e6) .. i end
  end) }
]]

  it("caps the Lua heap with --max-memory: the hog gets 1011 or 500, the rest goes on", function()
    write(dir .. "/app.lua", hog_app)
    local proc = h.spawn(dir .. "/app.lua", "--max-memory 24")
    finally(function()
      proc:stop()
    end)
    assert.truthy(proc:alive(), proc:log())
    local server = { port = function() return proc.port end }
    h.run(function()
      local url = "ws://127.0.0.1:" .. proc.port .. "/ws"
      local bystander = assert(wslua.connect(url))
      for _ = 1, 3 do
        local hog = assert(wslua.connect(url))
        hog:send("hog")
        assert.is_nil((hog:receive()))
        assert.equal(1011, hog.close_code)
        bystander:send("fine")
        assert.equal("fine", (bystander:receive()))
      end
      local res = assert(http.get(server, "/hog"))
      assert.equal(500, res.status)
      bystander:send("still fine")
      assert.equal("still fine", (bystander:receive()))
      bystander:close()
    end, 30)
    assert.truthy(proc:alive())
    local log = proc:log()
    assert.matches("not enough memory", log)
    assert.matches("closing with 1011", log)
  end)

  it("logs a handler stopped by its budget, with where it was", function()
    write(dir .. "/app.lua", hog_app)
    local proc = h.spawn(dir .. "/app.lua")
    finally(function()
      proc:stop()
    end)
    h.run(function()
      local c = assert(wslua.connect("ws://127.0.0.1:" .. proc.port .. "/ws"))
      c:send("loop")
      assert.is_nil((c:receive()))
      assert.equal(1011, c.close_code)
    end)
    assert.matches("app.lua:%d+: handler ran past its time budget of 0.5 s", proc:log())
  end)

  it("refuses a bad --max-memory", function()
    local code, err = run("--max-memory lots app.lua")
    assert.equal(2, code)
    assert.matches("--max-memory needs a size in MiB", err, 1, true)
  end)

  it("exits non-zero with the error when on_start fails", function()
    write(dir .. "/app.lua", [[
local wslua = require "wslua"
local E = {}
function E:on_start() error("no database") end
return wslua.host { listen = "127.0.0.1:0", wslua.router():get("/ws", wslua.websocket(E)) }
]])
    local code, err = run(quote(dir .. "/app.lua"))
    assert.equal(1, code)
    assert.matches("on_start failed: .*app.lua:3: no database", err)
  end)

  it("exits non-zero when on_start runs past its budget", function()
    write(dir .. "/app.lua", [[
local wslua = require "wslua"
local E = {}
function E:on_start() while true do end end
return wslua.host { listen = "127.0.0.1:0", handler_budget = 0.2,
  wslua.router():get("/ws", wslua.websocket(E)) }
]])
    local code, err = run(quote(dir .. "/app.lua"))
    assert.equal(1, code)
    assert.matches("on_start failed: .*time budget of 0.2 s", err)
  end)

  it("exits non-zero when loading raises an error that is not a string", function()
    write(dir .. "/app.lua", [[
error(setmetatable({}, { __tostring = function() return "odd error object" end }))
]])
    local code, err = run(quote(dir .. "/app.lua"))
    assert.equal(1, code)
    assert.matches("cannot load", err)
  end)
end)
