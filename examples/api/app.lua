-- Sockets in your API: one service (posts.lua, accounts.lua) behind both an
-- HTTP API and typed JSON messages over a WebSocket, so they always agree.
--
--   ./build/wslua examples/api/app.lua                  # 127.0.0.1:1338
--
-- Over HTTP (users: alice/wonderland, bob/builder):
--   curl -d '{"user":"alice","password":"wonderland"}' 127.0.0.1:1338/tokens
--   curl -H 'Authorization: Bearer TOKEN' \
--        -d '{"title":"Hello","body":"From curl"}' 127.0.0.1:1338/posts
--   curl 127.0.0.1:1338/posts                 # or /posts/1
--
-- Over a socket at ws://127.0.0.1:1338/ws, messages are {"type", "data"}:
--   {"type":"tokens.create","data":{"user":"bob","password":"builder"}}
--       -> {"type":"tokens.created","data":{"token":"..."}}
--   {"type":"posts.index"}  -> {"type":"posts","data":[...]}
--   {"type":"posts.create","data":{"title":"Hi","body":"From a socket"}}
-- Every signed-in socket gets {"type":"posts.created","data":{post}} for
-- each new post, made over HTTP or a socket (its maker too: that is the
-- answer to posts.create). Before signing in, or for malformed JSON or an
-- unknown type, the answer is {"type":"error","data":{"message":"..."}}
-- and the socket stays open. The store is in memory: a restart (or a
-- reload, which loads posts.lua afresh) starts it empty.
local wslua = require "wslua"
local cjson = require "cjson"
local accounts = require "accounts"
local posts = require "posts"

-- lua-cjson 2.1.0 writes an empty table as {}, so a list is encoded here,
-- and is [] when empty.
local function encode_list(items)
  if #items == 0 then
    return "[]"
  end
  return cjson.encode(items)
end

-- A socket message's text; data is a table, or JSON text from encode_list.
local function message(kind, data)
  if type(data) ~= "string" then
    data = cjson.encode(data)
  end
  return '{"type":' .. cjson.encode(kind) .. ',"data":' .. data .. "}"
end

-- The WebSocket side ------------------------------------------------------

local Api = {}

local function reply(client, kind, data)
  return client:send(message(kind, data))
end

local function fail(client, text)
  return reply(client, "error", { message = text })
end

-- Handlers by message type: function(client, data). All but tokens.create
-- run only for a signed-in client.
local actions = {}

actions["tokens.create"] = function(client, data)
  local token, err = accounts.sign_in(data.user, data.password)
  if not token then
    return fail(client, err)
  end
  client.data.token, client.data.user = token, data.user
  reply(client, "tokens.created", { token = token })
end

actions["posts.index"] = function(client)
  reply(client, "posts", encode_list(posts.all()))
end

actions["posts.create"] = function(client, data)
  -- On success the posts.created broadcast below is this client's answer.
  local post, err = posts.create(client.data.user, data)
  if not post then
    fail(client, err)
  end
end

function Api:on_data(client, msg)
  local text = msg:read()
  if not text then
    return -- the client went away mid-message
  end
  if msg.binary then
    return fail(client, "messages are JSON text")
  end
  local ok, m = pcall(cjson.decode, text)
  if not ok then
    return fail(client, "malformed JSON")
  end
  if type(m) ~= "table" or type(m.type) ~= "string" then
    return fail(client, "a message is an object with a type")
  end
  local data = m.data
  if data == nil then
    data = {}
  elseif type(data) ~= "table" then
    return fail(client, "data must be an object")
  end
  if m.type ~= "tokens.create" and not client.data.user then
    return fail(client, "authenticate first")
  end
  local action = actions[m.type]
  if not action then
    return fail(client, "unknown type " .. m.type)
  end
  action(client, data)
end

-- The endpoint comes here, not from what wslua.websocket returns: after a
-- reload (--watch) the endpoint that holds the clients is the old one.
function Api:on_start(endpoint)
  self.endpoint = endpoint
end

-- Every new post, whichever side made it, goes to the signed-in sockets;
-- the frame is built once for all of them.
posts.on_created(function(post)
  local endpoint = Api.endpoint
  local ids = {}
  for id, client in endpoint:clients() do
    if client.data.user then
      ids[#ids + 1] = id
    end
  end
  endpoint:send(ids, message("posts.created", post))
end)

-- The HTTP side -----------------------------------------------------------

local function respond(res, status, json)
  res.status = status
  res:header("Content-Type", "application/json")
  res:send(json .. "\n")
end

local function http_error(res, status, text)
  respond(res, status, cjson.encode { error = text })
end

-- The request's JSON body as a table, or nil and why not.
local function json_body(req)
  local ok, value = pcall(cjson.decode, req:body() or "")
  if not ok then
    return nil, "malformed JSON"
  end
  if type(value) ~= "table" then
    return nil, "the body must be a JSON object"
  end
  return value
end

local function create_token(req, res)
  local fields, err = json_body(req)
  if not fields then
    return http_error(res, 400, err)
  end
  local token
  token, err = accounts.sign_in(fields.user, fields.password)
  if not token then
    return http_error(res, 401, err)
  end
  respond(res, 201, cjson.encode { token = token })
end

local function list_posts(req, res)
  respond(res, 200, encode_list(posts.all()))
end

local function show_post(req, res)
  local post = posts.get(req.params.id)
  if not post then
    return http_error(res, 404, "no such post")
  end
  respond(res, 200, cjson.encode(post))
end

local function create_post(req, res)
  local token = (req.headers.authorization or ""):match("^[Bb]earer +(%S+) *$")
  local user = accounts.user(token)
  if not user then
    res:header("WWW-Authenticate", 'Bearer realm="posts"')
    return http_error(res, 401, "authenticate first: Authorization: Bearer <token>")
  end
  local fields, err = json_body(req)
  if not fields then
    return http_error(res, 400, err)
  end
  local post
  post, err = posts.create(user, fields)
  if not post then
    return http_error(res, 400, err)
  end
  res:header("Location", "/posts/" .. post.id)
  respond(res, 201, cjson.encode(post))
end

local router = wslua.router()
  :get("/ws", wslua.websocket(Api, { max_message = 64 * 1024 }))
  :post("/tokens", create_token)
  :get("/posts", list_posts)
  :post("/posts", create_post)
  :get("/posts/{id}", show_post)

return wslua.host { listen = "127.0.0.1:1338", router }
