-- The WebSocket endpoint API end to end: lifecycle, messages, sends,
-- broadcast, errors, closes; wslua.connect as the peer.
local wslua = require "wslua"
local h = require "helpers"

-- Writes the pieces 50 ms apart, so that the server reads each on its own.
local function write_apart(s, ...)
  for i, piece in ipairs({ ... }) do
    if i > 1 then
      wslua.sleep(0.05)
    end
    s:write(piece)
  end
end

local function echo_host(handler, opts)
  handler = handler or {
    on_data = function(_, client, msg)
      client:send(msg:read(), msg.binary and "binary" or "text")
    end,
  }
  return wslua.host { wslua.router():get("/ws", wslua.websocket(handler, opts)) }
end

describe("an idle client", function()
  -- What every open connection costs: the client table holds only what
  -- every message needs (conn, send) and what is its own (a subprotocol, a
  -- path that is not its route's, data once used). What clients share (the
  -- endpoint, the agreement, compressed, closed, the route's path) is read
  -- through its kind; id and the addresses through its handle, which keeps
  -- them after the close.
  it("holds 2 fields, 3 with its own path or subprotocol, and reads the documented ones", function()
    local seen = {}
    local handler = {}
    function handler:on_handshake(req, res)
      res.protocol = req.protocols[1]
    end
    local function count(client)
      local n = 0
      for _ in pairs(client) do
        n = n + 1
      end
      return n
    end
    function handler:on_open(client)
      local fields = count(client)
      client.data.name = "guest"
      seen[#seen + 1] = {
        fields = fields, with_data = count(client), id = client.id, path = client.path,
        data = client.data, remote = client.remote_addr, peer = client.peer_addr,
        protocol = client.protocol, extensions = client.extensions,
        compressed = client.compressed, closed = client.closed,
      }
    end
    local closed = {}
    function handler:on_close(client)
      -- The final counts and the address, kept by the handle once its
      -- connection is gone.
      local _, _, messages_in = client.conn:stats()
      closed[client.id] = { closed = client.closed, messages_in = messages_in,
        remote = client.remote_addr, peer = client.peer_addr, path = client.path,
        name = client.data.name }
    end
    local server = h.serve(wslua.host { wslua.router()
      :get("/ws", wslua.websocket(handler, { compression = true }))
      :get("/room/{name}", wslua.websocket(handler)) })
    h.run(function()
      local plain = assert(wslua.connect(server:url("/ws")))
      local packed = assert(wslua.connect(server:url("/ws"),
        { compression = true, protocols = { "chat" } }))
      local room = assert(wslua.connect(server:url("/room/lobby")))
      h.wait_for(function() return #seen == 3 end)
      for i, s in ipairs(seen) do
        -- The second also holds its subprotocol, the third its path.
        assert.equal(i == 1 and 2 or 3, s.fields)
        assert.equal(s.fields + 1, s.with_data) -- data, made at first use
        assert.is_number(s.id)
        assert.equal(i == 3 and "/room/lobby" or "/ws", s.path)
        assert.same({ name = "guest" }, s.data)
        assert.matches("^127%.0%.0%.1:%d+$", s.remote)
        assert.equal(s.remote, s.peer)
        assert.is_false(s.closed)
      end
      assert.is_nil(seen[1].protocol)
      assert.is_nil(seen[1].extensions)
      assert.is_false(seen[1].compressed)
      assert.equal("chat", seen[2].protocol)
      assert.matches("^permessage%-deflate", seen[2].extensions)
      assert.is_true(seen[2].compressed)
      assert.is_true(seen[1].id ~= seen[2].id and seen[2].id ~= seen[3].id)
      plain:send("one")
      plain:send("two")
      plain:close()
      packed:close()
      room:close()
      h.wait_for(function()
        return closed[seen[1].id] and closed[seen[2].id] and closed[seen[3].id]
      end)
      for i, s in ipairs(seen) do
        local c = closed[s.id]
        assert.same({ closed = true, messages_in = i == 1 and 2 or 0, remote = s.remote,
          peer = s.remote, path = s.path, name = "guest" }, c)
      end
      h.stop(server)
    end)
  end)
end)

describe("a websocket endpoint", function()
  it("echoes text and binary messages through wslua.connect", function()
    local server = h.serve(echo_host())
    h.run(function()
      local c = assert(wslua.connect(server:url("/ws")))
      assert.truthy(c:send("hello"))
      assert.same({ "hello", false }, { c:receive() })
      assert.truthy(c:send("\0\1\2\255", "binary"))
      assert.same({ "\0\1\2\255", true }, { c:receive() })
      assert.truthy(c:send(""))
      assert.same({ "", false }, { c:receive() })
      c:close()
      h.stop(server)
    end)
  end)

  it("runs the lifecycle in order with handshake data and close codes", function()
    local events = {}
    local done = false
    local handler = {}
    function handler:on_start(endpoint)
      events[#events + 1] = "start"
      self.endpoint = endpoint
    end
    function handler:on_handshake(req, res)
      events[#events + 1] = "handshake " .. req.path
      return "data-from-handshake"
    end
    function handler:on_open(client, data)
      events[#events + 1] = "open " .. tostring(data)
      assert.is_number(client.id)
      assert.matches("^127%.0%.0%.1:%d+$", client.remote_addr)
      client.data.seen = 0
    end
    function handler:on_data(client, msg)
      client.data.seen = client.data.seen + 1
      events[#events + 1] = "data " .. msg:read()
    end
    function handler:on_close(client, code, reason)
      events[#events + 1] = string.format("close %d %s %d", code, reason, client.data.seen)
      done = true
    end
    function handler:on_stop()
      events[#events + 1] = "stop"
    end
    local server = h.serve(echo_host(handler))
    h.run(function()
      local c = assert(wslua.connect(server:url("/ws")))
      c:send("one")
      c:send("two")
      c:close(4001, "bye")
      assert.truthy(h.wait_for(function() return done end))
      h.stop(server)
    end)
    assert.same({ "start", "handshake /ws", "open data-from-handshake", "data one",
      "data two", "close 4001 bye 2", "stop" }, events)
  end)

  it("broadcasts to every client with endpoint:send(nil, ...)", function()
    local handler = {}
    function handler:on_start(e) self.endpoint = e end
    function handler:on_data(client, msg)
      self.endpoint:send(nil, "from " .. client.id .. ": " .. msg:read())
    end
    local server = h.serve(echo_host(handler))
    h.run(function()
      local a = assert(wslua.connect(server:url("/ws")))
      local b = assert(wslua.connect(server:url("/ws")))
      h.wait_for(function() return server:connections() == 2 end)
      a:send("hi all")
      local got_a = a:receive()
      local got_b = b:receive()
      assert.equal(got_a, got_b)
      assert.matches("^from %d+: hi all$", got_a)
      a:close(); b:close()
      h.stop(server)
    end)
  end)

  it("sends to one id or a list of ids", function()
    local handler, ids = {}, {}
    function handler:on_start(e) self.endpoint = e end
    function handler:on_open(client) ids[#ids + 1] = client.id end
    function handler:on_data(client, msg)
      local body = msg:read()
      if body == "to-first" then
        assert.equal(1, self.endpoint:send(ids[1], "only you"))
      else
        assert.equal(2, self.endpoint:send({ ids[1], ids[2], 999999 }, "you two"))
      end
    end
    local server = h.serve(echo_host(handler))
    h.run(function()
      local a = assert(wslua.connect(server:url("/ws")))
      h.wait_for(function() return #ids == 1 end)
      local b = assert(wslua.connect(server:url("/ws")))
      h.wait_for(function() return #ids == 2 end)
      b:send("to-first")
      assert.equal("only you", a:receive())
      b:send("to-both")
      assert.equal("you two", a:receive())
      assert.equal("you two", b:receive())
      a:close(); b:close()
      h.stop(server)
    end)
  end)

  it("closes only the failing client with 1011 when a handler raises", function()
    local handler = {}
    function handler:on_data(client, msg)
      local body = msg:read()
      if body == "boom" then
        error("handler exploded")
      end
      client:send(body)
    end
    local server = h.serve(echo_host(handler))
    h.run(function()
      local bad = assert(wslua.connect(server:url("/ws")))
      local good = assert(wslua.connect(server:url("/ws")))
      bad:send("boom")
      assert.same({ nil, "closed" }, { bad:receive() })
      assert.equal(1011, bad.close_code)
      good:send("still here")
      assert.equal("still here", good:receive())
      good:close()
      h.stop(server)
    end)
  end)

  it("closes with 1011 when on_open raises, and goes on serving after on_close raises", function()
    local handler, closed = {}, 0
    function handler:on_open(client)
      if client.path == "/ws" and not self.opened_once then
        self.opened_once = true
        error("on_open exploded")
      end
    end
    function handler:on_data(client, msg)
      client:send(msg:read())
    end
    function handler:on_close()
      closed = closed + 1
      error("on_close exploded")
    end
    local server = h.serve(echo_host(handler))
    h.run(function()
      local bad = assert(wslua.connect(server:url("/ws")))
      assert.same({ nil, "closed" }, { bad:receive() })
      assert.equal(1011, bad.close_code)
      assert.truthy(h.wait_for(function() return closed == 1 end))
      for i = 1, 3 do
        local good = assert(wslua.connect(server:url("/ws")))
        good:send("round " .. i)
        assert.equal("round " .. i, good:receive())
        good:close()
        assert.truthy(h.wait_for(function() return closed == i + 1 end))
      end
      h.stop(server)
    end)
  end)

  it("closes a one-function endpoint's client with 1000 when the function returns, 1011 when it raises", function()
    local host = wslua.host { wslua.router()
      :get("/done", wslua.websocket(function(client)
        client:send("bye")
      end))
      :get("/raise", wslua.websocket(function()
        error("session exploded")
      end)) }
    local server = h.serve(host)
    h.run(function()
      local a = assert(wslua.connect(server:url("/done")))
      assert.equal("bye", a:receive())
      assert.same({ nil, "closed" }, { a:receive() })
      assert.equal(1000, a.close_code)
      local b = assert(wslua.connect(server:url("/raise")))
      assert.same({ nil, "closed" }, { b:receive() })
      assert.equal(1011, b.close_code)
      h.stop(server)
    end)
  end)

  it("streams a fragmented message with msg:chunks()", function()
    local handler = {}
    function handler:on_data(client, msg)
      local pieces = {}
      for chunk in msg:chunks() do
        pieces[#pieces + 1] = chunk
      end
      client:send(#pieces .. ":" .. table.concat(pieces))
    end
    local server = h.serve(echo_host(handler))
    h.run(function()
      local s = h.tcp(server)
      s:write(h.handshake("/ws"))
      local head = h.read_head(s)
      assert.matches("^HTTP/1.1 101", head)
      write_apart(s, h.frame(1, "ab", false), h.frame(0, "cd", false), h.frame(0, "ef", true))
      local buf = ""
      local op, payload
      repeat
        buf = buf .. assert(s:read(5))
        op, payload = h.parse_frame(buf)
      until op
      assert.equal(1, op)
      assert.equal("3:abcdef", payload)
      s:close()
      h.stop(server)
    end)
  end)

  it("gives send after close nil, \"closed\" and resumes a waiting read", function()
    local result = {}
    local handler = {}
    function handler:on_data(client, msg)
      local body, err = msg:read() -- the client vanishes mid-message
      result.read = { body, err }
      result.send = { client:send("late") }
    end
    local server = h.serve(echo_host(handler))
    h.run(function()
      local s = h.tcp(server)
      s:write(h.handshake("/ws"))
      h.read_head(s)
      s:write(h.frame(1, "part", false))
      wslua.sleep(0.05)
      s:close()
      assert.truthy(h.wait_for(function() return result.send ~= nil end))
      h.stop(server)
    end)
    assert.same({ nil, "closed" }, result.read)
    assert.same({ nil, "closed" }, result.send)
  end)

  it("serves the one-function form with client:messages()", function()
    local server = h.serve(wslua.host { wslua.websocket(function(client, req)
      for msg in client:messages() do
        local body = msg:read()
        if body == "quit" then
          return
        end
        client:send(req.path .. " " .. body)
      end
    end) })
    h.run(function()
      local c = assert(wslua.connect(server:url("/any")))
      c:send("x")
      assert.equal("/any x", c:receive())
      c:send("quit")
      assert.same({ nil, "closed" }, { c:receive() })
      assert.equal(1000, c.close_code)
      h.stop(server)
    end)
  end)
end)

describe("message size limits", function()
  local function streaming_host(mode)
    return wslua.host { wslua.websocket({
      on_data = function(_, client, msg)
        if mode == "chunks" then
          local n, pieces = 0, 0
          for chunk in msg:chunks() do
            n, pieces = n + #chunk, pieces + 1
          end
          client:send("got " .. n)
        else
          local body = msg:read()
          if body then
            client:send("got " .. #body)
          end
        end
      end,
    }, { max_message = 4096, max_stream = 1000000 }) }
  end

  local function send_fragmented(s, total, piece)
    local sent, first = 0, true
    while sent < total do
      local n = math.min(piece, total - sent)
      sent = sent + n
      s:write(h.frame(first and 2 or 0, string.rep("x", n), sent == total))
      first = false
      wslua.sleep(0.002)
    end
  end

  it("lets msg:chunks() consume a message larger than max_message", function()
    local server = h.serve(streaming_host("chunks"))
    h.run(function()
      local s = h.tcp(server)
      s:write(h.handshake("/"))
      local _, rest = h.read_head(s)
      send_fragmented(s, 200000, 2000)
      local buf = rest or ""
      local op, payload
      repeat
        buf = buf .. assert(s:read(5))
        op, payload = h.parse_frame(buf)
      until op
      assert.equal("got 200000", payload)
      s:close()
      h.stop(server)
    end)
  end)

  it("closes 1009 when msg:read() would hold more than max_message", function()
    local server = h.serve(streaming_host("read"))
    h.run(function()
      local s = h.tcp(server)
      s:write(h.handshake("/"))
      local _, rest = h.read_head(s)
      send_fragmented(s, 20000, 2000)
      local code = h.read_until_close(s, rest)
      assert.equal(1009, code)
      s:close()
      h.stop(server)
    end)
  end)
end)

describe("stopping", function()
  it("lets on_stop wait and send before clients get 1001", function()
    local handler = {}
    function handler:on_start(e) self.endpoint = e end
    function handler:on_stop()
      wslua.sleep(0.1)
      self.endpoint:send(nil, "after a pause")
    end
    local server = h.serve(wslua.host { wslua.websocket(handler) })
    h.run(function()
      local c = assert(wslua.connect(server:url("/")))
      h.wait_for(function() return server:connections() == 1 end)
      h.stop(server)
      assert.equal("after a pause", c:receive())
      assert.same({ nil, "closed" }, { c:receive() })
      assert.equal(1001, c.close_code)
    end)
  end)
end)

describe("on_message (the whole message as a string)", function()
  -- Echoes as it came, and says how it came: a message in one piece takes
  -- the C path, one in fragments or compressed the Lua one.
  local function message_host(opts)
    local handler = {}
    function handler:on_message(client, data, binary)
      assert(type(data) == "string" and type(binary) == "boolean")
      client:send(data, binary)
    end
    return echo_host(handler, opts)
  end

  it("gets text and binary bodies with their kind", function()
    local server = h.serve(message_host())
    h.run(function()
      local c = assert(wslua.connect(server:url("/ws")))
      c:send("hello")
      assert.same({ "hello", false }, { c:receive() })
      c:send("\0\1\2\255", "binary")
      assert.same({ "\0\1\2\255", true }, { c:receive() })
      c:send("")
      assert.same({ "", false }, { c:receive() })
      c:close()
      h.stop(server)
    end)
  end)

  it("gets a fragmented message once, whole", function()
    local server = h.serve(message_host())
    h.run(function()
      local s = h.tcp(server)
      s:write(h.handshake("/ws"))
      local _, buf = h.read_head(s)
      write_apart(s, h.frame(2, "ab", false), h.frame(0, "cd", false),
        h.frame(0, "ef", true) .. h.frame(1, "next"))
      local op, payload, rest = h.read_frame(s, buf)
      assert.same({ 2, "abcdef" }, { op, payload })
      op, payload = h.read_frame(s, rest)
      assert.same({ 1, "next" }, { op, payload })
      s:close()
      h.stop(server)
    end)
  end)

  it("gets a compressed message inflated", function()
    local server = h.serve(message_host { compression = true })
    h.run(function()
      local c = assert(wslua.connect(server:url("/ws"), { compression = true }))
      assert.is_true(c.compressed)
      local big = string.rep("compress me ", 500)
      c:send(big)
      assert.same({ big, false }, { c:receive() })
      c:close()
      h.stop(server)
    end)
  end)

  it("still closes 1009 past max_message", function()
    local server = h.serve(message_host { max_message = 4096 })
    h.run(function()
      local s = h.tcp(server)
      s:write(h.handshake("/ws"))
      local _, rest = h.read_head(s)
      for i = 1, 4 do
        s:write(h.frame(i == 1 and 2 or 0, string.rep("x", 2000), i == 4))
      end
      assert.equal(1009, (h.read_until_close(s, rest)))
      s:close()
      h.stop(server)
    end)
  end)

  it("may wait, and a failure closes its client with 1011", function()
    local handler = {}
    function handler:on_message(client, data)
      if data == "fail" then
        error("boom")
      end
      wslua.sleep(0.01)
      client:send("after " .. data)
    end
    local server = h.serve(echo_host(handler))
    h.run(function()
      local c = assert(wslua.connect(server:url("/ws")))
      c:send("a")
      assert.equal("after a", (c:receive()))
      c:send("fail")
      assert.is_nil((c:receive()))
      assert.equal(1011, c.close_code)
      h.stop(server)
    end)
  end)

  it("is refused next to on_data: messages go to one of them", function()
    local ok, err = pcall(wslua.websocket, {
      on_data = function() end,
      on_message = function() end,
    })
    assert.is_false(ok)
    assert.matches("both on_data and on_message", err)
  end)
end)

describe("the first message a fresh server gets", function()
  -- The binary on the echo example, its VM new: the first message comes in
  -- fragments (the general path, set up on first use), then one whole (a
  -- run of whole messages). Both must come back whole and in order.
  it("comes back whole when it arrives in fragments", function()
    local proc = h.spawn(h.quote(h.source_dir .. "/examples/echo/app.lua"))
    finally(function() proc:stop() end)
    wslua.run(function()
      local s = assert(wslua.tcp("127.0.0.1", proc.port))
      s:write(h.handshake("/"))
      local head, buf = h.read_head(s)
      assert.matches("^HTTP/1.1 101", head)
      write_apart(s, h.frame(1, "first ", false), h.frame(0, "message", true) .. h.frame(2, "\1\2"))
      local op, payload, rest = h.read_frame(s, buf)
      assert.same({ 1, "first message" }, { op, payload })
      op, payload = h.read_frame(s, rest)
      assert.same({ 2, "\1\2" }, { op, payload })
      s:close()
    end, 10)
  end)
end)
