-- Interop with a real browser: headless Chromium, driven by playwright-core,
-- chats through the chat example with a Node ws client, over ws:// and over
-- wss:// (spec/interop/chromium_chat.js).
local h = require "helpers"
local interop = require "helpers.interop"

local script = interop.dir .. "/chromium_chat.js"
local build_dir = h.bin:match("^(.*)/[^/]*$") or "."

describe("Chromium on the chat page", function()
  it("shows another client's broadcast and sends what is typed into the form", function()
    interop.need_node { "ws", "playwright-core" }
    interop.need_chromium()
    local server = interop.spawn("examples/chat/app.lua")
    finally(function() server:stop() end)
    local shot = build_dir .. "/interop_chromium_chat.png"
    os.remove(shot)
    local url = string.format("http://127.0.0.1:%d/", server.port)
    local status, out = interop.run({ "node", script, url, shot })
    interop.assert_passed(status, out, "CHROMIUM INTEROP OK")
    assert.matches("ok page loaded and connected\n", out, 1, true)
    assert.matches("ok page negotiated permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover\n", out, 1, true)
    assert.matches("ok page shows the broadcast: guest%d+: hello from node", out)
    assert.matches("ok party received: guest%d+: hello from chromium", out)
    local f = assert(io.open(shot, "rb"), "no screenshot at " .. shot)
    assert.equal("\137PNG", f:read(4))
    f:close()
    assert.is_true(server:alive())
  end)

  it("loads the page over https:// and chats over wss:// with compression", function()
    interop.need_node { "ws", "playwright-core" }
    interop.need_chromium()
    local certs = os.tmpname()
    os.remove(certs)
    finally(function() os.execute("rm -rf " .. interop.quote(certs)) end)
    local made = os.execute(string.format("%s %s >/dev/null 2>&1",
      interop.quote(h.source_dir .. "/examples/wss/make-cert.sh"), interop.quote(certs)))
    assert(made, "examples/wss/make-cert.sh failed (is openssl installed?)")
    local server = h.spawn(interop.quote(h.source_dir .. "/examples/chat/app.lua"),
      "--tls-cert " .. interop.quote(certs .. "/cert.pem") .. " --tls-key " .. interop.quote(certs .. "/key.pem"))
    finally(function() server:stop() end)
    assert(server:log():find("listening on 127.0.0.1:" .. server.port .. " (TLS)", 1, true),
      "the server did not start: " .. server:log())
    local shot = build_dir .. "/interop_chromium_chat_tls.png"
    os.remove(shot)
    local url = string.format("https://127.0.0.1:%d/", server.port)
    local status, out = interop.run({ "node", script, url, shot, certs .. "/cert.pem" })
    interop.assert_passed(status, out, "CHROMIUM INTEROP OK")
    assert.matches("ok page over TLS 1%.[23] from localhost\n", out)
    assert.matches("ok page socket wss://127.0.0.1:" .. server.port .. "/ws\n", out, 1, true)
    assert.matches("ok page negotiated permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover\n", out, 1, true)
    assert.matches("ok page shows the broadcast: guest%d+: hello from node", out)
    assert.matches("ok party received: guest%d+: hello from chromium", out)
    assert.is_true(server:alive())
  end)
end)
