-- Topics end to end over loopback: client:subscribe/unsubscribe/topics,
-- endpoint:publish and wslua.publish (from WebSocket and HTTP handlers),
-- who receives what, closes, binary and compressed delivery.
local wslua = require "wslua"
local h = require "helpers"
local http = require "helpers.http"

-- An endpoint whose clients drive their topics with text commands:
-- "sub T", "unsub T", "topics", "pub T payload" (endpoint:publish),
-- "wpub T payload" (wslua.publish), "bpub T payload" (binary). Each command
-- is answered with its result (the first return value).
local function topic_handler(extra)
  local handler = {}
  function handler:on_start(endpoint)
    self.endpoint = endpoint
  end
  function handler:on_data(client, msg)
    local body = msg:read()
    local cmd, topic, rest = body:match("^(%S+) ?(%S*) ?(.*)$")
    local answer
    if cmd == "sub" then
      answer = client:subscribe(topic)
    elseif cmd == "unsub" then
      answer = client:unsubscribe(topic)
    elseif cmd == "topics" then
      answer = table.concat(client:topics(), ",")
    elseif cmd == "pub" then
      answer = self.endpoint:publish(topic, rest)
    elseif cmd == "wpub" then
      answer = wslua.publish(topic, rest)
    elseif cmd == "bpub" then
      answer = self.endpoint:publish(topic, rest, "binary")
    end
    client:send("= " .. tostring(answer))
  end
  for k, v in pairs(extra or {}) do
    handler[k] = v
  end
  return handler
end

local function topic_host(handler, opts, routes)
  local router = wslua.router():get("/ws", wslua.websocket(handler or topic_handler(), opts))
  for path, route in pairs(routes or {}) do
    router:route(route[1], path, route[2])
  end
  return wslua.host { router }
end

-- Sends a command and returns its answer (messages published to the client
-- in between would be out of place: the specs publish after the answers).
local function ask(c, command)
  assert(c:send(command))
  local answer = assert(c:receive())
  return assert(answer:match("^= (.*)$"), "not an answer: " .. answer)
end

-- The next frame from a raw stream: opcode, payload, the bytes after it,
-- the first header byte.
local function next_frame(stream, buf)
  while true do
    local op, payload, rest, b0 = h.parse_frame(buf)
    if op then
      return op, payload, rest, b0
    end
    buf = buf .. assert(stream:read(5))
  end
end

-- Reads messages up to and including one equal to marker; returns the
-- bodies before it.
local function read_until(c, marker)
  local got = {}
  while true do
    local body = assert(c:receive())
    if body == marker then
      return got
    end
    got[#got + 1] = body
  end
end

describe("topics", function()
  it("subscribe, unsubscribe and topics() keep a client's list", function()
    local server = h.serve(topic_host())
    h.run(function()
      local c = assert(wslua.connect(server:url("/ws")))
      assert.equal("", ask(c, "topics"))
      assert.equal("true", ask(c, "sub news"))
      assert.equal("false", ask(c, "sub news")) -- already subscribed
      assert.equal("true", ask(c, "sub sport"))
      assert.equal("true", ask(c, "sub weather"))
      assert.equal("news,sport,weather", ask(c, "topics"))
      assert.equal("true", ask(c, "unsub sport"))
      assert.equal("false", ask(c, "unsub sport"))
      assert.equal("false", ask(c, "unsub never"))
      assert.equal("news,weather", ask(c, "topics"))
      assert.equal(1, wslua.subscribers("news"))
      assert.equal(0, wslua.subscribers("sport"))
      c:close()
      h.stop(server)
    end)
  end)

  it("delivers a publish to exactly the subscribers of its topic", function()
    local server = h.serve(topic_host())
    h.run(function()
      local a = assert(wslua.connect(server:url("/ws")))
      local b = assert(wslua.connect(server:url("/ws")))
      local c = assert(wslua.connect(server:url("/ws")))
      local d = assert(wslua.connect(server:url("/ws"))) -- subscribes to "end" only
      ask(a, "sub red"); ask(a, "sub green")
      ask(b, "sub green"); ask(b, "sub blue")
      ask(c, "sub blue")
      for _, x in ipairs { a, b, c, d } do
        ask(x, "sub end")
      end
      assert.equal("1", ask(d, "pub red r1"))
      assert.equal("2", ask(d, "pub green g1"))
      assert.equal("2", ask(d, "pub blue b1"))
      assert.equal("0", ask(d, "pub nobody n1"))
      assert.equal("1", ask(d, "wpub red r2"))
      assert.equal(4, wslua.publish("end", "end"))
      -- d's own answers came before the publishes it asked for; each client
      -- sees its topics' messages in publish order, and nothing else.
      assert.same({ "r1", "g1", "r2" }, read_until(a, "end"))
      assert.same({ "g1", "b1" }, read_until(b, "end"))
      assert.same({ "b1" }, read_until(c, "end"))
      assert.same({}, read_until(d, "end"))
      for _, x in ipairs { a, b, c, d } do
        x:close()
      end
      h.stop(server)
    end)
  end)

  it("publishes from an HTTP POST handler", function()
    local routes = {
      ["/posts"] = { "POST", function(req, res)
        local n = wslua.publish("posts", req:body())
        res:send("delivered to " .. n)
      end },
    }
    local server = h.serve(topic_host(nil, nil, routes))
    h.run(function()
      local a = assert(wslua.connect(server:url("/ws")))
      local b = assert(wslua.connect(server:url("/ws")))
      ask(a, "sub posts")
      ask(b, "sub posts")
      local res = assert(http.get(server, "/posts", { "Content-Type: text/plain" }, "POST",
        "a new post"))
      assert.equal(200, res.status)
      assert.equal("delivered to 2", res.body)
      assert.equal("a new post", a:receive())
      assert.equal("a new post", b:receive())
      a:close(); b:close()
      h.stop(server)
    end)
  end)

  it("removes a closed client from all its topics", function()
    local topics_at_close
    local closed = false
    local handler = topic_handler {
      on_close = function(_, client)
        topics_at_close = client:topics()
        closed = true
      end,
    }
    local server = h.serve(topic_host(handler))
    h.run(function()
      local a = assert(wslua.connect(server:url("/ws")))
      local b = assert(wslua.connect(server:url("/ws")))
      ask(a, "sub x"); ask(a, "sub y")
      ask(b, "sub x")
      assert.equal(2, wslua.subscribers("x"))
      assert.equal(1, wslua.subscribers("y"))
      a:close()
      assert.truthy(h.wait_for(function() return closed end))
      assert.same({}, topics_at_close)
      assert.equal(1, wslua.subscribers("x"))
      assert.equal(0, wslua.subscribers("y"))
      assert.equal(1, wslua.publish("x", "still here"))
      assert.equal(0, wslua.publish("y", "nobody"))
      assert.equal("still here", b:receive())
      -- An abrupt end (no closing handshake) leaves the topics too.
      b.conn:abort()
      assert.truthy(h.wait_for(function() return wslua.subscribers("x") == 0 end))
      assert.equal(0, wslua.publish("x", "gone"))
      h.stop(server)
    end)
  end)

  it("publishes binary payloads byte for byte", function()
    local server = h.serve(topic_host())
    h.run(function()
      local a = assert(wslua.connect(server:url("/ws")))
      ask(a, "sub bin")
      local bytes = {}
      for i = 0, 255 do
        bytes[#bytes + 1] = string.char(i)
      end
      local payload = table.concat(bytes)
      assert.equal(1, wslua.publish("bin", payload, "binary"))
      assert.same({ payload, true }, { a:receive() })
      assert.equal(1, wslua.publish("bin", "text", "text"))
      assert.same({ "text", false }, { a:receive() })
      assert.has_error(function() wslua.publish("bin", "x", "base64") end)
      assert.has_error(function() wslua.publish(42, "x") end)
      assert.has_error(function() wslua.publish("bin", {}) end)
      a:close()
      h.stop(server)
    end)
  end)

  it("reaches compressed and plain clients alike, compressing once", function()
    local server = h.serve(topic_host(nil, { compression = true }))
    h.run(function()
      local z1 = assert(wslua.connect(server:url("/ws"), { compression = true }))
      local z2 = assert(wslua.connect(server:url("/ws"), { compression = true }))
      local plain = assert(wslua.connect(server:url("/ws")))
      assert.is_true(z1.compressed)
      assert.is_true(z2.compressed)
      assert.is_false(plain.compressed)
      for _, c in ipairs { z1, z2, plain } do
        ask(c, "sub z")
      end
      -- A raw peer that negotiated compression sees RSV1 and fewer bytes.
      local raw = h.tcp(server)
      raw:write(h.handshake("/ws", "Sec-WebSocket-Extensions: permessage-deflate\r\n"))
      local head, rest = h.read_head(raw)
      assert.matches("permessage%-deflate", head)
      raw:write(h.frame(1, "sub z"))
      local op, answer
      op, answer, rest = next_frame(raw, rest)
      assert.same({ 1, "= true" }, { op, answer })
      assert.equal(4, wslua.subscribers("z"))
      local big = string.rep("all work and no play makes a dull publish ", 500)
      local bin = string.rep("\0\1\2\3", 3000)
      assert.equal(4, wslua.publish("z", big))
      assert.equal(4, wslua.publish("z", "tiny"))
      assert.equal(4, wslua.publish("z", bin, "binary"))
      for _, c in ipairs { z1, z2, plain } do
        assert.same({ big, false }, { c:receive() })
        assert.same({ "tiny", false }, { c:receive() })
        assert.same({ bin, true }, { c:receive() })
      end
      local frame, b0
      op, frame, rest, b0 = next_frame(raw, rest)
      assert.equal(1, op)
      assert.equal(0x40, b0 & 0x40, "RSV1 (compressed) expected")
      assert.is_true(#frame < #big / 10)
      raw:close()
      for _, c in ipairs { z1, z2, plain } do
        c:close()
      end
      h.stop(server)
    end)
  end)

  it("scopes endpoint:publish to its endpoint and wslua.publish to all", function()
    local a_handler, b_handler = topic_handler(), topic_handler()
    local router = wslua.router()
      :get("/a", wslua.websocket(a_handler))
      :get("/b", wslua.websocket(b_handler))
    local server = h.serve(wslua.host { router })
    h.run(function()
      local a = assert(wslua.connect(server:url("/a")))
      local b = assert(wslua.connect(server:url("/b")))
      ask(a, "sub news"); ask(a, "sub end")
      ask(b, "sub news"); ask(b, "sub end")
      assert.equal(1, a_handler.endpoint:subscribers("news"))
      assert.equal(1, b_handler.endpoint:subscribers("news"))
      assert.equal(2, wslua.subscribers("news"))
      assert.equal(1, a_handler.endpoint:publish("news", "for a"))
      assert.equal(1, b_handler.endpoint:publish("news", "for b"))
      assert.equal(2, wslua.publish("news", "for all"))
      assert.equal(2, wslua.publish("end", "end"))
      assert.same({ "for a", "for all" }, read_until(a, "end"))
      assert.same({ "for b", "for all" }, read_until(b, "end"))
      a:close(); b:close()
      h.stop(server)
    end)
  end)

  it("fans one publish out to many subscribers", function()
    local handler = topic_handler {
      on_open = function(_, client)
        client:subscribe("many")
      end,
    }
    local server = h.serve(topic_host(handler))
    local n = 200
    h.run(function()
      local clients = {}
      for i = 1, n do
        clients[i] = assert(wslua.connect(server:url("/ws")))
      end
      assert.truthy(h.wait_for(function() return wslua.subscribers("many") == n end))
      assert.equal(n, wslua.publish("many", "to all " .. n))
      for i = 1, n do
        assert.equal("to all " .. n, clients[i]:receive())
      end
      for i = 1, n do
        clients[i]:close()
      end
      assert.truthy(h.wait_for(function() return wslua.subscribers("many") == 0 end))
      h.stop(server)
    end, 30)
  end)
end)
