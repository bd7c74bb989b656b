-- A WebSocket client as the scripts see it: the server's view of a peer
-- (on_open, on_data, ...) and the result of wslua.connect alike. A handle:
-- once the connection is gone, send and friends return nil, "closed".
local core = require "wslua.core"
local scheduler = require "wslua.scheduler"
local Message = require "wslua.message"

local Client = {}
Client.__index = Client

-- Defaults, read through __index (a table, not a function): a field a
-- client holds costs every idle connection a node of its table.
Client.closed = false     -- true once the connection is gone
Client.compressed = false -- true when permessage-deflate is on

-- buffer_limit: the most bytes of a message held unread (max_message).
function Client.new(conn, endpoint, buffer_limit)
  return setmetatable({
    buffer_limit = buffer_limit,
    conn = conn,
    id = conn:id(),
    endpoint = endpoint,
    data = {},          -- session state, the script's
    -- Made when first needed (most clients never use them):
    -- inbox: messages for messages()/receive(), inbox[inbox.first..inbox.last]
    -- inbox_waiter: the coroutine in next_message()
    -- current: the message now arriving, when it came in pieces
    -- drain_waiters: coroutines in client:drain()
  }, Client)
end

-- client:send(payload [, "binary"]) -> true | nil, "closed" (in C: it is
-- on the path of nearly every message)
Client.send = core.client_send

function Client:ping(payload)
  return self.conn:ping(payload)
end

-- client:close([code [, reason]]): the closing handshake, 1000 by default.
function Client:close(code, reason)
  return self.conn:close(code, reason)
end

function Client:buffered()
  return self.conn:buffered()
end

-- Messages skipped because the send buffer was over max_backpressure
-- (backpressure = "drop").
function Client:dropped()
  return self.conn:dropped()
end

-- Waits until the send buffer is at or under its low-water mark (half of
-- max_backpressure): true, or nil, "closed" when the client goes first.
function Client:drain()
  if self.closed then
    return nil, "closed"
  end
  if not self.conn:draining() then
    return true
  end
  local waiters = self.drain_waiters
  if not waiters then
    waiters = {}
    self.drain_waiters = waiters
  end
  waiters[#waiters + 1] = coroutine.running()
  return scheduler.wait()
end

local function check_topic(topic, name)
  if type(topic) ~= "string" then
    error("bad argument #1 to '" .. name .. "' (string expected, got " .. type(topic)
      .. ")", 3)
  end
end

-- client:subscribe(topic): true when subscribed now, false when it already
-- was; nil, "closed" once the client is gone. A client leaves all its
-- topics when it closes.
function Client:subscribe(topic)
  check_topic(topic, "subscribe")
  local endpoint = self.endpoint
  return core.subscribe(self.conn, topic, endpoint and endpoint.group or 0)
end

-- client:unsubscribe(topic): whether it was subscribed.
function Client:unsubscribe(topic)
  check_topic(topic, "unsubscribe")
  return core.unsubscribe(self.conn, topic)
end

-- The client's topics, in the order it subscribed.
function Client:topics()
  return core.topics(self.conn)
end

-- Wakes every coroutine in drain() with these values.
local function wake_drainers(self, ...)
  local waiters = self.drain_waiters
  if not waiters then
    return
  end
  self.drain_waiters = nil
  for _, co in ipairs(waiters) do
    scheduler.resume(co, ...)
  end
end

-- The send buffer fell to its low-water mark.
function Client:_drained()
  wake_drainers(self, true)
end

function Client:is_open()
  return self.conn:is_open()
end

-- A new message starts or continues; returns it when it is new, so the
-- caller can hand it to a handler. limit: the most bytes held unread
-- (default self.buffer_limit).
function Client:_data(piece, binary, first, last, limit)
  if first and last then
    self.current = nil
    return Message.whole(binary, piece)
  end
  local msg = self.current
  local fresh = false
  if first or msg == nil then
    msg = Message.new(binary, limit or self.buffer_limit)
    self.current = msg
    fresh = true
  end
  if not msg:_push(piece, last) then
    self.current = nil
    self.conn:close(1009, "message too big")
    return fresh and msg or nil
  end
  if last then
    self.current = nil
  end
  return fresh and msg or nil
end

-- For messages()/receive(): queue the message and wake the reader.
function Client:_deliver(msg)
  local inbox = self.inbox
  if not inbox then
    inbox = { first = 1, last = 0 }
    self.inbox = inbox
  end
  inbox.last = inbox.last + 1
  inbox[inbox.last] = msg
  local co = self.inbox_waiter
  if co then
    self.inbox_waiter = nil
    scheduler.resume(co)
  end
end

function Client:_closed(code, reason, err)
  self.closed = true
  self.close_code, self.close_reason, self.error = code, reason, err
  if self.current then
    self.current:_close()
    self.current = nil
  end
  local co = self.inbox_waiter
  if co then
    self.inbox_waiter = nil
    scheduler.resume(co)
  end
  wake_drainers(self, nil, "closed")
end

-- The next message, waiting for it; nil, "closed" once the connection is
-- gone and every message has been taken.
function Client:next_message()
  while true do
    local inbox = self.inbox
    local msg = inbox and inbox[inbox.first]
    if msg then
      inbox[inbox.first] = nil
      inbox.first = inbox.first + 1
      return msg
    end
    if self.closed then
      return nil, "closed"
    end
    if self.inbox_waiter then
      error("another coroutine is already waiting for this client's messages", 2)
    end
    self.inbox_waiter = coroutine.running()
    scheduler.wait()
  end
end

-- for msg in client:messages() do ... end
function Client:messages()
  return function()
    return self:next_message()
  end
end

-- The next message's body and whether it is binary; nil, "closed" when
-- the connection is gone.
function Client:receive()
  local msg, err = self:next_message()
  if not msg then
    return nil, err
  end
  local body, rerr = msg:read()
  if body == nil then
    return nil, rerr
  end
  return body, msg.binary
end

function Client:__tostring()
  return string.format("wslua.Client %d (%s%s)", self.id, self.remote_addr or "?",
    self.closed and ", closed" or "")
end

return Client
