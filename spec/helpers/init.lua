-- Helpers for the specs: run a coroutine against the real core, serve hosts
-- on loopback port 0, start the wslua binary, speak raw bytes.
local wslua = require "wslua"

local helpers = {}

helpers.bin = os.getenv("WSLUA_BIN") or "build/wslua"
helpers.source_dir = os.getenv("WSLUA_SOURCE_DIR") or "."

-- A shell word for s (single-quoted).
function helpers.quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- A whole file's bytes, or nil when it cannot be read.
function helpers.slurp(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("a")
  f:close()
  return s
end

-- Runs fn in a coroutine and the loop until it is done (bounded). Called
-- from inside such a coroutine, it runs fn right there: the loop is
-- already running, and it must not run inside itself.
function helpers.run(fn, timeout)
  local _, main = coroutine.running()
  if not main then
    return fn()
  end
  wslua.run(fn, timeout or 20)
end

-- Serves a host (or list) in this process on 127.0.0.1, a free port.
function helpers.serve(host_or_hosts)
  local server = wslua.serve(host_or_hosts, { listen = "127.0.0.1:0" })
  return server
end

-- Stops a server and waits for its connections to close.
function helpers.stop(server)
  local done = false
  server:stop(function()
    done = true
  end)
  while not done do
    wslua.sleep(0.01)
  end
end

-- Waits until cond() is true, up to timeout seconds; returns cond().
function helpers.wait_for(cond, timeout)
  local deadline = os.time() + (timeout or 5)
  while not cond() and os.time() <= deadline do
    wslua.sleep(0.01)
  end
  return cond()
end

-- A raw TCP stream to the server.
function helpers.tcp(server)
  return assert(wslua.tcp("127.0.0.1", server:port()))
end

-- The bytes of an opening handshake for path.
function helpers.handshake(path, extra)
  return "GET " .. (path or "/") .. " HTTP/1.1\r\n"
    .. "Host: 127.0.0.1\r\n"
    .. "Upgrade: websocket\r\n"
    .. "Connection: Upgrade\r\n"
    .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    .. "Sec-WebSocket-Version: 13\r\n"
    .. (extra or "")
    .. "\r\n"
end

-- A masked client frame.
function helpers.frame(opcode, payload, fin, rsv)
  local len = #payload
  local b0 = (fin == false and 0 or 0x80) | (rsv or 0) | opcode
  local head
  if len < 126 then
    head = string.pack(">BB", b0, 0x80 | len)
  elseif len < 65536 then
    head = string.pack(">BBI2", b0, 0x80 | 126, len)
  else
    head = string.pack(">BBI8", b0, 0x80 | 127, len)
  end
  local key = { 0x12, 0x34, 0x56, 0x78 }
  local out = {}
  for i = 1, len do
    out[i] = string.char(payload:byte(i) ~ key[(i - 1) % 4 + 1])
  end
  return head .. string.char(table.unpack(key)) .. table.concat(out)
end

-- Reads an HTTP response head (and what follows it) from a raw stream.
function helpers.read_head(stream)
  local buf = ""
  while not buf:find("\r\n\r\n", 1, true) do
    local bytes = stream:read(5)
    if not bytes then
      return nil, buf
    end
    buf = buf .. bytes
  end
  local head, rest = buf:match("^(.-\r\n\r\n)(.*)$")
  return head, rest
end

-- Parses a server frame from bytes: opcode, payload, rest (or nil if
-- incomplete).
function helpers.parse_frame(bytes)
  if #bytes < 2 then
    return nil
  end
  local b0, b1 = bytes:byte(1, 2)
  local len, pos = b1 & 0x7f, 3
  if len == 126 then
    if #bytes < 4 then
      return nil
    end
    len, pos = string.unpack(">I2", bytes, 3), 5
  elseif len == 127 then
    if #bytes < 10 then
      return nil
    end
    len, pos = string.unpack(">I8", bytes, 3), 11
  end
  if #bytes < pos + len - 1 then
    return nil
  end
  return b0 & 0x0f, bytes:sub(pos, pos + len - 1), bytes:sub(pos + len), b0
end

-- Reads one server frame from a raw stream: opcode, payload, the bytes
-- after it, byte 0; or nil and why. buf: bytes already read.
function helpers.read_frame(stream, buf, timeout)
  buf = buf or ""
  while true do
    local op, payload, rest, b0 = helpers.parse_frame(buf)
    if op then
      return op, payload, rest, b0
    end
    local bytes, err = stream:read(timeout or 5)
    if not bytes then
      return nil, err
    end
    buf = buf .. bytes
  end
end

-- Reads frames from a raw stream until a close frame or the end; returns
-- the close code (or nil) and a list of {opcode, payload}.
function helpers.read_until_close(stream, initial)
  local buf, frames = initial or "", {}
  while true do
    local op, payload, rest = helpers.parse_frame(buf)
    if op then
      frames[#frames + 1] = { op, payload }
      buf = rest
      if op == 8 then
        local code = #payload >= 2 and string.unpack(">I2", payload) or 1005
        return code, frames, payload:sub(3)
      end
    else
      local bytes = stream:read(5)
      if not bytes then
        return nil, frames
      end
      buf = buf .. bytes
    end
  end
end

-- Starts the wslua binary on an app; returns a process handle with the
-- port it listens on, its pid, and :stop(signal). The server's log goes
-- to a file, read back by :log().
function helpers.spawn(app, args)
  local log = os.tmpname()
  local port = helpers.free_port()
  local cmd = string.format("%s %s --listen 127.0.0.1:%d %s >%s 2>&1 & echo $!",
    helpers.bin, app, port, args or "", log)
  local p = io.popen(cmd)
  local pid = tonumber(p:read("l"))
  p:close()
  local proc = { pid = pid, port = port, logfile = log }
  function proc:log()
    local f = io.open(log)
    local s = f and f:read("a") or ""
    if f then
      f:close()
    end
    return s
  end
  function proc:alive()
    return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
  end
  function proc:signal(sig)
    os.execute("kill -" .. sig .. " " .. pid .. " 2>/dev/null")
  end
  -- Waits for the process to exit; returns true if it did within timeout.
  function proc:wait_exit(timeout)
    return helpers.wait_for(function()
      return not self:alive()
    end, timeout or 10)
  end
  function proc:stop()
    if self:alive() then
      self:signal("KILL")
    end
    os.remove(log)
  end
  -- wait until it listens
  wslua.run(function()
    helpers.wait_for(function()
      return proc:log():find("listening on", 1, true) or not proc:alive()
    end, 10)
  end)
  return proc
end

-- A port that is free now (bound and released by the kernel's choice).
function helpers.free_port()
  local server = wslua.serve(wslua.host { function(_, res)
    res:send("")
  end }, { listen = "127.0.0.1:0" })
  local port = server:port()
  wslua.run(function()
    helpers.stop(server)
  end)
  return port
end

return helpers
