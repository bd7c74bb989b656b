-- Server memory per idle WebSocket connection in each compression mode.
-- For each mode it starts the wslua binary on bench/idle_memory_app.lua,
-- reads the server's VmRSS (/proc/PID/status), opens N connections (10,000
-- by default) from this process, exchanges one message each way on each
-- (a 65-byte JSON line, compressed both ways where compression is on, so
-- that zlib's state exists wherever the mode keeps it), waits a moment,
-- reads VmRSS again and prints the growth divided by N.
--
--   ulimit -n 20000    # this process and the server each hold N sockets
--   lua5.4 bench/idle_memory.lua [N [BUILD_DIR]]
--
-- Run from anywhere; BUILD_DIR defaults to build/ beside bench/.
local source = (arg[0]:match("^(.*)/bench/[^/]*$") or ".")
local n = math.tointeger(tonumber(arg[1] or "10000"))
local build = arg[2] or source .. "/build"
package.path = source .. "/lua/?.lua;" .. source .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/lua/?.so;" .. package.cpath

local wslua = require "wslua"

local MESSAGE = '{"id":1,"user":"guest1","text":"hello from an idle client, once"}'
-- MESSAGE as zlib writes it (level 6, raw, sync flush, 00 00 ff ff removed).
local PACKED = "\xaa\x56\xca\x4c\x51\xb2\x32\xd4\x51\x2a\x2d\x4e\x2d\x52\xb2\x52"
  .. "\x4a\x2f\x4d\x2d\x2e\x31\x54\xd2\x51\x2a\x49\xad\x28\x01\xf2\x33\x52\x73"
  .. "\x72\xf2\x15\xd2\x8a\xf2\x73\x15\x12\xf3\x14\x32\x53\x72\x52\x15\x92\x73"
  .. "\x32\x53\xf3\x4a\x74\x14\xf2\xf3\x92\x53\x95\x6a\x01\x00"
-- What browsers offer.
local OFFER = "permessage-deflate; client_max_window_bits"

local MODES = {
  { name = "no compression", path = "/plain" },
  { name = "compression, defaults (shared deflater and inflater)", path = "/shared",
    offer = OFFER, agreed = "permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover" },
  { name = "compression, dedicated (no_context_takeover both false)", path = "/dedicated",
    offer = OFFER, agreed = "permessage-deflate; server_max_window_bits=12; "
      .. "client_max_window_bits=12" },
}

local function limit_open_files()
  local f = assert(io.open("/proc/self/limits"))
  local soft = f:read("a"):match("Max open files%s+(%d+)")
  f:close()
  return tonumber(soft)
end

local function rss_kib(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then
    return nil
  end
  local kib = tonumber(f:read("a"):match("VmRSS:%s*(%d+)"))
  f:close()
  return kib
end

local function read_file(path)
  local f = io.open(path)
  local s = f and f:read("a") or ""
  if f then
    f:close()
  end
  return s
end

-- Starts the server; returns its pid, port and log file.
local function start_server()
  local log = os.tmpname()
  local p = assert(io.popen(string.format(
    "exec %s/wslua %s/bench/idle_memory_app.lua --listen 127.0.0.1:0 >%s 2>&1 & echo $!",
    build, source, log)))
  local pid = assert(tonumber(p:read("l")), "could not start the server")
  p:close()
  local port
  wslua.run(function()
    for _ = 1, 500 do
      port = read_file(log):match("listening on 127%.0%.0%.1:(%d+)")
      if port then
        return
      end
      wslua.sleep(0.01)
    end
  end)
  assert(port, "the server did not start:\n" .. read_file(log))
  return pid, tonumber(port), log
end

-- A client frame, masked with the all-zero key (so the payload goes as is).
local function frame(b0, payload)
  assert(#payload < 126)
  return string.char(b0, 0x80 | #payload) .. "\0\0\0\0" .. payload
end

-- Reads from s until pred(buffer) holds; returns the buffer.
local function read_until(s, buf, pred)
  while not pred(buf) do
    local bytes, err = s:read(10)
    if not bytes then
      error("read: " .. tostring(err), 0)
    end
    buf = buf .. bytes
  end
  return buf
end

-- One connection: the upgrade, one message each way. Returns the stream.
local function open_one(port, mode)
  local s = assert(wslua.tcp("127.0.0.1", port))
  s:write("GET " .. mode.path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    .. "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    .. "Sec-WebSocket-Version: 13\r\n"
    .. (mode.offer and "Sec-WebSocket-Extensions: " .. mode.offer .. "\r\n" or "") .. "\r\n")
  local buf = read_until(s, "", function(b)
    return b:find("\r\n\r\n", 1, true)
  end)
  local head, rest = buf:match("^(.-\r\n\r\n)(.*)$")
  assert(head:match("^HTTP/1%.1 101 "), head)
  local agreed = head:match("\r\n[Ss]ec%-[Ww]eb[Ss]ocket%-[Ee]xtensions: ([^\r]*)")
  assert(agreed == mode.agreed, "negotiated " .. tostring(agreed))
  s:write(mode.offer and frame(0xC1, PACKED) or frame(0x81, MESSAGE))
  -- The echo: compressed (RSV1) where compression is on.
  buf = read_until(s, rest, function(b)
    return #b >= 2 and #b >= 2 + (b:byte(2) & 0x7f)
  end)
  assert(buf:byte(1) == (mode.offer and 0xC1 or 0x81), "unexpected echo")
  return s
end

-- Opens count connections, workers at a time; returns the streams.
local function open_many(port, mode, count, workers)
  local streams, failure, running = {}, nil, workers
  local next_i = 0
  for _ = 1, workers do
    wslua.spawn(function()
      while next_i < count and not failure do
        next_i = next_i + 1
        streams[#streams + 1] = open_one(port, mode)
      end
      running = running - 1
    end, function(trace)
      failure = failure or trace
      running = running - 1
    end)
  end
  while running > 0 do
    wslua.sleep(0.01)
  end
  if failure then
    error(failure, 0)
  end
  return streams
end

local function measure(mode)
  local pid, port, log = start_server()
  local result
  local ok, err = pcall(wslua.run, function()
    -- Warm up: the first connection of a kind allocates what later ones
    -- share (the Lua side's tables, the shared deflater).
    for _, s in ipairs(open_many(port, mode, 10, 1)) do
      s:close()
    end
    wslua.sleep(0.5)
    local before = rss_kib(pid)
    local streams = open_many(port, mode, n, 100)
    wslua.sleep(1)
    local after = rss_kib(pid)
    result = { before = before, after = after, per = (after - before) * 1024 / n }
    for _, s in ipairs(streams) do
      s:close()
    end
    wslua.sleep(0.5)
  end, 600)
  os.execute("kill " .. pid)
  os.remove(log)
  if not ok then
    error(mode.name .. ": " .. tostring(err), 0)
  end
  return result
end

if limit_open_files() < n + 100 then
  io.stderr:write(string.format("open files are limited to %d: run `ulimit -n %d` first\n",
    limit_open_files(), n + 1000))
  os.exit(1)
end

print(string.format("%d idle connections, one %d-byte message each way on each", n, #MESSAGE))
for _, mode in ipairs(MODES) do
  local r = measure(mode)
  print(string.format("%-60s %7.0f bytes/connection (server RSS %d -> %d KiB)",
    mode.name, r.per, r.before, r.after))
end
