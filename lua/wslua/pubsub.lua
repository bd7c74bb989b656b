-- Topics and broadcasts beyond this worker: to the other workers of the
-- process through the in-process bus (core.bus, --workers N), and to other
-- processes through Redis pub/sub (host option pubsub or --redis).
--
-- A publish is delivered here first (topics.publish), then handed to
-- topics.forward, set here: one bus message to the other workers, one
-- PUBLISH to Redis. endpoint:send goes the same way (Endpoint.forward):
-- nil to every worker and over Redis, an id to the worker that holds it
-- (ids say which: see src/lua/conn.c), never over Redis (ids are unique in
-- a process, not across machines). What arrives is delivered locally only,
-- so nothing loops.
--
-- Endpoints are named across workers and machines by a key that only the
-- app decides: the listener's rank, the host's name, and the route
-- ("1|chat.example|GET /ws"), so that processes on other ports agree.
--
-- Each worker has its own Redis connections and subscribes to the channel
-- of a topic ("wslua:t:" .. topic) while it has local subscribers (the
-- registry's interest hook, in C), and always to "wslua:send". A message
-- carries its process's instance id: a process ignores its own (the bus
-- has carried it to its workers already). A message on a topic channel
-- without wslua's envelope (redis-cli PUBLISH wslua:t:news hi) is delivered
-- as text to every subscriber.
local core = require "wslua.core"
local log = require "wslua.log"
local topics = require "wslua.topics"
local Endpoint = require "wslua.endpoint"

local pubsub = {
  -- on_command(what, signum): the main thread's word to this worker
  -- ("stop" with the signal's number, or "reload"); set by wslua.app.
  on_command = nil,
  TOPIC_PREFIX = "wslua:t:",
  SEND_CHANNEL = "wslua:send",
}

local KIND_TOPIC, KIND_SEND = 1, 2
local MAGIC = "\0wsl1"

local worker, workers = core.worker()
local instance = core.instance()

local bus      -- core.bus: opened once per worker, for the VM's life
local redis    -- core.redis, while a server uses it
local server   -- the server whose endpoints have keys
local keys = { hosts = nil, of = {}, endpoint = {}, group = {} }

-- --- keys ------------------------------------------------------------------

local function rebuild_keys()
  local of, endpoint, group = {}, {}, {}
  local function name(e, key)
    if not of[e] and not endpoint[key] then
      of[e], endpoint[key], group[e.group] = key, e, key
    end
  end
  local function walk(prefix, h, seen)
    if type(h) ~= "table" or seen[h] then
      return
    end
    seen[h] = true
    for _, r in ipairs(h.routes) do
      local key = prefix .. r.method .. " " .. r.path
      if type(r.handler) == "table" and r.handler.clients_by_id then
        name(r.handler, key)
      elseif type(r.handler) == "table" and r.handler.routes then
        walk(prefix, r.handler, seen)
      end
    end
  end
  for rank, l in ipairs(server.listeners) do
    for _, host in ipairs(l.hosts) do
      local prefix = rank .. "|" .. (host.name or "") .. "|"
      local direct = 0
      for _, h in ipairs(host.handlers) do
        if type(h) == "table" and h.clients_by_id then
          direct = direct + 1
          name(h, prefix .. "#" .. direct)
        elseif type(h) == "table" and h.routes then
          walk(prefix, h, {})
        end
      end
    end
  end
  keys = { hosts = server.hosts, of = of, endpoint = endpoint, group = group }
end

-- The key tables for the server's endpoints as they are now (a hot reload
-- replaces server.hosts: the keys are made again).
local function current_keys()
  if server and keys.hosts ~= server.hosts then
    rebuild_keys()
  end
  return keys
end

-- --- what arrives ----------------------------------------------------------

local function deliver_topic(topic, key, binary, payload)
  local group = 0
  if key ~= "" then
    local e = current_keys().endpoint[key]
    if not e then
      return
    end
    group = e.group
  end
  topics.deliver(topic, payload, binary, group)
end

-- ids: nil for every client of the endpoint, or a list.
local function deliver_send(key, binary, ids, payload)
  local e = current_keys().endpoint[key]
  if not e then
    return
  end
  local conns = {}
  if ids then
    for _, id in ipairs(ids) do
      local c = e.clients_by_id[id]
      if c then
        conns[#conns + 1] = c.conn
      end
    end
  else
    for _, c in pairs(e.clients_by_id) do
      conns[#conns + 1] = c.conn
    end
  end
  core.broadcast(conns, payload, binary)
end

local function on_bus(kind, _, data)
  if kind == 0 then
    local what, signum = data:match("^(%a+) ?(%d*)$")
    if pubsub.on_command and what then
      pubsub.on_command(what, tonumber(signum))
    end
  elseif not server then
    return
  elseif kind == KIND_TOPIC then
    local topic, key, binary, pos = string.unpack("<s4s2B", data)
    deliver_topic(topic, key, binary == 1, data:sub(pos))
  elseif kind == KIND_SEND then
    local key, binary, packed, pos = string.unpack("<s2Bs4", data)
    local ids
    if packed ~= "" then
      ids = {}
      for i = 1, #packed, 8 do
        ids[#ids + 1] = string.unpack("<i8", packed, i)
      end
    end
    deliver_send(key, binary == 1, ids, data:sub(pos))
  end
end

local function envelope(key, binary)
  return MAGIC .. string.pack("<s1s2B", instance, key, binary and 1 or 0)
end

local function on_redis(channel, data)
  if not server then
    return
  end
  local origin, key, binary, pos
  if data:sub(1, #MAGIC) == MAGIC then
    origin, key, binary, pos = string.unpack("<s1s2B", data, #MAGIC + 1)
    if origin == instance then
      return
    end
  elseif channel == pubsub.SEND_CHANNEL then
    return
  else
    key, binary, pos = "", 0, 1
  end
  local payload = data:sub(pos)
  if channel == pubsub.SEND_CHANNEL then
    deliver_send(key, binary == 1, nil, payload)
  elseif channel:sub(1, #pubsub.TOPIC_PREFIX) == pubsub.TOPIC_PREFIX then
    deliver_topic(channel:sub(#pubsub.TOPIC_PREFIX + 1), key, binary == 1, payload)
  end
end

-- --- what leaves -----------------------------------------------------------

local function forward_topic(topic, payload, binary, group)
  local key = ""
  if group ~= 0 then
    key = current_keys().group[group]
    if not key then
      return -- an endpoint outside the server: nowhere else to find it
    end
  end
  if bus then
    bus:send(0, KIND_TOPIC, string.pack("<s4s2B", topic, key, binary and 1 or 0) .. payload)
  end
  if redis then
    redis:publish(pubsub.TOPIC_PREFIX .. topic, envelope(key, binary) .. payload)
  end
end

local function send_to(to, key, binary, ids, payload)
  local packed = ""
  if ids then
    local parts = {}
    for i, id in ipairs(ids) do
      parts[i] = string.pack("<i8", id)
    end
    packed = table.concat(parts)
  end
  bus:send(to, KIND_SEND, string.pack("<s2Bs4", key, binary and 1 or 0, packed) .. payload)
end

local function worker_of(id)
  return (id - 1) % workers + 1
end

local function forward_send(e, target, payload, binary)
  local of = current_keys().of
  local key = of[e]
  if not key then
    -- An endpoint a hot reload replaced is an alias of the one kept
    -- (Endpoint:_adopt): name it by that one.
    local mt = getmetatable(e)
    key = mt and mt ~= Endpoint and type(mt.__index) == "table" and of[mt.__index]
    if not key then
      return
    end
  end
  if target == nil then
    if bus then
      send_to(0, key, binary, nil, payload)
    end
    if redis then
      redis:publish(pubsub.SEND_CHANNEL, envelope(key, binary) .. payload)
    end
  elseif bus and math.type(target) == "integer" then
    if target > 0 and worker_of(target) ~= worker then
      send_to(worker_of(target), key, binary, { target }, payload)
    end
  elseif bus and type(target) == "table" then
    local by_worker = {}
    for _, id in ipairs(target) do
      if math.type(id) == "integer" and id > 0 and worker_of(id) ~= worker then
        local w = worker_of(id)
        by_worker[w] = by_worker[w] or {}
        table.insert(by_worker[w], id)
      end
    end
    for w, ids in pairs(by_worker) do
      send_to(w, key, binary, ids, payload)
    end
  end
end

-- --- the server's calls ----------------------------------------------------

-- The Redis URL of a server: --redis, else the hosts' pubsub option (one
-- URL for all).
function pubsub.url(hosts, overrides)
  if overrides and overrides.redis then
    return overrides.redis
  end
  local url
  for _, h in ipairs(hosts) do
    local u = h.options.pubsub
    if u and url and u ~= url then
      error("hosts name different pubsub URLs (" .. url .. ", " .. u
        .. "): one Redis per server", 0)
    end
    url = url or u
  end
  return url
end

-- Opens the bus (with workers) and connects to Redis (with a URL) for
-- srv. Raises, changing nothing, when Redis cannot be reached.
function pubsub.start(srv, url)
  if not url and workers == 1 then
    return -- nothing beyond this worker
  end
  if url then
    if redis then
      error("pubsub: this worker already has a server on Redis", 0)
    end
    local ok, err = core.redis_check(url)
    if not ok then
      error(err, 0)
    end
    redis = assert(core.redis(url, pubsub.SEND_CHANNEL, on_redis))
    redis:follow_topics(pubsub.TOPIC_PREFIX)
  end
  if workers > 1 and not bus then
    bus = core.bus(on_bus)
  end
  server = srv
  keys = { of = {}, endpoint = {}, group = {} }
  if bus or redis then
    topics.forward = forward_topic
    Endpoint.forward = forward_send
  end
end

-- The server is done: Redis goes (the bus stays, for commands).
function pubsub.stop(srv)
  if server ~= srv then
    return
  end
  if redis then
    redis:close()
    redis = nil
  end
  server = nil
  topics.forward = nil
  Endpoint.forward = nil
end

-- For wslua.pubsub_status(): what this worker sees.
function pubsub.status()
  return {
    worker = worker,
    workers = workers,
    redis = redis and redis:state() or nil,
    redis_dropped = redis and redis:dropped() or 0,
    redis_channels = redis and redis:channels() or 0,
    bus_dropped = bus and bus:dropped() or 0,
  }
end

-- Opens the bus for commands only (a worker whose server did not start
-- still hears "stop").
function pubsub.open_bus()
  if workers > 1 and not bus then
    bus = core.bus(on_bus)
  end
end

return pubsub
