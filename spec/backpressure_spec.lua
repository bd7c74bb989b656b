-- Backpressure and keepalive end to end over loopback: a raw TCP peer that
-- stops reading (stream:pause()) against the "close" and "drop" policies,
-- on_drain and client:drain(), the memory bound while 200 MiB is published
-- past such a peer, automatic pings and the idle close.
local wslua = require "wslua"
local core = require "wslua.core"
local h = require "helpers"

local OP_TEXT, OP_CLOSE, OP_PING = 1, 8, 9
local KiB, MiB = 1024, 1024 * 1024

-- The process's resident set in KiB (server and peers share the process).
local function rss_kib()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s*(%d+)")
    if kb then
      return tonumber(kb)
    end
  end
end

-- A frame reader over a raw stream that does not copy what follows each
-- frame (a paused peer may have megabytes waiting).
local function frame_reader(stream, initial)
  local buf, pos = initial or "", 1
  local reader = {}
  -- The next frame: opcode, payload; nil, why at the end or on timeout.
  function reader.next(timeout)
    while true do
      if #buf - pos + 1 >= 2 then
        local b1 = buf:byte(pos + 1)
        local len, at = b1 & 0x7f, pos + 2
        if len == 126 and #buf - pos + 1 >= 4 then
          len, at = string.unpack(">I2", buf, pos + 2), pos + 4
        elseif len == 127 and #buf - pos + 1 >= 10 then
          len, at = string.unpack(">I8", buf, pos + 2), pos + 10
        elseif len >= 126 then
          len = nil
        end
        if len and #buf >= at + len - 1 then
          local op = buf:byte(pos) & 0x0f
          local payload = buf:sub(at, at + len - 1)
          pos = at + len
          return op, payload
        end
      end
      local bytes, err = stream:read(timeout or 5)
      if not bytes then
        return nil, err
      end
      buf = buf:sub(pos) .. bytes
      pos = 1
    end
  end
  return reader
end

-- An endpoint whose clients say who they are in the query (?role=...) and
-- subscribe to "feed"; events are recorded in the returned table.
local function feed_endpoint(opts, extra)
  local state = { roles = {}, closes = {}, drains = {} } -- drains[client]: on_drain calls
  local handler = {}
  function handler:on_handshake(req)
    return req.query.role
  end
  function handler:on_open(client, role)
    state.roles[role] = client
    client:subscribe("feed")
  end
  function handler:on_drain(client)
    state.drains[client] = (state.drains[client] or 0) + 1
  end
  function handler:on_close(client, code, reason)
    state.closes[#state.closes + 1] = { client = client, code = code, reason = reason }
  end
  for k, v in pairs(extra or {}) do
    handler[k] = v
  end
  local host = wslua.host { wslua.router():get("/ws", wslua.websocket(handler, opts)) }
  return host, state
end

-- A raw WebSocket peer on role's path that has stopped reading.
local function paused_peer(server, role)
  local s = h.tcp(server)
  s:write(h.handshake("/ws?role=" .. role))
  local head, rest = h.read_head(s)
  assert.matches("^HTTP/1%.1 101", head)
  s:pause()
  return s, rest
end

-- Publishes n numbered messages of size bytes to "feed", pacing on the
-- fast client's drain() as a real publisher would; returns the peak RSS
-- (KiB) seen meanwhile.
local function publish_numbered(n, size, fast, first)
  local filler = string.rep("x", size - 8)
  local peak = rss_kib()
  for i = first or 1, (first or 1) + n - 1 do
    wslua.publish("feed", string.format("%08d", i) .. filler)
    assert(fast:drain())
    if i % 32 == 0 then
      peak = math.max(peak, rss_kib())
    end
  end
  return peak
end

-- A wslua.connect client that counts what it receives, in a coroutine of
-- its own; got.count, got.bad (out of order or wrong size).
local function counting_reader(c, size)
  local got = { count = 0, bad = 0 }
  wslua.spawn(function()
    while true do
      local body = c:receive()
      if not body then
        return
      end
      got.count = got.count + 1
      if #body ~= size or tonumber(body:sub(1, 8)) ~= got.count then
        got.bad = got.bad + 1
      end
    end
  end)
  return got
end

local function close_all(...)
  for _, s in ipairs { ... } do
    s:close()
  end
end

describe("backpressure", function()
  it("closes a peer that stops reading with 1008 (\"close\"), others go on", function()
    local host, state = feed_endpoint { max_backpressure = 256 * KiB, close_timeout = 10 }
    local server = h.serve(host)
    h.run(function()
      local slow, rest = paused_peer(server, "slow")
      local fast = assert(wslua.connect(server:url("/ws?role=fast")))
      assert.truthy(h.wait_for(function() return state.roles.fast and state.roles.slow end))
      local got = counting_reader(fast, 16 * KiB)
      local n = 1024 -- 16 MiB: far past the kernel's buffers and the limit
      publish_numbered(n, 16 * KiB, state.roles.fast)
      assert.truthy(h.wait_for(function() return got.count == n end))
      assert.equal(0, got.bad)
      local s = state.roles.slow
      assert.is_false(s:is_open())
      assert.same({ nil, "closed" }, { s:send("too late") })
      -- The peer reads again: what was queued, then the close frame.
      slow:resume()
      local reader = frame_reader(slow, rest)
      local frames, op, payload = 0, nil, nil
      repeat
        op, payload = reader.next()
        frames = frames + 1
      until op ~= OP_TEXT
      assert.equal(OP_CLOSE, op)
      assert.equal(1008, string.unpack(">I2", payload))
      assert.equal("send buffer over max_backpressure (262144 bytes)", payload:sub(3))
      assert.is_true(frames < n)
      assert.truthy(h.wait_for(function() return #state.closes == 1 end))
      assert.equal(s, state.closes[1].client)
      assert.equal(1008, state.closes[1].code)
      assert.matches("max_backpressure", state.closes[1].reason)
      assert.is_true(fast:is_open())
      close_all(fast, slow)
      h.stop(server)
    end)
  end)

  it("skips messages for a peer that stops reading (\"drop\"), counts them, resumes", function()
    local host, state = feed_endpoint { max_backpressure = 256 * KiB, backpressure = "drop" }
    local server = h.serve(host)
    h.run(function()
      local slow, rest = paused_peer(server, "slow")
      local fast = assert(wslua.connect(server:url("/ws?role=fast")))
      assert.truthy(h.wait_for(function() return state.roles.fast and state.roles.slow end))
      local got = counting_reader(fast, 16 * KiB)
      local n = 1024
      publish_numbered(n, 16 * KiB, state.roles.fast)
      assert.truthy(h.wait_for(function() return got.count == n end))
      assert.equal(0, got.bad)
      local s = state.roles.slow
      assert.is_true(s:is_open())
      local dropped = s:dropped()
      assert.is_true(dropped > n / 2, "dropped " .. dropped)
      assert.is_true(s:buffered() > 256 * KiB)
      assert.is_nil(state.drains[s])
      -- A send to it is skipped too, and says so.
      assert.same({ nil, "dropped" }, { s:send("skipped") })
      assert.equal(dropped + 1, s:dropped())
      -- Reading again: the messages before the limit, in order, with none
      -- missing among them; the buffer drains and on_drain runs.
      slow:resume()
      local reader = frame_reader(slow, rest)
      local received = 0
      while received < n - dropped do
        local op, payload = reader.next()
        assert.equal(OP_TEXT, op)
        received = received + 1
        assert.equal(received, tonumber(payload:sub(1, 8)))
      end
      assert.truthy(h.wait_for(function() return state.drains[s] == 1 end))
      -- Later messages reach it again.
      assert.truthy(h.wait_for(function() return s:buffered() == 0 end))
      assert.equal(2, wslua.publish("feed", "after the drain"))
      local op, payload = reader.next()
      assert.same({ OP_TEXT, "after the drain" }, { op, payload })
      assert.equal(dropped + 1, s:dropped())
      assert.is_true(s:is_open())
      close_all(fast, slow)
      h.stop(server)
    end)
  end)

  it("client:drain() waits for the buffer to fall to the low-water mark", function()
    local host, state = feed_endpoint { max_backpressure = 512 * KiB }
    local server = h.serve(host)
    h.run(function()
      local slow, rest = paused_peer(server, "slow")
      assert.truthy(h.wait_for(function() return state.roles.slow end))
      local s = state.roles.slow
      assert.is_true(s:drain()) -- nothing queued: at once
      local chunk = string.rep("y", 16 * KiB)
      local sent = 0
      while s:buffered() <= 256 * KiB do
        assert.truthy(s:send(chunk))
        sent = sent + 1
      end
      local result
      wslua.spawn(function()
        result = { s:drain() }
      end)
      wslua.sleep(0.2)
      assert.is_nil(result) -- it waits while the peer does not read
      slow:resume()
      local reader = frame_reader(slow, rest)
      for _ = 1, sent do
        assert.equal(OP_TEXT, (reader.next()))
      end
      assert.truthy(h.wait_for(function() return result ~= nil end))
      assert.same({ true }, result)
      assert.is_true(s:buffered() <= 256 * KiB)
      assert.equal(1, state.drains[s])
      close_all(slow)
      h.stop(server)
    end)
  end)

  it("client:drain() gives nil, \"closed\" when the client goes first", function()
    local host, state = feed_endpoint { max_backpressure = 512 * KiB }
    local server = h.serve(host)
    h.run(function()
      local slow = paused_peer(server, "slow")
      assert.truthy(h.wait_for(function() return state.roles.slow end))
      local s = state.roles.slow
      local chunk = string.rep("z", 16 * KiB)
      while s:buffered() <= 256 * KiB do
        assert.truthy(s:send(chunk))
      end
      local result
      wslua.spawn(function()
        result = { s:drain() }
      end)
      assert.is_nil(result)
      slow:close()
      assert.truthy(h.wait_for(function() return result ~= nil end))
      assert.same({ nil, "closed" }, result)
      assert.same({ nil, "closed" }, { s:drain() })
      assert.is_nil(state.drains[s])
      h.stop(server)
    end)
  end)

  for _, policy in ipairs { "close", "drop" } do
    it("keeps RSS bounded while 200 MiB is published past a peer that does not read ("
      .. policy .. ")", function()
      local host, state = feed_endpoint { backpressure = policy, close_timeout = 10 }
      local server = h.serve(host)
      h.run(function()
        local slow = paused_peer(server, "slow")
        local fast = assert(wslua.connect(server:url("/ws?role=fast")))
        assert.truthy(h.wait_for(function() return state.roles.fast and state.roles.slow end))
        local size, n = 64 * KiB, 3200 -- 200 MiB
        local got = counting_reader(fast, size)
        collectgarbage()
        local before = rss_kib()
        local t0 = core.now()
        local peak = publish_numbered(n, size, state.roles.fast)
        assert.truthy(h.wait_for(function() return got.count == n end, 15))
        local took = core.now() - t0
        assert.equal(0, got.bad)
        local growth = (peak - before) / 1024
        -- The bound the README states: under 10 MiB of growth (the default
        -- max_backpressure of 1 MiB plus a message is what the peer holds).
        assert.is_true(growth < 10, string.format("RSS grew by %.1f MiB", growth))
        assert.is_true(took < 20, string.format("took %.1f s", took))
        local s = state.roles.slow
        if policy == "close" then
          assert.is_false(s:is_open())
          assert.equal(0, s:dropped())
        else
          assert.is_true(s:is_open())
          assert.is_true(s:dropped() > n - 200, "dropped " .. s:dropped())
        end
        assert.is_true(s:buffered() <= MiB + size + 64)
        close_all(fast, slow)
        h.stop(server)
      end, 40)
    end)
  end
end)

describe("keepalive", function()
  it("pings every ping_interval seconds, whatever the traffic", function()
    local host = feed_endpoint { ping_interval = 0.2 }
    local server = h.serve(host)
    h.run(function()
      local s = h.tcp(server)
      s:write(h.handshake("/ws?role=pinged"))
      local _, rest = h.read_head(s)
      local reader = frame_reader(s, rest)
      local t0, pings, at = core.now(), 0, {}
      -- The peer talks all the time (so no idle ping would come).
      local talking = wslua.every(0.05, function()
        s:write(h.frame(OP_TEXT, "chatter"))
      end)
      while core.now() - t0 < 1.1 do
        local op = reader.next(0.1)
        if op == OP_PING then
          pings = pings + 1
          at[pings] = core.now() - t0
        else
          assert.is_nil(op)
        end
      end
      talking:stop()
      assert.is_true(pings >= 4 and pings <= 6, "pings: " .. pings)
      assert.is_true(at[1] >= 0.15 and at[1] < 0.4, "first ping after " .. at[1])
      close_all(s)
      h.stop(server)
    end)
  end)

  it("closes a silent client after idle_timeout; on_close says 1001 \"idle timeout\"", function()
    local host, state = feed_endpoint { idle_timeout = 0.4 }
    local server = h.serve(host)
    h.run(function()
      local s = h.tcp(server)
      s:write(h.handshake("/ws?role=silent"))
      local _, rest = h.read_head(s)
      local t0 = core.now()
      local code, frames, reason = h.read_until_close(s, rest)
      local took = core.now() - t0
      assert.equal(1001, code)
      assert.equal("idle timeout", reason)
      assert.equal(OP_PING, frames[1][1])
      assert.is_true(took >= 0.35 and took < 1, "closed after " .. took)
      assert.truthy(h.wait_for(function() return #state.closes == 1 end))
      assert.equal(1001, state.closes[1].code)
      assert.equal("idle timeout", state.closes[1].reason)
      close_all(s)
      h.stop(server)
    end)
  end)
end)
