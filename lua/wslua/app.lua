-- The command-line host's Lua half: load the app file, serve what it
-- returns, reload it on SIGHUP (and on a save with --watch), stop on
-- SIGINT/SIGTERM. main.c calls main(options).
local core = require "wslua.core"
local log = require "wslua.log"
local Server = require "wslua.server"
local reload = require "wslua.reload"

local app = {}

-- Loads an app file; returns its hosts, or nil and the error (with file and
-- line, as Lua reports it).
function app.load(path)
  local chunk, err = loadfile(path)
  if not chunk then
    return nil, err
  end
  local ok, result = xpcall(chunk, debug.traceback)
  if not ok then
    return nil, result
  end
  if result == nil then
    return nil, path .. ": the app returned nothing (it must return wslua.host{...})"
  end
  return result
end

-- options: app (path), listen ("HOST:PORT" or nil), tls_cert and tls_key
-- (files, or nil), watch (boolean). Returns the exit code.
function app.main(options)
  if core.realpath(options.app) then
    reload.track(options.app)
  end
  -- --dev: every load (reloads too) puts the dev console in the hosts.
  local load = options.dev and require("wslua.dev").loader(app.load) or app.load
  local hosts, err = load(options.app)
  if not hosts then
    log.error("cannot load %s: %s", options.app, err)
    return 1
  end
  local tls
  if options.tls_cert then
    tls = { cert = options.tls_cert, key = options.tls_key }
  end
  local ok, server = pcall(Server.start, hosts, { listen = options.listen, tls = tls })
  if not ok then
    log.error("%s", tostring(server))
    return 1
  end
  if options.dev then
    log.warn("dev console at %s: not for production", (server:url("/_wslua"):gsub("^ws", "http")))
  end
  local reloader = reload.new(server, options.app, load)
  core.signal("SIGHUP", function()
    reloader:reload("SIGHUP")
  end)
  if options.watch then
    reloader:watch()
    log.info("watching %s and the Lua files it loads from its folder", options.app)
  end
  local function shutdown(signum)
    reloader:close()
    if server.stopping then
      log.warn("second signal: exiting now")
      core.stop()
      return
    end
    log.info("signal %d: stopping", signum)
    server:stop(function()
      core.stop()
    end)
  end
  core.signal("SIGINT", shutdown)
  core.signal("SIGTERM", shutdown)
  core.run()
  log.info("stopped")
  return 0
end

return app
