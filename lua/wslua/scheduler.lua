-- The coroutine scheduler. Every handler call runs in a coroutine of its
-- own; a coroutine that waits (for a message body, a timer, a connection)
-- parks itself somewhere and is resumed exactly once by whoever holds it:
-- with its result, or with nil, "closed" when its connection went away.
local core = require "wslua.core"
local log = require "wslua.log"

local scheduler = {}

-- coroutine -> function called with the traceback if it fails (or false)
local tasks = setmetatable({}, { __mode = "k" })

local function finish(co, ok, err)
  if coroutine.status(co) ~= "dead" then
    return
  end
  local on_error = tasks[co]
  tasks[co] = nil
  if not ok then
    local trace = debug.traceback(co, tostring(err))
    if on_error then
      on_error(trace)
    else
      log.error("handler failed: %s", trace)
    end
  end
end

-- Resumes a parked coroutine with these values.
function scheduler.resume(co, ...)
  finish(co, coroutine.resume(co, ...))
end

-- Runs fn(...) in a new coroutine, now, until it first waits or ends.
-- on_error(traceback) runs if it fails.
function scheduler.spawn(fn, on_error, ...)
  local co = coroutine.create(fn)
  tasks[co] = on_error or false
  scheduler.resume(co, ...)
  return co
end

-- Parks the running coroutine; returns what it is resumed with.
function scheduler.wait()
  local co, main = coroutine.running()
  if main or not coroutine.isyieldable() then
    error("this call waits, so it can only be made inside a handler", 3)
  end
  return coroutine.yield()
end

function scheduler.sleep(seconds)
  assert(type(seconds) == "number" and seconds >= 0,
    "sleep: seconds must be a non-negative number")
  local co = coroutine.running()
  core.timer(seconds, 0, function()
    scheduler.resume(co)
  end)
  scheduler.wait()
end

-- Calls fn in a new coroutine after seconds; returns the timer.
function scheduler.after(seconds, fn)
  return core.timer(seconds, 0, function()
    scheduler.spawn(fn)
  end)
end

-- Calls fn in a new coroutine every seconds; returns the timer (:stop()).
function scheduler.every(seconds, fn)
  assert(type(seconds) == "number" and seconds > 0,
    "every: seconds must be a positive number")
  return core.timer(seconds, seconds, function()
    scheduler.spawn(fn)
  end)
end

return scheduler
