-- The echo endpoint and a small page over TLS: wss:// and https://.
--   examples/wss/make-cert.sh            a self-signed certificate, here
--   ./build/wslua examples/wss/app.lua   then open https://localhost:8443/
-- Another certificate: --tls-cert FILE --tls-key FILE.
local wslua = require "wslua"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local Echo = {}

function Echo:on_data(client, msg)
  local body = msg:read()
  if body then
    client:send(body, msg.binary and "binary" or "text")
  end
end

local router = wslua.router()
  :get("/ws", wslua.websocket(Echo, { max_message = 16 * 1024 * 1024 }))

return wslua.host {
  listen = "127.0.0.1:8443",
  tls = { cert = here .. "/cert.pem", key = here .. "/key.pem" },
  router,
  wslua.root(here .. "/public"),
}
