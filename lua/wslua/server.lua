-- A running server: the hosts an app returned, listening. Starts the
-- endpoints (on_start), and stops gracefully: no new connections, on_stop,
-- every client closed with 1001, a bounded wait for their closes.
local core = require "wslua.core"
local log = require "wslua.log"
local Host = require "wslua.host"
local pubsub = require "wslua.pubsub"
local scheduler = require "wslua.scheduler"

local Server = {}
Server.__index = Server

-- Checks what an app returned (a host or a list of hosts) and applies the
-- command-line overrides; returns the list. Raises a message for the log.
function Server.prepare(hosts, overrides)
  if getmetatable(hosts) == Host then
    hosts = { hosts }
  end
  if type(hosts) ~= "table" or #hosts == 0 then
    error("the app must return wslua.host{...} or a list of hosts", 0)
  end
  for i, h in ipairs(hosts) do
    if getmetatable(h) ~= Host then
      error("the app's host " .. i .. " is not a wslua.host{...}", 0)
    end
  end
  -- Command-line overrides (--listen, --tls-cert/--tls-key) apply to the
  -- hosts on the first host's address.
  if overrides and (overrides.listen or overrides.tls) then
    local old = hosts[1].listen
    for _, h in ipairs(hosts) do
      if h.listen == old then
        h.listen = overrides.listen or h.listen
        if overrides.tls then
          h.options.tls = overrides.tls
        end
      end
    end
  end
  return hosts
end

-- Every endpoint reachable from hosts, once each.
function Server.endpoints_of(hosts)
  local found, seen = {}, {}
  for _, h in ipairs(hosts) do
    for _, e in ipairs(h:endpoints()) do
      if not seen[e] then
        seen[e] = true
        found[#found + 1] = e
      end
    end
  end
  return found
end

-- hosts: a host or a list of hosts. overrides.listen replaces the first
-- host's listen address (the --listen option); overrides.tls its TLS
-- settings. A hot reload applies the same overrides (wslua.reload).
function Server.start(hosts, overrides)
  hosts = Server.prepare(hosts, overrides)
  local self = setmetatable({
    hosts = hosts,
    endpoints = Server.endpoints_of(hosts),
    overrides = overrides,
  }, Server)
  -- Redis first: unreachable, nothing listens.
  pubsub.start(self, pubsub.url(hosts, overrides))
  local ok_listen, listeners = pcall(Host.start, hosts, overrides and overrides.ports)
  if not ok_listen then
    pubsub.stop(self)
    error(listeners, 0)
  end
  self.listeners = listeners
  local ok, err = pcall(function()
    for _, e in ipairs(self.endpoints) do
      scheduler.within(Host.budget(hosts), e._start, e)
    end
  end)
  if not ok then
    for _, l in ipairs(self.listeners) do
      l.server:stop()
    end
    pubsub.stop(self)
    error(err, 0)
  end
  -- Workers after the first listen where it does: it has said so.
  for _, l in ipairs(core.worker() == 1 and self.listeners or {}) do
    log.info("listening on %s:%d%s", (Host.parse_listen(l.address)), l.server:port(),
      l.hosts[1].options.tls and " (TLS)" or "")
  end
  return self
end

-- The port of the first listener (useful with port 0).
function Server:port(i)
  return self.listeners[i or 1].server:port()
end

function Server:url(path, i)
  local host = Host.parse_listen(self.listeners[i or 1].address)
  if host:find(":", 1, true) then
    host = "[" .. host .. "]"
  end
  local scheme = self.listeners[i or 1].hosts[1].options.tls and "wss" or "ws"
  return string.format("%s://%s:%d%s", scheme, host, self:port(i), path or "/")
end

function Server:connections()
  local n = 0
  for _, l in ipairs(self.listeners) do
    n = n + l.server:connections()
  end
  return n
end

-- Graceful stop. on_done() runs when every connection is gone or the
-- graceful timeout (10 s by default) has passed.
function Server:stop(on_done)
  if self.stopping then
    return
  end
  self.stopping = true
  local servers = {}
  for _, l in ipairs(self.listeners) do
    servers[#servers + 1] = l.server
  end
  for _, e in ipairs(self.endpoints) do
    scheduler.within(Host.budget(self.hosts), e._stop, e)
  end
  for _, s in ipairs(servers) do
    s:stop()
  end
  local timeout = self.hosts[1].options.graceful_timeout or 10
  local started = core.now()
  local poll
  poll = core.timer(0.01, 0.05, function()
    local open = 0
    for _, s in ipairs(servers) do
      open = open + s:connections()
    end
    if open == 0 or core.now() - started >= timeout then
      poll:stop()
      if open > 0 then
        log.warn("graceful stop: %d connection(s) still open after %gs, closing them",
          open, timeout)
      end
      pubsub.stop(self)
      if on_done then
        on_done()
      end
    end
  end)
end

return Server
