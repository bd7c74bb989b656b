-- The server for bench/idle_memory.lua: one echo endpoint per compression
-- mode, and no keepalive pings while the connections sit idle.
local wslua = require "wslua"

local Echo = {}

function Echo:on_data(client, msg)
  local body = msg:read()
  if body then
    client:send(body, msg.binary and "binary" or "text")
  end
end

local idle = { idle_timeout = 3600 }

local function with(extra)
  local t = {}
  for k, v in pairs(idle) do
    t[k] = v
  end
  for k, v in pairs(extra) do
    t[k] = v
  end
  return t
end

local router = wslua.router()
  :get("/plain", wslua.websocket(Echo, idle))
  :get("/shared", wslua.websocket(Echo, with { compression = true }))
  :get("/dedicated", wslua.websocket(Echo, with { compression = {
    server_no_context_takeover = false, client_no_context_takeover = false } }))

return wslua.host { listen = "127.0.0.1:0", router }
