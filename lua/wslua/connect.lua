-- wslua.connect(url [, options]): a WebSocket client in the same core. Waits
-- for the opening handshake; returns a client (send, receive, messages,
-- close, ...) or nil, error.
local core = require "wslua.core"
local options = require "wslua.options"
local owners = require "wslua.owners"
local scheduler = require "wslua.scheduler"
local Client = require "wslua.client"

local option_kinds = {
  protocols = "strings",
  headers = "table",
  max_message = "positive",
  max_frame = "positive",
  idle_timeout = "number",
  close_timeout = "number",
  handshake_timeout = "number",
  max_backpressure = "number",
  ping_interval = "number",
  origin = "string",
  ca = "string",
  insecure = "boolean",
  server_name = "string",
  compression = "boolean|table",
}

local function parse_url(url)
  local scheme, rest = url:match("^(wss?)://(.+)$")
  if not scheme then
    return nil, "url must start with ws:// or wss://"
  end
  local authority, path = rest:match("^([^/?#]+)(.*)$")
  if not authority then
    return nil, "url has no host"
  end
  if path == "" then
    path = "/"
  elseif path:sub(1, 1) == "?" then
    path = "/" .. path
  end
  local host, port = authority:match("^%[(.+)%]:(%d+)$")
  if not host then
    host = authority:match("^%[(.+)%]$")
  end
  if not host then
    host, port = authority:match("^([^:]+):(%d+)$")
  end
  if not host then
    host = authority
  end
  return {
    host = host,
    port = tonumber(port) or (scheme == "wss" and 443 or 80),
    path = path,
    authority = authority,
    tls = scheme == "wss",
  }
end

local Outbound = setmetatable({}, { __index = Client })
Outbound.__index = Outbound

function Outbound:_open(protocol)
  self.protocol = protocol
  self.compressed = self.conn:compressed()
  self.remote_addr = self.conn:remote_addr()
  self.opened = true
  local co = self.dialer
  if co then
    self.dialer = nil
    scheduler.resume(co, true)
  end
end

function Outbound:_data(piece, binary, first, last)
  local msg = Client._data(self, piece, binary, first, last)
  if msg then
    self:_deliver(msg)
  end
end

function Outbound:_closed(code, reason, err)
  Client._closed(self, code, reason, err)
  local co = self.dialer
  if co then
    self.dialer = nil
    scheduler.resume(co, false)
  end
end

return function(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (string expected)", 2)
  end
  opts = options.check("connect options", opts or {}, option_kinds)
  local u, err = parse_url(url)
  if not u then
    error("wslua.connect: " .. err, 2)
  end
  local headers = {}
  if opts.origin then
    headers[#headers + 1] = "Origin: " .. opts.origin .. "\r\n"
  end
  for k, v in pairs(opts.headers or {}) do
    headers[#headers + 1] = k .. ": " .. v .. "\r\n"
  end
  local conn = core.connect({
    host = u.host,
    port = u.port,
    path = u.path,
    host_header = u.authority,
    protocols = opts.protocols and table.concat(opts.protocols, ", ") or nil,
    headers = #headers > 0 and table.concat(headers) or nil,
    handshake_timeout = opts.handshake_timeout,
    max_message = opts.max_message,
    max_frame = opts.max_frame,
    idle_timeout = opts.idle_timeout,
    close_timeout = opts.close_timeout,
    max_backpressure = opts.max_backpressure,
    ping_interval = opts.ping_interval,
    tls = u.tls and { ca = opts.ca, insecure = opts.insecure } or nil,
    server_name = opts.server_name,
    compression = options.compression("connect options", opts.compression),
  }, owners.handlers(nil))
  local client = setmetatable(Client.new(conn), Outbound)
  owners.set(conn, client)
  client.dialer = coroutine.running()
  if not scheduler.wait() then
    return nil, client.error or "connection failed"
  end
  return client
end
