-- The wslua binary: options, load errors, the app's folder on the path, a
-- busy port, graceful stop on SIGTERM and SIGINT, and the echo example.
local wslua = require "wslua"
local h = require "helpers"
local http = require "helpers.http"

local quote = h.quote

local slurp = h.slurp

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- A temporary folder with these files (name -> text); returns its path.
local function make_dir(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. quote(dir)))
  for name, text in pairs(files) do
    write(dir .. "/" .. name, text)
  end
  return dir
end

local function remove_dir(dir)
  if dir and dir:match("^/tmp/") then
    os.execute("rm -rf " .. quote(dir))
  end
end

-- Runs the binary to the end (at most 10 s); returns the exit code, its
-- stdout and its stderr.
local function run_cli(args)
  local out, err = os.tmpname(), os.tmpname()
  local _, _, code = os.execute(string.format("timeout 10 %s %s >%s 2>%s",
    quote(h.bin), args, out, err))
  local stdout, stderr = slurp(out), slurp(err)
  os.remove(out)
  os.remove(err)
  return code, stdout, stderr
end

-- Starts the binary in the background with args ("{port}" becomes a free
-- port) and waits until it listens or exits. Unlike h.spawn, a shell stays
-- to reap it, so its exit code is known: proc:exit_code().
local function launch(args)
  local port = h.free_port()
  local log, status = os.tmpname(), os.tmpname()
  os.remove(status)
  args = args:gsub("{port}", tostring(port))
  local p = io.popen(string.format("(%s %s >%s 2>&1 & echo $!; wait $!; echo $? >%s) 2>/dev/null &",
    quote(h.bin), args, log, status))
  local pid = tonumber(p:read("l"))
  p:close()
  local proc = { pid = pid, port = port }
  function proc:log()
    return slurp(log) or ""
  end
  function proc:exit_code()
    local s = slurp(status)
    return s and tonumber(s:match("%d+"))
  end
  function proc:signal(sig)
    os.execute(string.format("kill -%s %d 2>/dev/null", sig, pid))
  end
  function proc:wait_exit(timeout)
    return h.wait_for(function()
      return self:exit_code() ~= nil
    end, timeout or 10)
  end
  function proc:stop()
    if not self:exit_code() then
      self:signal("KILL")
    end
    os.remove(log)
    os.remove(status)
  end
  h.run(function()
    h.wait_for(function()
      return proc:log():find("listening on", 1, true) or proc:exit_code()
    end, 10)
  end)
  return proc
end

local HOST_APP = [[
local wslua = require "wslua"
return wslua.host { listen = "127.0.0.1:1", function(req, res)
  res:send("app at " .. req.path)
end }
]]

describe("the wslua binary", function()
  it("prints the version with --version and exits 0", function()
    local code, out, err = run_cli("--version")
    assert.equal(0, code)
    assert.equal("wslua " .. wslua.version .. "\n", out)
    assert.equal("", err)
  end)

  it("prints the usage with --help and -h and exits 0", function()
    for _, opt in ipairs { "--help", "-h" } do
      local code, out = run_cli(opt)
      assert.equal(0, code)
      assert.matches("^usage: wslua", out)
      assert.matches("%-%-listen HOST:PORT", out)
    end
  end)

  it("prints the usage on stderr and fails without an app", function()
    local code, out, err = run_cli("")
    assert.not_equal(0, code)
    assert.equal("", out)
    assert.matches("^usage: wslua", err)
  end)

  it("fails on an unknown option, naming it", function()
    local code, out, err = run_cli("--lisen 127.0.0.1:1 app.lua")
    assert.not_equal(0, code)
    assert.equal("", out)
    assert.matches("unknown option %-%-lisen", err)
    code, _, err = run_cli("app.lua --listen")
    assert.not_equal(0, code)
    assert.matches("%-%-listen needs a value", err)
    code, _, err = run_cli("--log-level loud app.lua")
    assert.not_equal(0, code)
    assert.matches("%-%-log%-level must be", err)
  end)

  -- While live data grows (a burst of connections that stay), Lua 5.4's
  -- generational collector falls back to full collections spaced by its
  -- pause; at the default 200 the garbage may reach the live heap's size,
  -- and 10,000 idle connections held ~200 B more RSS each (issue 6).
  it("runs the app's VM with a collector pause of at most 120", function()
    local dir = make_dir { ["app.lua"] = [[
      local pause = collectgarbage("setpause", 200)
      collectgarbage("setpause", pause)
      io.write("pause ", pause, "\n")
      os.exit(0)
    ]] }
    local code, out = run_cli(quote(dir .. "/app.lua"))
    remove_dir(dir)
    assert.equal(0, code)
    local pause = tonumber(out:match("pause (%d+)"))
    assert.is_number(pause)
    assert.is_true(pause <= 120, "pause " .. tostring(pause))
  end)

  describe("with an app that cannot load", function()
    local dir
    setup(function()
      dir = make_dir {
        ["syntax.lua"] = "local wslua = require 'wslua'\nlocal x = = 1\nreturn x\n",
        ["raises.lua"] = "local wslua = require 'wslua'\n\nerror('no config here')\n",
        ["nothing.lua"] = "local wslua = require 'wslua'\nlocal x = 1\n",
        ["number.lua"] = "return 42\n",
        ["badopt.lua"] = "local wslua = require 'wslua'\n"
          .. "local host = wslua.host { listn = '127.0.0.1:1' }\nreturn host\n",
      }
    end)
    teardown(function()
      remove_dir(dir)
    end)

    it("reports a syntax error with file and line and fails", function()
      local code, _, err = run_cli(quote(dir .. "/syntax.lua"))
      assert.not_equal(0, code)
      assert.matches("syntax%.lua:2:", err)
      assert.matches("unexpected symbol", err)
    end)

    it("reports an error raised while loading with file and line and fails", function()
      local code, _, err = run_cli(quote(dir .. "/raises.lua"))
      assert.not_equal(0, code)
      assert.matches("raises%.lua:3: no config here", err)
    end)

    it("says clearly when the app returns nothing or no host", function()
      local code, _, err = run_cli(quote(dir .. "/nothing.lua"))
      assert.not_equal(0, code)
      assert.matches("returned nothing", err)
      assert.matches("wslua%.host", err)
      code, _, err = run_cli(quote(dir .. "/number.lua"))
      assert.not_equal(0, code)
      assert.matches("must return wslua%.host", err)
    end)

    it("reports a misspelt option at the app's line", function()
      local code, _, err = run_cli(quote(dir .. "/badopt.lua"))
      assert.not_equal(0, code)
      assert.matches("badopt%.lua:2: unknown option 'listn' in host options", err)
    end)

    it("reports an app file that does not exist", function()
      local code, _, err = run_cli(quote(dir .. "/missing.lua"))
      assert.not_equal(0, code)
      assert.matches("missing%.lua", err)
    end)
  end)

  it("fails with one line when the port is in use", function()
    local dir = make_dir { ["app.lua"] = HOST_APP }
    local busy = h.serve(wslua.host { function(_, res)
      res:send("")
    end })
    local port = busy:port()
    local code, out, err = run_cli(string.format("%s --listen 127.0.0.1:%d",
      quote(dir .. "/app.lua"), port))
    h.run(function()
      h.stop(busy)
    end)
    remove_dir(dir)
    assert.equal(1, code)
    assert.equal("", out)
    local lines = {}
    for line in err:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    assert.equal(1, #lines, err)
    assert.matches("127%.0%.0%.1:" .. port .. ": address already in use", lines[1])
  end)

  it("writes JSON log lines with --log-format json, text with --log-format text", function()
    local dir = make_dir { ["app.lua"] = HOST_APP }
    local busy = h.serve(wslua.host { function(_, res)
      res:send("")
    end })
    local port = busy:port()
    local _, _, json_err = run_cli(string.format("%s --log-format json --listen 127.0.0.1:%d",
      quote(dir .. "/app.lua"), port))
    local _, _, text_err = run_cli(string.format("--log-format text %s --listen 127.0.0.1:%d",
      quote(dir .. "/app.lua"), port))
    local code, _, bad_err = run_cli("--log-format xml " .. quote(dir .. "/app.lua"))
    h.run(function()
      h.stop(busy)
    end)
    remove_dir(dir)
    local line = assert(json_err:match("[^\n]+"))
    local entry = require("cjson").decode(line)
    assert.equal("error", entry.level)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", entry.time)
    assert.matches("address already in use", entry.msg)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z error .*address already in use", text_err)
    assert.is_not.equal(0, code)
    assert.matches("--log-format must be text or json", bad_err, 1, true)
  end)

  describe("with a served app", function()
    local dir
    setup(function()
      dir = make_dir {
        ["app.lua"] = [[
local wslua = require "wslua"
local handler = require "handler"
local Chat = {}
function Chat:on_start(endpoint) self.endpoint = endpoint end
function Chat:on_open(client) client:send("Heyho!") end
function Chat:on_stop() self.endpoint:send(nil, "Byebye!") end
return wslua.host { listen = "127.0.0.1:1",
  wslua.router():get("/ws", wslua.websocket(Chat)):get("/", handler.home) }
]],
        ["handler.lua"] = [[
return { home = function(req, res) res:send("home from handler.lua") end }
]],
      }
    end)
    teardown(function()
      remove_dir(dir)
    end)

    local function get_home(proc)
      local body
      h.run(function()
        local s = assert(wslua.tcp("127.0.0.1", proc.port))
        s:write(http.request("GET", "/"))
        body = assert(http.reader(s):response()).body
        s:close()
      end)
      return body
    end

    it("finds require \"handler\" beside app.lua, options after the app", function()
      local proc = launch(quote(dir .. "/app.lua") .. " --listen 127.0.0.1:{port} --log-level info")
      finally(function() proc:stop() end)
      assert.is_nil(proc:exit_code(), proc:log())
      assert.equal("home from handler.lua", get_home(proc))
    end)

    it("takes the options before the app too", function()
      local proc = launch("--log-level info --listen 127.0.0.1:{port} " .. quote(dir .. "/app.lua"))
      finally(function() proc:stop() end)
      assert.is_nil(proc:exit_code(), proc:log())
      assert.equal("home from handler.lua", get_home(proc))
    end)

    for _, sig in ipairs { "TERM", "INT" } do
      it("on SIG" .. sig .. " says goodbye, closes clients with 1001 and exits 0", function()
        local proc = launch(quote(dir .. "/app.lua") .. " --listen 127.0.0.1:{port}")
        finally(function() proc:stop() end)
        assert.is_nil(proc:exit_code(), proc:log())
        h.run(function()
          local url = "ws://127.0.0.1:" .. proc.port .. "/ws"
          local a = assert(wslua.connect(url))
          local b = assert(wslua.connect(url))
          -- both are open on the server's side
          assert.equal("Heyho!", a:receive())
          assert.equal("Heyho!", b:receive())
          proc:signal(sig)
          for _, c in ipairs { a, b } do
            assert.same({ "Byebye!", false }, { c:receive() })
            assert.same({ nil, "closed" }, { c:receive() })
            assert.equal(1001, c.close_code)
          end
          assert.truthy(proc:wait_exit(5), "still running after 5 s")
        end)
        assert.equal(0, proc:exit_code())
        assert.matches("stopping", proc:log())
      end)
    end
  end)

  it("runs examples/echo/app.lua with --listen", function()
    local app = h.source_dir .. "/examples/echo/app.lua"
    local proc = launch(quote(app) .. " --listen 127.0.0.1:{port}")
    finally(function() proc:stop() end)
    assert.is_nil(proc:exit_code(), proc:log())
    assert.matches("listening on 127%.0%.0%.1:" .. proc.port, proc:log())
    h.run(function()
      local c = assert(wslua.connect("ws://127.0.0.1:" .. proc.port .. "/"))
      c:send("hello, echo")
      assert.same({ "hello, echo", false }, { c:receive() })
      c:send("\0\1\2\255", "binary")
      assert.same({ "\0\1\2\255", true }, { c:receive() })
      c:close()
    end)
    proc:signal("TERM")
    h.run(function()
      assert.truthy(proc:wait_exit(5))
    end)
    assert.equal(0, proc:exit_code())
  end)
end)
