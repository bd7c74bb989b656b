-- examples/broadcast end to end: the real binary on the example; clients
-- from an allowed origin all get what any of them sends, other origins get
-- 403 and no upgrade, and the page is served.
local wslua = require "wslua"
local h = require "helpers"
local http = require "helpers.http"

local APP = h.source_dir .. "/examples/broadcast/app.lua"
local ALLOWED = { "http://127.0.0.1:1339", "http://localhost:1339" }

-- Runs fn(proc, server) in a coroutine against a fresh instance of the
-- example; server stands in for helpers.http's server argument.
local function with_app(fn)
  local proc = h.spawn(APP)
  finally(function()
    proc:stop()
  end)
  assert.truthy(proc:alive(), proc:log())
  local server = {
    port = function()
      return proc.port
    end,
  }
  h.run(function()
    fn(proc, server)
  end)
end

local function url(proc)
  return "ws://127.0.0.1:" .. proc.port .. "/broadcast"
end

describe("examples/broadcast", function()
  it("sends what any client sends to every client, from each allowed origin", function()
    with_app(function(proc)
      local a = assert(wslua.connect(url(proc), { origin = ALLOWED[1] }))
      local b = assert(wslua.connect(url(proc), { origin = ALLOWED[2] }))
      local c = assert(wslua.connect(url(proc), { origin = ALLOWED[1] }))
      -- b is open on the server's side once a message from it comes round
      assert.truthy(b:send("hello from b"))
      local from_b
      for _, peer in ipairs { a, b, c } do
        local body, binary = peer:receive()
        assert.is_false(binary)
        assert.matches("^%d+: hello from b$", body)
        from_b = from_b or body
        assert.equal(from_b, body)
      end
      assert.truthy(a:send("and from a"))
      local from_a
      for _, peer in ipairs { a, b, c } do
        local body = peer:receive()
        assert.matches("^%d+: and from a$", body)
        from_a = from_a or body
        assert.equal(from_a, body)
      end
      -- the prefixes name two different senders
      assert.not_equal(from_a:match("^%d+"), from_b:match("^%d+"))
      for _, peer in ipairs { a, b, c } do
        peer:close()
      end
    end)
  end)

  it("refuses other origins, and none at all, with 403 and no upgrade", function()
    with_app(function(proc)
      local cases = {
        "Origin: http://evil.example\r\n",
        "Origin: http://127.0.0.1:" .. proc.port .. "\r\n",
        "Origin: https://127.0.0.1:1339\r\n",
        "",
      }
      for _, origin in ipairs(cases) do
        local s = assert(wslua.tcp("127.0.0.1", proc.port))
        s:write(h.handshake("/broadcast", origin))
        local head = h.read_head(s)
        assert.matches("^HTTP/1%.1 403 ", head, 1, origin)
        assert.is_nil(head:lower():find("sec-websocket-accept", 1, true), origin)
        assert.is_nil(head:lower():find("upgrade: websocket", 1, true), origin)
        s:close()
      end
      local c, err = wslua.connect(url(proc), { origin = "http://evil.example" })
      assert.is_nil(c)
      assert.truthy(tostring(err):find("403", 1, true), err)
      -- an allowed client is unaffected
      local ok = assert(wslua.connect(url(proc), { origin = ALLOWED[2] }))
      ok:send("still here")
      assert.matches("^%d+: still here$", (ok:receive()))
      ok:close()
    end)
  end)

  it("serves its page, which opens a socket to /broadcast", function()
    with_app(function(_, server)
      local res = assert(http.get(server, "/"))
      assert.equal(200, res.status)
      assert.matches("^text/html", res.headers["content-type"])
      assert.matches("<title>wslua broadcast</title>", res.body, 1, true)
      assert.matches('"/broadcast"', res.body, 1, true)
      assert.equal(404, (assert(http.get(server, "/missing.html"))).status)
    end)
  end)
end)
