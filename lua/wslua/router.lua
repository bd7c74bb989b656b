-- Routes: method and path pattern to handler. "/posts/{id}" captures one
-- path segment into req.params.id; the first matching route wins. A
-- handler is a function(req, res) or anything with a _serve method (a
-- WebSocket endpoint, another router).
local Router = {}
Router.__index = Router

function Router.new()
  return setmetatable({ routes = {} }, Router)
end

local function compile(path)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("route path must be a string starting with '/'", 3)
  end
  local names = {}
  local pattern = path:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  pattern = pattern:gsub("{([%w_]+)}", function(name)
    names[#names + 1] = name
    return "([^/]+)"
  end)
  return "^" .. pattern .. "$", names
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
  local pattern, names = compile(path)
  table.insert(self.routes, {
    method = method:upper(),
    path = path,
    pattern = pattern,
    names = names,
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
function Router:_serve(req, res)
  local allowed
  for _, r in ipairs(self.routes) do
    local captures = { req.path:match(r.pattern) }
    if captures[1] ~= nil then
      if r.method == req.method or (r.method == "GET" and req.method == "HEAD") then
        for i, name in ipairs(r.names) do
          req.params[name] = percent_decode(captures[i])
        end
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

-- The route paths, for logs and the dev console.
function Router:_describe()
  local out = {}
  for _, r in ipairs(self.routes) do
    out[#out + 1] = r.method .. " " .. r.path
  end
  return out
end

return Router
