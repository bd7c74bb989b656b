-- The coroutine scheduler. Every handler call runs in a coroutine of its
-- own; a coroutine that waits (for a message body, a timer, a connection)
-- parks itself somewhere and is resumed exactly once by whoever holds it:
-- with its result, or with nil, "closed" when its connection went away.
local core = require "wslua.core"
local log = require "wslua.log"

local scheduler = {}

-- coroutine -> function called with the traceback if it fails (or false)
local tasks = setmetatable({}, { __mode = "k" })

-- coroutine -> seconds it may run each time it is resumed, before it waits
-- again (the handler budget; see src/lua/budget.c). A coroutine spawned
-- while a server event is handled (scheduler.within) gets that listener's
-- budget; one spawned by a handler, its parent's. Scripts and specs driving
-- wslua from outside a server (wslua.run) have none.
local budgets = setmetatable({}, { __mode = "k" })
local current_budget = nil

-- The default budget of a host's handlers (host option handler_budget).
scheduler.default_budget = 0.5

-- Idle coroutines, each ready to run one more handler call (call takes
-- one before it creates one). A handler that returns gives its coroutine
-- back; one that fails leaves it dead; one that waits keeps it.
local pool, pooled = {}, 0
local POOL_MAX = 64
local IDLE = {} -- what a pooled coroutine yields when its call returns

-- The body of a pooled coroutine: calls fn(...), then idle() yields IDLE
-- and calls what the next resume brings. Both are tail calls, so the stack
-- does not grow and an idle coroutine holds no arguments of its last call.
local worker
local function idle()
  return worker(coroutine.yield(IDLE))
end
function worker(fn, ...)
  fn(...)
  return idle()
end

local function finish(co, ok, err)
  if ok and err == IDLE then
    tasks[co] = nil
    budgets[co] = nil
    if pooled < POOL_MAX then
      pooled = pooled + 1
      pool[pooled] = co
    end
    return
  end
  if coroutine.status(co) ~= "dead" then
    return
  end
  local on_error = tasks[co]
  tasks[co] = nil
  budgets[co] = nil
  if not ok then
    local trace = debug.traceback(co, tostring(err))
    -- Let go of what the dead coroutine's stack holds (a handler that ran
    -- out of memory may hold most of it) before the error is handled.
    coroutine.close(co)
    if on_error then
      on_error(trace)
    else
      log.error("handler failed: %s", trace)
    end
  end
end

local function leave(running, budget, started, co, ok, err)
  core.budget_leave(running, budget, started)
  finish(co, ok, err)
end

-- Resumes a parked coroutine with these values.
function scheduler.resume(co, ...)
  local running, budget, started = core.budget_enter(co, budgets[co])
  leave(running, budget, started, co, coroutine.resume(co, ...))
end

-- The budget a coroutine spawned now would get.
function scheduler.budget()
  local running, main = coroutine.running()
  return current_budget or (not main and budgets[running]) or nil
end

-- Runs fn(...) in a new coroutine, now, until it first waits or ends.
-- on_error(traceback) runs if it fails.
function scheduler.spawn(fn, on_error, ...)
  local co = coroutine.create(fn)
  tasks[co] = on_error or false
  budgets[co] = scheduler.budget()
  scheduler.resume(co, ...)
  return co
end

-- As spawn, for the server's own handler calls (one per message), in a
-- coroutine from the pool: nobody else may hold it after the call returns,
-- so it is not returned. The budget is the same as spawn's, and held each
-- time the call is resumed (budget_enter clears a hook left from before).
function scheduler.call(fn, on_error, ...)
  local co
  if pooled > 0 then
    co = pool[pooled]
    pool[pooled] = nil
    pooled = pooled - 1
  else
    co = coroutine.create(worker)
  end
  tasks[co] = on_error or false
  budgets[co] = scheduler.budget()
  scheduler.resume(co, fn, ...)
end

-- Calls fn(...) (not in a coroutine of its own) so that the coroutines it
-- spawns get the budget seconds (nil or 0: none); returns what fn returns.
-- The server's event handlers run this way.
function scheduler.within(seconds, fn, ...)
  local prev = current_budget
  current_budget = seconds ~= 0 and seconds or nil
  local ok, a, b = pcall(fn, ...)
  current_budget = prev
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
