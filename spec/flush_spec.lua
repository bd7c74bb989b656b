-- Many writes to many connections in one loop turn (the flush list,
-- src/net/flush.c): small writes wait in each connection's cork and leave
-- once per turn, larger ones leave at once with the cork in front of them.
-- Every client must get every message, in the order it was written, shared
-- (published) and direct sends interleaved, a close after the messages sent
-- before it; over plain TCP and over TLS (where the cork is encrypted once).
local wslua = require "wslua"
local h = require "helpers"

-- Message i: its number, then padding. Every 50th is 20 KiB, over the
-- cork's 16 KiB, so that it leaves at once behind what waits; every 3rd is
-- 300 B to 1 KiB, which a publish leaves in the cork by reference; the
-- rest are small, copied.
local function message(i)
  local head = "m" .. i .. ":"
  if i % 50 == 0 then
    return head .. ("x"):rep(20 * 1024)
  elseif i % 3 == 0 then
    return head .. ("z"):rep(300 + i * 37 % 700)
  end
  return head .. ("y"):rep(i % 40)
end

-- An endpoint whose clients subscribe to "t" on open; the server-side
-- clients are kept in opened.
local function fanout_host(tls, opened)
  local handler = {
    on_open = function(_, client)
      client:subscribe("t")
      opened[#opened + 1] = client
    end,
  }
  return wslua.host { tls = tls, wslua.router():get("/ws", wslua.websocket(handler)) }
end

local function connect_all(server, n, opts)
  local clients = {}
  for i = 1, n do
    clients[i] = assert(wslua.connect(server:url("/ws"), opts))
  end
  assert.truthy(h.wait_for(function() return wslua.subscribers("t") == n end))
  return clients
end

-- Publishes count messages to "t" without yielding (one loop turn); every
-- 7th is followed by a direct send to each server-side client. Returns the
-- sequence each client must receive.
local function publish_burst(opened, count)
  local want = {}
  for i = 1, count do
    local m = message(i)
    assert.equal(#opened, wslua.publish("t", m))
    want[#want + 1] = m
    if i % 7 == 0 then
      for _, client in ipairs(opened) do
        assert(client:send("d" .. i))
      end
      want[#want + 1] = "d" .. i
    end
  end
  return want
end

local function expect_all(clients, want)
  for k, c in ipairs(clients) do
    for j = 1, #want do
      local body = c:receive()
      if body ~= want[j] then
        error(("client %d, message %d: got %s, want %s"):format(k, j,
          body and body:sub(1, 20) or "nil", want[j]:sub(1, 20)))
      end
    end
  end
end

local function burst_then_close(server, clients, opened)
  local want = publish_burst(opened, 300)
  expect_all(clients, want)
  -- Messages, then a close, all in one turn: the close frame comes last.
  for _, client in ipairs(opened) do
    for i = 1, 20 do
      assert(client:send("last" .. i))
    end
    client:close(4001, "done")
  end
  for _, c in ipairs(clients) do
    for i = 1, 20 do
      assert.equal("last" .. i, c:receive())
    end
    assert.same({ nil, "closed" }, { c:receive() })
    assert.equal(4001, c.close_code)
  end
  h.stop(server)
end

describe("writes in one loop turn", function()
  it("reach every client whole and in order, then the close", function()
    local opened = {}
    local server = h.serve(fanout_host(nil, opened))
    h.run(function()
      local clients = connect_all(server, 40)
      burst_then_close(server, clients, opened)
    end)
  end)

  it("reach every client whole and in order over TLS", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. h.quote(dir)))
    local cert, key = dir .. "/c.pem", dir .. "/c.key"
    assert(os.execute("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256"
      .. " -nodes -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1"
      .. " -keyout " .. h.quote(key) .. " -out " .. h.quote(cert) .. " 2>/dev/null"))
    local opened = {}
    local server = h.serve(fanout_host({ cert = cert, key = key }, opened))
    h.run(function()
      local clients = connect_all(server, 8, { ca = cert })
      burst_then_close(server, clients, opened)
    end)
    os.execute("rm -rf " .. h.quote(dir))
  end)
end)
