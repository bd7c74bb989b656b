-- Ratchet's EchoServer: every text or binary message goes back as it came.
-- "/" without compression and a 16 MiB message limit; "/deflate" the same
-- with permessage-deflate (defaults otherwise).
--   wslua examples/echo/app.lua --listen 127.0.0.1:9001
local wslua = require "wslua"

local Echo = {}

-- on_message gets the whole message as a string (Ratchet's onMessage);
-- on_data(client, msg) would get it as it starts arriving, to stream.
function Echo:on_message(client, data, binary)
  client:send(data, binary)
end

local router = wslua.router()
  :get("/", wslua.websocket(Echo, { max_message = 16 * 1024 * 1024 }))
  :get("/deflate", wslua.websocket(Echo, { compression = true }))

return wslua.host { listen = "127.0.0.1:9001", router }
