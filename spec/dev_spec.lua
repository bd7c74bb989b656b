-- The dev console (wslua --dev): /_wslua and its API and events socket
-- exist only with the flag; in headless Chromium the page connects to the
-- echo example's route, sends, shows the echo and live events
-- (spec/interop/chromium_dev.js), and leaves a screenshot in the build
-- folder (dev_console.png).
local cjson = require "cjson"
local wslua = require "wslua"
local h = require "helpers"
local interop = require "helpers.interop"

local echo_app = h.source_dir .. "/examples/echo/app.lua"
local build_dir = h.bin:match("^(.*)/[^/]*$") or "."

-- One GET on a connection of its own: status and body.
local function get(port, path)
  local status, body
  h.run(function()
    local s = assert(wslua.tcp("127.0.0.1", port))
    s:write("GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    local response = s:read_all(5)
    s:close()
    status = tonumber(response:match("^HTTP/1%.1 (%d+)"))
    body = response:match("\r\n\r\n(.*)$")
  end)
  return status, body
end

describe("the dev console", function()
  it("is not there without --dev", function()
    local proc = h.spawn(echo_app)
    finally(function() proc:stop() end)
    assert.equal(404, (get(proc.port, "/_wslua")))
    assert.equal(404, (get(proc.port, "/_wslua/api")))
    assert.equal(404, (get(proc.port, "/_wslua/events")))
  end)

  it("serves the page, the routes as JSON and live events with --dev", function()
    local proc = h.spawn(echo_app, "--dev")
    finally(function() proc:stop() end)
    local status, page = get(proc.port, "/_wslua")
    assert.equal(200, status)
    assert.matches("<title>wslua dev console</title>", page, 1, true)

    local api
    status, api = get(proc.port, "/_wslua/api")
    assert.equal(200, status)
    api = cjson.decode(api)
    assert.equal(wslua.version, api.version)
    assert.equal(0, api.reloads)
    local listed = {}
    for _, r in ipairs(api.routes) do
      listed[#listed + 1] = r.method .. " " .. r.path .. " " .. r.kind
    end
    assert.same({ "GET / websocket", "GET /deflate websocket" }, listed)
    assert.same({ "on_message" }, api.routes[1].handlers)
    assert.equal(16 * 1024 * 1024, api.routes[1].options.max_message)
    assert.is_true(api.routes[2].options.compression)

    -- The events socket reports another session's open and close.
    h.run(function()
      local url = string.format("ws://127.0.0.1:%d", proc.port)
      local events = assert(wslua.connect(url .. "/_wslua/events"))
      assert.equal("hello", cjson.decode((events:receive())).type)
      local c = assert(wslua.connect(url .. "/"))
      assert(c:send("x"))
      assert.equal("x", (c:receive()))
      c:close(1000)
      local opened = cjson.decode((events:receive()))
      assert.equal("open", opened.type)
      assert.equal("/", opened.route)
      local closed = cjson.decode((events:receive()))
      assert.equal("close", closed.type)
      assert.equal(opened.id, closed.id)
      assert.equal(1000, closed.code)
      assert.equal("client", closed.closed_by)
      assert.equal(1, closed.messages_in)
      assert.equal(1, closed.messages_out)
      -- A reload is an event too.
      proc:signal("HUP")
      local reloaded = cjson.decode((events:receive()))
      assert.equal("reload", reloaded.type)
      assert.is_true(reloaded.ok)
      assert.equal(1, reloaded.count)
      events:close()
    end)
    assert.matches("dev console at http://127.0.0.1:%d+/_wslua", proc:log())
  end)

  it("in Chromium: connects to the echo route with a click, sends, shows the echo and events", function()
    interop.need_node { "ws", "playwright-core" }
    interop.need_chromium()
    local proc = h.spawn(echo_app, "--dev")
    finally(function() proc:stop() end)
    assert(proc:alive(), "the server did not start: " .. proc:log())
    local shot = build_dir .. "/dev_console.png"
    os.remove(shot)
    local status, out = interop.run({ "node", interop.dir .. "/chromium_dev.js",
      string.format("http://127.0.0.1:%d", proc.port), tostring(proc.pid), shot })
    interop.assert_passed(status, out, "DEV CONSOLE OK")
    assert.matches("ok echo shown: hello from the dev console", out, 1, true)
    assert.matches('ok JSON sent and echoed: {"type":"ping","n":[1,2]}', out, 1, true)
    assert.matches("ok events: open and close on /deflate", out, 1, true)
    assert.matches("ok event: reload #1", out, 1, true)
    assert.matches("ok the connection survived the reload and still echoes", out, 1, true)
    local f = assert(io.open(shot, "rb"), "no screenshot at " .. shot)
    assert.equal("\137PNG", f:read(4))
    f:close()
    assert.is_true(proc:alive())
  end)
end)
