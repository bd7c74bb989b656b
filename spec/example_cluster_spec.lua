-- examples/cluster: run.sh starts a Redis of its own and two wslua
-- instances; a message sent to one instance reaches the clients of both.
local wslua = require "wslua"
local h = require "helpers"

local function connect_when_up(port)
  local client
  h.wait_for(function()
    client = wslua.connect(string.format("ws://127.0.0.1:%d/ws", port))
    return client
  end, 15)
  return assert(client, "no instance on port " .. port)
end

describe("examples/cluster", function()
  it("runs two instances on one Redis with one command; messages cross", function()
    assert(os.execute("command -v redis-server >/dev/null"),
      "redis-server is missing: make test installs it (scripts/deps.sh test)")
    local redis_port, a, b = h.free_port(), h.free_port(), h.free_port()
    local log = os.tmpname()
    local p = io.popen(string.format(
      "REDIS_PORT=%d PORT_A=%d PORT_B=%d WSLUA_BIN=%s examples/cluster/run.sh >%s 2>&1 & echo $!",
      redis_port, a, b, h.bin, log))
    local pid = tonumber(p:read("l"))
    p:close()
    finally(function()
      os.execute("kill -TERM " .. pid .. " 2>/dev/null")
      h.run(function()
        h.wait_for(function()
          return os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= true
        end, 10)
      end)
      os.remove(log)
    end)
    h.run(function()
      local ca = connect_when_up(a)
      local cb = connect_when_up(b)
      assert.matches("^welcome, guest%d+$", (ca:receive()))
      assert.matches("^welcome, guest%d+$", (cb:receive()))
      -- B's Redis subscription follows its first subscriber: send until
      -- it is in place (bounded), then every message reaches both.
      local at_b = {}
      wslua.spawn(function()
        while true do
          local body = cb:receive()
          if not body then
            return
          end
          at_b[#at_b + 1] = body
        end
      end)
      for i = 1, 50 do
        ca:send("hello " .. i)
        assert.matches("^guest%d+: hello " .. i .. "$", (ca:receive()))
        if h.wait_for(function() return #at_b > 0 end, 0.3) then
          break
        end
      end
      assert.is_true(#at_b > 0, "no message crossed instances:\n" .. io.open(log):read("a"))
      assert.matches("^guest%d+: hello %d+$", at_b[1])
      ca:send("back")
      assert.matches("^guest%d+: back$", (ca:receive()))
      assert.truthy(h.wait_for(function() return at_b[#at_b]:find("back", 1, true) end, 5))
      ca:close()
      cb:close()
    end, 40)
  end)
end)
