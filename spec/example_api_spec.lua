-- examples/api end to end: the real binary on the example, typed JSON
-- messages over real sockets, and the HTTP routes sharing its service.
local wslua = require "wslua"
local cjson = require "cjson"
local h = require "helpers"
local http = require "helpers.http"

local APP = h.source_dir .. "/examples/api/app.lua"

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

local function connect(proc)
  return assert(wslua.connect("ws://127.0.0.1:" .. proc.port .. "/ws"))
end

-- The next message from c, decoded (it must be JSON text).
local function next_json(c)
  local body, binary = c:receive()
  assert.is_string(body, "the socket closed")
  assert.is_false(binary)
  return cjson.decode(body)
end

-- Sends {type, data} and returns the next message, decoded.
local function ask(c, kind, data)
  assert.truthy(c:send(cjson.encode { type = kind, data = data }))
  return next_json(c)
end

local function sign_in(c, user, password)
  local m = ask(c, "tokens.create", { user = user, password = password })
  assert.equal("tokens.created", m.type, cjson.encode(m))
  assert.matches("^%x+$", m.data.token)
  return m.data.token
end

local function post_json(server, path, fields, headers)
  local list = { "Content-Type: application/json" }
  for _, line in ipairs(headers or {}) do
    list[#list + 1] = line
  end
  local body = type(fields) == "string" and fields or cjson.encode(fields)
  return assert(http.get(server, path, list, "POST", body))
end

local function get_json(server, path)
  local res = assert(http.get(server, path))
  assert.equal("application/json", res.headers["content-type"])
  return res, cjson.decode(res.body)
end

describe("examples/api", function()
  it("answers every type but tokens.create with an error until signed in", function()
    with_app(function(proc)
      local c = connect(proc)
      for _, kind in ipairs { "posts.index", "posts.create", "no.such.type" } do
        local m = ask(c, kind, { title = "t", body = "b" })
        assert.same({ type = "error", data = { message = "authenticate first" } }, m)
      end
      local m = ask(c, "tokens.create", { user = "alice", password = "wrong" })
      assert.equal("error", m.type)
      assert.equal("wrong user or password", m.data.message)
      assert.equal("error", ask(c, "posts.index").type)
      -- still open after all that, and signing in works
      assert.truthy(c:is_open())
      sign_in(c, "alice", "wonderland")
      m = ask(c, "posts.index")
      assert.equal("posts", m.type)
      assert.same({}, m.data)
      c:close()
    end)
  end)

  it("keeps the socket open and says why on malformed JSON or an unknown type", function()
    with_app(function(proc)
      local c = connect(proc)
      local function error_for(raw)
        assert.truthy(c:send(raw))
        local m = next_json(c)
        assert.equal("error", m.type, raw)
        return m.data.message
      end
      assert.equal("malformed JSON", error_for("{not json"))
      assert.equal("malformed JSON", error_for(""))
      assert.equal("a message is an object with a type", error_for("[1, 2]"))
      assert.equal("a message is an object with a type", error_for('{"data": {}}'))
      assert.equal("data must be an object",
        error_for('{"type": "tokens.create", "data": "alice"}'))
      assert.truthy(c:send("\1\2", "binary"))
      assert.equal("messages are JSON text", next_json(c).data.message)
      sign_in(c, "bob", "builder")
      assert.equal("malformed JSON", error_for('{"type": "posts.index"'))
      assert.equal("unknown type posts.destroy", error_for('{"type": "posts.destroy"}'))
      assert.equal("title must be a non-empty string",
        error_for('{"type": "posts.create", "data": {"body": "no title"}}'))
      assert.truthy(c:is_open())
      assert.equal("posts", ask(c, "posts.index").type)
      c:close()
    end)
  end)

  it("creates posts over a socket and HTTP, both seen the same way by both", function()
    with_app(function(proc, server)
      local c = connect(proc)
      local token = sign_in(c, "alice", "wonderland")

      -- a socket post: the posts.created broadcast is its maker's answer
      local m = ask(c, "posts.create", { title = "From a socket", body = "one" })
      assert.equal("posts.created", m.type)
      assert.equal(1, m.data.id)
      assert.equal("alice", m.data.author)
      assert.equal("From a socket", m.data.title)

      -- an HTTP post with the same token reaches the socket too
      local res = post_json(server, "/posts", { title = "From HTTP", body = "two" },
        { "Authorization: Bearer " .. token })
      assert.equal(201, res.status, res.body)
      assert.equal("/posts/2", res.headers.location)
      local made = cjson.decode(res.body)
      assert.equal(2, made.id)
      assert.equal("alice", made.author)
      m = next_json(c)
      assert.equal("posts.created", m.type)
      assert.same(made, m.data)

      -- GET /posts and posts.index list the same posts, oldest first
      local list_res, listed = get_json(server, "/posts")
      assert.equal(200, list_res.status)
      assert.equal(2, #listed)
      assert.same({ "From a socket", "From HTTP" }, { listed[1].title, listed[2].title })
      assert.same(listed, ask(c, "posts.index").data)
      local one_res, one = get_json(server, "/posts/2")
      assert.equal(200, one_res.status)
      assert.same(made, one)
      assert.equal(404, (get_json(server, "/posts/99")).status)
      c:close()
    end)
  end)

  it("broadcasts posts.created to every signed-in client, not to others", function()
    with_app(function(proc, server)
      local alice, bob, guest = connect(proc), connect(proc), connect(proc)
      sign_in(alice, "alice", "wonderland")
      local bob_token = sign_in(bob, "bob", "builder")

      local m = ask(alice, "posts.create", { title = "Hi Bob", body = "from Alice" })
      assert.equal("posts.created", m.type)
      local seen = next_json(bob)
      assert.equal("posts.created", seen.type)
      assert.same(m.data, seen.data)

      local res = post_json(server, "/posts", { title = "Hi Alice", body = "from Bob" },
        { "Authorization: Bearer " .. bob_token })
      assert.equal(201, res.status, res.body)
      for _, c in ipairs { alice, bob } do
        m = next_json(c)
        assert.equal("posts.created", m.type)
        assert.equal("Hi Alice", m.data.title)
        assert.equal("bob", m.data.author)
      end

      -- the guest got neither: its next message answers its own request
      m = ask(guest, "posts.index")
      assert.same({ type = "error", data = { message = "authenticate first" } }, m)
      for _, c in ipairs { alice, bob, guest } do
        c:close()
      end
    end)
  end)

  it("signs in over HTTP and refuses POST /posts without a good token", function()
    with_app(function(proc, server)
      local res = post_json(server, "/tokens", { user = "bob", password = "builder" })
      assert.equal(201, res.status, res.body)
      local token = cjson.decode(res.body).token
      assert.matches("^%x+$", token)

      res = post_json(server, "/tokens", { user = "bob", password = "nope" })
      assert.equal(401, res.status)
      assert.equal("wrong user or password", cjson.decode(res.body).error)

      res = post_json(server, "/posts", { title = "t", body = "b" })
      assert.equal(401, res.status)
      assert.matches("^Bearer", res.headers["www-authenticate"])
      res = post_json(server, "/posts", { title = "t", body = "b" },
        { "Authorization: Bearer 0123456789abcdef" })
      assert.equal(401, res.status)

      local auth = { "Authorization: Bearer " .. token }
      res = post_json(server, "/posts", "{broken", auth)
      assert.equal(400, res.status)
      assert.equal("malformed JSON", cjson.decode(res.body).error)
      res = post_json(server, "/posts", { title = "", body = "b" }, auth)
      assert.equal(400, res.status)
      assert.equal("title must be a non-empty string", cjson.decode(res.body).error)

      -- nothing was made by the refused requests; a good one is
      local _, listed = get_json(server, "/posts")
      assert.equal("[]\n", (http.get(server, "/posts")).body)
      assert.same({}, listed)
      res = post_json(server, "/posts", { title = "t", body = "b" }, auth)
      assert.equal(201, res.status, res.body)
      _, listed = get_json(server, "/posts")
      assert.equal(1, #listed)
      assert.equal("bob", listed[1].author)

      -- the socket side lists what the HTTP side made
      local c = connect(proc)
      sign_in(c, "bob", "builder")
      assert.same(listed, ask(c, "posts.index").data)
      c:close()
    end)
  end)
end)
