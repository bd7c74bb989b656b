-- The coroutine scheduler. Every handler call runs in a coroutine of its
-- own; a coroutine that waits (for a message body, a timer, a connection)
-- parks itself somewhere and is resumed exactly once by whoever holds it:
-- with its result, or with nil, "closed" when its connection went away.
local core = require "wslua.core"
local log = require "wslua.log"

local scheduler = {}

local resume = core.resume -- coroutine.resume, holding a handler budget

-- Parked coroutines (waiting to be resumed): what to call if they fail
-- (see failed) and the seconds they may run each time they are resumed,
-- before they wait again (the handler budget; see src/lua/budget.c). A
-- coroutine that runs now is in neither: its caller holds both.
local on_errors = setmetatable({}, { __mode = "k" })
local budgets = setmetatable({}, { __mode = "k" })

-- The default budget of a host's handlers (host option handler_budget).
scheduler.default_budget = 0.5

-- Handler calls run in pooled coroutines (core.call, src/lua/dispatch.c):
-- a handler that returns gives its coroutine back; one that fails leaves it
-- dead; one that waits keeps it. This is the body of such a coroutine: it
-- calls fn(...), then idle() yields IDLE and calls what the next resume
-- brings. Both are tail calls, so the stack does not grow and an idle
-- coroutine holds no arguments of its last call.
local IDLE = core.IDLE
local worker
local function idle()
  return worker(coroutine.yield(IDLE))
end
function worker(fn, ...)
  fn(...)
  return idle()
end

-- A coroutine failed with err: on_error gets the traceback. on_error is a
-- function, or an object whose _failed method takes it (a client: one
-- table per call, not one closure per client); false or nil: logged.
local function failed(co, on_error, err)
  local trace = debug.traceback(co, tostring(err))
  -- Let go of what the dead coroutine's stack holds (a handler that ran
  -- out of memory may hold most of it) before the error is handled.
  coroutine.close(co)
  if type(on_error) == "function" then
    on_error(trace)
  elseif on_error then
    on_error:_failed(trace)
  else
    log.error("handler failed: %s", trace)
  end
end

-- After co ran with this budget and on_error: parked if it waits,
-- forgotten if it ended (a pooled one that came back from waiting too)
-- or failed. core.call comes here for all but a call that returned.
local function settle(co, budget, on_error, ok, err)
  if ok then
    if err ~= IDLE and coroutine.status(co) ~= "dead" then
      on_errors[co] = on_error or false
      budgets[co] = budget
    end
  else
    failed(co, on_error, err)
  end
end

core.dispatch_init { worker = worker, settle = settle }

-- Resumes a parked coroutine with these values.
function scheduler.resume(co, ...)
  local on_error = on_errors[co]
  if on_error == nil then
    -- Not parked by the scheduler: running, dead, or not ours.
    local ok, err = resume(co, nil, ...)
    if not ok then
      log.error("handler failed: %s", debug.traceback(co, tostring(err)))
    end
    return
  end
  local budget = budgets[co]
  on_errors[co], budgets[co] = nil, nil
  settle(co, budget, on_error, resume(co, budget, ...))
end

-- The budget a coroutine spawned now would get: that of the handler
-- running, or of the server event being handled (within).
scheduler.budget = core.budget

-- Runs fn(...) in a new coroutine, now, until it first waits or ends.
-- on_error(traceback) runs if it fails.
function scheduler.spawn(fn, on_error, ...)
  local co = coroutine.create(fn)
  local budget = core.budget()
  settle(co, budget, on_error, resume(co, budget, ...))
  return co
end

-- scheduler.call(budget, on_error, fn, ...): as spawn, for the server's own
-- handler calls, in a coroutine from the pool, under budget (seconds or
-- nil): nobody else may hold it after the call returns, so it is not
-- returned. on_error as in failed (a function or an object with _failed).
scheduler.call = core.call

-- Calls fn(...) (not in a coroutine of its own) so that the coroutines it
-- spawns get the budget seconds (nil or 0: none); returns what fn returns.
-- The server's event handlers run this way.
function scheduler.within(seconds, fn, ...)
  local prev = core.set_budget(seconds)
  local ok, a, b = pcall(fn, ...)
  core.set_budget(prev)
  if not ok then
    error(a, 0)
  end
  return a, b
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

-- Calls fn in a new coroutine after seconds; returns the timer. The
-- coroutine has the budget of the code that set the timer.
function scheduler.after(seconds, fn)
  local budget = scheduler.budget()
  return core.timer(seconds, 0, function()
    scheduler.within(budget, scheduler.spawn, fn)
  end)
end

-- Calls fn in a new coroutine every seconds; returns the timer (:stop()).
function scheduler.every(seconds, fn)
  assert(type(seconds) == "number" and seconds > 0,
    "every: seconds must be a positive number")
  local budget = scheduler.budget()
  return core.timer(seconds, seconds, function()
    scheduler.within(budget, scheduler.spawn, fn)
  end)
end

return scheduler
