-- wslua.Tcp, the raw TCP stream under wslua.tcp: its lifecycle at the
-- edges (closed while its address is being looked up, closed at once
-- after a failed lookup), which the ASan build checks for use after free.
local h = require "spec.helpers"
local core = require "wslua.core"
local wslua = require "wslua"

-- Opens a stream to host:port with handlers that record their calls;
-- returns the stream and the record.
local function dial(host, port)
  local seen = { open = {}, close = 0, data = 0 }
  local tcp = core.tcp_connect(host, port, {
    open = function(_, err)
      seen.open[#seen.open + 1] = err or "ok"
    end,
    data = function()
      seen.data = seen.data + 1
    end,
    close = function()
      seen.close = seen.close + 1
    end,
  })
  return tcp, seen
end

describe("a raw TCP stream", function()
  it("closed while its address is looked up, calls close once and nothing else", function()
    local server = h.serve(wslua.host { wslua.router():get("/", function(_, res)
      res:send("ok")
    end) })
    h.run(function()
      local streams = {}
      -- localhost goes through the resolver's thread; close before it
      -- answers.
      for i = 1, 20 do
        local tcp, seen = dial("localhost", server:port())
        tcp:close()
        streams[i] = { tcp = tcp, seen = seen }
      end
      h.wait_for(function()
        for _, s in ipairs(streams) do
          if s.seen.close == 0 then
            return false
          end
        end
        return true
      end)
      -- Long enough for every lookup to have called back.
      wslua.sleep(0.2)
      for _, s in ipairs(streams) do
        assert.same({ open = {}, close = 1, data = 0 }, s.seen)
        local ok, err = s.tcp:write("x")
        assert.is_nil(ok)
        assert.equal("closed", err)
      end
      h.stop(server)
    end)
  end)

  it("that cannot be resolved, says why in open, then closes", function()
    h.run(function()
      local _, seen = dial("no-such-host.invalid", 80)
      h.wait_for(function() return seen.close == 1 end, 10)
      assert.equal(1, #seen.open)
      assert.is_true(seen.open[1] ~= "ok", seen.open[1])
      assert.equal(0, seen.data)
    end)
  end)
end)
