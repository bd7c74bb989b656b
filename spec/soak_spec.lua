-- Soak and chaos against examples/chat run as the real binary: connections
-- held open while others churn through every way a client can misbehave
-- (dropping mid-handshake and mid-frame, half-closing, dripping headers a
-- byte at a time, oversized frames, bad UTF-8, garbage instead of HTTP).
-- Afterwards the server is alive and answers, its open descriptors are back
-- to where they were, its RSS is back near where it was, and its log holds
-- no error, only the close codes these misdeeds call for.
--
-- Short by default (CI): 12 s, 400 connections held, 100 churning.
-- WSLUA_SOAK_APP runs another app with a chat at /ws. WSLUA_SOAK_SECONDS=60
-- runs longer, with 2,000 held and 20 churning: every
-- join and leave is told to every member of the chat (about 6 us of server
-- time each), so with 2,000 members more churn would only measure that.
local core = require "wslua.core"
local wslua = require "wslua"
local h = require "helpers"

local long = os.getenv("WSLUA_SOAK_SECONDS") ~= nil
local SECONDS = tonumber(os.getenv("WSLUA_SOAK_SECONDS")) or 12
local HELD = long and 2000 or 400
local CHURNERS = long and 20 or 100
local WARMUP = 3 -- seconds of the same churn before the baseline is taken

local function rss_kib(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  local s = f and f:read("a") or ""
  if f then
    f:close()
  end
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function fd_count(pid)
  local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

local stats = {}
local function count(what, outcome)
  local s = stats[what] or {}
  stats[what] = s
  s[outcome] = (s[outcome] or 0) + 1
end

-- One misdeed each; each returns "ok" when the server did what it should,
-- else a word saying what went wrong (counted, and failing the spec).
local port
local misdeeds = {}

local function raw()
  return wslua.tcp("127.0.0.1", port)
end

-- The opening handshake on a raw stream; returns the bytes after the 101
-- response, or nil. A busy server may take a while: up to 30 s.
local function upgrade(s)
  s:write(h.handshake("/ws"))
  local buf = ""
  while not buf:find("\r\n\r\n", 1, true) do
    local bytes = s:read(30)
    if not bytes then
      return nil
    end
    buf = buf .. bytes
  end
  local head, rest = buf:match("^(.-\r\n\r\n)(.*)$")
  if not head:find("^HTTP/1.1 101") then
    return nil
  end
  return rest
end

-- The server's TCP connections, by state (for a report when they linger).
local function sockets(pid)
  local p = io.popen("ss -tanp 2>/dev/null | grep 'pid=" .. pid .. ",' | awk '{print $1}' | sort | uniq -c")
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+", " "))
end

-- A chatter: joins, says something, hears it come back, leaves with 1000.
function misdeeds.chat()
  local c, err = wslua.connect("ws://127.0.0.1:" .. port .. "/ws")
  if not c then
    return "connect: " .. tostring(err)
  end
  local line = "hello " .. math.random(1e9)
  c:send(line)
  local deadline = core.now() + 30 -- a loaded machine (ASan, ctest -j) lags
  while core.now() < deadline do
    local msg = c:receive()
    if msg == nil then
      return "closed early"
    end
    if msg:find(line, 1, true) then
      c:close(1000)
      return "ok"
    end
  end
  c:close()
  return "no echo"
end

-- Drops the TCP connection halfway through a frame.
function misdeeds.drop_mid_frame()
  local s = raw()
  if not s or not upgrade(s) then
    return "no upgrade"
  end
  local frame = h.frame(1, ("x"):rep(math.random(10, 3000)))
  s:write(frame:sub(1, math.random(1, #frame - 1)))
  s:close()
  return "ok"
end

-- Drops it halfway through the opening handshake.
function misdeeds.drop_mid_handshake()
  local s = raw()
  if not s then
    return "no connect"
  end
  local hs = h.handshake("/ws")
  s:write(hs:sub(1, math.random(1, #hs - 1)))
  s:close()
  return "ok"
end

-- Half-closes (sends FIN, keeps the socket): the server must close its side.
function misdeeds.half_close()
  local s = raw()
  if not s then
    return "no connect"
  end
  if math.random() < 0.5 and not upgrade(s) then
    return "no upgrade"
  end
  s:shutdown()
  local _, err = s:read_all(10)
  s:close()
  return err == "closed" and "ok" or "server kept it open"
end

-- Drips the request a byte or two at a time, then drops it.
function misdeeds.slow_drip()
  local s = raw()
  if not s then
    return "no connect"
  end
  local hs = h.handshake("/ws")
  local stop = math.random(10, #hs - 1)
  for i = 1, stop, 2 do
    if not s:write(hs:sub(i, i + 1)) then
      break
    end
    wslua.sleep(0.02)
  end
  s:close()
  return "ok"
end

-- Announces a frame over max_message (1 MiB): 1009.
function misdeeds.oversized()
  local s = raw()
  local rest = s and upgrade(s)
  if not rest then
    return "no upgrade"
  end
  s:write(string.pack(">BBI8", 0x82, 0xFF, 2 * 1024 * 1024) .. "\1\2\3\4" .. ("z"):rep(1000))
  local code = h.read_until_close(s, rest)
  s:close()
  return code == 1009 and "ok" or "close " .. tostring(code)
end

-- Text that is not UTF-8: 1007.
function misdeeds.bad_utf8()
  local s = raw()
  local rest = s and upgrade(s)
  if not rest then
    return "no upgrade"
  end
  s:write(h.frame(1, "caf\xc3\x28 \xed\xa0\x80"))
  local code = h.read_until_close(s, rest)
  s:close()
  return code == 1007 and "ok" or "close " .. tostring(code)
end

-- Bytes that are not HTTP: 400.
function misdeeds.garbage()
  local s = raw()
  if not s then
    return "no connect"
  end
  local junk = {}
  for i = 1, math.random(1, 200) do
    junk[i] = string.char(math.random(0, 255))
  end
  s:write("\1" .. table.concat(junk) .. "\r\n\r\n")
  local answer = s:read_all(10)
  s:close()
  return answer:find("^HTTP/1.1 400") and "ok" or "answer " .. answer:sub(1, 20)
end

local names = {}
for name in pairs(misdeeds) do
  names[#names + 1] = name
end
table.sort(names)

-- What each churner is doing now, and since when (to name a stuck one).
local doing = {}

-- Churns until the deadline; returns when done.
local function churner(id, deadline, done)
  while core.now() < deadline do
    local name = names[math.random(#names)]
    doing[id] = { name, core.now() }
    local ok, outcome = pcall(misdeeds[name])
    count(name, ok and outcome or ("raised: " .. tostring(outcome)))
    doing[id] = nil
    wslua.sleep(math.random() * 0.05)
  end
  done()
end

local function stuck()
  local out = {}
  for id, d in pairs(doing) do
    out[#out + 1] = string.format("#%d %s for %.0f s", id, d[1], core.now() - d[2])
  end
  return "churners stuck: " .. table.concat(out, ", ")
end

-- Connections that stay open through the churn, reading nothing; opened
-- by 20 coroutines at once. Returns them when all are open.
local function hold(n)
  local held, running = {}, 20
  for k = 1, 20 do
    wslua.spawn(function()
      for _ = k, n, 20 do
        local s = raw()
        if s and upgrade(s) then
          s:pause()
          held[#held + 1] = s
        elseif s then
          s:close()
        end
      end
      running = running - 1
    end)
  end
  h.wait_for(function()
    return running == 0
  end, 120)
  return held
end

local function churn(seconds)
  local deadline = core.now() + seconds
  local running = CHURNERS
  for id = 1, CHURNERS do
    wslua.spawn(churner, nil, id, deadline, function()
      running = running - 1
    end)
  end
  h.wait_for(function()
    return running == 0
  end, seconds + 30)
  return running == 0
end

describe("soak", function()
  it(string.format("%d s: %d connections held, %d churning; the server comes back", SECONDS,
    HELD, CHURNERS), function()
    local proc = h.spawn(os.getenv("WSLUA_SOAK_APP") or h.source_dir .. "/examples/chat/app.lua")
    finally(function()
      proc:stop()
    end)
    assert.truthy(proc:alive(), proc:log())
    port = proc.port
    local fd0, rss_cold = fd_count(proc.pid), rss_kib(proc.pid)
    local fd1, rss_warm, rss_peak, fd_peak, held_n

    h.run(function()
      -- Warm up with the same load, let it go, and take the baseline: what
      -- the allocators keep after a first peak is not a leak.
      local held = hold(HELD)
      assert.truthy(churn(WARMUP), stuck())
      for _, s in ipairs(held) do
        s:close()
      end
      h.wait_for(function() return fd_count(proc.pid) <= fd0 end, 15)
      fd1, rss_warm = fd_count(proc.pid), rss_kib(proc.pid)

      held = hold(HELD)
      held_n = #held
      fd_peak = fd_count(proc.pid)
      rss_peak = rss_kib(proc.pid)
      local churned = churn(SECONDS)
      rss_peak = math.max(rss_peak, rss_kib(proc.pid))
      assert.truthy(churned, stuck())
      for _, s in ipairs(held) do
        s:close()
      end
    end, SECONDS + WARMUP + 300)

    -- Everything let go: descriptors back to the start, RSS near it.
    local settle = core.now()
    h.run(function()
      h.wait_for(function() return fd_count(proc.pid) <= fd1 end, 60)
      wslua.sleep(0.5)
    end, 90)
    settle = core.now() - settle
    local fd2, rss_end = fd_count(proc.pid), rss_kib(proc.pid)

    -- Still serving.
    local answer
    h.run(function()
      answer = misdeeds.chat()
    end)

    local total = 0
    local report = {}
    for _, name in ipairs(names) do
      local s = stats[name] or {}
      local parts = {}
      for outcome, n in pairs(s) do
        total = total + n
        parts[#parts + 1] = outcome .. "=" .. n
      end
      table.sort(parts)
      report[#report + 1] = name .. ": " .. table.concat(parts, " ")
    end
    print(string.format("\nsoak: %d s, %d held (%d upgraded), %d churners, %d churned connections",
      SECONDS, HELD, held_n, CHURNERS, total))
    print("  " .. table.concat(report, "\n  "))
    print(string.format("  fds: start %d, warm %d, peak %d, end %d (%.1f s to settle)", fd0, fd1,
      fd_peak, fd2, settle))
    print(string.format("  RSS: start %.1f MiB, warm %.1f, peak %.1f, end %.1f MiB",
      rss_cold / 1024, rss_warm / 1024, rss_peak / 1024, rss_end / 1024))

    assert.truthy(proc:alive(), "the server died")
    assert.equal("ok", answer)
    assert.equal(HELD, held_n)
    for _, name in ipairs(names) do
      local s = stats[name] or {}
      for outcome, n in pairs(s) do
        assert.equal("ok", outcome, string.format("%s: %d times %s", name, n, outcome))
      end
    end
    assert.is_true(total >= (long and 2000 or 500), "only " .. total .. " churned")
    assert.is_true(fd2 <= fd1, string.format("fds: %d after, %d before; sockets: %s", fd2,
      fd1, sockets(proc.pid)))
    -- The bound: after the churn, RSS within 8 MiB (or 10 %) of its level
    -- after the warm-up.
    local bound = math.max(8 * 1024, rss_warm // 10)
    assert.is_true(rss_end - rss_warm <= bound, string.format(
      "RSS %.1f MiB after, %.1f MiB before", rss_end / 1024, rss_warm / 1024))
    -- A graceful stop (and, in an ASan build, no leak reported at exit).
    proc:signal("TERM")
    local exited
    h.run(function()
      exited = proc:wait_exit(20)
    end, 30)
    assert.truthy(exited, "still running 20 s after SIGTERM")
    -- No error in the log; closes only with the codes the misdeeds call for.
    local log = proc:log()
    assert.is_nil(log:match("[^\n]*Sanitizer[^\n]*"))
    assert.is_nil(log:match('[^\n]*"level":"error"[^\n]*'))
    local expected = { ["1007"] = true, ["1009"] = true }
    local codes = {}
    for code in log:gmatch("closing with (%d+)") do
      codes[code] = (codes[code] or 0) + 1
      assert.is_truthy(expected[code], "closed with " .. code)
    end
    for code, n in pairs(codes) do
      print(string.format("  log: closing with %s: %d", code, n))
    end
  end)
end)
