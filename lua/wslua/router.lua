-- Routes: method and path pattern to handler. "/posts/{id}" captures one
-- path segment into req.params.id; the first matching route wins. A
-- handler is a function(req, res) or anything with a _serve method (a
-- WebSocket endpoint, another router).
local Router = {}
Router.__index = Router

function Router.new()
  return setmetatable({ routes = {} }, Router)
end

-- A route path is compiled to its segments (split at "/"): a segment is a
-- plain string, or a list of parts, literal strings and captures ({name}
-- gives the capture number), that a path segment of one or more characters
-- per capture must match whole. Matching goes segment by segment in time
-- linear in the path: a Lua pattern such as "^/([^/]+)%-([^/]+)$" would
-- backtrack in C, beyond the handler budget, for seconds on a long path.
local function split(path)
  local segments, at = {}, 1
  while true do
    local slash = path:find("/", at, true)
    if not slash then
      segments[#segments + 1] = path:sub(at)
      return segments
    end
    segments[#segments + 1] = path:sub(at, slash - 1)
    at = slash + 1
  end
end

local function compile(path)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("route path must be a string starting with '/'", 3)
  end
  local names, segments = {}, {}
  for i, text in ipairs(split(path)) do
    local parts, at = {}, 1
    while true do
      local s, e, name = text:find("{([%w_]+)}", at)
      if not s then
        break
      end
      if s > at then
        parts[#parts + 1] = text:sub(at, s - 1)
      end
      names[#names + 1] = name
      parts[#parts + 1] = #names
      at = e + 1
    end
    if #parts == 0 then
      segments[i] = text
    else
      if at <= #text then
        parts[#parts + 1] = text:sub(at)
      end
      segments[i] = parts
    end
  end
  return segments, names
end

-- Matches one path segment s against parts; stores the captures in caps.
-- Each capture takes at least one character, and the earlier ones as many
-- as they can (what a greedy pattern would give). ok[i][p]: parts i.. match
-- s from p to the end; a capture then takes everything up to the last
-- position where the rest can start.
local function match_parts(parts, s, caps)
  local n, k = #s, #parts
  if k == 1 then -- one capture alone: the whole segment
    if n == 0 then
      return false
    end
    caps[parts[1]] = s
    return true
  end
  local ok, last = {}, {}
  ok[k + 1] = { [n + 1] = true }
  last[k + 1] = n + 1
  for i = k, 1, -1 do
    local part, nxt, cur, top = parts[i], ok[i + 1], {}, nil
    if type(part) == "string" then
      local len = #part
      for p = n + 1 - len, 1, -1 do
        if nxt[p + len] and s:sub(p, p + len - 1) == part then
          cur[p] = true
          top = top or p
        end
      end
    elseif last[i + 1] > 1 then
      for p = 1, last[i + 1] - 1 do
        cur[p] = true
      end
      top = last[i + 1] - 1
    end
    if not top then
      return false
    end
    ok[i], last[i] = cur, top
  end
  if not ok[1][1] then
    return false
  end
  local p = 1
  for i = 1, k do
    local part = parts[i]
    if type(part) == "string" then
      p = p + #part
    else
      local q = last[i + 1]
      caps[part] = s:sub(p, q - 1)
      p = q
    end
  end
  return true
end

local function match(route, segments)
  local want = route.segments
  if #want ~= #segments then
    return nil
  end
  local caps = {}
  for i = 1, #want do
    local w, s = want[i], segments[i]
    if type(w) == "string" then
      if w ~= s then
        return nil
      end
    elseif not match_parts(w, s, caps) then
      return nil
    end
  end
  return caps
end

local function check_handler(handler)
  local t = type(handler)
  if t == "function" or (t == "table" and handler._serve) then
    return handler
  end
  error("route handler must be a function or a wslua endpoint, got " .. t, 3)
end

function Router:route(method, path, handler)
  if type(method) ~= "string" then
    error("route method must be a string", 2)
  end
  local segments, names = compile(path)
  table.insert(self.routes, {
    method = method:upper(),
    path = path,
    segments = segments,
    names = names,
    static = #names == 0,
    handler = check_handler(handler),
  })
  return self
end

for _, method in ipairs { "get", "post", "put", "patch", "delete" } do
  Router[method] = function(self, path, handler)
    return self:route(method, path, handler)
  end
end

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

-- Serves req if a route matches; returns false to let the next handler of
-- the host try. A path that matches only under other methods gives 405.
-- What a route without captures matches with: nothing is ever stored in it.
local no_captures = {}

function Router:_serve(req, res)
  local allowed, segments
  local path = req.path
  for _, r in ipairs(self.routes) do
    -- A route without captures matches only its own path, and two paths
    -- split into the same segments only when they are the same string: the
    -- common case needs no split and no table.
    local captures
    if r.static then
      captures = r.path == path and no_captures or nil
    else
      segments = segments or split(path)
      captures = match(r, segments)
    end
    if captures then
      if r.method == req.method or (r.method == "GET" and req.method == "HEAD") then
        for i, name in ipairs(r.names) do
          req.params[name] = percent_decode(captures[i])
        end
        req.route = r.path
        local h = r.handler
        if type(h) == "function" then
          h(req, res)
          return true
        end
        return h:_serve(req, res) ~= false
      end
      allowed = allowed or {}
      allowed[#allowed + 1] = r.method
      if r.method == "GET" then
        allowed[#allowed + 1] = "HEAD" -- GET routes answer HEAD too
      end
    end
  end
  if allowed then
    req.allowed = allowed
  end
  return false
end

-- Calls fn(route) for every route whose handler is not itself a router,
-- mounted routers walked in order, each router once (seen: the routers
-- already walked, shared across calls).
function Router:each_route(fn, seen)
  seen = seen or {}
  if seen[self] then
    return
  end
  seen[self] = true
  for _, route in ipairs(self.routes) do
    local h = route.handler
    if type(h) == "table" and h.routes then
      Router.each_route(h, fn, seen)
    else
      fn(route)
    end
  end
end

-- The route paths, for logs and the dev console.
function Router:_describe()
  local out = {}
  for _, r in ipairs(self.routes) do
    out[#out + 1] = r.method .. " " .. r.path
  end
  return out
end

return Router
