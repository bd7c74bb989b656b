-- Hot reload: load the app again in the same VM and swap what it returns
-- into the running server while connections stay open (on SIGHUP, or on a
-- save with --watch). Modules loaded from the app's folder are loaded
-- afresh; an endpoint at the same host and route keeps its object and its
-- clients and takes the new handler; a route that is gone closes its
-- clients with 1001; a reload that fails changes nothing.
--
-- Workers (--workers N) do not exist yet: when they do, each worker's VM
-- reloads on its own (the parent forwards SIGHUP; each watches the files).
local core = require "wslua.core"
local log = require "wslua.log"
local observe = require "wslua.observe"
local scheduler = require "wslua.scheduler"
local Host = require "wslua.host"
local Router = require "wslua.router"
local Server = require "wslua.server"

local reload = {}

-- --- which files the app loaded from its folder --------------------------

local app_dir        -- the app's folder, resolved, with a trailing "/"
local tracked = {}   -- module name -> resolved file in the app's folder
local on_tracked     -- called when a module file is tracked for the first time

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function basename(path)
  return path:match("([^/]*)$")
end

local function inside_app(file)
  return file:sub(1, #app_dir) == app_dir
end

-- Wraps the Lua-file searcher so that every module found in the app's folder
-- (wslua's own excepted) is remembered, also when it fails to load: a later
-- save of the broken file must reload. A module not found at all is
-- remembered where it would be in the app's folder, so creating it reloads.
-- Call once, before the app first loads.
function reload.track(app_path)
  local real = assert(core.realpath(app_path))
  app_dir = dirname(real) .. "/"
  local search = package.searchers[2]
  package.searchers[2] = function(name)
    if name ~= "wslua" and name:sub(1, 6) ~= "wslua." then
      local file = package.searchpath(name, package.path)
      file = file and core.realpath(file)
      if not file then
        file = app_dir .. name:gsub("%.", "/") .. ".lua"
      end
      if inside_app(file) and tracked[name] ~= file then
        tracked[name] = file
        if on_tracked then
          on_tracked(file)
        end
      end
    end
    -- Its errors go on as they are, without this wrapper's position.
    local ok, loader, where = pcall(search, name)
    if not ok then
      error(loader, 0)
    end
    return loader, where
  end
  return real
end

-- --- swapping a reloaded app into the server -----------------------------

-- Listener settings are fixed when the socket opens: a change needs a
-- restart. (Certificates are not: see reload_certificates.)
local listener_options = {
  "max_connections", "handshake_timeout", "keepalive_timeout",
  "max_header_bytes", "max_headers", "max_url", "max_body",
}

-- The tls settings a listener's certificates were last loaded from, false
-- for a plain listener: fixed at its start, before a reload replaces the
-- hosts it got them from.
local function served_tls(l)
  if l.tls == nil then
    l.tls = l.hosts[1].options.tls or false
  end
  return l.tls
end

-- Every TLS listener loads its certificates again on every reload, also
-- when the app did not change or failed to load: renewed files at the same
-- paths are what a SIGHUP after a renewal is for. New connections get them;
-- open ones, and handshakes under way, keep theirs. Files that cannot be
-- used leave the listener on the certificates it had.
local function reload_certificates(server)
  for _, l in ipairs(server.listeners) do
    local tls = served_tls(l) and (l.hosts[1].options.tls or l.tls)
    if tls then
      local ok, err = l.server:set_tls(tls)
      if ok then
        l.tls = tls
        log.info("reload: %s: certificates loaded from %s", l.address, tls.cert)
      else
        log.error("reload: %s: certificates not reloaded, the old ones keep "
          .. "serving: %s", l.address, err)
      end
    end
  end
end

local function same(a, b)
  if a == b then
    return true
  end
  if type(a) ~= "table" or type(b) ~= "table" then
    return false
  end
  for k, v in pairs(a) do
    if not same(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

-- Calls on_route(key, label) for every route and direct endpoint of the
-- hosts served at address, and on_endpoint(key, endpoint, put) for every
-- endpoint, where put(e) puts e in that place instead. Keys are unique:
-- address, host name, method and path (or the endpoint's rank among the
-- host's direct handlers).
local function walk(address, hosts, several, on_route, on_endpoint)
  for _, host in ipairs(hosts) do
    local prefix = address .. "|" .. (host.name or "") .. "|"
    local label = several and ((host.name or address) .. " ") or ""
    local seen, used, direct = {}, {}, 0
    local function visit(key, name, h, put)
      local n = (used[key] or 0) + 1
      used[key] = n
      if n > 1 then
        key, name = key .. " #" .. n, name .. " #" .. n
      end
      on_route(prefix .. key, label .. name)
      if type(h) == "table" and h.clients_by_id then
        on_endpoint(prefix .. key, h, put)
      end
    end
    local function route_visit(route)
      local name = route.method .. " " .. route.path
      visit(name, name, route.handler, function(e)
        route.handler = e
      end)
    end
    for i, h in ipairs(host.handlers) do
      if type(h) == "table" and h.routes then
        Router.each_route(h, route_visit, seen)
      elseif type(h) == "table" and h.clients_by_id then
        direct = direct + 1
        visit("#" .. direct, "endpoint #" .. direct, h, function(e)
          host.handlers[i] = e
        end)
      end
    end
  end
end

local function kind(e)
  return type(e.handler)
end

-- Pairs the reloaded app's hosts with the running listeners by address.
-- A listener whose address left the app takes an address that is new (in
-- order), so a changed listen address keeps serving, and says it needs a
-- restart. Returns listener -> hosts, or raises.
local function assign(server, hosts)
  local groups, order = {}, {}
  for _, h in ipairs(hosts) do
    if not groups[h.listen] then
      local ok, err = Host.parse_listen(h.listen)
      if not ok then
        error(err, 0)
      end
      groups[h.listen] = {}
      order[#order + 1] = h.listen
    end
    table.insert(groups[h.listen], h)
  end
  local assigned, taken, orphans = {}, {}, {}
  for _, l in ipairs(server.listeners) do
    if groups[l.address] then
      assigned[l], taken[l.address] = groups[l.address], true
    else
      orphans[#orphans + 1] = l
    end
  end
  for _, addr in ipairs(order) do
    if not taken[addr] then
      local l = table.remove(orphans, 1)
      if l then
        assigned[l] = groups[addr]
        log.warn("reload: listen address %s is now %s: needs a restart; "
          .. "serving the new code on %s", l.address, addr, l.address)
      else
        log.warn("reload: listen address %s is new: needs a restart (not served)", addr)
      end
    end
  end
  for _, l in ipairs(orphans) do
    log.warn("reload: listen address %s is no longer in the app: needs a restart; "
      .. "it keeps its old code", l.address)
  end
  return assigned
end

local function list(names)
  table.sort(names)
  return table.concat(names, ", ")
end

-- Swaps the reloaded app's hosts (a host or a list; the overrides applied)
-- into the running server. Raises, changing nothing, if they are not hosts.
-- Returns a summary of what changed, for the log.
function reload.apply(server, hosts)
  hosts = Server.prepare(hosts, server.overrides)
  local assigned = assign(server, hosts)
  local several = #hosts > 1 or #server.hosts > 1

  -- The routes and endpoints now served, and those to come.
  local old_routes, old_by_key, old_all, kept_elsewhere = {}, {}, {}, {}
  for _, l in ipairs(server.listeners) do
    if assigned[l] then
      walk(l.address, l.hosts, several, function(key, name)
        old_routes[key] = name
      end, function(key, e)
        old_by_key[key] = old_by_key[key] or e
        if not old_all[e] then
          old_all[e] = true
          old_all[#old_all + 1] = e
        end
      end)
    else
      for _, e in ipairs(Server.endpoints_of(l.hosts)) do
        kept_elsewhere[e] = true
      end
    end
  end
  local new_routes, map, adopted, fresh = {}, {}, {}, {}
  for _, l in ipairs(server.listeners) do
    local group = assigned[l]
    if group then
      walk(l.address, group, several, function(key, name)
        new_routes[key] = name
      end, function(key, e, put)
        if not map[e] then
          local old = old_by_key[key]
          -- (old == e: the endpoint comes from a module outside the app's
          -- folder, not reloaded; it stays as it is.)
          if old and not adopted[old] and kind(old) == kind(e) then
            map[e], adopted[old] = old, e
          else
            map[e] = e
            fresh[#fresh + 1] = e
          end
        end
        put(map[e])
      end)
    end
  end

  -- From here on nothing raises: the new code is in.
  for old, new in pairs(adopted) do
    if old ~= new then
      old:_adopt(new)
    end
  end
  local removed_endpoints = {}
  for _, e in ipairs(old_all) do
    if not adopted[e] and not kept_elsewhere[e] then
      removed_endpoints[#removed_endpoints + 1] = e
    end
  end
  for _, l in ipairs(server.listeners) do
    local group = assigned[l]
    if group then
      local before = l.hosts[1].options
      for _, name in ipairs(listener_options) do
        if not same(before[name], group[1].options[name]) then
          log.warn("reload: %s: %s changed: needs a restart", l.address, name)
        end
      end
      if not served_tls(l) ~= not group[1].options.tls then
        log.warn("reload: %s: tls %s: needs a restart", l.address,
          l.tls and "removed" or "added")
      end
      -- The listener's request handler reads this very table: replacing its
      -- contents is what sends new requests to the new hosts.
      for i = #l.hosts, 1, -1 do
        l.hosts[i] = nil
      end
      table.move(group, 1, #group, 1, l.hosts)
    end
  end
  local all = {}
  for _, l in ipairs(server.listeners) do
    table.move(l.hosts, 1, #l.hosts, #all + 1, all)
  end
  server.hosts = all
  server.endpoints = Server.endpoints_of(all)

  -- Endpoints that are gone say goodbye (on_stop) and close with 1001.
  for _, e in ipairs(removed_endpoints) do
    local route, why = "?", "its route is gone"
    for key, old in pairs(old_by_key) do
      if old == e then
        route = old_routes[key]
        if new_routes[key] then
          why = "it changed between a handler table and a function"
        end
      end
    end
    log.info("reload: %s: endpoint removed (%s), closing its %d client(s) with 1001",
      route, why, e.count)
    e:_stop("endpoint removed by a reload")
  end
  for _, e in ipairs(fresh) do
    local ok, err = pcall(e._start, e)
    if not ok then
      log.error("reload: %s", err)
    end
  end
  for old in pairs(adopted) do
    if type(old.handler) == "table" then
      local name = old.handler.on_reload and "on_reload" or "on_start"
      scheduler.spawn(old._call, function(trace)
        log.error("reload: %s failed: %s", name, trace)
      end, old, name, old)
    end
  end

  local summary = { added = {}, removed = {}, replaced = {} }
  for key, name in pairs(new_routes) do
    local into = old_routes[key] and summary.replaced or summary.added
    into[#into + 1] = name
  end
  for key, name in pairs(old_routes) do
    if not new_routes[key] then
      summary.removed[#summary.removed + 1] = name
    end
  end
  return summary
end

-- --- the reloader: SIGHUP and --watch ------------------------------------

local Reloader = {}
Reloader.__index = Reloader

-- server: the running server; app: the app file as given (reload.track
-- must have seen it); load(app) -> hosts | nil, error (app.load). The
-- reloader is also reload.current, for code that reloads in process.
function reload.new(server, app, load)
  reload.current = setmetatable({
    server = server,
    app = app,
    app_file = core.realpath(app) or app,
    load = load,
    watches = {},   -- folder -> core.watch handle
    debounce = 0.1,
    count = 0,
  }, Reloader)
  return reload.current
end

local function restore(saved, loaded_now)
  for name in pairs(loaded_now) do
    package.loaded[name] = nil
  end
  for name, value in pairs(saved) do
    package.loaded[name] = value
  end
end

-- Loads the app again and swaps it in. why: what asked (for the log).
-- Returns true, or nil and the error (logged, nothing changed).
function Reloader:reload(why)
  if self.server.stopping then
    return nil, "stopping"
  end
  log.info("%s: reloading %s", why, basename(self.app))
  self.reloading = true
  local before, saved = tracked, {}
  tracked = {}
  for name in pairs(before) do
    saved[name] = package.loaded[name]
    package.loaded[name] = nil
  end
  local hosts, err = self.load(self.app)
  local ok, summary = false, err
  if hosts then
    ok, summary = pcall(reload.apply, self.server, hosts)
  end
  self.reloading = false
  reload_certificates(self.server)
  if not ok then
    restore(saved, tracked)
    for name, file in pairs(before) do
      tracked[name] = tracked[name] or file
    end
    log.error("reload failed, the old code keeps serving: %s", tostring(summary))
    observe.reloaded(false, self.count, tostring(summary))
    self:_watch_files()
    return nil, summary
  end
  self.count = self.count + 1
  local parts = {}
  for _, what in ipairs { "replaced", "added", "removed" } do
    if #summary[what] > 0 then
      parts[#parts + 1] = what .. " " .. list(summary[what])
    end
  end
  log.info("reloaded %s (#%d)%s%s", basename(self.app), self.count,
    #parts > 0 and ": " or "", table.concat(parts, "; "))
  observe.reloaded(true, self.count, table.concat(parts, "; "))
  self:_watch_files()
  return true
end

-- Is path the app, a module it loaded (or looked for) in its folder, or a
-- folder on the way to one?
function Reloader:_tracked(path)
  if path == self.app_file then
    return true
  end
  for _, file in pairs(tracked) do
    if file == path or file:sub(1, #path + 1) == path .. "/" then
      return true
    end
  end
  return false
end

-- One change starts (or restarts) the debounce timer: a save that comes as
-- several events (truncate, write, rename) is one reload.
function Reloader:_changed(folder, name, err)
  if err then
    log.warn("watching %s: %s", folder, err)
    return
  end
  local path = name and folder .. "/" .. name
  if not path or not self:_tracked(path) then
    return
  end
  -- A watched folder removed or replaced: its watch went with the old one.
  -- A folder a module is to be in appeared: watch it.
  if self.watches[path] then
    self.watches[path]:close()
    self.watches[path] = nil
  end
  local st = core.stat(path)
  if st and st.type == "directory" then
    self:_watch_files()
  end
  if self.timer then
    self.timer:stop()
  end
  self.timer = core.timer(self.debounce, 0, function()
    self.timer = nil
    self:reload(name .. " changed")
  end)
end

-- Watches the folders that hold the app and its modules. A folder, not
-- each file: editors that save by writing a new file and renaming it over
-- the old one replace the file's inode, which a watch on the file would lose
-- with it; the folder's watch sees the rename under the file's name.
function Reloader:_watch_files()
  if not self.watching then
    return
  end
  local folders = { [dirname(self.app_file)] = true }
  for _, file in pairs(tracked) do
    -- A module looked for in a folder not made yet: watch the nearest
    -- folder that is there, to see it made.
    local folder = dirname(file)
    while #folder > #app_dir and not core.stat(folder) do
      folder = dirname(folder)
    end
    folders[folder] = true
  end
  for folder, w in pairs(self.watches) do
    if not folders[folder] then
      w:close()
      self.watches[folder] = nil
    end
  end
  for folder in pairs(folders) do
    local st = not self.watches[folder] and core.stat(folder)
    if st and st.type == "directory" then
      local w, err = core.watch(folder, function(name, _, werr)
        self:_changed(folder, name, werr)
      end)
      if w then
        self.watches[folder] = w
      else
        log.warn("cannot watch %s: %s", folder, err)
      end
    end
  end
end

-- Starts watching (--watch); debounce in seconds (default 0.1).
function Reloader:watch(debounce)
  self.debounce = debounce or self.debounce
  self.watching = true
  on_tracked = function()
    if not self.reloading then
      self:_watch_files() -- a module required later, by a handler
    end
  end
  self:_watch_files()
end

-- Stops watching (the server is stopping).
function Reloader:close()
  self.watching = false
  on_tracked = nil
  if self.timer then
    self.timer:stop()
    self.timer = nil
  end
  for folder, w in pairs(self.watches) do
    w:close()
    self.watches[folder] = nil
  end
end

return reload
