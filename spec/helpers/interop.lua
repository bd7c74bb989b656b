-- Helpers for the interop specs: run a real peer (a Python, Node or
-- Chromium script in spec/interop/) as a child process, bounded in time,
-- and fail loudly when the peer's runtime is missing.
local h = require "helpers"

local interop = {}

interop.dir = h.source_dir .. "/spec/interop"
interop.python = "/usr/bin/python3"
interop.chromium = os.getenv("CHROMIUM") or "/usr/bin/chromium"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
interop.quote = quote

-- Runs argv (a list) from the source folder with stdout and stderr merged,
-- killed after timeout seconds; returns its exit status and output.
function interop.run(argv, timeout)
  local words = {}
  for i, a in ipairs(argv) do
    words[i] = quote(a)
  end
  local cmd = string.format("cd %s && timeout -k 5 %d %s 2>&1; echo \"exit=$?\"",
    quote(h.source_dir), timeout or 55, table.concat(words, " "))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("exit=(%d+)\n?$"))
  return status, (out:gsub("exit=%d+\n?$", ""))
end

-- True if a shell command succeeds (its output discarded).
local function ok(cmd)
  return os.execute(cmd .. " >/dev/null 2>&1") == true
end

local fix = "install it with `scripts/deps.sh test` (or `make test`)"

-- Fails the calling test unless Python 3 and its websockets package are here.
function interop.need_python()
  assert(ok("test -x " .. interop.python),
    interop.python .. " is missing; " .. fix)
  assert(ok(interop.python .. " -c 'import websockets'"),
    "Python's websockets is missing (python3-websockets); " .. fix)
end

-- Fails the calling test unless Node and the given npm packages (from
-- spec/interop/package.json) are installed.
function interop.need_node(packages)
  assert(ok("command -v node"), "node is missing (nodejs); " .. fix)
  for _, name in ipairs(packages) do
    assert(ok(string.format("cd %s && node -e %s", quote(interop.dir),
      quote("require.resolve('" .. name .. "')"))),
      "the npm package " .. name .. " is missing in spec/interop; " .. fix
      .. " or `cd spec/interop && npm install`")
  end
end

function interop.need_chromium()
  assert(ok("test -x " .. quote(interop.chromium)),
    interop.chromium .. " is missing (chromium); " .. fix)
end

-- Starts an app with the wslua binary; fails unless it is listening.
function interop.spawn(app)
  local proc = h.spawn(h.source_dir .. "/" .. app)
  assert(proc:alive() and proc:log():find("listening on", 1, true),
    "the server did not start: " .. proc:log())
  return proc
end

-- Waits until the server's log matches a Lua pattern (the server logs
-- asynchronously, maybe after the peer has gone); returns the log.
function interop.wait_log(proc, pattern, timeout)
  h.run(function()
    h.wait_for(function()
      return proc:log():find(pattern) ~= nil
    end, timeout or 5)
  end)
  local log = proc:log()
  assert(log:find(pattern), "the server's log never showed '" .. pattern .. "':\n" .. log)
  return log
end

-- Asserts that a peer run passed: exit status 0 and its success line.
function interop.assert_passed(status, out, success)
  assert(status == 0 and ("\n" .. out):find("\n" .. success .. "\n", 1, true),
    string.format("the peer failed (exit %s):\n%s", tostring(status), out))
end

return interop
