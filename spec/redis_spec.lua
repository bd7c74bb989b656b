-- Redis pub/sub across processes: a redis-server of its own (a free port, a
-- temporary folder), two wslua processes on it (A with --redis and two
-- workers, B with the host option pubsub). A publish on A reaches B's
-- subscribers; B's Redis subscriptions follow its local interest; Redis
-- killed mid-run: local delivery goes on, the logs say so, and delivery
-- across processes resumes once Redis is back; unreachable at start: a
-- clear error.
local wslua = require "wslua"
local h = require "helpers"

-- "sub T", "unsub T", "pub T X" (wslua.publish), "all X" (endpoint:send).
local APP = [[
local wslua = require "wslua"
local Probe = {}
function Probe:on_start(endpoint) self.endpoint = endpoint end
function Probe:on_open(client) client:send("hello") end
function Probe:on_data(client, msg)
  local cmd, topic, rest = msg:read():match("^(%S+) ?(%S*) ?(.*)$")
  if cmd == "sub" then
    client:subscribe(topic)
    client:send("subscribed " .. topic)
  elseif cmd == "unsub" then
    client:unsubscribe(topic)
    client:send("unsubscribed " .. topic)
  elseif cmd == "pub" then
    wslua.publish(topic, rest)
  elseif cmd == "all" then
    self.endpoint:send(nil, topic .. (rest ~= "" and " " .. rest or ""))
  end
end
return wslua.host { listen = "127.0.0.1:0", pubsub = os.getenv("PROBE_REDIS"),
  wslua.router():get("/ws", wslua.websocket(Probe)) }
]]

local quote = h.quote

local slurp = h.slurp

local function shell(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

-- A redis-server of our own; :stop() kills it.
local function start_redis(port, dir)
  local pid = tonumber(shell(string.format(
    "redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s "
      .. "--logfile %s >/dev/null 2>&1 & echo $!",
    port, quote(dir), quote(dir .. "/redis.log"))))
  local redis = { pid = pid, port = port }
  function redis:cli(args)
    return shell(string.format("redis-cli -p %d %s 2>&1", port, args))
  end
  function redis:stop()
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    h.run(function()
      h.wait_for(function()
        return os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= true
      end, 5)
    end)
  end
  h.run(function()
    h.wait_for(function()
      return redis:cli("ping"):find("PONG", 1, true)
    end, 5)
  end)
  assert(redis:cli("ping"):find("PONG", 1, true), "redis-server did not start")
  return redis
end

-- The binary in the background, its exit code kept; waits until it serves.
local function launch(app, args, env)
  local port = h.free_port()
  local log, status = os.tmpname(), os.tmpname()
  os.remove(status)
  local p = io.popen(string.format(
    "(%s %s %s --listen 127.0.0.1:%d --log-format text %s >%s 2>&1 & echo $!; wait $!; echo $? >%s) 2>/dev/null &",
    env or "", quote(h.bin), quote(app), port, args, log, status))
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
  function proc:stop()
    if not self:exit_code() then
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    end
    os.remove(log)
    os.remove(status)
  end
  function proc:connect()
    local ws = assert(wslua.connect("ws://127.0.0.1:" .. port .. "/ws"))
    assert.equal("hello", ws:receive())
    return ws
  end
  h.run(function()
    h.wait_for(function()
      local s = proc:log()
      return s:find("workers serving", 1, true)
        or (not args:find("--workers", 1, true) and s:find("listening on", 1, true))
        or proc:exit_code()
    end, 10)
  end)
  assert(not proc:exit_code(), proc:log())
  return proc
end

-- Sends a command and waits for its answer.
local function command(ws, text, answer)
  assert(ws:send(text))
  assert.equal(answer, ws:receive())
end

local function channels(redis)
  local list = {}
  for name in redis:cli("PUBSUB CHANNELS"):gmatch("[^\n]+") do
    list[name] = true
  end
  return list
end

-- How many connections are subscribed to the channel.
local function numsub(redis, channel)
  local out = redis:cli("PUBSUB NUMSUB " .. channel)
  return tonumber(out:match("\n(%d+)"))
end

describe("Redis pub/sub", function()
  local dir, app, redis, a, b

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir)))
    app = dir .. "/app.lua"
    local f = assert(io.open(app, "w"))
    f:write(APP)
    f:close()
    redis = start_redis(h.free_port(), dir)
    local url = "redis://127.0.0.1:" .. redis.port
    a = launch(app, "--workers 2 --redis " .. url)
    b = launch(app, "", "PROBE_REDIS=" .. url)
  end)

  teardown(function()
    for _, p in ipairs { a, b } do
      p:stop()
    end
    if redis then
      redis:stop()
    end
    if dir and dir:match("^/tmp/") then
      os.execute("rm -rf " .. quote(dir))
    end
  end)

  it("connects each instance at start and says so", function()
    -- Checked before listening; connected for pub/sub just after.
    local connected = "redis: connected to 127.0.0.1:" .. redis.port
    h.run(function()
      assert.is_true(h.wait_for(function()
        local _, na = a:log():gsub(connected, "")
        local _, nb = b:log():gsub(connected, "")
        return na == 2 and nb == 1 -- each of A's workers, and B
      end, 5), a:log() .. b:log())
    end)
  end)

  it("carries a publish from a client of A to a subscriber of B", function()
    h.run(function()
      local on_a, on_b = a:connect(), b:connect()
      command(on_b, "sub news", "subscribed news")
      assert.is_true(h.wait_for(function()
        return channels(redis)["wslua:t:news"]
      end, 5))
      on_a:send("pub news extra extra")
      assert.equal("extra extra", on_b:receive())
      -- endpoint:send(nil) crosses too (the endpoint named by its route).
      on_a:send("all to every instance")
      assert.equal("to every instance", on_a:receive())
      assert.equal("to every instance", on_b:receive())
      on_a:close()
      on_b:close()
    end)
  end)

  it("subscribes in Redis only to topics with local subscribers", function()
    h.run(function()
      -- Nobody is interested in "sports": no instance subscribes to it.
      local before = channels(redis)
      assert.is_true(before["wslua:send"])
      assert.is_nil(before["wslua:t:sports"])
      local on_b = b:connect()
      local on_b2 = b:connect()
      command(on_b, "sub sports", "subscribed sports")
      command(on_b2, "sub sports", "subscribed sports")
      -- B's one connection to Redis, however many local subscribers; A has
      -- none.
      assert.is_true(h.wait_for(function()
        return numsub(redis, "wslua:t:sports") == 1
      end, 5))
      command(on_b, "unsub sports", "unsubscribed sports")
      wslua.sleep(0.2)
      assert.equal(1, numsub(redis, "wslua:t:sports"))
      -- The last local subscriber leaves (by closing): so does B in Redis.
      on_b2:close()
      assert.is_true(h.wait_for(function()
        return numsub(redis, "wslua:t:sports") == 0
      end, 5))
      assert.is_nil(channels(redis)["wslua:t:sports"])
      -- Subscribing again, at once, works (one command per channel in
      -- flight: a fast unsubscribe/subscribe does not lose the channel).
      command(on_b, "sub sports", "subscribed sports")
      command(on_b, "unsub sports", "unsubscribed sports")
      command(on_b, "sub sports", "subscribed sports")
      assert.is_true(h.wait_for(function()
        return numsub(redis, "wslua:t:sports") == 1
      end, 5))
      local on_a = a:connect()
      on_a:send("pub sports goal")
      assert.equal("goal", on_b:receive())
      on_a:close()
      on_b:close()
    end)
  end)

  it("keeps delivering locally while Redis is gone and resumes after it returns", function()
    h.run(function()
      local a1, a2, on_b = a:connect(), a:connect(), b:connect()
      for _, ws in ipairs { a1, a2, on_b } do
        command(ws, "sub room", "subscribed room")
      end
      -- B, and each of A's workers that holds a1 or a2.
      local interested
      assert.is_true(h.wait_for(function()
        interested = numsub(redis, "wslua:t:room")
        return interested and interested >= 2
      end, 5))
      wslua.sleep(0.2)
      interested = numsub(redis, "wslua:t:room")
      redis:stop()
      assert.is_true(h.wait_for(function()
        local lost = "redis: connection to 127.0.0.1:" .. redis.port .. " lost"
        return a:log():find(lost, 1, true) ~= nil and b:log():find(lost, 1, true) ~= nil
      end, 5), a:log())
      -- A's own clients still get what A publishes.
      a1:send("pub room while Redis is down")
      assert.equal("while Redis is down", a1:receive())
      assert.equal("while Redis is down", a2:receive())
      assert.is_true(a:log():find("local delivery continues", 1, true) ~= nil)

      redis = start_redis(redis.port, dir)
      assert.is_true(h.wait_for(function()
        local _, na = a:log():gsub("redis: reconnected", "")
        local _, nb = b:log():gsub("redis: reconnected", "")
        return na == 2 and nb == 1 -- each of A's workers, and B
      end, 8), a:log() .. b:log())
      assert.matches("[1-9]%d* message%(s%) published meanwhile were dropped", a:log())
      -- Every instance subscribed again to what its clients want.
      assert.is_true(h.wait_for(function()
        return numsub(redis, "wslua:t:room") == interested
      end, 5))
      a1:send("pub room Redis is back")
      -- B's next message: the one published before the loss never came.
      assert.equal("Redis is back", on_b:receive())
      assert.equal("Redis is back", a1:receive())
      assert.equal("Redis is back", a2:receive())
      for _, ws in ipairs { a1, a2, on_b } do
        ws:close()
      end
    end, 30)
  end)
end)

describe("Redis unreachable at start", function()
  it("stops the binary with a clear error and a non-zero exit", function()
    local port = h.free_port()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir)))
    local f = assert(io.open(dir .. "/app.lua", "w"))
    f:write(APP)
    f:close()
    for _, args in ipairs { "", "--workers 2" } do
      local out = os.tmpname()
      local _, _, code = os.execute(string.format(
        "timeout 10 %s %s --listen 127.0.0.1:0 --redis redis://127.0.0.1:%d %s >%s 2>&1",
        quote(h.bin), quote(dir .. "/app.lua"), port, args, out))
      local log = slurp(out)
      os.remove(out)
      assert.not_equal(0, code)
      assert.matches("cannot connect to Redis at 127.0.0.1:" .. port .. ": Connection refused", log, 1, true)
      assert.is_nil(log:find("listening on", 1, true))
    end
    os.execute("rm -rf " .. quote(dir))
  end)

  it("makes wslua.serve raise with the same error", function()
    local port = h.free_port()
    local ok, err = pcall(wslua.serve, wslua.host {
      listen = "127.0.0.1:0", pubsub = "redis://127.0.0.1:" .. port,
      function(_, res) res:send("") end,
    })
    assert.is_false(ok)
    assert.matches("cannot connect to Redis at 127.0.0.1:" .. port, err, 1, true)
    -- And nothing was left listening or hooked.
    assert.equal("none", wslua.pubsub_status().redis or "none")
  end)

  it("rejects a URL that is not redis://", function()
    local ok, err = pcall(wslua.serve, wslua.host {
      listen = "127.0.0.1:0", pubsub = "http://127.0.0.1:6379",
      function(_, res) res:send("") end,
    })
    assert.is_false(ok)
    assert.matches("must start with redis://", err, 1, true)
  end)
end)
