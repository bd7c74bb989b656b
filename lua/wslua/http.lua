-- HTTP requests and responses as handlers see them.
--   req.method, req.path, req.query (table), req.params, req.headers
--   (lower-case names), req.remote_addr (the client's, through trusted
--   proxies), req.peer_addr (the TCP peer's), req.route, req:body()
--   res.status, res:header(k, v), res:send(body), res:write(chunk),
--   res:finish()
local core = require "wslua.core"
local log = require "wslua.log"
local observe = require "wslua.observe"

local http = {}

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end
http.url_decode = url_decode

-- "a=1&b=x%20y&a=2" -> { a = "1", b = "x y" } (the first of repeated keys);
-- every value also in query_all[k] as a list.
function http.parse_query(s)
  local first, all = {}, {}
  if s == "" then
    return first, all
  end
  for pair in s:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = url_decode(k), url_decode(v)
    if first[k] == nil then
      first[k] = v
    end
    all[k] = all[k] or {}
    table.insert(all[k], v)
  end
  return first, all
end

local Request = {}
Request.__index = Request

function http.request(conn, raw)
  local req = setmetatable(raw, Request)
  req.conn = conn
  req.started = core.clock()
  req.bytes_out_before = select(2, conn:stats())
  req.remote_addr = conn:remote_addr()
  req.peer_addr = req.remote_addr
  req.query_string = raw.query
  req.query, req.query_all = http.parse_query(raw.query)
  req.params = {}
  return req
end

-- The whole body (already read, within the body size limit).
function Request:body()
  return self._body
end

local Response = {}
Response.__index = Response

function http.response(conn, req)
  return setmetatable({
    conn = conn,
    req = req,
    status = 200,
    headers = {},      -- list of {name, value}
    head_sent = false,
    finished = false,
    chunked = false,
    closed = false,
  }, Response)
end

-- Adds a header (several of one name are allowed: Set-Cookie).
function Response:header(name, value)
  if self.head_sent then
    error("headers already sent", 2)
  end
  if type(name) ~= "string" then
    error("bad argument #1 to 'header' (string expected)", 2)
  end
  table.insert(self.headers, { name, tostring(value) })
  return self
end

function Response:has_header(name)
  name = name:lower()
  for _, h in ipairs(self.headers) do
    if h[1]:lower() == name then
      return h[2]
    end
  end
end

local function bodiless(self)
  return self.req.method == "HEAD" or self.status == 204 or self.status == 304
    or (self.status >= 100 and self.status < 200)
end

function Response:_keep_alive()
  local c = self:has_header("connection")
  return self.req.keep_alive and not (c and c:lower() == "close")
end

function Response:_send_head(length)
  local status = self.status
  if length then
    if status >= 200 and status ~= 204 and status ~= 304 then
      self:header("Content-Length", length)
    end
  elseif not bodiless(self) then
    self:header("Transfer-Encoding", "chunked")
    self.chunked = true
  end
  if not self.req.keep_alive then
    self:header("Connection", "close")
  end
  self.head_sent = true
  return self.conn:write_head(self.status, self.headers)
end

-- Sends the whole response; returns true, or nil, "closed".
function Response:send(body)
  body = body == nil and "" or tostring(body)
  if self.finished then
    error("response already finished", 2)
  end
  if self.head_sent then
    local ok, err = self:write(body)
    if not ok then
      return nil, err
    end
    return self:finish()
  end
  if not self:has_header("content-type") and self.status ~= 304 and self.status ~= 204 then
    self:header("Content-Type", "text/html; charset=utf-8")
  end
  local ok, err = self:_send_head(#body)
  if not ok then
    self.finished = true
    return nil, err
  end
  if body ~= "" and not bodiless(self) then
    ok, err = self.conn:write(body)
  end
  self.finished = true
  self.conn:finish(self:_keep_alive())
  observe.http_done(self.req, self)
  return ok, err
end

-- Streams a piece of the body (chunked transfer coding).
function Response:write(chunk)
  chunk = tostring(chunk)
  if self.finished then
    error("response already finished", 2)
  end
  if not self.head_sent then
    if not self:has_header("content-type") then
      self:header("Content-Type", "text/html; charset=utf-8")
    end
    local ok, err = self:_send_head(nil)
    if not ok then
      return nil, err
    end
  end
  if chunk == "" or bodiless(self) then
    return true
  end
  return self.conn:write(string.format("%x\r\n", #chunk) .. chunk .. "\r\n")
end

function Response:finish()
  if self.finished then
    return true
  end
  if not self.head_sent then
    return self:send("")
  end
  self.finished = true
  local ok, err = true, nil
  if self.chunked and not bodiless(self) then
    ok, err = self.conn:write("0\r\n\r\n")
  end
  self.conn:finish(self:_keep_alive())
  observe.http_done(self.req, self)
  return ok, err
end

-- A plain-text error answer. It drops the headers set so far (they were
-- meant for another answer); headers (name -> value) go out with it.
function Response:fail(status, message, headers)
  self.status = status
  self.headers = {}
  self:header("Content-Type", "text/plain; charset=utf-8")
  for name, value in pairs(headers or {}) do
    self:header(name, value)
  end
  return self:send(message .. "\n")
end

function Response:_closed()
  self.closed = true
end

-- The request's handler failed (the scheduler calls this): a 500 if
-- nothing was sent yet, else the connection is cut.
function Response:_failed(trace)
  local req = self.req
  observe.failed(observe.label(req))
  log.error("%s %s %s: handler failed: %s", req.remote_addr, req.method, req.path, trace)
  if not self.head_sent and not self.finished then
    self:fail(500, "internal server error")
  elseif not self.finished then
    self.conn:abort()
    observe.http_done(req, self, true)
  end
end

http.Request, http.Response = Request, Response
http.now = core.now
return http
