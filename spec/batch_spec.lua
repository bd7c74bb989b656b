-- Messages that arrive together: the whole messages of one read run one
-- after another in one coroutine (src/lua/dispatch.c), and the few small
-- ones of many reads of a loop turn, from every connection, run together
-- after the turn's reads (src/net/turn.c). Each still has a handler budget
-- of its own, one that waits does not hold up the next, and the order the
-- peer sent is kept against control frames, errors, larger messages and a
-- close the handler makes. Raw frames written in one go over loopback.
local wslua = require "wslua"
local h = require "helpers"

local OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 1, 8, 9, 10

-- Spins for seconds of CPU time without yielding (the budget is CPU time).
local function spin(seconds)
  local stop = os.clock() + seconds
  while os.clock() < stop do
  end
end

-- What the handler does for a message, by its text; anything else is
-- echoed. ran: every body a handler began with, in order.
local ran = {}
local actions = {
  spin = function()
    spin(0.2)
  end,
  loop = function()
    while true do
    end
  end,
  wait = function(client)
    wslua.sleep(0.2)
    client:send("waited")
    return true
  end,
  close = function(client)
    client:close(4000, "asked to")
    return true
  end,
}

local Handler = {}
function Handler:on_data(client, msg)
  local body = msg:read()
  ran[#ran + 1] = body
  local act = actions[body]
  if not (act and act(client)) then
    client:send(body)
  end
end

local function host(budget)
  return wslua.host {
    handler_budget = budget,
    wslua.router():get("/ws", wslua.websocket(Handler)),
  }
end

-- Serves with this handler budget while fn(stream, rest) runs on an
-- upgraded raw stream; always stops the server.
local function session(budget, fn)
  ran = {}
  local server = h.serve(host(budget))
  h.run(function()
    local s = h.tcp(server)
    s:write(h.handshake("/ws"))
    local head, rest = h.read_head(s)
    local ok, err = pcall(function()
      assert.matches("^HTTP/1.1 101", head)
      fn(s, rest)
    end)
    s:close()
    h.stop(server)
    if not ok then
      error(err, 0)
    end
  end, 30)
end

-- Writes these frames in one write: {opcode, payload} or a text payload.
local function write_together(s, frames)
  local bytes = {}
  for i, f in ipairs(frames) do
    if type(f) == "string" then
      f = { OP_TEXT, f }
    end
    bytes[i] = h.frame(f[1], f[2])
  end
  s:write(table.concat(bytes))
end

-- Reads n frames: a list of {opcode, payload}, and the bytes after them.
local function read_frames(s, buf, n)
  local got = {}
  for i = 1, n do
    local op, payload, rest = h.read_frame(s, buf, 10)
    assert(op, "frame " .. i .. " of " .. n .. " did not come: " .. tostring(payload))
    got[i] = { op, payload }
    buf = rest
  end
  return got, buf
end

-- A frame read_frames returned is a close with this code.
local function assert_close(frame, code)
  assert.equal(OP_CLOSE, frame[1])
  assert.equal(code, (string.unpack(">I2", frame[2])))
end

-- n messages whose handler spins 0.2 s each, then "end", in one write,
-- under a 0.3 s budget: each call keeps to it, though together they pass
-- it in one resume.
local function spins_within_budget(n)
  session(0.3, function(s, buf)
    local frames = {}
    for i = 1, n do
      frames[i] = "spin"
    end
    frames[n + 1] = "end"
    write_together(s, frames)
    local got = read_frames(s, buf, n + 1)
    for i = 1, n do
      assert.same({ OP_TEXT, "spin" }, got[i])
    end
    assert.same({ OP_TEXT, "end" }, got[n + 1])
  end)
end

describe("the whole messages of one read", function()
  it("are answered in order, each by its own handler call", function()
    session(0.5, function(s, buf)
      local frames = {}
      for i = 1, 100 do -- past the 64 the core hands over at once
        frames[i] = "m" .. i
      end
      write_together(s, frames)
      local got = read_frames(s, buf, 100)
      for i = 1, 100 do
        assert.same({ OP_TEXT, "m" .. i }, got[i])
      end
      assert.same(frames, ran)
    end)
  end)

  it("give every handler call a budget of its own", function()
    -- Four calls of 0.2 s each: 0.8 s in one resume, past a 0.3 s budget
    -- that each of them keeps to (five messages: the read's run).
    spins_within_budget(4)
  end)

  it("stop a call past its budget: 1011, after the answers before it", function()
    session(0.2, function(s, buf)
      write_together(s, { "before", "loop", "after" })
      local got = read_frames(s, buf, 2)
      assert.same({ OP_TEXT, "before" }, got[1])
      assert_close(got[2], 1011)
      assert.same({ "before", "loop" }, ran)
    end)
  end)

  it("do not wait for a handler that waits: the next ones run meanwhile", function()
    session(0.5, function(s, buf)
      write_together(s, { "wait", "x", "y" })
      local got = read_frames(s, buf, 3)
      assert.same({ { OP_TEXT, "x" }, { OP_TEXT, "y" }, { OP_TEXT, "waited" } }, got)
      -- And the coroutine that waited is free again: more still works.
      write_together(s, { "z" })
      assert.same({ { OP_TEXT, "z" } }, (read_frames(s, buf, 1)))
    end)
  end)

  it("keep their order against a ping between them", function()
    session(0.5, function(s, buf)
      write_together(s, { "1", { OP_PING, "p" }, "2" })
      local got = read_frames(s, buf, 3)
      assert.same({ { OP_TEXT, "1" }, { OP_PONG, "p" }, { OP_TEXT, "2" } }, got)
    end)
  end)

  it("before a protocol error are answered before the close", function()
    session(0.5, function(s, buf)
      -- The third frame has RSV2 set, which nothing negotiated: 1002.
      s:write(h.frame(OP_TEXT, "1") .. h.frame(OP_TEXT, "2") .. h.frame(OP_TEXT, "bad", true, 0x20))
      local got = read_frames(s, buf, 3)
      assert.same({ OP_TEXT, "1" }, got[1])
      assert.same({ OP_TEXT, "2" }, got[2])
      assert_close(got[3], 1002)
    end)
  end)

  it("after one whose handler closed the client are not run", function()
    session(0.5, function(s, buf)
      write_together(s, { "1", "close", "after" })
      local got = read_frames(s, buf, 2)
      assert.same({ OP_TEXT, "1" }, got[1])
      assert_close(got[2], 4000)
      assert.same({ "1", "close" }, ran)
    end)
  end)

  it("reach a wslua.connect client too, in order", function()
    local Burst = {}
    function Burst:on_data(client, msg)
      local n = tonumber(msg:read())
      for i = 1, n do
        client:send("b" .. i)
      end
    end
    local server = h.serve(wslua.host { wslua.router():get("/ws", wslua.websocket(Burst)) })
    h.run(function()
      local c = assert(wslua.connect(server:url("/ws")))
      c:send("200") -- one loop turn's writes: they come in few reads
      for i = 1, 200 do
        assert.equal("b" .. i, (c:receive()))
      end
      c:close()
      h.stop(server)
    end)
  end)
end)

describe("the small messages of a loop turn", function()
  it("from many connections, one in flight on each, are answered in order", function()
    -- Every connection has one message in flight at a time: each read
    -- brings one, and those of a turn run together. The clients are
    -- wslua.connect clients of the same process, so the turn holds their
    -- answers (for an owner that takes messages one by one) among the
    -- endpoint's messages.
    ran = {}
    local server = h.serve(host(0.5))
    h.run(function()
      local clients = {}
      for i = 1, 20 do
        clients[i] = assert(wslua.connect(server:url("/ws")))
      end
      for round = 1, 25 do
        for i, c in ipairs(clients) do
          assert(c:send(i .. ":" .. round))
        end
        for i, c in ipairs(clients) do
          assert.equal(i .. ":" .. round, (c:receive()))
        end
      end
      assert.equal(20 * 25, #ran)
      for _, c in ipairs(clients) do
        c:close()
      end
      h.stop(server)
    end, 30)
  end)

  it("of clients of several endpoints, taken turn about, each reach their own handler", function()
    -- A run looks an endpoint's handler up once for the clients of one
    -- kind that come one after another: clients of two endpoints (and of
    -- two agreements on one) alternate in every turn, so every change of
    -- kind must look it up again.
    local function tagged(tag)
      local handler = {}
      function handler:on_message(client, data)
        client:send(tag .. data)
      end
      return handler
    end
    local server = h.serve(wslua.host { wslua.router()
      :get("/a", wslua.websocket(tagged("a:"), { compression = true }))
      :get("/b", wslua.websocket(tagged("b:"))) })
    h.run(function()
      local clients = {}
      for i = 1, 12 do
        local path = i % 3 == 0 and "/b" or "/a"
        local opts = i % 3 == 1 and { compression = true } or nil
        clients[i] = { path = path, c = assert(wslua.connect(server:url(path), opts)) }
      end
      for round = 1, 10 do
        for i, k in ipairs(clients) do
          assert(k.c:send(i .. "." .. round))
        end
        for i, k in ipairs(clients) do
          assert.equal(k.path:sub(2) .. ":" .. i .. "." .. round, (k.c:receive()))
        end
      end
      for _, k in ipairs(clients) do
        k.c:close()
      end
      h.stop(server)
    end, 30)
  end)

  it("keep their place around a larger message of the same read", function()
    session(0.5, function(s, buf)
      local big = string.rep("L", 5000) -- not copied to the turn
      write_together(s, { "a", big, "b" })
      local got = read_frames(s, buf, 3)
      assert.same({ { OP_TEXT, "a" }, { OP_TEXT, big }, { OP_TEXT, "b" } }, got)
      -- Then reads of one message each, then one of many: still in order.
      for i = 1, 3 do
        write_together(s, { "c" .. i })
      end
      write_together(s, { "d1", "d2", "d3", "d4", "d5", "d6" })
      got = read_frames(s, buf, 9)
      for i = 1, 3 do
        assert.same({ OP_TEXT, "c" .. i }, got[i])
      end
      for i = 1, 6 do
        assert.same({ OP_TEXT, "d" .. i }, got[3 + i])
      end
    end)
  end)

  it("give every handler call a budget of its own", function()
    -- Three calls of 0.2 s each in one turn: 0.6 s in one resume, past a
    -- 0.3 s budget that each of them keeps to (four messages: the turn's).
    spins_within_budget(3)
  end)

  it("are all handled when the peer closes TCP right after them", function()
    session(0.5, function(s)
      write_together(s, { "x1", "x2", "x3" })
      s:close()
      h.wait_for(function()
        return #ran == 3
      end, 5)
      assert.same({ "x1", "x2", "x3" }, ran)
    end)
  end)
end)
