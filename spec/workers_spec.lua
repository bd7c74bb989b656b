-- --workers N: the binary with three workers, each its own thread, loop and
-- VM on one port (SO_REUSEPORT). Connections spread over the workers; ids
-- are unique across them; endpoint:send(nil), endpoint:send(id) and publish
-- reach clients on every worker; SIGTERM stops them all gracefully.
local wslua = require "wslua"
local h = require "helpers"

local WORKERS = 3

-- Each client is told its worker and id; then commands move messages
-- between workers: "all X" (endpoint:send(nil)), "pub X" (wslua.publish),
-- "to ID X" (endpoint:send(id)), "ep X" (endpoint:publish).
local APP = [[
local wslua = require "wslua"
local Probe = {}
function Probe:on_start(endpoint)
  self.endpoint = endpoint
  local w, n = wslua.worker()
  wslua.log.info("on_start in worker %d of %d", w, n)
end
function Probe:on_open(client)
  client:subscribe("room")
  local w, n = wslua.worker()
  client:send(string.format("hello %d %d %d", w, n, client.id))
end
function Probe:on_data(client, msg)
  local cmd, rest = msg:read():match("^(%S+) ?(.*)$")
  if cmd == "all" then
    self.endpoint:send(nil, rest)
  elseif cmd == "pub" then
    wslua.publish("room", rest)
  elseif cmd == "ep" then
    self.endpoint:publish("room", rest)
  elseif cmd == "to" then
    local id, text = rest:match("^(%d+) (.*)$")
    self.endpoint:send(tonumber(id), text)
  end
end
function Probe:on_stop()
  -- Each worker's own clients (endpoint:send(nil) would reach them all).
  for _, client in self.endpoint:clients() do
    client:send("bye from " .. (wslua.worker()))
  end
end
return wslua.host { listen = "127.0.0.1:0",
  wslua.router():get("/ws", wslua.websocket(Probe)) }
]]

local quote = h.quote

local slurp = h.slurp

-- Starts the binary in the background (a shell stays to reap it, so its
-- exit code is known) and waits until every worker serves.
local function launch(app, args)
  local port = h.free_port()
  local log, status = os.tmpname(), os.tmpname()
  os.remove(status)
  local p = io.popen(string.format(
    "(%s %s --listen 127.0.0.1:%d --log-format text %s >%s 2>&1 & echo $!; wait $!; echo $? >%s) 2>/dev/null &",
    quote(h.bin), quote(app), port, args, log, status))
  local pid = tonumber(p:read("l"))
  p:close()
  local proc = { pid = pid, port = port }
  function proc:log()
    return slurp(log) or ""
  end
  function proc:exit_code()
    local s = slurp(status)
    return s and tonumber(s:match("%d+"))
  end
  function proc:signal(sig)
    os.execute(string.format("kill -%s %d 2>/dev/null", sig, pid))
  end
  function proc:stop()
    if not self:exit_code() then
      self:signal("KILL")
    end
    os.remove(log)
    os.remove(status)
  end
  h.run(function()
    h.wait_for(function()
      return proc:log():find("workers serving", 1, true) or proc:exit_code()
    end, 10)
  end)
  return proc
end

-- Opens n clients; each is { ws, worker, workers, id }.
local function open_clients(port, n)
  local clients = {}
  for i = 1, n do
    local ws = assert(wslua.connect("ws://127.0.0.1:" .. port .. "/ws"))
    local hello = assert(ws:receive())
    local w, count, id = hello:match("^hello (%d+) (%d+) (%d+)$")
    clients[i] = { ws = ws, worker = tonumber(w), workers = tonumber(count), id = tonumber(id) }
  end
  return clients
end

-- One client per worker (the first found on each).
local function one_per_worker(clients)
  local by = {}
  for _, c in ipairs(clients) do
    by[c.worker] = by[c.worker] or c
  end
  return by
end

-- Every client's next message.
local function next_of_all(clients)
  local got = {}
  for i, c in ipairs(clients) do
    got[i] = c.ws:receive()
  end
  return got
end

describe("--workers", function()
  local dir, app, proc

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir)))
    app = dir .. "/app.lua"
    local f = assert(io.open(app, "w"))
    f:write(APP)
    f:close()
    proc = launch(app, "--workers " .. WORKERS)
  end)

  teardown(function()
    if proc then
      proc:stop()
    end
    if dir and dir:match("^/tmp/") then
      os.execute("rm -rf " .. quote(dir))
    end
  end)

  it("starts every worker, each running on_start, on one port", function()
    assert.is_nil(proc:exit_code(), proc:log())
    local log = proc:log()
    assert.matches(WORKERS .. " workers serving", log)
    for w = 1, WORKERS do
      assert.matches("on_start in worker " .. w .. " of " .. WORKERS, log, 1, true)
    end
    -- One "listening" line: the first worker's; the others share its port.
    local _, lines = log:gsub("listening on", "")
    assert.equal(1, lines)
  end)

  it("spreads connections over the workers, with ids unique across them", function()
    h.run(function()
      local clients = open_clients(proc.port, 24)
      local workers, ids = {}, {}
      for _, c in ipairs(clients) do
        assert.equal(WORKERS, c.workers)
        workers[c.worker] = true
        assert.is_nil(ids[c.id], "id " .. c.id .. " given twice")
        ids[c.id] = true
        -- The id says which worker holds the client.
        assert.equal(c.worker, (c.id - 1) % WORKERS + 1)
      end
      local seen = 0
      for _ in pairs(workers) do
        seen = seen + 1
      end
      assert.is_true(seen >= 2, "all 24 connections went to one worker")
      for _, c in ipairs(clients) do
        c.ws:close()
      end
    end, 40)
  end)

  it("endpoint:send(nil, x) from one worker reaches clients on every worker", function()
    h.run(function()
      local clients = open_clients(proc.port, 18)
      clients[1].ws:send("all to everyone")
      for i, got in ipairs(next_of_all(clients)) do
        assert.equal("to everyone", got, "client " .. i .. " on worker " .. clients[i].worker)
      end
      for _, c in ipairs(clients) do
        c.ws:close()
      end
    end, 40)
  end)

  it("publish from one worker reaches subscribers on all of them", function()
    h.run(function()
      local clients = open_clients(proc.port, 18)
      -- wslua.publish (every subscriber) and endpoint:publish (the
      -- endpoint's subscribers, named across workers by its route).
      clients[#clients].ws:send("pub news for the room")
      for i, got in ipairs(next_of_all(clients)) do
        assert.equal("news for the room", got, "client " .. i .. " on worker " .. clients[i].worker)
      end
      clients[1].ws:send("ep endpoint news")
      for i, got in ipairs(next_of_all(clients)) do
        assert.equal("endpoint news", got, "client " .. i .. " on worker " .. clients[i].worker)
      end
      for _, c in ipairs(clients) do
        c.ws:close()
      end
    end, 40)
  end)

  it("endpoint:send(id) reaches a client held by another worker", function()
    h.run(function()
      local clients = open_clients(proc.port, 18)
      local by = one_per_worker(clients)
      local pairs_tried = 0
      for wa, a in pairs(by) do
        for wb, b in pairs(by) do
          if wa ~= wb then
            a.ws:send("to " .. b.id .. " from " .. wa .. " to " .. wb)
            assert.equal("from " .. wa .. " to " .. wb, b.ws:receive())
            pairs_tried = pairs_tried + 1
          end
        end
      end
      assert.is_true(pairs_tried >= 2)
      for _, c in ipairs(clients) do
        c.ws:close()
      end
    end, 40)
  end)

  it("reloads every worker on SIGHUP, clients staying and reaching each other", function()
    h.run(function()
      local clients = open_clients(proc.port, 18)
      proc:signal("HUP")
      assert.is_true(h.wait_for(function()
        local _, n = proc:log():gsub("reloaded app%.lua", "")
        return n == WORKERS
      end, 5), proc:log())
      -- The endpoint kept its clients and its name across workers.
      clients[1].ws:send("all after the reload")
      for i, got in ipairs(next_of_all(clients)) do
        assert.equal("after the reload", got, "client " .. i .. " on worker " .. clients[i].worker)
      end
      for _, c in ipairs(clients) do
        c.ws:close()
      end
    end, 40)
  end)

  it("stops every worker gracefully on SIGTERM: on_stop, 1001 for all, exit 0", function()
    h.run(function()
      local clients = open_clients(proc.port, 18)
      proc:signal("TERM")
      for i, c in ipairs(clients) do
        local bye = c.ws:receive()
        assert.equal("bye from " .. c.worker, bye, "client " .. i)
        local none, err = c.ws:receive()
        assert.is_nil(none)
        assert.equal("closed", err)
        assert.equal(1001, c.ws.close_code, "client " .. i .. " on worker " .. c.worker)
      end
      assert.is_true(h.wait_for(function()
        return proc:exit_code() ~= nil
      end, 10), proc:log())
    end, 30)
    assert.equal(0, proc:exit_code(), proc:log())
    local _, stopped = proc:log():gsub("signal 15: stopping", "")
    assert.equal(WORKERS, stopped)
  end)
end)

describe("--workers, failing", function()
  it("exits non-zero with one clear error when the app does not load", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir)))
    local f = assert(io.open(dir .. "/app.lua", "w"))
    f:write("return wslua.host {\n")
    f:close()
    local out = os.tmpname()
    local _, _, code = os.execute(string.format("timeout 10 %s %s --workers 2 --log-format text >%s 2>&1",
      quote(h.bin), quote(dir .. "/app.lua"), out))
    local log = slurp(out)
    os.remove(out)
    os.execute("rm -rf " .. quote(dir))
    assert.not_equal(0, code)
    assert.matches("cannot load", log)
    local _, errors = log:gsub("cannot load", "")
    assert.equal(1, errors)
  end)

  it("rejects a bad --workers value", function()
    local out = os.tmpname()
    local _, _, code = os.execute(string.format("%s app.lua --workers 0 >%s 2>&1", quote(h.bin), out))
    local log = slurp(out)
    os.remove(out)
    assert.not_equal(0, code)
    assert.matches("%-%-workers needs a number", log)
  end)
end)

-- A graceful stop with clients that answer its close late or never: a
-- worker's VM closes only once its connections are gone, or, after
-- graceful_timeout, closes them itself; nothing reaches a closed VM and
-- nothing is lost with a worker's loop (the ASan build checks leaks).
describe("--workers, stopping with slow clients", function()
  local dir, proc

  local function start(app_source)
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir)))
    local f = assert(io.open(dir .. "/app.lua", "w"))
    f:write(app_source)
    f:close()
    proc = launch(dir .. "/app.lua", "--workers 2")
  end

  after_each(function()
    if proc then
      proc:stop()
      proc = nil
    end
    if dir and dir:match("^/tmp/") then
      os.execute("rm -rf " .. quote(dir))
    end
  end)

  -- A raw client that opens a session and, after SIGTERM, reads up to the
  -- server's close frame without answering it; returns the stream.
  local function open_and_stop()
    local s = assert(wslua.tcp("127.0.0.1", proc.port))
    s:write(h.handshake("/ws"))
    local head, rest = h.read_head(s)
    assert.matches("^HTTP/1.1 101", head)
    local op, hello = h.read_frame(s, rest)
    assert.equal(1, op)
    assert.matches("^hello ", hello)
    proc:signal("TERM")
    local code, frames = h.read_until_close(s)
    assert.equal(1001, code)
    assert.matches("^bye from ", frames[1][2])
    return s
  end

  local function count(pattern)
    local _, n = proc:log():gsub(pattern, "")
    return n
  end

  it("waits for a client that answers the close late", function()
    start(APP)
    h.run(function()
      local s = open_and_stop()
      -- The worker without clients stops; the other waits for this one.
      wslua.sleep(0.3)
      assert.is_nil(proc:exit_code(), proc:log())
      assert.equal(1, count("\n[^\n]*info  stopped"), proc:log())
      s:write(h.frame(8, string.pack(">I2", 1001)))
      assert.is_true(h.wait_for(function()
        return proc:exit_code() ~= nil
      end, 10), proc:log())
      s:close()
    end, 30)
    assert.equal(0, proc:exit_code(), proc:log())
    local log = proc:log()
    assert.matches("code=1001 closed_by=server", log, 1, true)
    assert.equal(2, count("info  stopped"))
    -- Its close handler ran before its worker's VM closed.
    assert.is_true(log:find("code=1001", 1, true) < select(2, log:find(".*info  stopped")), log)
  end)

  it("closes the connections still open after graceful_timeout, exit 0", function()
    start((APP:gsub('listen = "127.0.0.1:0",', 'listen = "127.0.0.1:0", graceful_timeout = 0.2,')))
    h.run(function()
      local s = open_and_stop()
      assert.is_true(h.wait_for(function()
        return proc:exit_code() ~= nil
      end, 10), proc:log())
      local none, err = s:read(5)
      assert.is_nil(none)
      assert.equal("closed", err)
      s:close()
    end, 30)
    assert.equal(0, proc:exit_code(), proc:log())
    assert.matches("1 connection%(s%) still open after 0.2s", proc:log())
    assert.equal(2, count("info  stopped"))
  end)
end)
