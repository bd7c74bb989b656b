-- Log lines through the core's logger: wslua.log.info("x %d", n), or
-- wslua.log("text") for info.
local core = require "wslua.core"

local log = {}

local function writer(level)
  return function(fmt, ...)
    if select("#", ...) > 0 then
      fmt = string.format(fmt, ...)
    end
    core.log(level, tostring(fmt))
  end
end

for _, level in ipairs { "error", "warn", "info", "debug" } do
  log[level] = writer(level)
end

log.set_level = core.set_log_level
log.level = core.log_level

return setmetatable(log, {
  __call = function(_, ...)
    log.info(...)
  end,
})
