-- wslua.metrics(): the Prometheus text after a known scenario, counter by
-- counter. The clients speak raw frames, so every byte is known: a masked
-- client frame of n bytes (n < 126) is 6 + n, a server frame 2 + n.
local wslua = require "wslua"
local h = require "helpers"
local http = require "helpers.http"
local observe = require "wslua.observe"

-- Parses an exposition: { ["name{a="x",b="y"}"] = value }, the worker
-- label left out (present with workers), and the HELP/TYPE of each family.
local function parse(text)
  local samples, types, helps = {}, {}, {}
  for line in text:gmatch("([^\n]*)\n") do
    local kind, family, rest = line:match("^# (%u+) (%S+) (.*)$")
    if kind == "TYPE" then
      types[family] = rest
    elseif kind == "HELP" then
      helps[family] = rest
    elseif line ~= "" then
      local name, labels, value = line:match("^([%w_]+){(.*)} (%S+)$")
      if not name then
        name, value = line:match("^([%w_]+) (%S+)$")
        labels = ""
      end
      assert(name, "not a sample line: " .. line)
      local kept = {}
      for k, v in labels:gmatch('([%w_]+)="(.-)"') do
        if k ~= "worker" then
          kept[#kept + 1] = k .. '="' .. v .. '"'
        end
      end
      local key = name .. (#kept > 0 and "{" .. table.concat(kept, ",") .. "}" or "")
      samples[key] = tonumber(value)
    end
  end
  return samples, types, helps
end

-- An open raw WebSocket session on path: the stream, after the 101.
local function open(server, path, extra)
  local s = h.tcp(server)
  s:write(h.handshake(path, extra))
  local head = assert(h.read_head(s))
  assert.matches("^HTTP/1.1 101", head)
  return s
end

-- Reads n server frames; returns their payloads.
local function read_frames(s, n)
  local buf, out = "", {}
  while #out < n do
    local op, payload, rest = h.parse_frame(buf)
    if op then
      out[#out + 1] = { op, payload }
      buf = rest
    else
      buf = buf .. assert(s:read(5))
    end
  end
  return out
end

local function close_frame(code, reason)
  return h.frame(8, string.pack(">I2", code) .. (reason or ""))
end

local function scrape(server)
  local res = assert(http.get(server, "/metrics"))
  assert.equal(200, res.status)
  return res
end

describe("wslua.metrics()", function()
  local Echo = {
    on_data = function(_, client, msg)
      client:send(msg:read())
    end,
  }
  local Boom = {
    on_data = function(_, _, msg)
      if msg:read() == "boom" then
        error("boom")
      end
    end,
  }
  local router = wslua.router()
    :get("/metrics", wslua.metrics())
    :get("/echo", wslua.websocket(Echo))
    :get("/strict", wslua.websocket(Echo, { origins = { "http://ok.example" } }))
    :get("/boom", wslua.websocket(Boom))

  local function wait_closed(route, n)
    assert(h.wait_for(function()
      local r = observe.routes[route]
      return r and r.open == 0 and r.opened == n
    end), "sessions on " .. route .. " did not end")
  end

  it("counts connections, messages, bytes, closes, refusals and errors exactly", function()
    local server = h.serve(wslua.host { router })
    h.run(function()
      -- A: three messages of 5 bytes echoed, then closed 1000 by the client.
      local a = open(server, "/echo")
      for _ = 1, 3 do
        a:write(h.frame(1, "hello"))
      end
      local echoes = read_frames(a, 3)
      assert.same({ 1, "hello" }, echoes[3])

      -- While A is open, its counts are read from the core.
      local live = parse(scrape(server).body)
      assert.equal(1, live['wslua_connections_open{route="/echo"}'])
      assert.equal(1, live['wslua_connections_total{route="/echo"}'])
      assert.equal(3, live['wslua_messages_received_total{route="/echo"}'])
      assert.equal(3, live['wslua_messages_sent_total{route="/echo"}'])
      assert.equal(3 * 11, live['wslua_bytes_received_total{route="/echo"}'])
      assert.equal(3 * 7, live['wslua_bytes_sent_total{route="/echo"}'])
      assert.equal(0, live['wslua_send_buffer_bytes{route="/echo"}'])

      a:write(close_frame(1000))                         -- 8 bytes
      assert.same({ 8, string.pack(">I2", 1000) }, read_frames(a, 1)[1]) -- 4 bytes
      a:close()
      wait_closed("/echo", 1)

      -- B: one message of 2 bytes, then closed 4000 "bye" by the client.
      local b = open(server, "/echo")
      b:write(h.frame(1, "hi"))                          -- 8 bytes
      assert.same({ 1, "hi" }, read_frames(b, 1)[1])     -- 4 bytes
      b:write(close_frame(4000, "bye"))                  -- 11 bytes
      assert.same({ 8, string.pack(">I2", 4000) }, read_frames(b, 1)[1]) -- 4 bytes
      b:close()
      wait_closed("/echo", 2)

      -- Refused handshakes: an origin not allowed (403), not an upgrade (426).
      local refused = h.tcp(server)
      refused:write(h.handshake("/strict", "Origin: http://evil.example\r\n"))
      assert.matches("^HTTP/1.1 403", assert(h.read_head(refused)))
      refused:close()
      assert.equal(426, http.get(server, "/strict").status)

      -- A handler that raises: its client is closed with 1011.
      local c = open(server, "/boom")
      c:write(h.frame(1, "boom"))                        -- 10 bytes
      local code = h.read_until_close(c)                 -- 2 + 2 + 14 bytes
      assert.equal(1011, code)
      c:close()
      wait_closed("/boom", 1)
    end)

    local res
    h.run(function()
      res = scrape(server)
    end)
    assert.equal("text/plain; version=0.0.4; charset=utf-8", res.headers["content-type"])
    local m = parse(res.body)
    local want = {
      ['wslua_connections_open{route="/echo"}'] = 0,
      ['wslua_connections_total{route="/echo"}'] = 2,
      ['wslua_messages_received_total{route="/echo"}'] = 4,
      ['wslua_messages_sent_total{route="/echo"}'] = 4,
      ['wslua_bytes_received_total{route="/echo"}'] = 33 + 8 + 8 + 11,
      ['wslua_bytes_sent_total{route="/echo"}'] = 21 + 4 + 4 + 4,
      ['wslua_close_codes_total{route="/echo",code="1000"}'] = 1,
      ['wslua_close_codes_total{route="/echo",code="4000"}'] = 1,
      ['wslua_handler_errors_total{route="/echo"}'] = 0,
      ['wslua_messages_dropped_total{route="/echo"}'] = 0,
      ['wslua_handshakes_refused_total{route="/strict",status="403"}'] = 1,
      ['wslua_handshakes_refused_total{route="/strict",status="426"}'] = 1,
      ['wslua_connections_total{route="/strict"}'] = 0,
      ['wslua_connections_total{route="/boom"}'] = 1,
      ['wslua_messages_received_total{route="/boom"}'] = 1,
      ['wslua_messages_sent_total{route="/boom"}'] = 0,
      ['wslua_bytes_received_total{route="/boom"}'] = 10,
      ['wslua_bytes_sent_total{route="/boom"}'] = 18,
      ['wslua_handler_errors_total{route="/boom"}'] = 1,
      ['wslua_close_codes_total{route="/boom",code="1011"}'] = 1,
      ['wslua_http_requests_total{status="200"}'] = 1, -- the scrape before
      ['wslua_http_requests_total{status="403"}'] = 1,
      ['wslua_http_requests_total{status="426"}'] = 1,
      ['wslua_reloads_total'] = 0,
      ['wslua_reload_failures_total'] = 0,
      ['wslua_info{version="' .. wslua.version .. '"}'] = 1,
    }
    for key, value in pairs(want) do
      assert.equal(value, m[key], key)
    end
    assert.is_nil(m['wslua_close_codes_total{route="/echo",code="1006"}'])
    assert.is_true(m.wslua_lua_memory_bytes > 0)
    h.run(function()
      h.stop(server)
    end)
  end)

  it("writes a well-formed exposition: HELP and TYPE for every family", function()
    local server = h.serve(wslua.host { router })
    local text
    h.run(function()
      text = scrape(server).body
    end)
    local samples, types, helps = parse(text)
    assert.is_true(next(samples) ~= nil)
    for key in pairs(samples) do
      local family = key:match("^[%w_]+")
      assert.truthy(types[family], "no TYPE for " .. family)
      assert.truthy(helps[family], "no HELP for " .. family)
      if types[family] == "counter" then
        assert.matches("_total$", family)
      else
        assert.equal("gauge", types[family])
      end
    end
    -- Label values are escaped: backslash, double quote and newline.
    observe.route_stats('/odd"route\\\n')
    assert.truthy(require("wslua.metrics").render():find(
      'route="/odd\\"route\\\\\\n"} 0', 1, true))
    h.run(function()
      h.stop(server)
    end)
  end)
end)
