-- The dev console (wslua --dev): every host also serves
--   GET /_wslua         a page (lua/wslua/dev/console.html): the host's
--                       routes and endpoints, a client for any WebSocket
--                       route (send text or JSON, watch the replies), and
--                       live events
--   GET /_wslua/api     what the page lists, as JSON
--   GET /_wslua/events  a WebSocket pushing events as JSON text messages:
--                       {"type":"open"|"close"|"reload", ...} for every
--                       endpoint but this one (see wslua.observe)
-- For development only: anyone who can reach the port sees the routes and
-- every connection's address.
local core = require "wslua.core"
local observe = require "wslua.observe"
local Endpoint = require "wslua.endpoint"
local Host = require "wslua.host"
local Router = require "wslua.router"

local dev = {}

dev.prefix = "/_wslua"

-- --- JSON, enough for what the console sends ------------------------------

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode(v, out)
  local t = type(v)
  if t == "nil" then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif math.type(v) == "integer" then
      out[#out + 1] = tostring(v)
    else
      out[#out + 1] = string.format("%.14g", v)
    end
  elseif t == "string" then
    out[#out + 1] = '"' .. v:gsub('[%c"\\]', function(c)
      return escapes[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif t == "table" then
    local n = #v
    if n > 0 or next(v) == nil and getmetatable(v) == dev.array then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then
          out[#out + 1] = ","
        end
        encode(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k, value in pairs(v) do
        local kt = type(value)
        if type(k) == "string" and kt ~= "function" and kt ~= "userdata" and kt ~= "thread" then
          keys[#keys + 1] = k
        end
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then
          out[#out + 1] = ","
        end
        encode(k, out)
        out[#out + 1] = ":"
        encode(v[k], out)
      end
      out[#out + 1] = "}"
    end
  else
    out[#out + 1] = "null"
  end
end

-- An empty table marked as an array encodes as [] (else {}).
dev.array = {}

function dev.json(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

-- --- what the page lists --------------------------------------------------

local function handler_names(handler)
  local names = setmetatable({}, dev.array)
  if type(handler) == "table" then
    for k, v in pairs(handler) do
      if type(k) == "string" and k:match("^on_") and type(v) == "function" then
        names[#names + 1] = k
      end
    end
    table.sort(names)
  end
  return names
end

local function reloads()
  local reload = package.loaded["wslua.reload"]
  return reload and reload.current and reload.current.count or 0
end

-- The routes of host (the console's own left out) and the server's state.
function dev.describe(host)
  local routes = setmetatable({}, dev.array)
  for _, r in ipairs(host:_describe()) do
    if r.path:sub(1, #dev.prefix) ~= dev.prefix then
      local e = r.endpoint
      routes[#routes + 1] = {
        method = r.method,
        path = r.path,
        kind = r.kind,
        dir = r.dir,
        clients = e and e.count,
        handler = e and type(e.handler),
        handlers = e and handler_names(e.handler),
        options = e and e.options,
      }
    end
  end
  local worker, workers = 1, 1
  if core.worker then
    worker, workers = core.worker()
  end
  return {
    version = core.version,
    listen = host.listen,
    name = host.name,
    routes = routes,
    reloads = reloads(),
    reload_failures = observe.reload_failures,
    worker = worker,
    workers = workers,
  }
end

-- --- the routes -------------------------------------------------------------

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
dev.page_file = here .. "/dev/console.html"

local function page(_, res)
  local f, err = io.open(dev.page_file, "rb")
  if not f then
    res:fail(500, "dev console page missing: " .. tostring(err))
    return
  end
  local html = f:read("a")
  f:close()
  res:header("Content-Type", "text/html; charset=utf-8")
  res:header("Cache-Control", "no-store")
  res:send(html)
end

local function api(req, res)
  res:header("Content-Type", "application/json")
  res:header("Cache-Control", "no-store")
  res:send(dev.json(dev.describe(req._host)))
end

-- The events endpoint: one for the process, whatever the reloads (wslua's
-- own modules are not reloaded, so a reload finds this same object at the
-- same route and its clients stay).
local Events = {}

function Events:on_open(client)
  client:send(dev.json { type = "hello", version = core.version, reloads = reloads() })
end

function Events:on_data(_, msg)
  msg:read() -- the page sends nothing; anything sent is read and dropped
end

dev.events = Endpoint.new(Events, { max_message = 4096 })
dev.events.internal = true -- its own sessions are not events

-- To this worker's console clients only (core.broadcast: one frame built
-- once), not through endpoint:send, which a bus may carry to other workers.
observe.listen(function(event)
  if dev.events.count > 0 then
    local conns = {}
    for _, client in dev.events:clients() do
      conns[#conns + 1] = client.conn
    end
    core.broadcast(conns, dev.json(event))
  end
end)

dev.router = Router.new()
  :get(dev.prefix, page)
  :get(dev.prefix .. "/", page)
  :get(dev.prefix .. "/api", api)
  :get(dev.prefix .. "/events", dev.events)

-- Puts the console first in every host of what an app returned (a host or
-- a list of hosts); anything else is left for the server to refuse.
function dev.install(hosts)
  local list = getmetatable(hosts) == Host and { hosts } or hosts
  if type(list) ~= "table" then
    return hosts
  end
  for _, h in ipairs(list) do
    if getmetatable(h) == Host and h.handlers[1] ~= dev.router then
      table.insert(h.handlers, 1, dev.router)
    end
  end
  return hosts
end

-- Wraps an app loader (app.load) so that what it loads has the console.
function dev.loader(load)
  return function(path)
    local hosts, err = load(path)
    if hosts then
      hosts = dev.install(hosts)
    end
    return hosts, err
  end
end

return dev
