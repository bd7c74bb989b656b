-- Fan-out benchmark app: clients of "/" subscribe to topic "t" on open;
-- every message from a client of "/pub" (the publisher) is published to "t"
-- with one call into the C core (framed once, the bytes shared).
--   wslua bench/apps/fanout.lua --listen 127.0.0.1:9001 [--workers 2]
local wslua = require "wslua"

local Subscriber = {}

function Subscriber:on_open(client)
  client:subscribe("t")
end

local Publisher = {}

function Publisher:on_data(client, msg)
  local body = msg:read()
  if body then
    wslua.publish("t", body, msg.binary and "binary" or nil)
  end
end

local router = wslua.router()
  :get("/", wslua.websocket(Subscriber))
  :get("/pub", wslua.websocket(Publisher))

return wslua.host { listen = "127.0.0.1:9001", router }
