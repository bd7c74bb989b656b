-- Interop with a real browser: headless Chromium, driven by playwright-core,
-- chats through the chat example with a Node ws client
-- (spec/interop/chromium_chat.js).
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
end)
