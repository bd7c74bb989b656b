-- Log lines through the core's logger: wslua.log.info("x %d", n), or
-- wslua.log("text") for info; wslua.log.fields for lines with fields.
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

-- A structured line: wslua.log.fields("info", "login", "user", name,
-- "ms", 12.5). JSON lines get the fields as typed members
-- ({"msg":"login","user":"ann","ms":12.5}), text as key=value after the
-- message. A nil value leaves its field out. The access lines use it.
function log.fields(level, msg, ...)
  core.log(level, msg, ...)
end

log.set_level = core.set_log_level
log.level = core.log_level

-- log.enabled(level): whether lines of this level are written now (the
-- access lines check it before they gather their fields).
log.enabled = core.log_enabled

return setmetatable(log, {
  __call = function(_, ...)
    log.info(...)
  end,
})
