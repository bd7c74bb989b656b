-- HTTP/1.1 over a raw stream for the specs: requests go out as the exact
-- bytes given (no client normalises them), responses come back parsed.
local h = require "helpers"

local http = {}

local Reader = {}
Reader.__index = Reader

-- A response reader over a raw stream (h.tcp(server)); it keeps what
-- follows one response for the next, so pipelined answers parse in order.
function http.reader(stream)
  return setmetatable({ stream = stream, buf = "" }, Reader)
end

function Reader:fill(timeout)
  local bytes, err = self.stream:read(timeout or 5)
  if not bytes then
    return nil, err
  end
  self.buf = self.buf .. bytes
  return true
end

-- Takes n bytes, or a line (without CRLF) when n is nil; nil at the end.
function Reader:take(n)
  while true do
    if n and #self.buf >= n then
      local out = self.buf:sub(1, n)
      self.buf = self.buf:sub(n + 1)
      return out
    end
    if not n then
      local i = self.buf:find("\r\n", 1, true)
      if i then
        local out = self.buf:sub(1, i - 1)
        self.buf = self.buf:sub(i + 2)
        return out
      end
    end
    if not self:fill() then
      return nil
    end
  end
end

-- Reads one response: { status, reason, headers (lower-case names, joined
-- with ", "), head (the raw head), body, chunks (the chunk sizes when
-- chunked) }, or nil, why. For a HEAD request, no body is read.
function Reader:response(method)
  local status_line = self:take()
  if not status_line then
    return nil, "closed before a response"
  end
  local version, status, reason = status_line:match("^(HTTP/1%.%d) (%d%d%d) ?(.*)$")
  if not version then
    return nil, "bad status line: " .. status_line
  end
  local res = { version = version, status = tonumber(status), reason = reason,
    headers = {}, head = status_line .. "\r\n" }
  while true do
    local line = self:take()
    if not line then
      return nil, "closed inside the head"
    end
    res.head = res.head .. line .. "\r\n"
    if line == "" then
      break
    end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    name = name:lower()
    res.headers[name] = res.headers[name] and (res.headers[name] .. ", " .. value)
      or value
  end
  local te = res.headers["transfer-encoding"]
  local length = tonumber(res.headers["content-length"])
  if method == "HEAD" or res.status == 204 or res.status == 304 or res.status < 200 then
    res.body = ""
  elseif te and te:lower():find("chunked", 1, true) then
    local parts, sizes = {}, {}
    while true do
      local size_line = self:take()
      local size = size_line and tonumber(size_line:match("^%x+"), 16)
      if not size then
        return nil, "bad chunk size line: " .. tostring(size_line)
      end
      if size == 0 then
        repeat
          local trailer = self:take()
        until trailer == "" or trailer == nil
        break
      end
      sizes[#sizes + 1] = size
      parts[#parts + 1] = self:take(size)
      if self:take() ~= "" then
        return nil, "chunk not followed by CRLF"
      end
    end
    res.body, res.chunks = table.concat(parts), sizes
  elseif length then
    res.body = self:take(length)
    if not res.body then
      return nil, "closed inside the body"
    end
  else
    res.body = self.buf .. self.stream:read_all(5)
    self.buf = ""
  end
  return res
end

-- True when the server closes the stream within timeout seconds (and sent
-- nothing more before closing).
function Reader:closed(timeout)
  local bytes, err = self.stream:read(timeout or 2)
  if bytes then
    self.buf = self.buf .. bytes
    return false
  end
  return err == "closed"
end

-- A request's bytes: method, target, headers as a list of "Name: value",
-- and a body (with its Content-Length unless a header says otherwise).
function http.request(method, target, headers, body)
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: 127.0.0.1" }
  local has_length = false
  for _, line in ipairs(headers or {}) do
    lines[#lines + 1] = line
    has_length = has_length or line:lower():find("^content%-length:")
      or line:lower():find("^transfer%-encoding:")
  end
  if body and not has_length then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

-- One exchange on a connection of its own: sends the raw bytes and returns
-- the parsed response (method picks HEAD handling).
function http.exchange(server, raw, method)
  local s = h.tcp(server)
  s:write(raw)
  local res, err = http.reader(s):response(method or raw:match("^(%u+)"))
  s:close()
  return res, err
end

-- GET (or another method) of a path; returns the parsed response.
function http.get(server, path, headers, method, body)
  method = method or "GET"
  return http.exchange(server, http.request(method, path, headers, body), method)
end

return http
