-- wslua.tcp(host, port): a raw TCP client stream with waiting reads, for
-- protocols other than WebSocket (and tests that send arbitrary bytes).
--   local s = assert(wslua.tcp("127.0.0.1", 80))
--   s:write("GET / HTTP/1.1\r\n\r\n"); local bytes = s:read()
local core = require "wslua.core"
local scheduler = require "wslua.scheduler"

local Stream = {}
Stream.__index = Stream

local function wake(self, ...)
  local co = self.waiter
  if co then
    self.waiter = nil
    scheduler.resume(co, ...)
  end
end

function Stream:write(bytes)
  return self.tcp:write(bytes)
end

function Stream:shutdown()
  return self.tcp:shutdown()
end

-- Stops taking bytes from the kernel (the peer then sees a reader that does
-- not keep up) / starts again.
function Stream:pause()
  return self.tcp:pause()
end

function Stream:resume()
  return self.tcp:resume()
end

function Stream:close()
  self.tcp:close()
end

-- Waits for bytes: all that have arrived, or nil, "closed" at the end.
-- timeout (seconds) gives nil, "timeout".
function Stream:read(timeout)
  while self.buffer == "" do
    if self.closed then
      return nil, "closed"
    end
    local timer
    if timeout then
      timer = core.timer(timeout, 0, function()
        wake(self, "timeout")
      end)
    end
    self.waiter = coroutine.running()
    local why = scheduler.wait()
    if timer then
      timer:stop()
    end
    if why == "timeout" then
      return nil, "timeout"
    end
  end
  local out = self.buffer
  self.buffer = ""
  return out
end

-- Reads until the peer closes; returns everything received.
function Stream:read_all(timeout)
  local parts = {}
  while true do
    local bytes, err = self:read(timeout)
    if not bytes then
      return table.concat(parts), err
    end
    parts[#parts + 1] = bytes
  end
end

return function(host, port)
  local self = setmetatable({ buffer = "", closed = false }, Stream)
  local tcp, err = core.tcp_connect(host, port, {
    open = function(_, e)
      self.open_error = e
      wake(self, "open")
    end,
    data = function(_, bytes)
      self.buffer = self.buffer .. bytes
      wake(self, "data")
    end,
    close = function()
      self.closed = true
      wake(self, "close")
    end,
  })
  if not tcp then
    return nil, err
  end
  self.tcp = tcp
  self.waiter = coroutine.running()
  scheduler.wait()
  if self.open_error then
    return nil, self.open_error
  end
  return self
end
