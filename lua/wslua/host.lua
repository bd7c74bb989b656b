-- wslua.host{...}: what one server serves. Named options (listen, name,
-- limits) and, in order, the handlers that try each request: routers,
-- endpoints, wslua.root(dir), or plain function(req, res). Several hosts
-- may share a listen address; the Host header picks by name, the first is
-- the default.
local core = require "wslua.core"
local http = require "wslua.http"
local log = require "wslua.log"
local observe = require "wslua.observe"
local options = require "wslua.options"
local owners = require "wslua.owners"
local proxies = require "wslua.proxies"
local scheduler = require "wslua.scheduler"
local Router = require "wslua.router"

local Host = {}
Host.__index = Host

local tls_kinds = { cert = "string", key = "string", chain = "string", names = "table" }
local name_kinds = { cert = "string", key = "string" }

local option_kinds = {
  listen = "string",
  name = "string",
  max_connections = "number",
  handshake_timeout = "number",
  keepalive_timeout = "number",
  max_header_bytes = "positive",
  max_headers = "positive",
  max_url = "positive",
  max_body = "number",
  tls = "table",
  graceful_timeout = "number",
  access_log = "boolean",
  trusted_proxies = "strings",
  pubsub = "string",
  handler_budget = "number",
}

function Host.new(t)
  if type(t) ~= "table" then
    error("wslua.host expects a table", 2)
  end
  options.check("host options", t, option_kinds)
  if t.tls then
    options.check("host tls options", t.tls, tls_kinds)
    if not t.tls.cert then
      error("host option tls needs cert (a PEM file; key too unless the cert file holds it)", 2)
    end
    for name, files in pairs(t.tls.names or {}) do
      if type(name) ~= "string" or type(files) ~= "table" or type(files.cert) ~= "string" then
        error("host option tls.names must map names to { cert = FILE [, key = FILE] }", 2)
      end
      options.check("host tls.names['" .. name .. "']", files, name_kinds)
    end
  end
  local handlers = {}
  for i, h in ipairs(t) do
    local ht = type(h)
    if not (ht == "function" or (ht == "table" and h._serve)) then
      error(string.format("wslua.host: entry %d must be a router, an endpoint, "
        .. "wslua.root(dir) or a function, got %s", i, ht), 2)
    end
    handlers[i] = h
  end
  local ok, trusted = pcall(proxies.compile, t.trusted_proxies or {})
  if not ok then
    error(trusted, 2)
  end
  return setmetatable({
    listen = t.listen or "127.0.0.1:8080",
    name = t.name,
    handlers = handlers,
    options = t,
    trusted = #trusted > 0 and trusted or nil,
  }, Host)
end

-- "host:port" or "[v6]:port" -> host, port
function Host.parse_listen(s)
  local h, p = s:match("^%[(.+)%]:(%d+)$")
  if not h then
    h, p = s:match("^([^:]+):(%d+)$")
  end
  if not h then
    p = s:match("^:?(%d+)$")
    h = p and "127.0.0.1"
  end
  if not h or tonumber(p) > 65535 then
    return nil, "listen address must be HOST:PORT, got '" .. s .. "'"
  end
  if h == "localhost" then
    h = "127.0.0.1"
  end
  return h, tonumber(p)
end

-- Every endpoint reachable from this host (for on_start/on_stop).
function Host:endpoints()
  local found, seen = {}, {}
  local function visit(h)
    if type(h) ~= "table" or seen[h] then
      return
    end
    seen[h] = true
    if h.clients_by_id then
      found[#found + 1] = h
    elseif h.routes then
      for _, r in ipairs(h.routes) do
        visit(r.handler)
      end
    end
  end
  for _, h in ipairs(self.handlers) do
    visit(h)
  end
  return found
end

function Host:_serve(req, res)
  for _, h in ipairs(self.handlers) do
    if type(h) == "function" then
      h(req, res)
      return
    end
    if h:_serve(req, res) ~= false then
      return
    end
  end
  if req.allowed then
    res:fail(405, "method not allowed", { Allow = table.concat(req.allowed, ", ") })
  else
    res:fail(404, "not found")
  end
end

-- What the host serves, for the dev console: a list of {method, path,
-- kind = "websocket" | "http" | "static", endpoint (websocket), dir
-- (static)}, routers walked in order; an entry of the host itself (an
-- endpoint, wslua.root, a function) has path "*".
function Host:_describe()
  local out, seen = {}, {}
  local function entry(method, path, h)
    if type(h) == "table" and h.clients_by_id then
      out[#out + 1] = { method = method, path = path, kind = "websocket", endpoint = h }
    elseif type(h) == "table" and h.dir then
      out[#out + 1] = { method = "GET", path = path, kind = "static", dir = h.dir }
    else
      out[#out + 1] = { method = method, path = path, kind = "http" }
    end
  end
  for _, h in ipairs(self.handlers) do
    if type(h) == "table" and h.routes then
      Router.each_route(h, function(route)
        entry(route.method, route.path, route.handler)
      end, seen)
    else
      entry("*", "*", h)
    end
  end
  return out
end

-- Runs a request's handlers, then makes sure it gets an answer.
local function serve(host, req, res)
  host:_serve(req, res)
  if not res.finished then
    res:finish()
  end
end

-- The Host header's name, lower-case and without the port. A listener
-- sees the same few Host values again and again, so the names of short
-- ones are kept (at most 256: a client may send anything).
local host_names, host_names_count = {}, 0
local function host_name(header)
  local name = host_names[header]
  if name then
    return name
  end
  name = header:gsub(":%d+$", ""):lower()
  if #header <= 64 then
    if host_names_count == 256 then
      host_names, host_names_count = {}, 0
    end
    host_names[header] = name
    host_names_count = host_names_count + 1
  end
  return name
end

-- A listener's request handler: picks the host, runs the handlers in a
-- coroutine of their own, and makes sure the request gets an answer.
local function dispatcher(hosts)
  return function(conn, raw)
    local req = http.request(conn, raw)
    local res = http.response(conn, req)
    owners.set(conn, res)
    local host = hosts[1]
    local name = req.headers.host and host_name(req.headers.host)
    for _, h in ipairs(hosts) do
      if h.name and h.name:lower() == name then
        host = h
        break
      end
    end
    req.host = name
    req._host = host
    if host.trusted then
      req.remote_addr = proxies.client_addr(host.trusted, req.peer_addr, req.headers)
    end
    -- In a pooled coroutine; a failure goes to res:_failed.
    scheduler.call(core.budget(), res, serve, host, req, res)
  end
end

-- The handler budget of hosts sharing a listener: the first one's
-- handler_budget, else the default (0: none).
function Host.budget(hosts)
  local seconds = hosts[1].options.handler_budget
  if seconds == nil then
    seconds = scheduler.default_budget
  end
  return seconds > 0 and seconds or nil
end

-- Starts listeners for hosts (grouped by listen address); returns them.
-- ports (workers after the first): the port of each listener, in order, for
-- those whose address says port 0.
function Host.start(hosts, ports)
  local groups, order = {}, {}
  for _, h in ipairs(hosts) do
    if not groups[h.listen] then
      groups[h.listen] = {}
      order[#order + 1] = h.listen
    end
    table.insert(groups[h.listen], h)
  end
  local listeners = {}
  for _, addr in ipairs(order) do
    local group = groups[addr]
    local host, port = Host.parse_listen(addr)
    if not host then
      error(port, 0)
    end
    local o = group[1].options
    if port == 0 and ports then
      port = ports[#listeners + 1] or 0
    end
    local server, err = core.listen({
      host = host,
      port = port,
      max_connections = o.max_connections,
      handshake_timeout = o.handshake_timeout,
      keepalive_timeout = o.keepalive_timeout,
      max_header_bytes = o.max_header_bytes,
      max_headers = o.max_headers,
      max_url = o.max_url,
      max_body = o.max_body,
      tls = o.tls,
    }, owners.handlers(dispatcher(group), Host.budget(group)))
    if not server then
      for _, l in ipairs(listeners) do
        l.server:stop()
      end
      error(err, 0)
    end
    listeners[#listeners + 1] = { server = server, address = addr, hosts = group }
  end
  return listeners
end

return Host
