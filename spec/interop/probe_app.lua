-- A probe app for the interop specs: echoes like examples/echo, chooses among
-- offered subprotocols, compresses keeping context on "/dedicated", closes with a code on request ("close 4321 why"),
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

-- "/dedicated": permessage-deflate with context kept on both sides, so
-- peers' compressors and ours refer back to earlier messages.
local router = wslua.router()
  :get("/", wslua.websocket(Probe, { protocols = { "v1.wslua", "v2.wslua" } }))
  :get("/dedicated", wslua.websocket(Probe, { compression = {
    server_no_context_takeover = false, client_no_context_takeover = false } }))

return wslua.host { listen = "127.0.0.1:9002", router }
