-- A chat room across instances: every client subscribes to the topic "room",
-- and whatever one sends is published there, so it reaches the clients of
-- every wslua instance on the same Redis. Run two instances and Redis with:
--   examples/cluster/run.sh
-- or by hand:
--   wslua examples/cluster/app.lua --listen 127.0.0.1:1340 --redis redis://127.0.0.1:6379
--   wslua examples/cluster/app.lua --listen 127.0.0.1:1341 --redis redis://127.0.0.1:6379
local wslua = require "wslua"

local Room = {}

function Room:on_open(client)
  client:subscribe("room")
  client:send("welcome, guest" .. client.id)
end

function Room:on_data(client, msg)
  local body = msg:read()
  if body and not msg.binary then
    wslua.publish("room", "guest" .. client.id .. ": " .. body)
  end
end

return wslua.host {
  listen = "127.0.0.1:1340",
  wslua.router():get("/ws", wslua.websocket(Room)),
}
