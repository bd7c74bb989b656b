-- Interop with a real peer: Python's websockets library against the echo
-- example and the probe app (spec/interop/python_client.py).
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
