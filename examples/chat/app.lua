-- The Aerys chat: open http://127.0.0.1:1337/ in two tabs and talk.
-- Everything a client sends goes to everyone connected.
local wslua = require "wslua"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local Chat = {}

function Chat:on_start(endpoint)
  self.endpoint = endpoint
end

function Chat:on_handshake(req, res)
  -- Only pages served from this server may connect (no cross-site sockets).
  local origin = req.headers.origin
  local host = req.headers.host
  if origin and host and origin ~= "http://" .. host and origin ~= "https://" .. host then
    res.status = 403
    res:send("origin not allowed")
    return
  end
  return req.remote_addr
end

function Chat:on_open(client, addr)
  client.data.name = "guest" .. client.id
  client:send("Heyho! You are " .. client.data.name .. ".")
  self.endpoint:send(nil, client.data.name .. " joined.")
end

function Chat:on_data(client, msg)
  local body = msg:read()
  if body and not msg.binary then
    self.endpoint:send(nil, client.data.name .. ": " .. body)
  end
end

function Chat:on_close(client, code, reason)
  self.endpoint:send(nil, client.data.name .. " left.")
end

function Chat:on_stop()
  self.endpoint:send(nil, "Byebye!")
end

-- Chat lines are small and alike: permessage-deflate for browsers that offer
-- it (all do), with the defaults (no zlib state kept per idle client).
local router = wslua.router()
  :get("/ws", wslua.websocket(Chat, { compression = true }))

return wslua.host { listen = "127.0.0.1:1337", router, wslua.root(here .. "/public") }
