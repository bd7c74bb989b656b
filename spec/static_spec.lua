-- wslua.root(dir) end to end: content types, index.html, validators and
-- 304, HEAD, methods, and that nothing outside the root can be read.
local wslua = require "wslua"
local h = require "helpers"
local http = require "helpers.http"

local function sh(fmt, ...)
  local cmd = string.format(fmt, ...)
  assert(os.execute(cmd), cmd)
end

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

local PNG = "\137PNG\r\n\26\n\0\0\0\rIHDR\0\0\0\1"
local SECRET = "the secret outside the root"

-- A temporary folder: base/secret.txt outside the root, base/public the
-- root (with a symlink out of it and one that stays inside).
local function make_site()
  local base = os.tmpname()
  os.remove(base)
  sh("mkdir -p '%s/public/sub' '%s/public/empty'", base, base)
  local pub = base .. "/public"
  write(base .. "/secret.txt", SECRET)
  write(pub .. "/index.html", "<h1>home</h1>")
  write(pub .. "/style.css", "body{}")
  write(pub .. "/app.js", "let x = 1;")
  write(pub .. "/data.json", '{"a":1}')
  write(pub .. "/pixel.png", PNG)
  write(pub .. "/SHOUT.PNG", PNG)
  write(pub .. "/blob.xyz", "\0\1\2")
  write(pub .. "/noext", "plain bytes")
  write(pub .. "/sub/index.html", "<h1>sub</h1>")
  write(pub .. "/sub/page.html", "<p>page</p>")
  write(pub .. "/with space.txt", "spaced")
  sh("ln -s '%s/secret.txt' '%s/leak.txt'", base, pub)
  sh("ln -s '%s' '%s/outside'", base, pub)
  sh("ln -s style.css '%s/alias.css'", pub)
  return base, pub
end

describe("wslua.root", function()
  local base, pub, server

  setup(function()
    base, pub = make_site()
    server = h.serve(wslua.host { wslua.root(pub) })
  end)

  teardown(function()
    h.run(function()
      h.stop(server)
    end)
    if base and base:match("^/tmp/") then
      sh("rm -rf '%s'", base)
    end
  end)

  -- Runs fn in a coroutine with the event loop.
  local function run(fn)
    h.run(fn)
  end

  it("serves files with a content type by extension", function()
    run(function()
      local cases = {
        { "/index.html", "text/html; charset=utf-8", "<h1>home</h1>" },
        { "/style.css", "text/css; charset=utf-8", "body{}" },
        { "/app.js", "text/javascript; charset=utf-8", "let x = 1;" },
        { "/data.json", "application/json", '{"a":1}' },
        { "/pixel.png", "image/png", PNG },
        { "/SHOUT.PNG", "image/png", PNG },
        { "/blob.xyz", "application/octet-stream", "\0\1\2" },
        { "/noext", "application/octet-stream", "plain bytes" },
        { "/with%20space.txt", "text/plain; charset=utf-8", "spaced" },
      }
      for _, c in ipairs(cases) do
        local res = assert(http.get(server, c[1]))
        assert.equal(200, res.status, c[1])
        assert.equal(c[2], res.headers["content-type"], c[1])
        assert.equal(c[3], res.body, c[1])
        assert.equal(tostring(#c[3]), res.headers["content-length"], c[1])
      end
    end)
  end)

  it("serves index.html for a directory", function()
    run(function()
      assert.equal("<h1>home</h1>", http.get(server, "/").body)
      assert.equal("<h1>sub</h1>", http.get(server, "/sub/").body)
      assert.equal("<h1>sub</h1>", http.get(server, "/sub").body)
      assert.equal("<p>page</p>", http.get(server, "/sub/page.html").body)
      -- a directory without one is not listed
      assert.equal(404, http.get(server, "/empty/").status)
      assert.equal(404, http.get(server, "/missing.html").status)
    end)
  end)

  it("sends ETag and Last-Modified, and 304 for a matching If-None-Match", function()
    run(function()
      local res = assert(http.get(server, "/style.css"))
      local etag, modified = res.headers.etag, res.headers["last-modified"]
      assert.matches('^"[^"]+"$', etag)
      assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", modified)
      -- the same validators on a second fetch
      assert.equal(etag, http.get(server, "/style.css").headers.etag)
      -- a different file has a different tag
      assert.not_equal(etag, http.get(server, "/app.js").headers.etag)

      -- 304 has no body: a second request on the connection must parse
      -- right after it.
      local s = h.tcp(server)
      local r = http.reader(s)
      s:write(http.request("GET", "/style.css", { "If-None-Match: " .. etag })
        .. http.request("GET", "/style.css", { 'If-None-Match: "other", ' .. etag })
        .. http.request("GET", "/style.css", { 'If-None-Match: "stale"' }))
      local not_modified = assert(r:response())
      assert.equal(304, not_modified.status)
      assert.equal(etag, not_modified.headers.etag)
      assert.is_nil(not_modified.headers["content-length"])
      assert.is_nil(not_modified.headers["transfer-encoding"])
      assert.equal(304, assert(r:response()).status)
      local fresh = assert(r:response())
      assert.equal(200, fresh.status)
      assert.equal("body{}", fresh.body)
      s:close()
    end)
  end)

  it("gives 304 for If-Modified-Since equal to Last-Modified", function()
    run(function()
      local modified = http.get(server, "/app.js").headers["last-modified"]
      local res = assert(http.get(server, "/app.js", { "If-Modified-Since: " .. modified }))
      assert.equal(304, res.status)
      assert.equal("", res.body)
      res = assert(http.get(server, "/app.js",
        { "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT" }))
      assert.equal(200, res.status)
      assert.equal("let x = 1;", res.body)
    end)
  end)

  it("answers HEAD with the headers and no body", function()
    run(function()
      local s = h.tcp(server)
      local r = http.reader(s)
      s:write(http.request("HEAD", "/data.json") .. http.request("GET", "/data.json"))
      local head = assert(r:response("HEAD"))
      assert.equal(200, head.status)
      assert.equal("7", head.headers["content-length"])
      assert.equal("application/json", head.headers["content-type"])
      assert.truthy(head.headers.etag)
      local get = assert(r:response())
      assert.equal('{"a":1}', get.body)
      s:close()
    end)
  end)

  it("lets POST fall through to the host", function()
    run(function()
      local res = assert(http.get(server, "/index.html", nil, "POST", "x"))
      assert.is_true(res.status == 404 or res.status == 405)
      assert.not_matches("home", res.body)
    end)
  end)

  it("cannot be led outside the root by .. in any spelling", function()
    run(function()
      -- the secret exists, one level up from the root
      local f = assert(io.open(pub .. "/../secret.txt"))
      f:close()
      local targets = {
        "/../secret.txt",
        "/../../../../../../" .. base:sub(2) .. "/secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/.%2e/secret.txt",
        "/%2e%2e%2f%2e%2e%2f" .. base:sub(2):gsub("/", "%%2f") .. "%2fsecret.txt",
        "/sub/..%00/../secret.txt",
      }
      for _, target in ipairs(targets) do
        -- raw request lines: nothing between us and the server cleans them
        local res = assert(http.exchange(server,
          "GET " .. target .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
        assert.is_true(res.status == 404 or res.status == 400, target)
        assert.not_matches(SECRET, res.body, 1, true)
      end
    end)
  end)

  it("refuses a symlink that points outside the root", function()
    run(function()
      local res = assert(http.get(server, "/leak.txt"))
      assert.equal(404, res.status)
      assert.not_matches(SECRET, res.body, 1, true)
      res = assert(http.get(server, "/outside/secret.txt"))
      assert.equal(404, res.status)
      assert.not_matches(SECRET, res.body, 1, true)
      assert.equal(404, http.get(server, "/outside/").status)
      -- one that stays inside is served
      res = assert(http.get(server, "/alias.css"))
      assert.equal(200, res.status)
      assert.equal("body{}", res.body)
    end)
  end)

  it("comes after a router: the router wins for its paths", function()
    local api = wslua.router()
      :get("/style.css", function(_, res)
        res:header("Content-Type", "text/css")
        res:send("/* from the router */")
      end)
      :get("/api/{name}", function(req, res)
        res:send("api " .. req.params.name)
      end)
      :post("/api/{name}", function(req, res)
        res:send("posted " .. req:body())
      end)
    local both = h.serve(wslua.host { api, wslua.root(pub) })
    run(function()
      assert.equal("/* from the router */", http.get(both, "/style.css").body)
      assert.equal("api x", http.get(both, "/api/x").body)
      assert.equal("posted y", http.get(both, "/api/x", nil, "POST", "y").body)
      local res = assert(http.get(both, "/app.js"))
      assert.equal(200, res.status)
      assert.equal("let x = 1;", res.body)
      assert.equal("<h1>home</h1>", http.get(both, "/").body)
      assert.equal(404, http.get(both, "/nothing-here").status)
      h.stop(both)
    end)
  end)

  it("refuses a root that is not a folder that exists", function()
    local ok, err = pcall(wslua.root, base .. "/no-such-dir")
    assert.is_false(ok)
    assert.matches("no%-such%-dir", err)
    ok, err = pcall(wslua.root, pub .. "/style.css")
    assert.is_false(ok)
    assert.matches("style%.css is not a directory", err)
    ok, err = pcall(wslua.root, 42)
    assert.is_false(ok)
    assert.matches("directory must be a string", err)
  end)
end)
