-- Interop with a real peer: Python's websockets library against the echo
-- example (plain and with permessage-deflate) and the probe app
-- (spec/interop/python_client.py).
local interop = require "helpers.interop"

local script = interop.dir .. "/python_client.py"

describe("Python websockets as a client", function()
  it("gets every message echoed byte-exact, fragmented too, pongs, and a clean 1000 close", function()
    interop.need_python()
    local server = interop.spawn("examples/echo/app.lua")
    finally(function() server:stop() end)
    local url = string.format("ws://127.0.0.1:%d/", server.port)
    local status, out = interop.run({ interop.python, script, "echo", url })
    interop.assert_passed(status, out, "PYTHON INTEROP OK")
    for _, size in ipairs { 0, 125, 126, 65536, 1048576 } do
      assert.matches("ok echo text " .. size .. " B\n", out, 1, true)
      assert.matches("ok echo binary " .. size .. " B\n", out, 1, true)
    end
    assert.matches("ok echo binary 16777216 B\n", out, 1, true)
    assert.matches("ok ping answered\n", out, 1, true)
    assert.matches("ok echo fragmented text, ping amid answered\n", out, 1, true)
    assert.matches("ok close 1000 (server replied 1000", out, 1, true)
    assert.is_true(server:alive())
  end)

  it("negotiates permessage-deflate and gets every message echoed byte-exact", function()
    interop.need_python()
    local server = interop.spawn("examples/echo/app.lua")
    finally(function() server:stop() end)
    local url = string.format("ws://127.0.0.1:%d/deflate", server.port)
    local status, out = interop.run({ interop.python, script, "deflate", url })
    interop.assert_passed(status, out, "PYTHON INTEROP OK")
    assert.matches("ok negotiated permessage-deflate; server_no_context_takeover; "
      .. "client_no_context_takeover\n", out, 1, true)
    for _, size in ipairs { 0, 125, 126, 65536, 1048576 } do
      for _, kind in ipairs { "text", "binary", "compressible text", "compressible binary" } do
        assert.matches("ok echo " .. kind .. " " .. size .. " B\n", out, 1, true)
      end
    end
    assert.matches("ok echo fragmented text, ping amid answered\n", out, 1, true)
    assert.matches("ok close 1000 (server replied 1000", out, 1, true)
  end)

  it("keeps compression context across messages where both sides agree to", function()
    interop.need_python()
    local server = interop.spawn("spec/interop/probe_app.lua")
    finally(function() server:stop() end)
    local url = string.format("ws://127.0.0.1:%d/dedicated", server.port)
    local status, out = interop.run({ interop.python, script, "deflate", url })
    interop.assert_passed(status, out, "PYTHON INTEROP OK")
    -- A kept context has 4 KiB windows both ways by default (under 64 KiB
    -- of zlib state per connection), announced to the peer.
    assert.matches("ok negotiated permessage-deflate; server_max_window_bits=12; "
      .. "client_max_window_bits=12\n", out, 1, true)
    assert.matches("ok echo compressible text 1048576 B\n", out, 1, true)
    assert.matches("ok echo binary 1048576 B\n", out, 1, true)
  end)

  it("gets the server's subprotocol choice and its 1000 close reaches the server", function()
    interop.need_python()
    local server = interop.spawn("spec/interop/probe_app.lua")
    finally(function() server:stop() end)
    local url = string.format("ws://127.0.0.1:%d/", server.port)
    local status, out = interop.run({ interop.python, script, "probe", url })
    interop.assert_passed(status, out, "PYTHON INTEROP OK")
    assert.matches("ok subprotocol v2.wslua\n", out, 1, true)
    interop.wait_log(server, "probe: open %d+ protocol v2%.wslua")
    interop.wait_log(server, "probe: closed %d+ 1000 bye from python")
  end)
end)
