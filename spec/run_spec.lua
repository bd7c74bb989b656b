-- wslua.run for scripts: the loop's clock between runs, and returning as
-- soon as the function does.
local wslua = require "wslua"
local core = require "wslua.core"

-- Seconds since boot from the kernel (10 ms steps), a clock of its own.
local function uptime()
  local f = assert(io.open("/proc/uptime"))
  local s = tonumber(f:read("a"):match("^([%d.]+)"))
  f:close()
  return s
end

describe("wslua.run", function()
  it("times what it runs from when it starts, however long the script worked before", function()
    wslua.run(function() end)
    -- Work outside the loop: its cached clock stands still meanwhile.
    local t0 = os.clock()
    while os.clock() - t0 < 0.4 do
    end
    local slept
    wslua.run(function()
      local u0 = uptime()
      wslua.sleep(0.3)
      slept = uptime() - u0
    end)
    assert(slept >= 0.28, string.format("a 0.3 s sleep ended after %.2f s", slept))
  end)

  it("reads the clock as it is now, also outside the loop", function()
    -- Wall time from the kernel's own clock, so a busy machine that gives
    -- this process little CPU does not change the answer.
    local n0, u0 = core.now(), uptime()
    while uptime() - u0 < 0.2 do
    end
    local elapsed, wall = core.now() - n0, uptime() - u0
    assert(elapsed >= wall - 0.02 and elapsed < wall + 0.5,
      string.format("core.now() moved %.3f s in %.3f s", elapsed, wall))
  end)

  it("returns as soon as the function does, also from a timer due at once", function()
    local u0 = uptime()
    for _ = 1, 3 do
      wslua.run(function()
        wslua.sleep(0)
      end, 5)
    end
    local took = uptime() - u0
    assert(took < 1, string.format("three runs of sleep(0) took %.2f s", took))
  end)
end)
