-- permessage-deflate (RFC 7692) end to end over loopback: the exact answer
-- to each offer, compressed frames built here (spec/helpers/deflate.lua, a
-- DEFLATE apart from zlib) and the server's compressed frames inflated here,
-- the protocol errors, a decompression bomb, context takeover, broadcast
-- compressed once, and wslua.connect round trips in both memory modes.
local wslua = require "wslua"
local core = require "wslua.core"
local h = require "helpers"
local deflate = require "helpers.deflate"

local OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
local RSV1 = 0x40
local KiB, MiB = 1024, 1024 * 1024

-- RFC 7692 §7.2.3.1 and §7.2.3.2: "Hello", and "Hello" again referring to
-- the first through the shared window.
local HELLO = "\xf2\x48\xcd\xc9\xc9\x07\x00"
local HELLO_AGAIN = "\xf2\x00\x11\x00\x00"

-- The answer to a plain offer under the defaults.
local DEFAULT = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

-- What each endpoint saw of its clients, in the order they opened.
local opened = {}

local function echo_handler()
  return {
    on_open = function(_, client)
      opened[#opened + 1] = { extensions = client.extensions, compressed = client.compressed }
    end,
    on_data = function(_, client, msg)
      local body = msg:read()
      if body then
        client:send(body, msg.binary and "binary" or "text")
      end
    end,
  }
end

-- A message to the broadcast endpoint goes to every client of it;
-- send_times gets the CPU seconds each endpoint:send took.
local send_times = {}

local function broadcast_handler()
  return {
    on_start = function(self, endpoint)
      self.endpoint = endpoint
    end,
    on_data = function(self, _, msg)
      local body = msg:read()
      local t0 = os.clock()
      self.endpoint:send(nil, body, msg.binary and "binary" or "text")
      send_times[#send_times + 1] = os.clock() - t0
    end,
  }
end

local DEDICATED = { server_no_context_takeover = false, client_no_context_takeover = false }

-- Under valgrind (make memcheck) zlib is some 50 times slower: compressing
-- a 1 MiB message in a handler can pass the default budget of 0.5 s.
local BUDGET = os.getenv("WSLUA_MEMCHECK") == "1" and 10 or nil

local function deflate_host()
  return wslua.host { handler_budget = BUDGET, wslua.router()
    :get("/ws", wslua.websocket(echo_handler(), { compression = true }))
    :get("/plain", wslua.websocket(echo_handler()))
    :get("/dedicated", wslua.websocket(echo_handler(), { compression = DEDICATED }))
    :get("/dedicated-wide", wslua.websocket(echo_handler(), { compression = {
      server_no_context_takeover = false, client_no_context_takeover = false,
      window_bits = 15, mem_level = 8, peer_window_bits = 15 } }))
    :get("/all", wslua.websocket(broadcast_handler(), { compression = true }))
    :get("/all-dedicated", wslua.websocket(broadcast_handler(), { compression = DEDICATED })),
  }
end

-- Streams opened by a test, closed before its server stops.
local streams = {}

local function connect(server)
  local s = h.tcp(server)
  streams[#streams + 1] = s
  return s
end

-- Serves the host while fn(server) runs in a coroutine; always stops it.
local function serving(fn, timeout)
  opened = {}
  send_times = {}
  local server = h.serve(deflate_host())
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

-- Every value of a header in a response head.
local function header_values(head, name)
  local values = {}
  for line in head:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k and k:lower() == name:lower() then
      values[#values + 1] = v
    end
  end
  return values
end

-- The Sec-WebSocket-Extensions lines of a request for the offers given
-- (a string, or a list: one header line each).
local function offer_lines(offers)
  if offers == nil then
    return ""
  end
  if type(offers) == "string" then
    offers = { offers }
  end
  local lines = {}
  for i, o in ipairs(offers) do
    lines[i] = "Sec-WebSocket-Extensions: " .. o .. "\r\n"
  end
  return table.concat(lines)
end

-- Opens a session: the stream, the extensions answered (nil if none), and
-- the bytes read past the 101. The upgrade must succeed.
local function upgrade(server, path, offers)
  local s = connect(server)
  s:write(h.handshake(path, offer_lines(offers)))
  local head, rest = h.read_head(s)
  assert.matches("^HTTP/1%.1 101 ", head)
  local values = header_values(head, "Sec-WebSocket-Extensions")
  assert(#values <= 1, "more than one Sec-WebSocket-Extensions in the response")
  return s, values[1], rest
end

local read_frame = h.read_frame

-- Asserts the server's next frame is a close with this code and that it
-- then closes TCP.
local function expect_close(s, code, buf)
  local got, frames = h.read_until_close(s, buf)
  assert.equal(code, got)
  assert.equal(OP_CLOSE, frames[#frames][1])
  assert.same({ nil, "closed" }, { s:read(2) })
end

-- Sends a frame; the echo's byte 0 and payload, inflated when RSV1 is set.
local function echo(s, frame)
  s:write(frame)
  local op, payload, _, b0 = read_frame(s)
  assert(op, "no echo: " .. tostring(payload))
  if b0 & RSV1 ~= 0 then
    payload = deflate.inflate(payload)
  end
  return b0, payload
end

-- Pseudo-random bytes of the given size, from a seeded generator.
local function random_bytes(size, seed)
  local rng = math.random
  math.randomseed(seed or 7692)
  local parts, chunk = {}, {}
  for i = 1, size, 4096 do
    local n = math.min(4096, size - i + 1)
    for j = 1, n do
      chunk[j] = rng(0, 255)
    end
    parts[#parts + 1] = string.char(table.unpack(chunk, 1, n))
  end
  return table.concat(parts)
end

-- Random valid UTF-8 of exactly size bytes, with 1- to 4-byte characters.
local function random_text(size, seed)
  math.randomseed(seed or 1951)
  local chars = { "a", "b", "Z", " ", "7", "{", "\u{e9}", "\u{20ac}", "\u{1F600}", "\u{df}" }
  local parts, n = {}, 0
  while n < size do
    local c = chars[math.random(#chars)]
    if n + #c > size then
      c = "x"
    end
    parts[#parts + 1] = c
    n = n + #c
  end
  return table.concat(parts)
end

-- Compressible text of exactly size bytes: chat messages as JSON.
local function chat_text(size)
  local parts, n, i = {}, 0, 0
  while n < size do
    i = i + 1
    local line = string.format('{"id":%d,"user":"guest%d","text":"hello number %d"}\n',
      i, i % 13, i * 7 % 101)
    parts[#parts + 1] = line
    n = n + #line
  end
  return table.concat(parts):sub(1, size)
end

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local kib = tonumber(f:read("a"):match("VmRSS:%s*(%d+)"))
  f:close()
  return kib
end

describe("permessage-deflate negotiation", function()
  -- offer(s), then the exact answer expected (nil: declined, no header)
  local cases = {
    { "permessage-deflate", DEFAULT },
    { "permessage-deflate; client_max_window_bits", DEFAULT },
    { "permessage-deflate; client_max_window_bits=10", DEFAULT .. "; client_max_window_bits=10" },
    { "permessage-deflate; client_max_window_bits=8", DEFAULT .. "; client_max_window_bits=8" },
    { "permessage-deflate; server_max_window_bits=10", DEFAULT .. "; server_max_window_bits=10" },
    { 'permessage-deflate; server_max_window_bits="10"', DEFAULT .. "; server_max_window_bits=10" },
    { "permessage-deflate; server_max_window_bits=15", DEFAULT .. "; server_max_window_bits=15" },
    { "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
      DEFAULT .. "; server_max_window_bits=9; client_max_window_bits=9" },
    { "permessage-deflate; server_no_context_takeover; client_no_context_takeover", DEFAULT },
    { "permessage-deflate ; client_max_window_bits = 12", DEFAULT .. "; client_max_window_bits=12" },
    -- several offers: the first acceptable one wins
    { "permessage-deflate; server_max_window_bits=8, permessage-deflate; "
      .. "client_max_window_bits=12, permessage-deflate", DEFAULT .. "; client_max_window_bits=12" },
    { "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=11",
      DEFAULT .. "; server_max_window_bits=11" },
    { "permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=11",
      DEFAULT .. "; server_max_window_bits=11" },
    { { "permessage-deflate; server_max_window_bits=8", "permessage-deflate; server_max_window_bits=12" },
      DEFAULT .. "; server_max_window_bits=12" },
    -- declined: zlib cannot deflate with an 8-bit window
    { "permessage-deflate; server_max_window_bits=8", nil },
    -- declined: duplicate, unknown, invalid parameters, malformed offers
    { "permessage-deflate; server_no_context_takeover; server_no_context_takeover", nil },
    { "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10", nil },
    { "permessage-deflate; client_max_window_bits; client_max_window_bits", nil },
    { "permessage-deflate; foo", nil },
    { "permessage-deflate; foo=bar", nil },
    { "permessage-deflate; server_max_window_bits", nil },
    { "permessage-deflate; server_max_window_bits=16", nil },
    { "permessage-deflate; server_max_window_bits=7", nil },
    { "permessage-deflate; server_max_window_bits=010", nil },
    { "permessage-deflate; client_max_window_bits=abc", nil },
    { "permessage-deflate; client_max_window_bits=0", nil },
    { "permessage-deflate; server_no_context_takeover=1", nil },
    { "permessage-deflate; client_no_context_takeover=true", nil },
    { 'permessage-deflate; server_max_window_bits="10', nil },
    { "permessage-deflate;; server_no_context_takeover", nil },
    { "permessage-deflate; =10", nil },
    { "permessage-deflate server_no_context_takeover", nil },
    { "x-webkit-deflate-frame", nil },
    { "", nil },
  }

  it("answers each offer exactly, declining without an error status", function()
    serving(function(server)
      for i, case in ipairs(cases) do
        opened = {}
        local s, answer = upgrade(server, "/ws", case[1])
        assert(case[2] == answer, string.format("offer %q: answered %q, expected %q",
          table.concat(type(case[1]) == "table" and case[1] or { case[1] }, " | "),
          tostring(answer), tostring(case[2])))
        -- The endpoint's client says the same, and the session works.
        s:write(h.frame(OP_TEXT, "case " .. i))
        local op, payload = read_frame(s)
        assert.equal(OP_TEXT, op)
        assert.equal("case " .. i, payload)
        assert.equal(case[2], opened[1].extensions)
        assert.equal(case[2] ~= nil, opened[1].compressed)
        s:close()
      end
    end)
  end)

  it("answers nothing without an offer, or on an endpoint without compression", function()
    serving(function(server)
      local _, answer = upgrade(server, "/ws")
      assert.is_nil(answer)
      assert.is_false(opened[1].compressed)
      _, answer = upgrade(server, "/plain", "permessage-deflate")
      assert.is_nil(answer)
      _, answer = upgrade(server, "/plain", "permessage-deflate; client_max_window_bits")
      assert.is_nil(answer)
      assert.is_false(opened[3].compressed)
    end)
  end)

  it("keeps context when configured so, unless the client asks otherwise", function()
    serving(function(server)
      -- A kept context has 4 KiB windows by default (its zlib state is the
      -- connection's for life), and says so; a client that lets the server
      -- choose its window gets 4 KiB too.
      local _, answer = upgrade(server, "/dedicated", "permessage-deflate")
      assert.equal("permessage-deflate; server_max_window_bits=12", answer)
      _, answer = upgrade(server, "/dedicated", "permessage-deflate; client_max_window_bits")
      assert.equal("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        answer)
      _, answer = upgrade(server, "/dedicated", "permessage-deflate; client_no_context_takeover")
      assert.equal("permessage-deflate; client_no_context_takeover; server_max_window_bits=12",
        answer)
      _, answer = upgrade(server, "/dedicated", "permessage-deflate; server_no_context_takeover")
      assert.equal("permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
        answer)
      -- Windows asked for explicitly are used as they are.
      _, answer = upgrade(server, "/dedicated-wide", "permessage-deflate; client_max_window_bits")
      assert.equal("permessage-deflate", answer)
    end)
  end)
end)

describe("compressed messages", function()
  it("inflates the RFC 7692 'Hello' and echoes it uncompressed under the threshold", function()
    serving(function(server)
      local s = upgrade(server, "/ws", "permessage-deflate")
      local b0, payload = echo(s, h.frame(OP_TEXT, HELLO, true, RSV1))
      assert.equal(0x81, b0)
      assert.equal("Hello", payload)
      b0, payload = echo(s, h.frame(OP_BINARY, HELLO, true, RSV1))
      assert.equal(0x82, b0)
      assert.equal("Hello", payload)
    end)
  end)

  it("echoes compressed (RSV1) from the threshold of 32 bytes up", function()
    serving(function(server)
      local s = upgrade(server, "/ws", "permessage-deflate")
      local text31, text32 = chat_text(31), chat_text(32)
      local b0, payload = echo(s, h.frame(OP_TEXT, deflate.compress(text31), true, RSV1))
      assert.equal(0x81, b0)
      assert.equal(text31, payload)
      b0, payload = echo(s, h.frame(OP_TEXT, deflate.compress(text32), true, RSV1))
      assert.equal(0xC1, b0)
      assert.equal(text32, payload)
      local text = chat_text(4000)
      local frame = h.frame(OP_TEXT, deflate.compress(text), true, RSV1)
      s:write(frame)
      local op, raw, _, first = read_frame(s)
      assert.equal(OP_TEXT, op)
      assert.equal(0xC1, first)
      assert.is_true(#raw < #text / 4)
      assert.equal(text, deflate.inflate(raw))
      local bin = random_bytes(1000)
      b0, payload = echo(s, h.frame(OP_BINARY, deflate.compress(bin), true, RSV1))
      assert.equal(0xC2, b0)
      assert.equal(bin, payload)
    end)
  end)

  it("takes uncompressed messages on a compressing connection", function()
    serving(function(server)
      local s = upgrade(server, "/ws", "permessage-deflate")
      local b0, payload = echo(s, h.frame(OP_TEXT, "plain"))
      assert.equal(0x81, b0)
      assert.equal("plain", payload)
      local text = chat_text(500)
      b0, payload = echo(s, h.frame(OP_TEXT, text))
      assert.equal(0xC1, b0)
      assert.equal(text, payload)
      b0, payload = echo(s, h.frame(OP_TEXT, HELLO, true, RSV1))
      assert.equal("Hello", payload)
    end)
  end)

  it("takes empty compressed messages", function()
    serving(function(server)
      local s = upgrade(server, "/ws", "permessage-deflate")
      -- §7.2.3.6: an empty message compresses to the single byte 00; an
      -- empty payload with RSV1 is an empty message too.
      assert.same({ 0x81, "" }, { echo(s, h.frame(OP_TEXT, "\0", true, RSV1)) })
      assert.same({ 0x82, "" }, { echo(s, h.frame(OP_BINARY, "", true, RSV1)) })
      assert.same({ 0x81, "Hello" }, { echo(s, h.frame(OP_TEXT, HELLO, true, RSV1)) })
    end)
  end)

  it("answers compressed and plain messages of one write in order, a large one among them", function()
    -- A compressed message in one frame is inflated at once and runs as a
    -- whole message (with the loop turn's when small); one that inflates
    -- past 16 KiB goes on in pieces. Order holds across all of them.
    serving(function(server)
      local s = upgrade(server, "/ws", "permessage-deflate")
      local sent = { "c1 " .. chat_text(40), "p1", random_text(40000), "c2", "c3 " .. chat_text(100) }
      s:write(h.frame(OP_TEXT, deflate.compress(sent[1]), true, RSV1)
        .. h.frame(OP_TEXT, sent[2])
        .. h.frame(OP_TEXT, deflate.compress(sent[3]), true, RSV1)
        .. h.frame(OP_TEXT, deflate.compress(sent[4]), true, RSV1)
        .. h.frame(OP_PING, "after")
        .. h.frame(OP_TEXT, deflate.compress(sent[5]), true, RSV1))
      local op, payload, rest, b0
      local function next_text()
        op, payload, rest, b0 = read_frame(s, rest)
        assert.equal(OP_TEXT, op)
        return b0 & RSV1 ~= 0 and deflate.inflate(payload) or payload
      end
      for i = 1, 4 do
        assert.equal(sent[i], next_text(), "message " .. i)
      end
      op, payload, rest = read_frame(s, rest)
      assert.same({ OP_PONG, "after" }, { op, payload })
      assert.equal(sent[5], next_text())
    end)
  end)

  it("inflates a compressed message split over frames, a ping amid them", function()
    serving(function(server)
      local s = upgrade(server, "/ws", "permessage-deflate")
      local text = random_text(3000)
      local packed = deflate.compress(text)
      local a, b = #packed // 3, 2 * #packed // 3
      s:write(h.frame(OP_TEXT, packed:sub(1, a), false, RSV1)
        .. h.frame(OP_CONT, packed:sub(a + 1, b), false)
        .. h.frame(OP_PING, "amid")
        .. h.frame(OP_CONT, packed:sub(b + 1), true))
      local op, payload, rest = read_frame(s)
      assert.same({ OP_PONG, "amid" }, { op, payload })
      local b0
      op, payload, rest, b0 = read_frame(s, rest)
      assert.equal(0xC1, b0)
      assert.equal(text, deflate.inflate(payload))
      -- One byte per frame, and an empty first frame.
      local frames = { h.frame(OP_TEXT, HELLO:sub(1, 1), false, RSV1) }
      for i = 2, #HELLO do
        frames[i] = h.frame(OP_CONT, HELLO:sub(i, i), i == #HELLO)
      end
      assert.same({ 0x81, "Hello" }, { echo(s, table.concat(frames)) })
      assert.same({ 0x82, "Hello" }, { echo(s, h.frame(OP_BINARY, "", false, RSV1)
        .. h.frame(OP_CONT, HELLO, true)) })
    end)
  end)

  it("inflates a frame that comes over several reads while others inflate whole ones", function()
    -- Without context takeover a message in one read is inflated by the
    -- thread's inflater; one that spans reads gets its own until its end.
    serving(function(server)
      local a = upgrade(server, "/ws", "permessage-deflate")
      local b = upgrade(server, "/ws", "permessage-deflate")
      local text = random_text(3000)
      local frame = h.frame(OP_TEXT, deflate.compress(text), true, RSV1)
      local cut = #frame // 2
      a:write(frame:sub(1, cut))
      wslua.sleep(0.05)
      assert.same({ 0x81, "Hello" }, { echo(b, h.frame(OP_TEXT, HELLO, true, RSV1)) })
      a:write(frame:sub(cut + 1))
      local _, payload, _, b0 = read_frame(a)
      assert.equal(0xC1, b0)
      assert.equal(text, deflate.inflate(payload))
      assert.same({ 0x81, "Hello" }, { echo(a, h.frame(OP_TEXT, HELLO, true, RSV1)) })
      -- Bad data and a bomb over several reads: the same closes as whole.
      frame = h.frame(OP_BINARY, HELLO:sub(1, 4), true, RSV1) -- ends inside a block
      a:write(frame:sub(1, 8))
      wslua.sleep(0.05)
      a:write(frame:sub(9))
      expect_close(a, 1007)
      frame = h.frame(OP_BINARY, deflate.zeros(1 + 258 * 40643), true, RSV1)
      b:write(frame:sub(1, 4000))
      wslua.sleep(0.05)
      b:write(frame:sub(4001))
      expect_close(b, 1009)
    end)
  end)

  it("closes with 1002 on RSV1 where RFC 7692 §6.1 forbids it", function()
    serving(function(server)
      -- on a continuation frame
      local s = upgrade(server, "/ws", "permessage-deflate")
      s:write(h.frame(OP_TEXT, HELLO:sub(1, 3), false, RSV1) .. h.frame(OP_CONT, HELLO:sub(4), true, RSV1))
      expect_close(s, 1002)
      -- on a control frame
      s = upgrade(server, "/ws", "permessage-deflate")
      s:write(h.frame(OP_PING, "x", true, RSV1))
      expect_close(s, 1002)
      -- without negotiation: no offer, or an endpoint without compression
      s = upgrade(server, "/ws")
      s:write(h.frame(OP_TEXT, HELLO, true, RSV1))
      expect_close(s, 1002)
      s = upgrade(server, "/plain", "permessage-deflate")
      s:write(h.frame(OP_TEXT, HELLO, true, RSV1))
      expect_close(s, 1002)
      -- RSV2 and RSV3 stay reserved
      s = upgrade(server, "/ws", "permessage-deflate")
      s:write(h.frame(OP_TEXT, HELLO, true, RSV1 | 0x20))
      expect_close(s, 1002)
      s = upgrade(server, "/ws", "permessage-deflate")
      assert.same({ 0x81, "Hello" }, { echo(s, h.frame(OP_TEXT, HELLO, true, RSV1)) })
    end)
  end)

  it("closes with 1007 on invalid compressed data or invalid UTF-8 inside", function()
    serving(function(server)
      local bad = {
        h.frame(OP_BINARY, "\xff\xff\xff\xff", true, RSV1), -- reserved block type
        h.frame(OP_BINARY, HELLO:sub(1, 2), true, RSV1), -- ends inside a block
        h.frame(OP_TEXT, deflate.compress("ok \xff\xfe not UTF-8"), true, RSV1),
        h.frame(OP_TEXT, deflate.compress("cut \xe2\x82"), true, RSV1), -- incomplete at the end
        h.frame(OP_TEXT, deflate.compress("\xed\xa0\x80 surrogate"), true, RSV1),
      }
      for _, frame in ipairs(bad) do
        local s = upgrade(server, "/ws", "permessage-deflate")
        s:write(frame)
        expect_close(s, 1007)
      end
      -- A character split between frames is fine.
      local s = upgrade(server, "/ws", "permessage-deflate")
      local packed = deflate.compress("\u{20ac}\u{1F600}")
      local b0, payload = echo(s, h.frame(OP_TEXT, packed:sub(1, 3), false, RSV1)
        .. h.frame(OP_CONT, packed:sub(4), true))
      assert.same({ 0x81, "\u{20ac}\u{1F600}" }, { b0, payload })
    end)
  end)

  it("stops a decompression bomb with 1009 at once, with little memory", function()
    serving(function(server)
      local bomb = deflate.zeros(1 + 258 * 40643) -- 10 MiB of zeros
      assert.is_true(#bomb < 12 * KiB)
      local before = rss_kib()
      local s = upgrade(server, "/ws", "permessage-deflate")
      local t0 = core.now()
      s:write(h.frame(OP_BINARY, bomb, true, RSV1))
      expect_close(s, 1009)
      local took = core.now() - t0
      local grew = rss_kib() - before
      assert(took < 1, string.format("1009 took %.2f s", took))
      assert(grew < 20 * 1024, string.format("RSS grew by %d KiB", grew))
      -- The same in many small frames, and just under the limit it passes.
      s = upgrade(server, "/ws", "permessage-deflate")
      local frames = {}
      for i = 1, #bomb, 1000 do
        frames[#frames + 1] = h.frame(i == 1 and OP_BINARY or OP_CONT, bomb:sub(i, i + 999),
          i + 1000 > #bomb, i == 1 and RSV1 or 0)
      end
      s:write(table.concat(frames))
      expect_close(s, 1009)
      s = upgrade(server, "/ws", "permessage-deflate")
      local b0, payload = echo(s, h.frame(OP_BINARY, deflate.zeros(1 + 258 * 4064), true, RSV1))
      assert.equal(0xC2, b0)
      assert.equal(string.rep("\0", 1 + 258 * 4064), payload)
      assert.is_true(#payload > 1048000 and #payload <= MiB)
    end)
  end)

  it("takes over context across messages when both sides keep it", function()
    serving(function(server)
      local s, answer = upgrade(server, "/dedicated", "permessage-deflate")
      assert.equal("permessage-deflate; server_max_window_bits=12", answer)
      local text = random_text(2000)
      local inflater = deflate.inflater(true)
      local sizes = {}
      for i = 1, 3 do
        s:write(h.frame(OP_TEXT, text))
        local op, raw, _, b0 = read_frame(s)
        assert.equal(OP_TEXT, op)
        assert.equal(0xC1, b0)
        sizes[i] = #raw
        assert.equal(text, inflater:message(raw))
      end
      assert(sizes[2] < sizes[1] / 10 and sizes[3] < sizes[1] / 10,
        "sizes on the wire: " .. table.concat(sizes, ", "))
      -- The server's inflater keeps the window too (RFC 7692 §7.2.3.2).
      assert.same({ 0x81, "Hello" }, { echo(s, h.frame(OP_TEXT, HELLO, true, RSV1)) })
      assert.same({ 0x81, "Hello" }, { echo(s, h.frame(OP_TEXT, HELLO_AGAIN, true, RSV1)) })

      -- Without takeover, the same message is the same bytes each time.
      s = upgrade(server, "/ws", "permessage-deflate")
      local first
      for _ = 1, 3 do
        s:write(h.frame(OP_TEXT, text))
        local _, raw, _, b0 = read_frame(s)
        assert.equal(0xC1, b0)
        first = first or raw
        assert.equal(first, raw)
        assert.equal(text, deflate.inflate(raw))
      end
      -- ... and a message that refers to an earlier one is bad data.
      assert.same({ 0x81, "Hello" }, { echo(s, h.frame(OP_TEXT, HELLO, true, RSV1)) })
      s:write(h.frame(OP_TEXT, HELLO_AGAIN, true, RSV1))
      expect_close(s, 1007)
    end)
  end)
end)

describe("broadcast with compression", function()
  -- Opens n sessions on path with the offer; returns their streams.
  local function sessions(server, path, n, offer)
    local list = {}
    for i = 1, n do
      list[i] = { upgrade(server, path, offer) }
      list[i].stream = list[i][1]
      list[i].rest = list[i][3]
    end
    return list
  end

  -- The frame each session reads next: a list of {b0, payload}.
  local function next_frames(list)
    local got = {}
    for i, c in ipairs(list) do
      local op, payload, rest, b0 = read_frame(c.stream, c.rest)
      assert(op, "session " .. i .. ": " .. tostring(payload))
      c.rest = rest
      got[i] = { b0, payload }
    end
    return got
  end

  it("sends identical frames, compressed once per setting, to every client", function()
    serving(function(server)
      local shared = sessions(server, "/all", 50, "permessage-deflate")
      local small = sessions(server, "/all", 5, "permessage-deflate; server_max_window_bits=10")
      local plain = sessions(server, "/all", 5)
      local text = chat_text(20000)
      shared[1].stream:write(h.frame(OP_TEXT, text))
      local frames = next_frames(shared)
      assert.equal(0xC1, frames[1][1])
      assert.equal(text, deflate.inflate(frames[1][2]))
      for i = 2, #frames do
        assert.same(frames[1], frames[i])
      end
      local other = next_frames(small)
      assert.equal(0xC1, other[1][1])
      assert.equal(text, deflate.inflate(other[1][2]))
      for i = 2, #other do
        assert.same(other[1], other[i])
      end
      for _, f in ipairs(next_frames(plain)) do
        assert.same({ 0x81, text }, f)
      end
      -- Under the threshold, one plain frame for all.
      plain[1].stream:write(h.frame(OP_TEXT, "short"))
      for _, list in ipairs { shared, small, plain } do
        for _, f in ipairs(next_frames(list)) do
          assert.same({ 0x81, "short" }, f)
        end
      end
    end)
  end)

  it("costs one compression, not one per client (CPU time of endpoint:send)", function()
    serving(function(server)
      -- Fewer under valgrind, where compressing is some 50 times slower.
      local n = os.getenv("WSLUA_MEMCHECK") == "1" and 20 or 200
      local text = chat_text(64 * KiB)
      local shared = sessions(server, "/all", n, "permessage-deflate")
      shared[1].stream:write(h.frame(OP_TEXT, text))
      next_frames(shared)
      local dedicated = sessions(server, "/all-dedicated", n, "permessage-deflate")
      dedicated[1].stream:write(h.frame(OP_TEXT, text))
      local frames = next_frames(dedicated)
      assert.equal(0xC1, frames[n][1])
      assert.equal(2, #send_times)
      assert(send_times[1] * 5 < send_times[2], string.format(
        "broadcast to %d clients: %.4f s shared, %.4f s dedicated", n, send_times[1], send_times[2]))
    end, 60)
  end)
end)

describe("wslua.connect with compression", function()
  local sizes = { 0, 1, 125, 64 * KiB, MiB }
  local kinds = {
    { "compressible text", false, chat_text },
    { "random text", false, random_text },
    { "compressible binary", true, function(n)
      return string.rep("\0\1\2\3wslua", n // 9 + 1):sub(1, n)
    end },
    { "random binary", true, random_bytes },
  }
  local payloads = {}
  for _, kind in ipairs(kinds) do
    for _, size in ipairs(sizes) do
      payloads[#payloads + 1] = { kind[1] .. " " .. size .. " B", kind[2], kind[3](size) }
    end
  end

  local function round_trips(server, path, opts)
    opened = {}
    local c = assert(wslua.connect(server:url(path), { compression = opts }))
    assert.is_true(c.compressed)
    for _, p in ipairs(payloads) do
      assert(c:send(p[3], p[2] and "binary" or "text"), p[1] .. ": send failed")
      local body, binary = c:receive()
      assert(body == p[3], p[1] .. ": came back as " .. tostring(body and #body))
      assert.equal(p[2], binary)
    end
    assert.is_true(opened[1].compressed)
    c:close()
    return c
  end

  it("round-trips every size and kind with the default settings", function()
    serving(function(server)
      round_trips(server, "/ws", true)
      assert.equal(DEFAULT, opened[1].extensions)
    end, 60)
  end)

  it("round-trips every size and kind with dedicated contexts on both sides", function()
    serving(function(server)
      round_trips(server, "/dedicated", DEDICATED)
      -- Both sides keep 4 KiB windows: the client's offer names its own
      -- and asks for the server's.
      assert.equal("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        opened[1].extensions)
    end, 60)
  end)

  it("holds the limit on the inflated size: 1 MiB random passes, one byte more is 1009", function()
    serving(function(server)
      local c = assert(wslua.connect(server:url("/ws"), { compression = true }))
      local big = random_bytes(MiB + 1)
      assert(c:send(big:sub(1, MiB), "binary"))
      assert(c:receive() == big:sub(1, MiB))
      assert(c:send(big, "binary"))
      assert.same({ nil, "closed" }, { c:receive() })
      assert.equal(1009, c.close_code)
    end)
  end)
end)
