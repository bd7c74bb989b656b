-- amphp's broadcast example: whatever any client sends, every client gets,
-- prefixed with the sender's id. Only pages from this server may connect.
--
--   ./build/wslua examples/broadcast/app.lua     then open two tabs of
--   http://127.0.0.1:1339/ (or http://localhost:1339/) and type.
--
-- The origin allow-list names the default address: with --listen on another
-- port, add its origin below. A client without an allowed Origin header
-- (curl and most command-line tools, unless told to send one) gets 403.
local wslua = require "wslua"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local Broadcast = {}

-- The endpoint is the gateway: gateway:send(nil, ...) reaches every client,
-- with the frame built once for all of them.
function Broadcast:on_start(gateway)
  self.gateway = gateway
end

function Broadcast:on_data(client, msg)
  local body = msg:read()
  if body and not msg.binary then
    self.gateway:send(nil, string.format("%d: %s", client.id, body))
  end
end

local router = wslua.router()
  :get("/broadcast", wslua.websocket(Broadcast, {
    origins = { "http://127.0.0.1:1339", "http://localhost:1339" },
    max_message = 4 * 1024, -- every message goes to everyone: keep them small
  }))

return wslua.host { listen = "127.0.0.1:1339", router, wslua.root(here .. "/public") }
