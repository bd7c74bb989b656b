-- A probe app for the interop specs: echoes like examples/echo, chooses among
-- offered subprotocols, closes with a code on request ("close 4321 why"),
-- and logs every close code it receives, so a spec can read the server's
-- side of a closing handshake from the log.
local wslua = require "wslua"

local Probe = {}

function Probe:on_open(client)
  wslua.log.info("probe: open %d protocol %s", client.id, tostring(client.protocol))
end

function Probe:on_data(client, msg)
  local body = msg:read()
  if not body then
    return
  end
  local code, reason = body:match("^close (%d+) ?(.*)$")
  if code and not msg.binary then
    client:close(tonumber(code), reason)
  else
    client:send(body, msg.binary and "binary" or "text")
  end
end

function Probe:on_close(client, code, reason)
  wslua.log.info("probe: closed %d %d %s", client.id, code, reason)
end

local router = wslua.router()
  :get("/", wslua.websocket(Probe, { protocols = { "v1.wslua", "v2.wslua" } }))

return wslua.host { listen = "127.0.0.1:9002", router }
