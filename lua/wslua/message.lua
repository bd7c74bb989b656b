-- A WebSocket message as it arrives: read whole with msg:read(), or streamed
-- piece by piece with `for chunk in msg:chunks() do`. msg.binary tells text
-- from binary. Both wait (yield) for pieces still on their way; if the
-- connection goes away first they return nil, "closed".
local scheduler = require "wslua.scheduler"

local Message = {}
Message.__index = Message

function Message.new(binary)
  return setmetatable({
    binary = binary,
    pieces = {},  -- arrived, not yet taken: pieces[first..last]
    first = 1,
    last = 0,
    done = false, -- the last piece has arrived
    closed = false,
    waiter = nil, -- the coroutine waiting for the next piece
  }, Message)
end

-- The core hands pieces in order; last marks the message's end.
function Message:_push(piece, last)
  if piece ~= "" then
    self.last = self.last + 1
    self.pieces[self.last] = piece
  end
  if last then
    self.done = true
  end
  self:_wake()
end

-- The connection went away before the message was whole.
function Message:_close()
  if not self.done then
    self.closed = true
    self:_wake()
  end
end

function Message:_wake()
  local co = self.waiter
  if co then
    self.waiter = nil
    scheduler.resume(co)
  end
end

function Message:_wait()
  if self.waiter then
    error("another coroutine is already reading this message", 3)
  end
  self.waiter = coroutine.running()
  scheduler.wait()
end

-- The whole message (what chunks() has not taken yet).
function Message:read()
  while not self.done do
    if self.closed then
      return nil, "closed"
    end
    self:_wait()
  end
  local body = table.concat(self.pieces, "", self.first, self.last)
  self.pieces, self.first, self.last = {}, 1, 0
  return body
end

-- Iterates over the pieces as they arrive (one per frame or read).
function Message:chunks()
  return function()
    while true do
      local piece = self.pieces[self.first]
      if piece then
        self.pieces[self.first] = nil
        self.first = self.first + 1
        return piece
      end
      if self.done then
        return nil
      end
      if self.closed then
        return nil, "closed"
      end
      self:_wait()
    end
  end
end

function Message:__tostring()
  return string.format("wslua.Message (%s%s)", self.binary and "binary" or "text",
    self.done and "" or ", arriving")
end

return Message
