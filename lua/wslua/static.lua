-- wslua.root(dir): static files. GET and HEAD only; content type by
-- extension; ETag and Last-Modified with 304; index.html for directories;
-- nothing outside the root is reachable, neither by ".." nor by a symlink.
local core = require "wslua.core"
local log = require "wslua.log"
local observe = require "wslua.observe"

local Root = {}
Root.__index = Root

local types = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  css = "text/css; charset=utf-8", js = "text/javascript; charset=utf-8",
  mjs = "text/javascript; charset=utf-8", json = "application/json",
  txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
  xml = "application/xml", svg = "image/svg+xml", png = "image/png",
  jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  webp = "image/webp", ico = "image/x-icon", wasm = "application/wasm",
  woff = "font/woff", woff2 = "font/woff2", pdf = "application/pdf",
  map = "application/json",
}

function Root.new(dir)
  if type(dir) ~= "string" then
    error("wslua.root: directory must be a string", 2)
  end
  local real, err = core.realpath(dir)
  if not real then
    error("wslua.root: " .. dir .. ": " .. err, 2)
  end
  local st = core.stat(real)
  if not st or st.type ~= "directory" then
    error("wslua.root: " .. dir .. " is not a directory", 2)
  end
  return setmetatable({ dir = real }, Root)
end

local function decode(path)
  return (path:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

-- The file for a request path, or nil when the path is not acceptable.
function Root:_resolve(path)
  path = decode(path)
  if path:find("%z") or path:find("\\", 1, true) then
    return nil
  end
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then
      return nil
    elseif seg ~= "." then
      parts[#parts + 1] = seg
    end
  end
  local file = self.dir .. "/" .. table.concat(parts, "/")
  local st = core.stat(file)
  if st and st.type == "directory" then
    file = file .. "/index.html"
    st = core.stat(file)
  end
  if not st or st.type ~= "file" then
    return nil
  end
  -- Symlinks may point anywhere: the resolved path must stay in the root.
  local real = core.realpath(file)
  if not real or (real ~= self.dir and real:sub(1, #self.dir + 1) ~= self.dir .. "/") then
    log.info("static: %s resolves outside the root, refused", path)
    return nil
  end
  return real, st
end

function Root:_serve(req, res)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return false
  end
  local file, st = self:_resolve(req.path)
  if not file then
    return false
  end
  local etag = string.format('"%x-%x"', st.size, st.mtime)
  local modified = core.http_date(st.mtime)
  res:header("ETag", etag)
  res:header("Last-Modified", modified)
  local inm = req.headers["if-none-match"]
  local ims = req.headers["if-modified-since"]
  if (inm and (inm == etag or inm == "*" or inm:find(etag, 1, true)))
    or (not inm and ims == modified) then
    res.status = 304
    res:send("")
    return true
  end
  local ext = file:match("%.([%w]+)$")
  res:header("Content-Type", types[ext and ext:lower()] or "application/octet-stream")
  if req.method == "HEAD" then
    res:_send_head(st.size)
    res.finished = true
    req.conn:finish(res:_keep_alive())
    observe.http_done(req, res)
    return true
  end
  local f, err = io.open(file, "rb")
  if not f then
    log.warn("static: cannot read %s: %s", file, err)
    res:fail(500, "cannot read file")
    return true
  end
  local body = f:read("a")
  f:close()
  res:send(body)
  return true
end

return Root
