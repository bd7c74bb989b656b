-- A WebSocket message as it arrives: read whole with msg:read(), or streamed
-- piece by piece with `for chunk in msg:chunks() do` (which holds only what
-- has not been taken, so a message larger than the buffering limit can still
-- be consumed). msg.binary tells text
-- from binary. Both wait (yield) for pieces still on their way; if the
-- connection goes away first they return nil, "closed".
local core = require "wslua.core"
local scheduler = require "wslua.scheduler"

local Message = {}
Message.__index = Message

-- limit: the most bytes the message may hold unread (nil: no limit).
function Message.new(binary, limit)
  return setmetatable({
    binary = binary,
    limit = limit,
    held = 0,     -- bytes arrived and not yet taken
    pieces = {},  -- arrived, not yet taken: pieces[first..last]
    first = 1,
    last = 0,
    done = false, -- the last piece has arrived
    closed = false,
    waiter = nil, -- the coroutine waiting for the next piece
  }, Message)
end

-- A message that arrived whole, in one piece (the common case): its body
-- held as it is, with no table of pieces (a body means done). For an
-- endpoint's clients src/lua/dispatch.c builds the same table in C.
function Message.whole(binary, body)
  return setmetatable({
    binary = binary,
    body = body, -- what read() or chunks() has not taken ("": all taken)
  }, Message)
end

-- The core hands pieces in order; last marks the message's end. Returns
-- false when the unread bytes pass the limit (the caller closes 1009).
function Message:_push(piece, last)
  if piece ~= "" then
    self.last = self.last + 1
    self.pieces[self.last] = piece
    self.held = self.held + #piece
    -- A reader of chunks takes each piece as it comes; only pieces piling
    -- up unread can pass the limit.
    if self.limit and self.held > self.limit and self.held > #piece then
      self:_close()
      return false
    end
  end
  if last then
    self.done = true
  end
  self:_wake()
  return true
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
  local body = self.body
  if body then
    self.body = ""
    return body
  end
  while not self.done do
    if self.closed then
      return nil, "closed"
    end
    self:_wait()
  end
  local body = table.concat(self.pieces, "", self.first, self.last)
  self.pieces, self.first, self.last, self.held = {}, 1, 0, 0
  return body
end

-- Iterates over the pieces as they arrive (one per frame or read).
function Message:chunks()
  return function()
    local body = self.body
    if body then
      if body == "" then
        return nil
      end
      self.body = ""
      return body
    end
    while true do
      local piece = self.pieces[self.first]
      if piece then
        self.pieces[self.first] = nil
        self.first = self.first + 1
        self.held = self.held - #piece
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

core.dispatch_init { message = Message }

function Message:__tostring()
  return string.format("wslua.Message (%s%s)", self.binary and "binary" or "text",
    (self.done or self.body) and "" or ", arriving")
end

return Message
