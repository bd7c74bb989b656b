-- RFC 6455 and HTTP conformance end to end: raw bytes over loopback TCP
-- against an in-process server, checking the exact status line or close
-- code the server answers with, and that it goes on serving others.
local wslua = require "wslua"
local core = require "wslua.core"
local h = require "helpers"

local KEY_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" -- RFC 6455 §1.3's example

local OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

-- An endpoint that echoes every message, as text or binary as it came.
local function echo_handler(extra)
  local handler = {
    on_data = function(_, client, msg)
      local body = msg:read()
      if body then
        client:send(body, msg.binary and "binary" or "text")
      end
    end,
  }
  for k, v in pairs(extra or {}) do
    handler[k] = v
  end
  return handler
end

local function echo_host(ws_opts, host_opts, handler)
  local t = { wslua.router():get("/ws", wslua.websocket(handler or echo_handler(), ws_opts)) }
  for k, v in pairs(host_opts or {}) do
    t[k] = v
  end
  return wslua.host(t)
end

-- Streams opened by a test, closed before its server stops so that a
-- failing test does not leave the graceful stop waiting on them.
local streams = {}

local function connect(server)
  local s = h.tcp(server)
  streams[#streams + 1] = s
  return s
end

-- Serves host while fn(server) runs in a coroutine; always stops it.
local function serving(host, fn, timeout)
  local server = h.serve(host)
  h.run(function()
    local ok, err = pcall(fn, server)
    for _, s in ipairs(streams) do
      s:close()
    end
    streams = {}
    h.stop(server)
    if not ok then
      error(err, 0)
    end
  end, timeout or 20)
end

-- Reads a response: its head, the body Content-Length announces, and any
-- bytes after it.
local function read_response(s)
  local head, rest = h.read_head(s)
  if not head then
    return nil, rest
  end
  local length = tonumber(head:lower():match("\r\ncontent%-length:%s*(%d+)") or 0)
  while #rest < length do
    local bytes = s:read(5)
    if not bytes then
      break
    end
    rest = rest .. bytes
  end
  return head, rest:sub(1, length), rest:sub(length + 1)
end

-- Sends bytes on a new stream; returns it and the response.
local function request(server, bytes)
  local s = connect(server)
  s:write(bytes)
  return s, read_response(s)
end

-- The value of a header in a response head, or nil.
local function header(head, name)
  for line in head:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k and k:lower() == name:lower() then
      return v
    end
  end
  return nil
end

-- Opens a WebSocket session: the stream and the bytes read past the 101.
local function upgrade(server, path, extra)
  local s = connect(server)
  s:write(h.handshake(path or "/ws", extra))
  local head, rest = h.read_head(s)
  assert.matches("^HTTP/1%.1 101 ", head)
  return s, rest
end

local read_frame = h.read_frame

-- Asserts the peer ends the stream (rather than going quiet).
local function assert_tcp_closed(s, timeout)
  assert.same({ nil, "closed" }, { s:read(timeout or 2) })
end

-- Asserts the server's next frame is a close with this code, and that it
-- then closes TCP. Returns the close reason.
local function expect_close(s, code, buf)
  local got, frames, reason = h.read_until_close(s, buf)
  assert.equal(code, got)
  assert.equal(OP_CLOSE, frames[#frames][1])
  assert_tcp_closed(s)
  return reason
end

local function close_payload(code, reason)
  return string.pack(">I2", code) .. (reason or "")
end

-- Asserts a text message goes to the server and back unchanged.
local function assert_echo(s, text)
  s:write(h.frame(OP_TEXT, text))
  local op, payload = read_frame(s)
  assert.equal(OP_TEXT, op)
  assert.equal(text, payload)
end

-- Asserts the server still serves a new client: upgrade, echo, clean close.
local function assert_serves(server)
  local s = upgrade(server)
  assert_echo(s, "still serving")
  s:write(h.frame(OP_CLOSE, close_payload(1000)))
  expect_close(s, 1000)
end

-- A masked frame with the all-zero key, so the payload is sent as it is:
-- fast to build for big payloads.
local function plain_frame(opcode, payload, fin)
  local len = #payload
  local b0 = (fin == false and 0 or 0x80) | opcode
  local head
  if len < 126 then
    head = string.pack(">BB", b0, 0x80 | len)
  elseif len < 65536 then
    head = string.pack(">BBI2", b0, 0x80 | 126, len)
  else
    head = string.pack(">BBI8", b0, 0x80 | 127, len)
  end
  return head .. "\0\0\0\0" .. payload
end

-- A position-weighted sum of 8-byte words (and the tail bytes), to compare
-- big payloads without printing them. Words are unpacked 32 at a time: the
-- specs also run under valgrind.
local WORDS = 32
local WORDS_FORMAT = "<" .. string.rep("i8", WORDS)

local function checksum(s)
  local sum, k, n = 0, 0, #s - #s % (8 * WORDS)
  for i = 1, n, 8 * WORDS do
    local words = { string.unpack(WORDS_FORMAT, s, i) }
    for j = 1, WORDS do
      k = k + 1
      sum = sum + words[j] * k
    end
  end
  for j = n + 1, #s do
    k = k + 1
    sum = sum + s:byte(j) * k
  end
  return sum
end

local function elapsed_since(t0)
  return core.now() - t0
end

describe("the opening handshake", function()
  it("upgrades a valid request with the RFC 6455 accept value", function()
    serving(echo_host(), function(server)
      local s = connect(server)
      s:write(h.handshake("/ws"))
      local head = h.read_head(s)
      assert.matches("^HTTP/1%.1 101 Switching Protocols\r\n", head)
      assert.equal(KEY_ACCEPT, header(head, "Sec-WebSocket-Accept"))
      assert.equal("websocket", header(head, "Upgrade"):lower())
      assert.equal("upgrade", header(head, "Connection"):lower())
      assert.is_nil(header(head, "Sec-WebSocket-Protocol"))
      assert_echo(s, "hello")
    end)
  end)

  it("reads frames sent in the same write as the request", function()
    serving(echo_host(), function(server)
      local s = connect(server)
      s:write(h.handshake("/ws") .. h.frame(OP_TEXT, "eager") .. h.frame(OP_PING, "too"))
      local head, rest = h.read_head(s)
      assert.matches("^HTTP/1%.1 101 ", head)
      local got = {}
      for _ = 1, 2 do
        local op, payload
        op, payload, rest = read_frame(s, rest)
        got[op] = payload
      end
      assert.same({ [OP_TEXT] = "eager", [OP_PONG] = "too" }, got)
    end)
  end)

  it("accepts Connection: keep-alive, Upgrade", function()
    serving(echo_host(), function(server)
      local s = connect(server)
      s:write((h.handshake("/ws"):gsub("Connection: Upgrade", "Connection: keep-alive, Upgrade")))
      local head = h.read_head(s)
      assert.matches("^HTTP/1%.1 101 ", head)
      assert.equal(KEY_ACCEPT, header(head, "Sec-WebSocket-Accept"))
      assert_echo(s, "kept")
    end)
  end)

  it("refuses a malformed or missing key with 400", function()
    serving(echo_host(), function(server)
      for _, key in ipairs { "abc", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ==x",
        "dGhlIHNhbXBsZSBub25jZ!==" } do
        local bytes = h.handshake("/ws"):gsub("dGhlIHNhbXBsZSBub25jZQ==", key)
        local s, head = request(server, bytes)
        assert.matches("^HTTP/1%.1 400 Bad Request\r\n", head)
        assert.is_nil(header(head, "Sec-WebSocket-Accept"))
        assert_tcp_closed(s)
      end
      local _, head = request(server, (h.handshake("/ws"):gsub("Sec%-WebSocket%-Key: [^\r]*\r\n", "")))
      assert.matches("^HTTP/1%.1 400 Bad Request\r\n", head)
      assert_serves(server)
    end)
  end)

  it("answers another version with 426 and Sec-WebSocket-Version: 13", function()
    serving(echo_host(), function(server)
      local bytes = h.handshake("/ws"):gsub("Sec%-WebSocket%-Version: 13", "Sec-WebSocket-Version: 12")
      local s, head = request(server, bytes)
      assert.matches("^HTTP/1%.1 426 Upgrade Required\r\n", head)
      assert.equal("13", header(head, "Sec-WebSocket-Version"))
      assert_tcp_closed(s)
    end)
  end)

  it("answers a POST upgrade with 405 and an Allow with GET", function()
    local only = wslua.host { wslua.websocket(echo_handler()) }
    local post = h.handshake("/ws"):gsub("^GET", "POST")
    for _, host in ipairs { echo_host(), only } do
      serving(host, function(server)
        local s, head = request(server, post)
        assert.matches("^HTTP/1%.1 405 Method Not Allowed\r\n", head)
        -- RFC 9110 §15.5.6: Allow lists GET (a router adds HEAD with it).
        local allow = {}
        for method in (header(head, "Allow") or ""):gmatch("[^,%s]+") do
          allow[method] = true
        end
        assert.is_true(allow.GET)
        assert.is_nil(allow.POST)
        assert.is_nil(header(head, "Sec-WebSocket-Accept"))
        s:write(h.frame(OP_TEXT, "in?"))
        assert.is_nil(read_frame(s, nil, 0.3))
        assert_serves(server)
      end)
    end
  end)

  it("never upgrades a refused handshake", function()
    local opened = 0
    local handler = echo_handler {
      on_handshake = function(_, _, res)
        res.status = 403
        res:send("no")
      end,
      on_open = function()
        opened = opened + 1
      end,
    }
    serving(echo_host(nil, nil, handler), function(server)
      local s, head, body = request(server, h.handshake("/ws"))
      assert.matches("^HTTP/1%.1 403 Forbidden\r\n", head)
      assert.equal("no", body)
      assert.is_nil(header(head, "Sec-WebSocket-Accept"))
      s:write(h.frame(OP_TEXT, "let me in"))
      local op, err = read_frame(s, nil, 0.5)
      assert.is_nil(op)
      assert.equal("closed", err)
      -- A frame sent right behind the request, before any answer.
      s = connect(server)
      s:write(h.handshake("/ws") .. h.frame(OP_TEXT, "let me in") .. h.frame(OP_PING, "p"))
      head, body = read_response(s)
      assert.matches("^HTTP/1%.1 403 Forbidden\r\n", head)
      op, err = read_frame(s, nil, 0.5)
      assert.is_nil(op)
      assert.equal("closed", err)
      assert.equal(0, opened)
    end)
  end)

  it("refuses an origin not in the allow-list with 403", function()
    serving(echo_host { origins = { "http://good.example" } }, function(server)
      local s, head = request(server, h.handshake("/ws", "Origin: http://evil.example\r\n"))
      assert.matches("^HTTP/1%.1 403 Forbidden\r\n", head)
      assert.is_nil(header(head, "Sec-WebSocket-Accept"))
      assert_tcp_closed(s)
      s = upgrade(server, "/ws", "Origin: http://good.example\r\n")
      assert_echo(s, "welcome")
    end)
  end)

  it("picks a subprotocol the client offered, or none", function()
    local seen
    local handler = echo_handler {
      on_open = function(_, client)
        seen = client.protocol
      end,
    }
    serving(echo_host({ protocols = { "chat", "superchat" } }, nil, handler), function(server)
      local cases = {
        { "superchat, chat", "superchat" },
        { "foo, chat", "chat" },
        { "foo, bar", nil },
      }
      for _, case in ipairs(cases) do
        seen = false
        local s = connect(server)
        s:write(h.handshake("/ws", "Sec-WebSocket-Protocol: " .. case[1] .. "\r\n"))
        local head = h.read_head(s)
        assert.matches("^HTTP/1%.1 101 ", head)
        assert.equal(case[2], header(head, "Sec-WebSocket-Protocol"))
        assert_echo(s, "proto")
        assert.equal(case[2], seen)
        s:close()
      end
      local s = connect(server)
      s:write(h.handshake("/ws"))
      local head = h.read_head(s)
      assert.matches("^HTTP/1%.1 101 ", head)
      assert.is_nil(header(head, "Sec-WebSocket-Protocol"))
    end)
  end)

  it("lets on_handshake refuse with its own status and body", function()
    local handler = echo_handler {
      on_handshake = function(_, req, res)
        if req.query.deny then
          res.status = 403
          res:send("no")
        end
      end,
    }
    serving(echo_host(nil, nil, handler), function(server)
      local s, head, body = request(server, h.handshake("/ws?deny=1"))
      assert.matches("^HTTP/1%.1 403 Forbidden\r\n", head)
      assert.equal("2", header(head, "Content-Length"))
      assert.equal("no", body)
      assert_tcp_closed(s)
      s = upgrade(server, "/ws")
      assert_echo(s, "allowed")
    end)
  end)
end)

describe("frames from the client", function()
  local function fails_with(code, bytes, before)
    serving(echo_host(), function(server)
      local s = upgrade(server)
      if before then
        assert_echo(s, before)
      end
      s:write(bytes)
      expect_close(s, code)
      assert_serves(server)
    end)
  end

  it("closes with 1002 on an unmasked frame", function()
    fails_with(1002, string.pack(">BB", 0x81, 2) .. "hi", "masked first")
  end)

  it("closes with 1002 on RSV bits without an extension", function()
    fails_with(1002, h.frame(OP_TEXT, "x", true, 0x40))
    fails_with(1002, h.frame(OP_TEXT, "x", true, 0x20))
    fails_with(1002, h.frame(OP_TEXT, "x", true, 0x10))
  end)

  it("closes with 1002 on reserved opcodes", function()
    fails_with(1002, h.frame(3, "x"))
    fails_with(1002, h.frame(0xB, "x"))
  end)

  it("closes with 1002 on a ping over 125 bytes", function()
    fails_with(1002, h.frame(OP_PING, string.rep("p", 126)))
  end)

  it("closes with 1002 on a fragmented ping", function()
    fails_with(1002, h.frame(OP_PING, "p", false))
  end)

  it("closes with 1002 on a continuation without a message", function()
    fails_with(1002, h.frame(OP_CONT, "orphan"))
  end)

  it("closes with 1002 on a new message inside a fragmented one", function()
    fails_with(1002, h.frame(OP_TEXT, "start", false) .. h.frame(OP_TEXT, "again"))
  end)

  it("answers a ping between fragments and still delivers the message whole", function()
    serving(echo_host(), function(server)
      local s = upgrade(server)
      s:write(h.frame(OP_TEXT, "Hel", false))
      s:write(h.frame(OP_PING, "between"))
      local op, payload, rest = read_frame(s)
      assert.equal(OP_PONG, op)
      assert.equal("between", payload)
      s:write(h.frame(OP_CONT, "lo", false) .. h.frame(OP_CONT, ", world"))
      op, payload = read_frame(s, rest)
      assert.equal(OP_TEXT, op)
      assert.equal("Hello, world", payload)
    end)
  end)

  it("answers a ping with a pong of the same payload", function()
    serving(echo_host(), function(server)
      local s = upgrade(server)
      local data = "\0\1\2 ping " .. string.rep("z", 125 - 9)
      assert.equal(125, #data)
      s:write(h.frame(OP_PING, data))
      local op, payload, _, b0 = read_frame(s)
      assert.equal(OP_PONG, op)
      assert.equal(0x8A, b0)
      assert.equal(data, payload)
      s:write(h.frame(OP_PING, ""))
      op, payload = read_frame(s)
      assert.equal(OP_PONG, op)
      assert.equal("", payload)
    end)
  end)

  it("ignores an unsolicited pong", function()
    serving(echo_host(), function(server)
      local s = upgrade(server)
      s:write(h.frame(OP_PONG, "unasked"))
      assert_echo(s, "after the pong")
    end)
  end)

  it("closes with 1007 on text that is not UTF-8", function()
    fails_with(1007, h.frame(OP_TEXT, "ok \xC3\x28"))
    fails_with(1007, h.frame(OP_TEXT, "surrogate \xED\xA0\x80"))
    fails_with(1007, h.frame(OP_TEXT, "truncated \xE2\x82"))
  end)

  it("closes with 1007 when the bad sequence spans two fragments", function()
    -- The message never ends: the server must see the fault where it is.
    fails_with(1007, h.frame(OP_TEXT, "euro \xE2\x82", false) .. h.frame(OP_CONT, "\x28 no", false))
    fails_with(1007, h.frame(OP_TEXT, "cut \xF0\x9F", false) .. h.frame(OP_CONT, ""))
  end)

  it("closes with 1007 at the first bad fragment, before the message ends", function()
    fails_with(1007, h.frame(OP_TEXT, "fine so far", false) .. h.frame(OP_CONT, "bad \xFF", false))
  end)

  it("accepts a character split across fragments", function()
    serving(echo_host(), function(server)
      local s = upgrade(server)
      s:write(h.frame(OP_TEXT, "price: \xE2", false))
      s:write(h.frame(OP_CONT, "\x82", false))
      s:write(h.frame(OP_CONT, "\xAC 5"))
      local op, payload = read_frame(s)
      assert.equal(OP_TEXT, op)
      assert.equal("price: \xE2\x82\xAC 5", payload)
    end)
  end)

  it("echoes a text message written one byte at a time", function()
    serving(echo_host(), function(server)
      local s = upgrade(server)
      local text = "byte by byte: h\xC3\xA9llo"
      local bytes = h.frame(OP_TEXT, text)
      for i = 1, #bytes do
        assert.truthy(s:write(bytes:sub(i, i)))
        if i % 5 == 0 then
          wslua.sleep(0.01)
        end
      end
      local op, payload = read_frame(s)
      assert.equal(OP_TEXT, op)
      assert.equal(text, payload)
    end)
  end)

  it("parses a frame stream split at every byte", function()
    serving(echo_host(), function(server)
      local s = upgrade(server)
      local bytes = h.frame(OP_TEXT, "fr", false) .. h.frame(OP_PING, "pi")
        .. h.frame(OP_CONT, "ag", false) .. h.frame(OP_CONT, "ment")
        .. h.frame(OP_BINARY, "\0\255") .. h.frame(OP_CLOSE, close_payload(1000, "done"))
      for i = 1, #bytes do
        assert.truthy(s:write(bytes:sub(i, i)))
        wslua.sleep(0.002)
      end
      local code, frames = h.read_until_close(s)
      assert.same({ { OP_PONG, "pi" }, { OP_TEXT, "fragment" }, { OP_BINARY, "\0\255" },
        { OP_CLOSE, close_payload(1000) } }, frames)
      assert.equal(1000, code)
      assert_tcp_closed(s)
    end)
  end)
end)

describe("the closing handshake", function()
  it("echoes a client's 1000 and then closes TCP", function()
    local closed
    local handler = echo_handler {
      on_close = function(_, _, code, reason)
        closed = { code, reason }
      end,
    }
    serving(echo_host(nil, nil, handler), function(server)
      local s = upgrade(server)
      s:write(h.frame(OP_CLOSE, close_payload(1000, "bye now")))
      local op, payload, rest = read_frame(s)
      assert.equal(OP_CLOSE, op)
      assert.equal(1000, string.unpack(">I2", payload))
      assert.equal("", rest)
      assert_tcp_closed(s)
      assert.truthy(h.wait_for(function() return closed end, 2))
      assert.same({ 1000, "bye now" }, closed)
    end)
  end)

  it("echoes an empty close with an empty close", function()
    serving(echo_host(), function(server)
      local s = upgrade(server)
      s:write(h.frame(OP_CLOSE, ""))
      local op, payload = read_frame(s)
      assert.equal(OP_CLOSE, op)
      assert.equal("", payload)
      assert_tcp_closed(s)
    end)
  end)

  it("closes with 1002 on codes an endpoint may not send", function()
    serving(echo_host(), function(server)
      for _, code in ipairs { 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535 } do
        local s = upgrade(server)
        s:write(h.frame(OP_CLOSE, close_payload(code)))
        local ok, err = pcall(expect_close, s, 1002)
        assert(ok, "close code " .. code .. ": " .. tostring(err))
      end
      assert_serves(server)
    end)
  end)

  it("echoes every valid close code", function()
    local codes = { 1000, 1001, 1002, 1003, 3000, 4999 }
    for code = 1007, 1014 do
      codes[#codes + 1] = code
    end
    serving(echo_host(), function(server)
      for _, code in ipairs(codes) do
        local s = upgrade(server)
        s:write(h.frame(OP_CLOSE, close_payload(code, "r")))
        local ok, err = pcall(expect_close, s, code)
        assert(ok, "close code " .. code .. ": " .. tostring(err))
      end
    end)
  end)

  it("closes with 1002 on a one-byte close payload", function()
    serving(echo_host(), function(server)
      local s = upgrade(server)
      s:write(h.frame(OP_CLOSE, "\3"))
      expect_close(s, 1002)
      assert_serves(server)
    end)
  end)

  it("closes with 1007 on a close reason that is not UTF-8", function()
    serving(echo_host(), function(server)
      local s = upgrade(server)
      s:write(h.frame(OP_CLOSE, close_payload(1000, "bad \xFF reason")))
      expect_close(s, 1007)
      assert_serves(server)
    end)
  end)

  local function closing_host(close_timeout)
    return echo_host({ close_timeout = close_timeout }, nil, {
      on_data = function(_, client, msg)
        local body = msg:read()
        if body == "close me" then
          client:close(4000, "x")
        elseif body then
          client:send(body)
        end
      end,
    })
  end

  it("closes TCP after the peer answers a server-initiated close", function()
    serving(closing_host(5), function(server)
      local s = upgrade(server)
      s:write(h.frame(OP_TEXT, "close me"))
      local op, payload = read_frame(s)
      assert.equal(OP_CLOSE, op)
      assert.equal(close_payload(4000, "x"), payload)
      -- The server waits for our close before closing TCP.
      assert.same({ nil, "timeout" }, { s:read(0.3) })
      s:write(h.frame(OP_CLOSE, close_payload(4000)))
      local t0 = core.now()
      assert_tcp_closed(s)
      assert.is_true(elapsed_since(t0) < 1)
    end)
  end)

  it("closes TCP after close_timeout when the peer never answers", function()
    serving(closing_host(0.5), function(server)
      local s = upgrade(server)
      s:write(h.frame(OP_TEXT, "close me"))
      local op, payload = read_frame(s)
      local t0 = core.now()
      assert.equal(OP_CLOSE, op)
      assert.equal(close_payload(4000, "x"), payload)
      assert_tcp_closed(s, 3)
      local waited = elapsed_since(t0)
      assert.is_true(waited >= 0.4 and waited < 1.5, "closed after " .. waited .. " s")
      assert_serves(server)
    end)
  end)
end)

describe("limits", function()
  local MiB = 1024 * 1024

  it("closes with 1009 on a message over max_message", function()
    serving(echo_host { max_message = MiB }, function(server)
      -- One frame, refused at its header.
      local s = upgrade(server)
      s:write(plain_frame(OP_BINARY, string.rep("a", 2 * MiB)))
      expect_close(s, 1009)
      -- Fragments each under the limit, adding up to more.
      s = upgrade(server)
      local piece = string.rep("b", 512 * 1024)
      s:write(plain_frame(OP_BINARY, piece, false) .. plain_frame(OP_CONT, piece, false)
        .. plain_frame(OP_CONT, piece, false) .. plain_frame(OP_CONT, piece))
      expect_close(s, 1009)
      assert_serves(server)
    end)
  end)

  it("echoes a 16 MiB message intact under a 32 MiB limit", function()
    serving(echo_host { max_message = 32 * MiB }, function(server)
      local s = upgrade(server)
      local block = {}
      for i = 0, 4095 do
        block[#block + 1] = string.char(i % 251, (i * 7) % 256)
      end
      local payload = string.rep(table.concat(block), 16 * MiB / 8192)
      assert.equal(16 * MiB, #payload)
      s:write(plain_frame(OP_BINARY, payload))
      -- Collect the answer in pieces: one string grown 16 MiB would be slow.
      local head = ""
      while #head < 10 do
        head = head .. assert(s:read(10))
      end
      local b0, b1 = head:byte(1, 2)
      assert.equal(0x82, b0)
      assert.equal(127, b1)
      local len = string.unpack(">I8", head, 3)
      assert.equal(#payload, len)
      local parts, got = { head:sub(11) }, #head - 10
      while got < len do
        local bytes = assert(s:read(5))
        parts[#parts + 1] = bytes
        got = got + #bytes
      end
      local echoed = table.concat(parts)
      assert.equal(#payload, #echoed)
      assert.equal(checksum(payload), checksum(echoed))
      assert.is_true(echoed == payload, "the echo differs from the message")
    end, 30)
  end)

  it("closes with 1009 on a frame over max_frame", function()
    serving(echo_host { max_frame = 1000 }, function(server)
      local s = upgrade(server)
      local piece = string.rep("f", 1000)
      s:write(h.frame(OP_TEXT, piece, false) .. h.frame(OP_CONT, piece, false)
        .. h.frame(OP_CONT, piece))
      local op, payload = read_frame(s)
      assert.equal(OP_TEXT, op)
      assert.equal(3000, #payload)
      s:write(h.frame(OP_TEXT, piece .. "!"))
      expect_close(s, 1009)
      assert_serves(server)
    end)
  end)

  it("answers 431 when the header section is over max_header_bytes", function()
    serving(echo_host(nil, { max_header_bytes = 1024 }), function(server)
      local s, head = request(server, h.handshake("/ws", "X-Pad: " .. string.rep("p", 1100) .. "\r\n"))
      assert.matches("^HTTP/1%.1 431 Request Header Fields Too Large\r\n", head)
      assert_tcp_closed(s)
      assert_serves(server)
    end)
  end)

  it("answers 431 when there are more headers than max_headers", function()
    serving(echo_host(nil, { max_headers = 10 }), function(server)
      local extra = {}
      for i = 1, 10 do
        extra[i] = "X-H" .. i .. ": v\r\n"
      end
      local s, head = request(server, h.handshake("/ws", table.concat(extra)))
      assert.matches("^HTTP/1%.1 431 Request Header Fields Too Large\r\n", head)
      assert_tcp_closed(s)
      assert_serves(server)
    end)
  end)

  it("answers 414 when the URL is over max_url", function()
    serving(echo_host(nil, { max_url = 256 }), function(server)
      local s, head = request(server, h.handshake("/ws?q=" .. string.rep("u", 300)))
      assert.matches("^HTTP/1%.1 414 URI Too Long\r\n", head)
      assert_tcp_closed(s)
      assert_serves(server)
    end)
  end)

  it("answers 413 when a body is over max_body", function()
    local called = false
    local host = wslua.host {
      max_body = 100,
      wslua.router():post("/upload", function(_, res)
        called = true
        res:send("stored")
      end):get("/ws", wslua.websocket(echo_handler())),
    }
    serving(host, function(server)
      local s, head = request(server, "POST /upload HTTP/1.1\r\nHost: x\r\n"
        .. "Content-Length: 1000\r\n\r\n")
      assert.matches("^HTTP/1%.1 413 Content Too Large\r\n", head)
      assert_tcp_closed(s)
      assert.is_false(called)
      local body
      s, head, body = request(server, "POST /upload HTTP/1.1\r\nHost: x\r\n"
        .. "Content-Length: 100\r\n\r\n" .. string.rep("b", 100))
      assert.matches("^HTTP/1%.1 200 OK\r\n", head)
      assert.equal("stored", body)
      assert_serves(server)
    end)
  end)

  it("answers 400 to garbage instead of a request", function()
    serving(echo_host(), function(server)
      local s, head = request(server, "\22\3\1\0\165\1\0\0\161\3\3garbage\r\n\r\n")
      assert.matches("^HTTP/1%.1 400 Bad Request\r\n", head)
      assert_tcp_closed(s)
      s, head = request(server, "GET /ws HTTP/1.1\r\nHost x\r\n\r\n")
      assert.matches("^HTTP/1%.1 400 Bad Request\r\n", head)
      assert_tcp_closed(s)
      assert_serves(server)
    end)
  end)

  it("cuts off a slow drip of header bytes after handshake_timeout", function()
    serving(echo_host(nil, { handshake_timeout = 0.5 }), function(server)
      local drip = connect(server)
      local bytes = h.handshake("/ws")
      local t0 = core.now()
      local sent = 0
      wslua.spawn(function()
        for i = 1, #bytes do
          if not drip:write(bytes:sub(i, i)) then
            return
          end
          sent = i
          wslua.sleep(0.1)
        end
      end)
      -- Others are served while the drip goes on.
      wslua.sleep(0.15)
      assert_serves(server)
      local got, err = drip:read_all(3)
      local waited = elapsed_since(t0)
      assert.equal("closed", err)
      assert.is_nil(got:match("^HTTP/1%.1 101"))
      assert.is_true(waited >= 0.4 and waited < 1.5, "cut off after " .. waited .. " s")
      assert.is_true(sent < #bytes)
      assert_serves(server)
    end)
  end)

  it("pings at 3/4 of idle_timeout and closes with 1001 without an answer", function()
    serving(echo_host { idle_timeout = 0.6 }, function(server)
      local s = upgrade(server)
      local t0 = core.now()
      local op, payload, rest = read_frame(s, nil, 2)
      local at = elapsed_since(t0)
      assert.equal(OP_PING, op)
      assert.is_true(at >= 0.35 and at < 0.6, "pinged after " .. at .. " s")
      local code = h.read_until_close(s, rest)
      at = elapsed_since(t0)
      assert.equal(1001, code)
      assert.is_true(at >= 0.55 and at < 1.2, "closed after " .. at .. " s")
      assert_tcp_closed(s)
      assert.equal("", payload)
    end)
  end)

  it("keeps open a client that answers pings", function()
    -- The pong has a quarter of the idle time to arrive (0.3 s): room for a
    -- loaded machine.
    serving(echo_host { idle_timeout = 1.2 }, function(server)
      local s = upgrade(server)
      local t0, pings, buf = core.now(), 0, ""
      while elapsed_since(t0) < 2.8 do
        local op, payload, rest = read_frame(s, buf, 0.05)
        if op then
          assert.equal(OP_PING, op)
          pings = pings + 1
          s:write(h.frame(OP_PONG, payload))
          buf = rest
        else
          assert.equal("timeout", payload)
        end
      end
      assert.is_true(pings >= 2, "pings: " .. pings)
      assert_echo(s, "still open")
    end)
  end)

  it("refuses a connection over max_connections with 503", function()
    serving(echo_host(nil, { max_connections = 2 }), function(server)
      local a = upgrade(server)
      local b = upgrade(server)
      local s, head = request(server, h.handshake("/ws"))
      assert.matches("^HTTP/1%.1 503 Service Unavailable\r\n", head)
      assert_tcp_closed(s)
      assert_echo(a, "a still works")
      assert_echo(b, "b still works")
      a:write(h.frame(OP_CLOSE, close_payload(1000)))
      expect_close(a, 1000)
      assert.truthy(h.wait_for(function() return server:connections() < 2 end, 2))
      assert_serves(server)
    end)
  end)
end)
