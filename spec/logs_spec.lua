-- Access lines (one per HTTP response, one per WebSocket session at its
-- end) from the wslua binary with --log-format json, the host option
-- access_log = false, and trusted proxies (X-Forwarded-For, Forwarded).
local cjson = require "cjson"
local wslua = require "wslua"
local h = require "helpers"
local proxies = require "wslua.proxies"

local quote = h.quote

-- Three virtual hosts on one address: the default one; "proxied.test",
-- behind trusted proxies; "quiet.test", without access lines.
local APP = [[
local wslua = require "wslua"

local Echo = {}
function Echo:on_open(client)
  client:send("you are " .. client.remote_addr)
end
function Echo:on_data(client, msg)
  local body = msg:read()
  if body == "bye" then
    client:close(4001, "asked to")
  else
    client:send(body)
  end
end

local function routes()
  return wslua.router()
    :get("/hello", function(req, res) res:send("hello " .. req.remote_addr) end)
    :get("/mark/{text}", function(req, res)
      wslua.log.info("mark %s", req.params.text)
      res:send("")
    end)
    :get("/ws", wslua.websocket(Echo))
    :get("/ws/{tag}", wslua.websocket(Echo))
end

local here = debug.getinfo(1, "S").source:match("^@(.*)/") or "."

return {
  wslua.host { listen = "127.0.0.1:1", routes(), wslua.root(here) },
  wslua.host { listen = "127.0.0.1:1", name = "proxied.test", routes(),
    trusted_proxies = { "127.0.0.1", "10.0.0.0/8", "2001:db8::/32" } },
  wslua.host { listen = "127.0.0.1:1", name = "quiet.test", routes(), access_log = false },
}
]]

local dir, app, proc

local function request(host, path, headers)
  return "GET " .. path .. " HTTP/1.1\r\nHost: " .. host .. "\r\n"
    .. table.concat(headers or {}) .. "\r\n"
end

-- One HTTP exchange; returns the whole response's bytes (Connection: close).
local function get(host, path, headers)
  local out
  h.run(function()
    local s = assert(wslua.tcp("127.0.0.1", proc.port))
    headers = headers or {}
    headers[#headers + 1] = "Connection: close\r\n"
    s:write(request(host, path, headers))
    out = s:read_all(5)
    s:close()
  end)
  return out
end

-- The log's JSON lines, decoded (every line must be JSON).
local function lines()
  local out = {}
  for line in proc:log():gmatch("[^\n]+") do
    local ok, entry = pcall(cjson.decode, line)
    assert(ok, "not a JSON line: " .. line)
    out[#out + 1] = entry
  end
  return out
end

-- Waits for a line for which match(entry) is true; returns it.
local function wait_line(match, what)
  local found
  h.run(function()
    h.wait_for(function()
      for _, e in ipairs(lines()) do
        if match(e) then
          found = e
          return true
        end
      end
    end, 5)
  end)
  assert(found, "no log line " .. what .. " in:\n" .. proc:log())
  return found
end

local function access(kind, field, value)
  return wait_line(function(e)
    return e.msg == "access" and e.kind == kind and e[field] == value
  end, kind .. " " .. field .. "=" .. tostring(value))
end

-- A raw WebSocket session: returns the stream and the bytes after the 101.
local function ws_open(host, path, headers)
  local s = assert(wslua.tcp("127.0.0.1", proc.port))
  s:write("GET " .. path .. " HTTP/1.1\r\nHost: " .. host .. "\r\n"
    .. "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    .. table.concat(headers or {}) .. "\r\n")
  local head, rest = h.read_head(s)
  assert.matches("^HTTP/1.1 101", head)
  return s, rest
end

-- Reads one server frame (with what was left over); returns its payload
-- and the rest.
local function read_frame(s, buf)
  while true do
    local op, payload, rest = h.parse_frame(buf)
    if op then
      return payload, rest, op
    end
    buf = buf .. assert(s:read(5))
  end
end

describe("access lines from the binary (--log-format json)", function()
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir)))
    app = dir .. "/app.lua"
    local f = assert(io.open(app, "w"))
    f:write(APP)
    f:close()
    proc = h.spawn(app, "--log-format json")
    assert(proc:alive(), "the server did not start: " .. proc:log())
  end)

  teardown(function()
    proc:stop()
    os.execute("rm -rf " .. quote(dir))
  end)

  it("writes one line per HTTP response with its fields", function()
    local response = get("127.0.0.1", "/hello?x=1")
    assert.matches("^HTTP/1.1 200", response)
    local e = access("http", "path", "/hello")
    assert.equal("info", e.level)
    assert.equal("GET", e.method)
    assert.equal(200, e.status)
    assert.equal(#response, e.bytes_sent)
    assert.matches("^127%.0%.0%.1:%d+$", e.remote)
    assert.is_nil(e.peer)
    assert.is_number(e.duration_ms)
    assert.is_true(e.duration_ms >= 0 and e.duration_ms < 5000)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", e.time)

    -- Static files, HEAD too.
    local head = get("127.0.0.1", "/app.lua", nil)
    assert.matches("^HTTP/1.1 200", head)
    local eh
    h.run(function()
      local s = assert(wslua.tcp("127.0.0.1", proc.port))
      s:write("HEAD /app.lua HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
      eh = s:read_all(5)
      s:close()
    end)
    local line = access("http", "method", "HEAD")
    assert.equal("/app.lua", line.path)
    assert.equal(200, line.status)
    assert.equal(#eh, line.bytes_sent)

    local missing = get("127.0.0.1", "/nowhere")
    local e404 = access("http", "path", "/nowhere")
    assert.equal(404, e404.status)
    assert.equal(#missing, e404.bytes_sent)
  end)

  it("writes one line per WebSocket session, when it ends, with who closed", function()
    -- Closed by the client with 1000 after two messages.
    h.run(function()
      local s, buf = ws_open("127.0.0.1", "/ws?room=1")
      local greeting
      greeting, buf = read_frame(s, buf)                   -- 2 + n bytes out
      assert.matches("^you are 127%.0%.0%.1:%d+$", greeting)
      s:write(h.frame(1, "one") .. h.frame(1, "three"))     -- 9 + 11 bytes in
      local a, b
      a, buf = read_frame(s, buf)                           -- 5 bytes out
      b, buf = read_frame(s, buf)                           -- 7 bytes out
      assert.same({ "one", "three" }, { a, b })
      s:write(h.frame(8, string.pack(">I2", 1000)))         -- 8 bytes in
      local _, _, op = read_frame(s, buf)                   -- 4 bytes out
      assert.equal(8, op)
      s:close()
      local e = access("websocket", "messages_in", 2)
      assert.equal("/ws", e.route)
      assert.equal("/ws", e.path)
      assert.equal(2, e.messages_in)
      assert.equal(3, e.messages_out)
      assert.equal(9 + 11 + 8, e.bytes_in)
      assert.equal((2 + #greeting) + 5 + 7 + 4, e.bytes_out)
      assert.equal(1000, e.code)
      assert.equal("client", e.closed_by)
      assert.matches("^127%.0%.0%.1:%d+$", e.remote)
      assert.is_number(e.duration_ms)
      assert.is_nil(e.error)
    end)

    -- Closed by the server (the handler's client:close(4001)).
    h.run(function()
      local s, buf = ws_open("127.0.0.1", "/ws")
      _, buf = read_frame(s, buf)
      s:write(h.frame(1, "bye"))
      local payload, _, op = read_frame(s, buf)
      assert.equal(8, op)
      assert.equal(4001, string.unpack(">I2", payload))
      s:write(h.frame(8, string.pack(">I2", 4001)))
      s:close()
      local e = access("websocket", "code", 4001)
      assert.equal("server", e.closed_by)
      assert.equal("asked to", e.reason)
      assert.equal(1, e.messages_in)
    end)

    -- Failed: an unmasked frame is a protocol error (1002).
    h.run(function()
      local s = ws_open("127.0.0.1", "/ws")
      s:write("\x81\x02hi")
      h.read_until_close(s)
      s:close()
      local e = access("websocket", "code", 1002)
      assert.equal("error", e.closed_by)
      assert.is_string(e.error)
    end)

    -- Gone without a close frame (1006).
    h.run(function()
      local s = ws_open("127.0.0.1", "/ws")
      s:close()
      local e = access("websocket", "code", 1006)
      assert.equal("error", e.closed_by)
    end)
  end)

  it("writes none for a host with access_log = false", function()
    -- An HTTP request and a WebSocket session on the quiet host...
    local response = get("quiet.test", "/mark/quiet-http")
    assert.matches("^HTTP/1.1 200", response)
    h.run(function()
      local s, buf = ws_open("quiet.test", "/ws/quiet")
      _, buf = read_frame(s, buf)
      s:write(h.frame(8, string.pack(">I2", 1000)))
      read_frame(s, buf)
      -- The server closes TCP once the closes are exchanged; the session
      -- has ended (and would have logged) before it reads anything else.
      assert.is_nil(s:read(5))
      s:close()
    end)
    -- ...then one on the default host: its line comes after theirs would.
    get("127.0.0.1", "/mark/after-quiet")
    access("http", "path", "/mark/after-quiet")
    for _, e in ipairs(lines()) do
      assert.is_false(e.msg == "access" and (e.path == "/mark/quiet-http"
        or e.path == "/ws/quiet"), "an access line from the quiet host: " .. cjson.encode(e))
    end
    -- The handler's own line is there: only access lines are off.
    wait_line(function(e)
      return e.msg == "mark quiet-http"
    end, "mark quiet-http")
  end)

  it("takes the client's address from X-Forwarded-For behind a trusted proxy", function()
    -- The right-most untrusted entry: 10.1.2.3 is a trusted proxy,
    -- 203.0.113.7 is the client, what is left of it is the client's word.
    local response = get("proxied.test", "/hello",
      { "X-Forwarded-For: 198.51.100.1, 203.0.113.7, 10.1.2.3\r\n" })
    assert.matches("hello 203%.0%.113%.7$", response)
    local e = access("http", "remote", "203.0.113.7")
    assert.matches("^127%.0%.0%.1:%d+$", e.peer)

    -- Forwarded (RFC 7239) when there is no X-Forwarded-For.
    response = get("proxied.test", "/hello",
      { 'Forwarded: for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"\r\n' })
    assert.matches("hello 192%.0%.2%.60$", response)

    -- The default host trusts no proxy: the header is ignored.
    response = get("127.0.0.1", "/hello", { "X-Forwarded-For: 203.0.113.99\r\n" })
    assert.matches("hello 127%.0%.0%.1:%d+$", response)

    -- client.remote_addr too, and the session's access line.
    h.run(function()
      local s, buf = ws_open("proxied.test", "/ws", { "X-Forwarded-For: 203.0.113.8\r\n" })
      local greeting
      greeting, buf = read_frame(s, buf)
      assert.equal("you are 203.0.113.8", greeting)
      s:write(h.frame(8, string.pack(">I2", 1000)))
      read_frame(s, buf)
      s:close()
    end)
    local ws = access("websocket", "remote", "203.0.113.8")
    assert.matches("^127%.0%.0%.1:%d+$", ws.peer)
  end)
end)

describe("trusted proxies", function()
  local ranges = proxies.compile { "127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8" }

  local function client(peer, headers)
    return proxies.client_addr(ranges, peer, headers)
  end

  it("believes the headers only when the peer is trusted", function()
    local xff = { ["x-forwarded-for"] = "203.0.113.7" }
    assert.equal("203.0.113.7", client("127.0.0.1:5000", xff))
    assert.equal("203.0.113.7", client("10.9.8.7:5000", xff))
    assert.equal("203.0.113.7", client("[::1]:5000", xff))
    assert.equal("203.0.113.7", client("[fd12:3456::1]:5000", xff))
    assert.equal("11.0.0.1:5000", client("11.0.0.1:5000", xff))
    assert.equal("[fe80::1]:5000", client("[fe80::1]:5000", xff))
    assert.equal("127.0.0.1:5000", client("127.0.0.1:5000", {}))
  end)

  it("takes the right-most untrusted entry, the left-most when all are trusted", function()
    assert.equal("198.51.100.2", client("127.0.0.1:1", {
      ["x-forwarded-for"] = "1.1.1.1, 198.51.100.2 ,10.0.0.1,127.0.0.1" }))
    assert.equal("10.0.0.5", client("127.0.0.1:1", {
      ["x-forwarded-for"] = "10.0.0.5, 10.0.0.6" }))
    assert.equal("unknown", client("127.0.0.1:1", {
      ["x-forwarded-for"] = "203.0.113.1, unknown" }))
    -- X-Forwarded-For wins over Forwarded.
    assert.equal("203.0.113.1", client("127.0.0.1:1", {
      ["x-forwarded-for"] = "203.0.113.1", forwarded = "for=198.51.100.9" }))
    assert.equal("[2001:db8::17]:4711", client("127.0.0.1:1", {
      forwarded = 'for=198.51.100.9, For="[2001:db8::17]:4711";proto=https, for=10.0.0.2' }))
  end)

  it("parses IPv4 and IPv6 addresses and ranges, and refuses what is neither", function()
    assert.same({ 192, 0, 2, 1 }, proxies.parse("192.0.2.1:80"))
    assert.same({ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, proxies.parse("::1"))
    assert.same({ 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x17 },
      proxies.parse("[2001:db8::17]:4711"))
    assert.same({ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1 },
      proxies.parse("::ffff:192.0.2.1"))
    assert.is_nil(proxies.parse("256.0.0.1"))
    assert.is_nil(proxies.parse("1::2::3"))
    assert.is_nil(proxies.parse("unknown"))
    for _, bad in ipairs { "10.0.0.0/33", "localhost", "10.0.0", "::/129" } do
      local ok, err = pcall(wslua.host, { trusted_proxies = { bad } })
      assert.is_false(ok)
      assert.matches("trusted_proxies: '" .. bad:gsub("%p", "%%%0") .. "' is not an IP", err)
    end
    local ok, err = pcall(wslua.host, { access_log = "no" })
    assert.is_false(ok)
    assert.matches("option 'access_log' in host options must be a boolean", err)
  end)
end)
