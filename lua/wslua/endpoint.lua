-- A WebSocket endpoint: wslua.websocket(handler, options). The handler is a
-- table of on_* functions (Aerys style) or one function(client, req) that
-- reads client:messages() (amphp style). Lifecycle: on_start(endpoint),
-- on_handshake(req, res), on_open(client, data), on_data(client, msg) or
-- on_message(client, data, binary), on_close(client, code, reason),
-- on_stop().
local core = require "wslua.core"
local log = require "wslua.log"
local observe = require "wslua.observe"
local options = require "wslua.options"
local scheduler = require "wslua.scheduler"
local topics = require "wslua.topics"
local Client = require "wslua.client"
local Message = require "wslua.message"

local Endpoint = {}
Endpoint.__index = Endpoint

local option_kinds = {
  max_message = "positive",
  max_stream = "positive",
  max_frame = "positive",
  idle_timeout = "number",
  close_timeout = "number",
  max_backpressure = "number",
  backpressure = "string",
  low_water = "number",
  ping_interval = "number",
  protocols = "strings",
  origins = "strings",
  compression = "boolean|table",
}

local MiB = 1024 * 1024

-- Each endpoint is a topic group of its own: endpoint:publish reaches the
-- clients that subscribed through it, wslua.publish (group 0) everyone.
local next_group = 1

function Endpoint.new(handler, opts)
  local ht = type(handler)
  if ht ~= "table" and ht ~= "function" then
    error("wslua.websocket: handler must be a table of on_* functions or a function", 2)
  end
  if ht == "table" then
    for k, v in pairs(handler) do
      if type(k) == "string" and k:match("^on_") and type(v) ~= "function" then
        error("wslua.websocket: handler field '" .. k .. "' must be a function", 2)
      end
    end
    if handler.on_data and handler.on_message then
      error("wslua.websocket: handler has both on_data and on_message: "
        .. "messages go to one of them", 2)
    end
  end
  opts = options.check("websocket options", opts or {}, option_kinds)
  if opts.backpressure ~= nil and opts.backpressure ~= "close" and opts.backpressure ~= "drop" then
    error("option 'backpressure' in websocket options must be \"close\" or \"drop\"", 2)
  end
  local self = setmetatable({
    handler = handler,
    options = opts,
    ws_options = {
      -- The core's limit: a message streamed with msg:chunks() may reach
      -- max_stream; what is held unread never passes max_message.
      max_message = math.max(opts.max_message or MiB, opts.max_stream or 0),
      max_frame = opts.max_frame,
      idle_timeout = opts.idle_timeout or 120,
      close_timeout = opts.close_timeout or 3,
      max_backpressure = opts.max_backpressure or MiB,
      backpressure = opts.backpressure,
      low_water = opts.low_water,
      ping_interval = opts.ping_interval,
      compression = options.compression("websocket options", opts.compression),
    },
    -- What msg:read() may hold of a message in pieces (Client._data).
    buffer_limit = opts.max_message or MiB,
    clients_by_id = {},
    kinds = {}, -- its clients' metatables (kind_of)
    count = 0,
    started = false,
    group = next_group,
  }, Endpoint)
  next_group = next_group + 1
  return self
end

function Endpoint:_call(name, ...)
  local h = self.handler
  if type(h) == "table" and h[name] then
    return h[name](h, ...)
  end
end

-- on_start runs once when the server starts; an error there stops the start.
function Endpoint:_start()
  if self.started then
    return
  end
  self.started = true
  local failure
  scheduler.spawn(function()
    self:_call("on_start", self)
  end, function(trace)
    failure = trace
  end)
  if failure then
    error("on_start failed: " .. failure, 0)
  end
end

-- on_stop runs while sends still work; when it returns (it may wait, within
-- the server's graceful stop time) every client is closed with 1001 and
-- reason (default "server shutting down").
function Endpoint:_stop(reason)
  if not self.started then
    return
  end
  self.started = false
  local function close_all()
    for _, client in pairs(self.clients_by_id) do
      client:close(1001, reason or "server shutting down")
    end
  end
  scheduler.spawn(function()
    self:_call("on_stop")
    close_all()
  end, function(trace)
    log.error("on_stop failed: %s", trace)
    close_all()
  end)
end

-- Hot reload: this endpoint, kept with its clients and their state, takes
-- the handler and options of new, the endpoint the reloaded app built at the
-- same route. Open connections keep the limits they were upgraded with. new
-- becomes an alias of this one, so app code holding it (an upvalue) reaches
-- these clients. A field added to endpoints is either configuration (copy it
-- here) or state (leave it).
function Endpoint:_adopt(new)
  if new.buffer_limit ~= self.buffer_limit then
    -- Clients read the endpoint's limit unless they hold their own.
    for _, client in pairs(self.clients_by_id) do
      client.buffer_limit = client.buffer_limit or self.buffer_limit
    end
  end
  self.handler = new.handler
  self.options = new.options
  self.ws_options = new.ws_options
  self.buffer_limit = new.buffer_limit
  for k in pairs(new) do
    new[k] = nil
  end
  setmetatable(new, { __index = self, __newindex = self })
end

-- A bus across workers or machines (wslua.pubsub) sets
-- Endpoint.forward(endpoint, target, payload, binary) to reach the clients
-- other workers hold.
Endpoint.forward = nil

-- endpoint:send(nil | id | {ids}, payload [, "binary"]): nil sends to every
-- client; returns how many of this worker's clients it was sent to.
function Endpoint:send(target, payload, mode)
  if type(payload) ~= "string" then
    error("bad argument #2 to 'send' (string expected, got " .. type(payload) .. ")", 2)
  end
  local binary = mode == "binary" or mode == true
  local conns = {}
  if target == nil then
    for _, c in pairs(self.clients_by_id) do
      conns[#conns + 1] = c.conn
    end
  elseif type(target) == "number" then
    local c = self.clients_by_id[target]
    conns[1] = c and c.conn
  elseif type(target) == "table" then
    for _, id in ipairs(target) do
      local c = self.clients_by_id[id]
      if c then
        conns[#conns + 1] = c.conn
      end
    end
  else
    error("bad argument #1 to 'send' (nil, client id or list of ids expected)", 2)
  end
  local n = core.broadcast(conns, payload, binary)
  if Endpoint.forward then
    Endpoint.forward(self, target, payload, binary)
  end
  return n
end

-- endpoint:publish(topic, payload [, "binary"]): to every client that
-- subscribed to the topic through this endpoint, in one core call; returns
-- how many it was queued for.
function Endpoint:publish(topic, payload, mode)
  return topics.checked_publish(topic, payload, mode, self.group, 2)
end

-- How many of this endpoint's clients are subscribed to the topic.
function Endpoint:subscribers(topic)
  return core.subscribers(topic, self.group)
end

function Endpoint:client(id)
  return self.clients_by_id[id]
end

-- for id, client in endpoint:clients() do
function Endpoint:clients()
  return pairs(self.clients_by_id)
end

local function origin_allowed(self, origin)
  local allowed = self.options.origins
  if not allowed then
    return true
  end
  for _, o in ipairs(allowed) do
    if o == origin then
      return true
    end
  end
  return false
end

-- The server's choice among the client's offered subprotocols: the first
-- offered one that the endpoint supports.
local function choose_protocol(self, offered)
  local supported = self.options.protocols
  if not supported then
    return nil
  end
  for _, p in ipairs(offered) do
    for _, s in ipairs(supported) do
      if p == s then
        return p
      end
    end
  end
end

-- Serves the upgrade request; runs inside the request's coroutine.
function Endpoint:_serve(req, res)
  req.endpoint = self -- a refusal is counted for this endpoint's route
  if not req.websocket then
    local status = req.websocket_status or 426
    res.status = status
    res:header("Content-Type", "text/plain; charset=utf-8")
    if status == 426 then
      res:header("Sec-WebSocket-Version", "13")
    elseif status == 405 then
      -- RFC 9110 §15.5.6: a 405 names the methods the resource supports.
      res:header("Allow", "GET")
    end
    log.info("%s %s: handshake refused (%d): %s", req.remote_addr, req.path, status,
      req.websocket_error or "not a WebSocket upgrade")
    res:send((req.websocket_error or "this is a WebSocket endpoint") .. "\n")
    return true
  end
  if not origin_allowed(self, req.headers.origin) then
    log.info("%s %s: handshake refused (403): origin %s not allowed", req.remote_addr,
      req.path, tostring(req.headers.origin))
    res:fail(403, "origin not allowed")
    return true
  end
  res.status = 101
  res.protocol = choose_protocol(self, req.protocols)
  local data
  if type(self.handler) == "table" and self.handler.on_handshake then
    data = self.handler:on_handshake(req, res)
  end
  if res.finished then
    return true
  end
  if res.status ~= 101 then
    log.info("%s %s: handshake refused by on_handshake (%d)", req.remote_addr, req.path,
      res.status)
    res:send("")
    return true
  end
  if res.protocol ~= nil then
    local offered = false
    for _, p in ipairs(req.protocols) do
      offered = offered or p == res.protocol
    end
    if not offered then
      error("on_handshake chose subprotocol '" .. tostring(res.protocol)
        .. "', which the client did not offer", 0)
    end
  end
  local ok, extensions = req.conn:upgrade(req.websocket_key, res.protocol, res.headers,
    self.ws_options, req.headers["sec-websocket-extensions"])
  res.finished = true
  if not ok then
    return true, extensions
  end
  self:_open(req, res.protocol, data, extensions)
  return true
end

-- A client of an endpoint: its events go to the endpoint's handler. The
-- methods live here, not in closures per client, so an idle client costs
-- one table.
local Member = {}
-- Client's methods, copied: one lookup per method call, not two.
for k, v in pairs(Client) do
  Member[k] = v
end
Member.__index = Member

local call, whole = scheduler.call, Message.whole

-- on_message for a message that came in pieces: its whole body first.
local function read_whole(h, client, msg)
  local body = msg:read()
  if body then
    return h:on_message(client, body, msg.binary)
  end
end

-- Pieces of each message go to the message; a new message starts a
-- handler call of its own (or waits in the inbox for messages()). A
-- message in one piece (the common case) for a table of handlers takes
-- the short way, in C (src/lua/dispatch.c), and does not come here.
function Member:_data(piece, binary, first, last)
  local h = self.endpoint.handler
  if first and last and type(h) == "table" and h.on_message then
    return call(self.conn:_budget(), self, h.on_message, h, self, piece, binary)
  end
  local msg
  if first and last then
    msg = whole(binary, piece)
  else
    msg = Client._data(self, piece, binary, first, last,
      self.buffer_limit or self.endpoint.buffer_limit)
    if not msg then
      return
    end
  end
  if type(h) == "function" then
    return self:_deliver(msg)
  end
  if h.on_message then
    call(self.conn:_budget(), self, read_whole, h, self, msg)
  elseif h.on_data then
    call(self.conn:_budget(), self, h.on_data, h, self, msg)
  end
end


-- What clients of one kind share, as the metatable they read it through:
-- a copy of Member with the endpoint, the route's label (_label), _quiet,
-- the extensions agreed and compressed. Few kinds (endpoints x agreements,
-- the server's choices: a peer cannot make more), each one table, where
-- these fields in every client would make its table four times as large.
-- The C path knows a kind by its mark, core.MEMBER, and reads the endpoint
-- from it (src/lua/dispatch.c).

-- A client reads what it does not hold from its kind, or makes it: data
-- (made at first use), id and the addresses (from the handle, which keeps
-- them after the close). A function, where a table would do for the kind
-- alone, so that an idle client holds 2 fields (2 hash nodes) and no data
-- table (issue 6: ~280 bytes an idle connection). A message's path does
-- not come here: send is in the client itself, and the C path reads the
-- endpoint from the kind.
local function lazy_index(kind)
  return function(client, key)
    local v = kind[key]
    if v ~= nil then
      return v
    elseif key == "data" then
      v = {}
      rawset(client, "data", v)
      return v
    elseif key == "id" then
      return client.conn:id()
    elseif key == "remote_addr" or key == "peer_addr" then
      return client.conn:remote_addr()
    end
    return nil
  end
end

local function kind_of(endpoint, label, quiet, extensions)
  local key = label .. (quiet and "\0q\0" or "\0\0") .. (extensions or "")
  local kind = endpoint.kinds[key]
  if kind then
    return kind
  end
  kind = {}
  for k, v in pairs(Member) do
    kind[k] = v
  end
  kind.__index = lazy_index(kind)
  kind[core.MEMBER] = true
  kind.endpoint = endpoint
  kind._label = label
  -- A literal route's path: its clients need not hold it (see _open).
  kind.path = label
  kind._quiet = quiet or nil
  kind.extensions = extensions
  kind.compressed = extensions ~= nil
  endpoint.kinds[key] = kind
  return kind
end

function Member:_drained()
  Client._drained(self)
  local h = self.endpoint.handler
  if type(h) == "table" and h.on_drain then
    call(self.conn:_budget(), self, h.on_drain, h, self)
  end
end

-- A handler of this client failed (the scheduler calls this): 1011, and
-- the route's error count; after the close (on_close failed), the log.
function Member:_failed(trace)
  observe.failed(self._label)
  if self.closed then
    log.error("on_close failed: %s", trace)
    return
  end
  log.error("%s: handler failed, closing with 1011: %s", tostring(self), trace)
  self:close(1011, "internal error")
end

function Member:_closed(code, reason, err)
  Client._closed(self, code, reason, err)
  local endpoint = self.endpoint
  endpoint.clients_by_id[self.id] = nil
  endpoint.count = endpoint.count - 1
  observe.ws_close(self, code, reason, err)
  local h = endpoint.handler
  if type(h) == "table" and h.on_close then
    call(self.conn:_budget(), self, h.on_close, h, self, code, reason)
  end
end

-- A one-function endpoint's session: the function, then a 1000 close.
local function session(handler, client, req)
  handler(client, req)
  client:close(1000)
end

-- An idle client is this table (2 fields: its hash part is 2 nodes) and
-- its handle. What clients share is read through their kind (kind_of,
-- lazy_index), the endpoint (buffer_limit) or Member (closed); the handler
-- budget is kept in the handle (conn:_own).
function Endpoint:_open(req, protocol, data, extensions)
  local conn = req.conn
  local label, quiet = observe.session(req)
  local client = setmetatable({
    conn = conn,
    send = Member.send, -- on every message's path: not through lazy_index
  }, kind_of(self, label, quiet, extensions))
  -- What differs from what lazy_index finds: the path of a route with
  -- parameters, the client's address behind a trusted proxy, and the
  -- peer's choice among its offers when on_handshake passes it on (per
  -- client, so that no peer can make kinds).
  if req.path ~= label then
    client.path = req.path
  end
  if req.remote_addr ~= req.peer_addr then
    client.remote_addr = req.remote_addr
  end
  if protocol ~= nil then
    client.protocol = protocol
  end
  -- Its owner (as owners.set), and the budget its handler calls get: the
  -- upgrade's (the listener's), kept in the handle.
  conn:_own(client, scheduler.budget())
  self.clients_by_id[conn:id()] = client
  self.count = self.count + 1
  observe.ws_open(client, req)
  -- Pooled coroutines, like every message's; a failure goes to
  -- client:_failed.
  local h = self.handler
  local budget = conn:_budget()
  if type(h) == "function" then
    call(budget, client, session, h, client, req)
  elseif h.on_open then
    call(budget, client, h.on_open, h, client, data)
  end
end

return Endpoint
