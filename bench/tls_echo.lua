-- Echo load over ws:// or wss://, for the TLS figure (bench/loadgen has no
-- TLS): the same driver for both schemes, so that only TLS differs. N
-- connections (wslua's own client, from this process) each keep one
-- message in flight: every echo that comes back is answered by the next
-- message. Prints one line of key=value results, as loadgen does:
-- msg_per_s over the measured seconds and, with --cpu, the busy share of
-- that core (/proc/stat, kernel work included) and its µs per message.
--
--   lua5.4 bench/tls_echo.lua URL [--ca FILE] [-c N] [-s BYTES] [-d SECS]
--     [-w SECS] [--cpu N] [--build DIR]
--
-- e.g. against build/wslua examples/echo/app.lua --tls-cert cert.pem
-- --tls-key key.pem: lua5.4 bench/tls_echo.lua wss://127.0.0.1:9001/ --ca
-- cert.pem. Run from anywhere; --build defaults to build/ beside bench/.
local source = (arg[0]:match("^(.*)/bench/[^/]*$") or ".")

local opt = { conns = 100, size = 32, secs = 5, warm = 1, build = source .. "/build" }
local i = 1
while arg[i] do
  local a, v = arg[i], arg[i + 1]
  if a == "--ca" then
    opt.ca = v
  elseif a == "-c" then
    opt.conns = assert(math.tointeger(tonumber(v)), "-c N")
  elseif a == "-s" then
    opt.size = assert(math.tointeger(tonumber(v)), "-s BYTES")
  elseif a == "-d" then
    opt.secs = assert(tonumber(v), "-d SECS")
  elseif a == "-w" then
    opt.warm = assert(tonumber(v), "-w SECS")
  elseif a == "--cpu" then
    opt.cpu = assert(math.tointeger(tonumber(v)), "--cpu N")
  elseif a == "--build" then
    opt.build = v
  elseif not opt.url and not a:find("^%-") then
    opt.url, i = a, i - 1
  else
    io.stderr:write("tls_echo.lua: unknown or incomplete option ", a, "\n")
    os.exit(2)
  end
  i = i + 2
end
if not opt.url then
  io.stderr:write("usage: lua5.4 bench/tls_echo.lua URL [--ca FILE] [-c N] [-s BYTES] "
    .. "[-d SECS] [-w SECS] [--cpu N] [--build DIR]\n")
  os.exit(2)
end
package.path = source .. "/lua/?.lua;" .. source .. "/lua/?/init.lua;" .. package.path
package.cpath = opt.build .. "/lua/?.so;" .. package.cpath

local wslua = require "wslua"
local core = require "wslua.core"

-- Busy and total ticks of one core, from /proc/stat.
local function cpu_ticks(n)
  local f = assert(io.open("/proc/stat"))
  local text = f:read("a")
  f:close()
  local t = {}
  for v in text:match("\ncpu" .. n .. " ([^\n]+)"):gmatch("%d+") do
    t[#t + 1] = tonumber(v)
  end
  local total = 0
  for _, v in ipairs(t) do
    total = total + v
  end
  return total - t[4] - (t[5] or 0), total -- idle and iowait are not busy
end

local payload = ("x"):rep(opt.size)
local counting, stopping = false, false
local msgs, errors, open = 0, 0, 0
local result

wslua.run(function()
  local clients = {}
  for n = 1, opt.conns do
    local c, err = wslua.connect(opt.url, { ca = opt.ca, max_message = opt.size + 1024 })
    if not c then
      io.stderr:write("tls_echo.lua: connection ", n, ": ", tostring(err), "\n")
      errors = errors + 1
    else
      clients[#clients + 1] = c
    end
  end
  open = #clients
  local running = #clients
  for _, c in ipairs(clients) do
    wslua.spawn(function()
      while not stopping do
        if not c:send(payload) then
          errors = errors + 1
          break
        end
        local got = c:receive()
        if got ~= payload then
          errors = errors + 1
          break
        end
        if counting then
          msgs = msgs + 1
        end
      end
      running = running - 1
    end)
  end
  wslua.sleep(opt.warm)
  local busy0, total0
  if opt.cpu then
    busy0, total0 = cpu_ticks(opt.cpu)
  end
  counting = true
  local started = core.now()
  wslua.sleep(opt.secs)
  counting = false
  local secs = core.now() - started
  local busy1, total1
  if opt.cpu then
    busy1, total1 = cpu_ticks(opt.cpu)
  end
  stopping = true
  while running > 0 do
    wslua.sleep(0.01)
  end
  for _, c in ipairs(clients) do
    c:close()
  end
  result = string.format("mode=echo conns=%d open=%d size=%d secs=%.3f msgs=%d msg_per_s=%.0f errors=%d",
    opt.conns, open, opt.size, secs, msgs, msgs / secs, errors)
  if opt.cpu then
    local tick_us = 1e6 / 100 -- USER_HZ
    result = result .. string.format(" core_busy=%.3f core_us_per_msg=%.3f",
      (busy1 - busy0) / (total1 - total0), (busy1 - busy0) * tick_us / math.max(msgs, 1))
  end
  wslua.sleep(0.2)
end, opt.warm + opt.secs + 60)
print(result)
