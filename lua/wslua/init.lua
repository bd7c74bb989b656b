-- require "wslua": the API apps are written against (see README.md).
local core = require "wslua.core"
local log = require "wslua.log"
local scheduler = require "wslua.scheduler"
local Endpoint = require "wslua.endpoint"
local Host = require "wslua.host"
local Root = require "wslua.static"
local Router = require "wslua.router"
local topics = require "wslua.topics"

local wslua = {
  version = core.version,
  log = log,
  sleep = scheduler.sleep,
  after = scheduler.after,
  every = scheduler.every,
  spawn = scheduler.spawn,
  connect = require "wslua.connect",
  tcp = require "wslua.tcp",
}

-- The constructors themselves, not wrappers: a misuse error they raise at
-- level 2 then points at the app's line.
wslua.router = Router.new
wslua.websocket = Endpoint.new
wslua.host = Host.new
wslua.root = Root.new

-- wslua.publish(topic, payload [, "binary"]): to every subscriber of the
-- topic, whichever endpoint it subscribed through; from any handler, HTTP
-- ones included. Returns how many clients it was queued for.
function wslua.publish(topic, payload, mode)
  return topics.checked_publish(topic, payload, mode, 0, 2)
end

-- How many clients are subscribed to the topic.
function wslua.subscribers(topic)
  return core.subscribers(topic)
end

-- wslua.worker() -> this worker's number (from 1), how many workers run
-- (--workers N; 1, 1 without).
function wslua.worker()
  return core.worker()
end

-- What carries topics and broadcasts beyond this worker, as this worker
-- sees it: { worker, workers, redis = "connecting"|"up"|"down"|nil,
-- redis_dropped, redis_channels, bus_dropped }.
function wslua.pubsub_status()
  return require("wslua.pubsub").status()
end

-- wslua.metrics(): a route handler serving the counters (connections,
-- messages, bytes, close codes, errors, reloads) in the Prometheus text
-- format: router:get("/metrics", wslua.metrics()).
function wslua.metrics()
  return require("wslua.metrics").handler()
end

-- Serves hosts in this process (as `wslua app.lua` does); returns the
-- running server (:port(), :url(path), :stop(on_done)).
function wslua.serve(hosts, overrides)
  return require("wslua.server").start(hosts, overrides)
end

-- Runs fn(...) in a coroutine and the event loop until it returns (or
-- timeout seconds pass: then it raises). For scripts and tests that drive
-- wslua from outside a server.
function wslua.run(fn, timeout)
  timeout = timeout or 30
  -- core.now() first: it brings the loop's clock up to date, which stood
  -- still since the last run, before fn arms timers from it.
  local deadline = core.now() + timeout
  local done, ok, err, turning = false, true, nil, false
  local function finish()
    done = true
    -- Ending inside a turn of the loop (in a timer that was due when the
    -- turn began, say), stop it: else the turn waits for the next event,
    -- which may be the guard.
    if turning then
      core.stop()
    end
  end
  scheduler.spawn(function()
    fn()
    finish()
  end, function(trace)
    ok, err = false, trace
    finish()
  end)
  local guard = core.timer(timeout, 0, function() end)
  while not done and core.now() < deadline do
    turning = true
    core.run_once()
    turning = false
  end
  guard:stop()
  if not ok then
    error(err, 0)
  end
  if not done then
    error("wslua.run: not done after " .. timeout .. "s", 0)
  end
end

return wslua
