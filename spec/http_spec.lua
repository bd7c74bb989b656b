-- HTTP end to end over loopback: the router, requests and responses,
-- keep-alive and pipelining, chunked bodies both ways, errors, handlers
-- that wait, virtual hosts, and option checking.
local wslua = require "wslua"
local h = require "helpers"
local http = require "helpers.http"

-- Serves one host made of these handlers; runs fn(server) and stops it.
local function with_server(host, fn)
  local server = h.serve(host)
  h.run(function()
    fn(server)
    h.stop(server)
  end)
end

local function text(body)
  return function(_, res)
    res:send(body)
  end
end

describe("the router", function()
  it("dispatches get, post, put, patch, delete and route(method, ...)", function()
    local router = wslua.router()
    for _, m in ipairs { "get", "post", "put", "patch", "delete" } do
      router[m](router, "/thing", function(req, res)
        res:send(m .. " " .. req.method .. " " .. req:body())
      end)
    end
    router:route("options", "/thing", text("options via route"))
    router:route("PURGE", "/cache", text("purged"))
    with_server(wslua.host { router }, function(server)
      for _, m in ipairs { "GET", "POST", "PUT", "PATCH", "DELETE" } do
        local body = m == "GET" and "" or "data-" .. m
        local res = assert(http.get(server, "/thing", nil, m, m ~= "GET" and body or nil))
        assert.equal(200, res.status)
        assert.equal(m:lower() .. " " .. m .. " " .. body, res.body)
      end
      assert.equal("options via route", http.get(server, "/thing", nil, "OPTIONS").body)
      assert.equal("purged", http.get(server, "/cache", nil, "PURGE").body)
    end)
  end)

  it("captures path params, percent-decoded, and parses the query", function()
    local router = wslua.router()
      :get("/posts/{id}", function(req, res)
        res:send("post=" .. req.params.id .. " a=" .. tostring(req.query.a)
          .. " b=" .. tostring(req.query.b))
      end)
      :get("/users/{user}/files/{name}", function(req, res)
        res:send(req.params.user .. "|" .. req.params.name)
      end)
    with_server(wslua.host { router }, function(server)
      assert.equal("post=42 a=nil b=nil", http.get(server, "/posts/42").body)
      assert.equal("post=hello world a=1 b=x y",
        http.get(server, "/posts/hello%20world?a=1&b=x%20y&a=2").body)
      assert.equal("post=a/b a=nil b=nil", http.get(server, "/posts/a%2Fb").body)
      assert.equal("ann|r\195\169sum\195\169.txt",
        http.get(server, "/users/ann/files/r%C3%A9sum%C3%A9.txt").body)
      -- {id} is one segment: neither an extra segment nor an empty one matches
      assert.equal(404, http.get(server, "/posts/1/2").status)
      assert.equal(404, http.get(server, "/posts/").status)
    end)
  end)

  it("lets the first matching route win, and chains", function()
    local router = wslua.router()
    assert.equal(router, router:get("/a/{x}", text("param")))
    assert.equal(router, router:get("/a/fixed", text("fixed")))
    router:post("/b", text("post b")):get("/b", text("get b"))
    with_server(wslua.host { router }, function(server)
      assert.equal("param", http.get(server, "/a/fixed").body)
      assert.equal("get b", http.get(server, "/b").body)
      assert.equal("post b", http.get(server, "/b", nil, "POST", "").body)
    end)
  end)

  it("gives 404 for no route and 405 with Allow when only the method differs", function()
    local router = wslua.router()
      :get("/only-get", text("g"))
      :put("/two", text("p"))
      :delete("/two", text("d"))
    with_server(wslua.host { router }, function(server)
      local res = http.get(server, "/nowhere")
      assert.equal(404, res.status)
      assert.is_nil(res.headers.allow)
      res = http.get(server, "/only-get", nil, "POST", "x")
      assert.equal(405, res.status)
      assert.equal("GET, HEAD", res.headers.allow)
      res = http.get(server, "/two")
      assert.equal(405, res.status)
      assert.equal("PUT, DELETE", res.headers.allow)
    end)
  end)

  it("answers HEAD on a GET route with the headers and no body", function()
    local router = wslua.router():get("/page", function(_, res)
      res:header("X-Seen", "yes")
      res:send("twelve bytes")
    end)
    with_server(wslua.host { router }, function(server)
      local s = h.tcp(server)
      local r = http.reader(s)
      -- HEAD then GET on one connection: a body after the HEAD answer would
      -- be read as the start of the second response.
      s:write(http.request("HEAD", "/page") .. http.request("GET", "/page"))
      local head = assert(r:response("HEAD"))
      assert.equal(200, head.status)
      assert.equal("12", head.headers["content-length"])
      assert.equal("yes", head.headers["x-seen"])
      local get = assert(r:response("GET"))
      assert.equal(200, get.status)
      assert.equal("twelve bytes", get.body)
      s:close()
    end)
  end)
end)

describe("an HTTP connection", function()
  local function counting_host()
    local n = 0
    return wslua.host { wslua.router():get("/n/{tag}", function(req, res)
      n = n + 1
      res:send(req.params.tag .. "#" .. n)
    end) }
  end

  it("keeps alive: two requests, one after the other, on one connection", function()
    with_server(counting_host(), function(server)
      local s = h.tcp(server)
      local r = http.reader(s)
      s:write(http.request("GET", "/n/first"))
      local a = assert(r:response())
      assert.equal("first#1", a.body)
      assert.is_nil(a.headers.connection)
      s:write(http.request("GET", "/n/second"))
      assert.equal("second#2", assert(r:response()).body)
      assert.equal(1, server:connections())
      s:close()
    end)
  end)

  it("answers two pipelined requests in one write, in order", function()
    local router = wslua.router()
      :get("/slow", function(_, res)
        wslua.sleep(0.1) -- the second request must still wait its turn
        res:send("slow")
      end)
      :get("/fast", text("fast"))
    with_server(wslua.host { router }, function(server)
      local s = h.tcp(server)
      local r = http.reader(s)
      s:write(http.request("GET", "/slow") .. http.request("GET", "/fast")
        .. http.request("GET", "/fast"))
      assert.equal("slow", assert(r:response()).body)
      assert.equal("fast", assert(r:response()).body)
      assert.equal("fast", assert(r:response()).body)
      s:close()
    end)
  end)

  it("closes an HTTP/1.0 connection without keep-alive after the response", function()
    with_server(counting_host(), function(server)
      local s = h.tcp(server)
      local r = http.reader(s)
      s:write("GET /n/old HTTP/1.0\r\n\r\n")
      local res = assert(r:response())
      assert.equal("old#1", res.body)
      assert.equal("close", res.headers.connection:lower())
      assert.is_true(r:closed(2))
      assert.equal("", r.buf)
    end)
  end)

  it("closes after the response when the request says Connection: close", function()
    with_server(counting_host(), function(server)
      local s = h.tcp(server)
      local r = http.reader(s)
      s:write(http.request("GET", "/n/bye", { "Connection: close" }))
      assert.equal("bye#1", assert(r:response()).body)
      assert.is_true(r:closed(2))
    end)
  end)

  it("reads a chunked request body with req:body()", function()
    local router = wslua.router():post("/echo", function(req, res)
      res:send("[" .. req:body() .. "]")
    end)
    with_server(wslua.host { router }, function(server)
      local s = h.tcp(server)
      local r = http.reader(s)
      s:write(http.request("POST", "/echo", { "Transfer-Encoding: chunked" }))
      -- chunk lines in several writes, with a chunk extension
      s:write("5\r\nhel")
      wslua.sleep(0.02)
      s:write("lo\r\n7;ext=1\r\n, world\r\n")
      wslua.sleep(0.02)
      s:write("0\r\n\r\n")
      local res = assert(r:response())
      assert.equal(200, res.status)
      assert.equal("[hello, world]", res.body)
      -- and the connection goes on with a plain request
      s:write(http.request("POST", "/echo", nil, "plain"))
      assert.equal("[plain]", assert(r:response()).body)
      s:close()
    end)
  end)

  it("streams res:write(chunk) twice then res:finish() as a chunked response", function()
    local router = wslua.router():get("/stream", function(_, res)
      res:header("Content-Type", "text/plain")
      assert.truthy(res:write("first part, "))
      wslua.sleep(0.02)
      assert.truthy(res:write("second part"))
      assert.truthy(res:finish())
    end)
    with_server(wslua.host { router }, function(server)
      local s = h.tcp(server)
      local r = http.reader(s)
      s:write(http.request("GET", "/stream") .. http.request("GET", "/stream"))
      for _ = 1, 2 do
        local res = assert(r:response())
        assert.equal(200, res.status)
        assert.equal("chunked", res.headers["transfer-encoding"])
        assert.is_nil(res.headers["content-length"])
        assert.equal("text/plain", res.headers["content-type"])
        assert.same({ 12, 11 }, res.chunks)
        assert.equal("first part, second part", res.body)
      end
      s:close()
    end)
  end)

  it("sends res.status and res:header, several of one name", function()
    local router = wslua.router():post("/made", function(_, res)
      res.status = 201
      res:header("Location", "/made/7")
      res:header("Set-Cookie", "a=1")
      res:header("Set-Cookie", "b=2")
      res:header("Content-Type", "application/json")
      res:send('{"id":7}')
    end)
    with_server(wslua.host { router }, function(server)
      local res = assert(http.get(server, "/made", nil, "POST", "{}"))
      assert.equal(201, res.status)
      assert.equal("Created", res.reason)
      assert.equal("/made/7", res.headers.location)
      assert.equal("a=1, b=2", res.headers["set-cookie"])
      assert.matches("\r\nSet%-Cookie: a=1\r\nSet%-Cookie: b=2\r\n", res.head)
      assert.equal("application/json", res.headers["content-type"])
      assert.equal("8", res.headers["content-length"])
      assert.equal('{"id":7}', res.body)
    end)
  end)

  it("gives 500 when a handler raises and serves the next request", function()
    local router = wslua.router()
      :get("/boom", function()
        error("handler exploded")
      end)
      :get("/late-boom", function()
        wslua.sleep(0.01)
        error("exploded after waiting")
      end)
      :get("/ok", text("fine"))
    with_server(wslua.host { router }, function(server)
      local s = h.tcp(server)
      local r = http.reader(s)
      s:write(http.request("GET", "/boom"))
      local res = assert(r:response())
      assert.equal(500, res.status)
      assert.not_matches("exploded", res.body) -- no internals to the client
      s:write(http.request("GET", "/ok"))
      assert.equal("fine", assert(r:response()).body)
      s:write(http.request("GET", "/late-boom"))
      assert.equal(500, assert(r:response()).status)
      s:close()
      assert.equal("fine", http.get(server, "/ok").body)
    end)
  end)

  it("cuts the connection when a handler raises after the head went out", function()
    local router = wslua.router():get("/half", function(_, res)
      res:write("abc")
      wslua.sleep(0.01)
      error("failed mid-stream")
    end)
    with_server(wslua.host { router }, function(server)
      local s = h.tcp(server)
      s:write(http.request("GET", "/half"))
      local all = s:read_all(2)
      assert.matches("^HTTP/1%.1 200 ", all)
      assert.matches("\r\n\r\n3\r\nabc\r\n$", all) -- no last chunk: truncated
    end)
  end)

  it("refuses a request body over max_body with 413, counted or chunked", function()
    local router = wslua.router():post("/p", function(req, res)
      res:send(#req:body())
    end)
    with_server(wslua.host { max_body = 10, router }, function(server)
      assert.equal("10", http.get(server, "/p", nil, "POST", "0123456789").body)
      assert.equal(413, http.get(server, "/p", nil, "POST", "0123456789a").status)
      local res = assert(http.get(server, "/p", { "Transfer-Encoding: chunked" }, "POST",
        "8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n"))
      assert.equal(413, res.status)
    end)
  end)

  it("runs handlers that wait before answering, concurrently", function()
    local active, most = 0, 0
    local router = wslua.router():get("/wait/{n}", function(req, res)
      active = active + 1
      most = math.max(most, active)
      wslua.sleep(0.05)
      active = active - 1
      res:send("waited " .. req.params.n)
    end)
    with_server(wslua.host { router }, function(server)
      local a, b = h.tcp(server), h.tcp(server)
      a:write(http.request("GET", "/wait/1"))
      b:write(http.request("GET", "/wait/2"))
      assert.equal("waited 2", assert(http.reader(b):response()).body)
      assert.equal("waited 1", assert(http.reader(a):response()).body)
      assert.equal(2, most)
      a:close()
      b:close()
    end)
  end)

  it("sends Date and Server headers", function()
    with_server(wslua.host { text("x") }, function(server)
      local res = assert(http.get(server, "/"))
      assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", res.headers.date)
      assert.matches("^wslua", res.headers.server)
      -- the error answers from the core too
      res = assert(http.exchange(server, "GET / HTTP/1.1\r\nno colon here\r\n\r\n"))
      assert.equal(400, res.status)
      assert.truthy(res.headers.date)
      assert.truthy(res.headers.server)
    end)
  end)
end)

describe("virtual hosts", function()
  it("picks the host by the Host header; an unknown host gets the first", function()
    local hosts = {
      wslua.host { name = "a.test", listen = "127.0.0.1:9", text("site a") },
      wslua.host { name = "b.test", listen = "127.0.0.1:9", function(req, res)
        res:send("site b for " .. req.host)
      end },
    }
    with_server(hosts, function(server)
      local function with_host(value)
        local raw = value and ("GET / HTTP/1.1\r\nHost: " .. value .. "\r\n\r\n")
          or "GET / HTTP/1.0\r\n\r\n"
        return assert(http.exchange(server, raw)).body
      end
      assert.equal("site a", with_host("a.test"))
      assert.equal("site b for b.test", with_host("b.test"))
      assert.equal("site b for b.test", with_host("B.Test:8080"))
      assert.equal("site a", with_host("c.test"))
      assert.equal("site a", with_host(nil))
    end)
  end)
end)

describe("option checking", function()
  -- fn must not end in a tail call, or the caller's line is gone from the
  -- stack (as in any Lua error with a level).
  local function fails_with(pattern, fn)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    assert.matches(pattern, err)
    -- the error points at the caller's line, not into wslua
    assert.matches("http_spec%.lua:%d+:", err)
  end

  it("names an unknown host option", function()
    fails_with("unknown option 'listn' in host options", function()
      local host = wslua.host { listn = "x" }
      return host
    end)
  end)

  it("names an unknown websocket option", function()
    fails_with("unknown option 'max_mesage' in websocket options", function()
      local endpoint = wslua.websocket({}, { max_mesage = 1 })
      return endpoint
    end)
  end)

  it("names an option of the wrong type", function()
    fails_with("option 'listen' in host options must be a string, got number", function()
      local host = wslua.host { listen = 8080 }
      return host
    end)
    fails_with("option 'max_message' in websocket options must be a positive number",
      function()
        local endpoint = wslua.websocket({}, { max_message = "big" })
        return endpoint
      end)
    fails_with("option 'max_message' in websocket options must be a positive number",
      function()
        local endpoint = wslua.websocket({}, { max_message = 0 })
        return endpoint
      end)
  end)

  it("refuses a host entry that is not a handler and a bad route", function()
    fails_with("entry 1 must be a router", function()
      local host = wslua.host { "public" }
      return host
    end)
    fails_with("route path must be a string starting with '/'", function()
      local router = wslua.router():get("no-slash", text("x"))
      return router
    end)
    fails_with("route handler must be a function or a wslua endpoint, got string",
      function()
        local router = wslua.router():route("GET", "/x", "handler")
        return router
      end)
    fails_with("wslua.websocket: handler must be a table", function()
      local endpoint = wslua.websocket("Chat")
      return endpoint
    end)
  end)
end)
