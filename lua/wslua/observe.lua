-- What the server does, as the access log, the metrics (wslua.metrics) and
-- the dev console see it. The request path calls in here once per HTTP
-- response and twice per WebSocket session (open, close); per-message
-- counts stay in the core (conn:stats(): a counter per read, write and
-- message) and are read at a session's end or when metrics are scraped, so
-- nothing here runs per message.
--
-- Counters live in this module, that is per Lua VM: with workers, one set
-- per worker (wslua.metrics labels them with the worker's number).
local core = require "wslua.core"
local log = require "wslua.log"

local observe = {}

local clock = core.clock

-- route label -> counters of the WebSocket endpoint served there
local routes = {}
observe.routes = routes

observe.http_requests = {} -- status -> responses
observe.reload_failures = 0
-- The open sessions, as the tables that index them: each endpoint's
-- clients_by_id (weak keys: an endpoint dropped by a reload goes). Not a
-- table keyed by client, which cost every idle connection a hash node;
-- when a session opened is in its handle (conn:_owned_at()).
observe.sessions = setmetatable({}, { __mode = "k" })

local function route_stats(label)
  local r = routes[label]
  if not r then
    r = {
      opened = 0, open = 0, errors = 0,
      messages_in = 0, messages_out = 0, bytes_in = 0, bytes_out = 0,
      dropped = 0,
      refused = {}, -- status -> handshakes refused
      closes = {},  -- close code -> sessions
    }
    routes[label] = r
  end
  return r
end
observe.route_stats = route_stats

-- The label of what served req: the route's pattern ("/ws",
-- "/rooms/{id}"), or "*" for an endpoint or function listed in the host
-- itself (it serves any path).
function observe.label(req)
  return req.route or "*"
end

-- --- events, for the dev console -----------------------------------------

local listeners = {}

-- fn(event) for every event: {type = "open" | "close" | "reload", ...}.
-- Returns a function that removes it.
function observe.listen(fn)
  listeners[fn] = true
  return function()
    listeners[fn] = nil
  end
end

local function emit(event)
  if next(listeners) == nil then
    return
  end
  event.time = os.time()
  for fn in pairs(listeners) do
    local ok, err = pcall(fn, event)
    if not ok then
      log.warn("event listener failed: %s", tostring(err))
    end
  end
end

-- --- HTTP ----------------------------------------------------------------

local function access_log_on(req)
  local host = req._host
  return not (host and host.options.access_log == false)
end

local function ms_since(t0)
  return math.floor((clock() - t0) * 1e6 + 0.5) / 1000
end

-- Called once per request, when its response is finished (or aborted,
-- with why): the access line, the status count, and a refused handshake
-- counted for the endpoint it was meant for. Not for an upgrade that
-- succeeded: its session has a line of its own when it ends.
function observe.http_done(req, res, aborted)
  local status = res.status
  observe.http_requests[status] = (observe.http_requests[status] or 0) + 1
  if req.endpoint and status ~= 101 then
    local r = route_stats(observe.label(req))
    r.refused[status] = (r.refused[status] or 0) + 1
  end
  if not access_log_on(req) or not log.enabled("info") then
    return
  end
  local _, out = req.conn:stats()
  log.fields("info", "access", "kind", "http",
    "remote", req.remote_addr,
    "peer", req.peer_addr ~= req.remote_addr and req.peer_addr or nil,
    "method", req.method, "path", req.path, "status", status,
    "bytes_sent", out - (req.bytes_out_before or 0),
    "duration_ms", ms_since(req.started or clock()),
    "aborted", aborted or nil)
end

-- A handler raised (its client was closed with 1011, or its request got
-- a 500): counted for the route.
function observe.failed(label)
  local r = route_stats(label)
  r.errors = r.errors + 1
end

-- --- WebSocket sessions --------------------------------------------------

-- What a session's access line needs from its upgrade request: the
-- route's label, and whether the access log is off for its host (quiet).
-- The client reads them as _label and _quiet (the endpoint puts them in
-- what clients of one kind share, not in each client).
function observe.session(req)
  return observe.label(req), not access_log_on(req)
end

-- Called when a client is open (after the 101), with the upgrade request;
-- client._label is set, and the client is in its endpoint's clients_by_id
-- (which is how metrics find the open sessions).
function observe.ws_open(client, req)
  local label = client._label
  local r = route_stats(label)
  r.opened = r.opened + 1
  r.open = r.open + 1
  observe.sessions[client.endpoint.clients_by_id] = true
  if next(listeners) ~= nil and not client.endpoint.internal then
    emit { type = "open", id = client.id, route = label, path = req.path,
      remote = client.remote_addr }
  end
end

-- Close codes that mean the session failed rather than ended: protocol
-- errors, invalid data, a message too big, an internal error, an extension
-- missing, TLS, no close handshake at all (RFC 6455 §7.4.1).
local failure_codes = {
  [1002] = true, [1003] = true, [1006] = true, [1007] = true, [1009] = true,
  [1010] = true, [1011] = true, [1015] = true,
}

-- Who ended a session: "error" when the core reported an error (a protocol
-- violation, a limit, an I/O failure) or the code says it failed; else
-- "client" or "server", whoever sent the first close frame.
function observe.closed_by(code, err, first)
  if err or failure_codes[code] then
    return "error"
  end
  if first == "peer" then
    return "client"
  elseif first == "local" then
    return "server"
  end
  return "error"
end

-- Called once when a client's connection is gone (it has left its
-- endpoint's clients_by_id), before on_close runs.
function observe.ws_close(client, code, reason, err)
  local started = client.conn:_owned_at() or clock()
  local bytes_in, bytes_out, msgs_in, msgs_out, first = client.conn:stats()
  local r = route_stats(client._label)
  r.open = r.open - 1
  r.messages_in = r.messages_in + msgs_in
  r.messages_out = r.messages_out + msgs_out
  r.bytes_in = r.bytes_in + bytes_in
  r.bytes_out = r.bytes_out + bytes_out
  r.dropped = r.dropped + client.conn:dropped()
  r.closes[code] = (r.closes[code] or 0) + 1
  local logged = not client._quiet and log.enabled("info")
  local told = next(listeners) ~= nil and not client.endpoint.internal
  if not (logged or told) then
    return
  end
  local by = observe.closed_by(code, err, first)
  local ms = ms_since(started)
  if logged then
    log.fields("info", "access", "kind", "websocket",
      "remote", client.remote_addr,
      "peer", client.peer_addr ~= client.remote_addr and client.peer_addr or nil,
      "route", client._label, "path", client.path, "duration_ms", ms,
      "messages_in", msgs_in, "messages_out", msgs_out,
      "bytes_in", bytes_in, "bytes_out", bytes_out,
      "code", code, "closed_by", by,
      "reason", reason ~= "" and reason or nil, "error", err)
  end
  if told then
    emit { type = "close", id = client.id, route = client._label, path = client.path,
      remote = client.remote_addr, code = code, reason = reason, closed_by = by,
      error = err, duration_ms = ms, messages_in = msgs_in,
      messages_out = msgs_out, bytes_in = bytes_in, bytes_out = bytes_out }
  end
end

-- --- reloads -------------------------------------------------------------

-- Called by the reloader after each reload: ok, the reload's number (the
-- count of good ones), and what changed or the error.
function observe.reloaded(ok, count, what)
  if not ok then
    observe.reload_failures = observe.reload_failures + 1
  end
  emit { type = "reload", ok = ok, count = count,
    summary = ok and what or nil, error = not ok and what or nil }
end

return observe
