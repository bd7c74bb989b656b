-- The posts service of the api example: an in-memory store, the one place
-- where posts are checked, made and listed. The HTTP routes and the socket
-- messages in app.lua both call it, so they always agree; listeners hear of
-- every new post, whichever side made it.
local posts = {}

local MAX_POSTS = 1000         -- the store keeps the newest this many
local MAX_TITLE = 200          -- bytes
local MAX_BODY = 10 * 1024     -- bytes

local list = {}                -- oldest first
local by_id = {}
local next_id = 1
local listeners = {}

-- Every post, oldest first (a copy: callers may keep it).
function posts.all()
  return table.move(list, 1, #list, 1, {})
end

function posts.get(id)
  return by_id[tonumber(id)]
end

local function text_field(fields, name, max)
  local v = fields[name]
  if type(v) ~= "string" or v:find("^%s*$") then
    return nil, name .. " must be a non-empty string"
  end
  if #v > max then
    return nil, name .. " must be at most " .. max .. " bytes"
  end
  return v
end

-- Makes a post by author from fields {title, body}; returns it, or nil and
-- a message saying what is wrong with the fields.
function posts.create(author, fields)
  if type(fields) ~= "table" then
    return nil, "a post needs a title and a body"
  end
  local title, err = text_field(fields, "title", MAX_TITLE)
  if not title then
    return nil, err
  end
  local body
  body, err = text_field(fields, "body", MAX_BODY)
  if not body then
    return nil, err
  end
  local post = {
    id = next_id,
    title = title,
    body = body,
    author = author,
    created_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  }
  next_id = next_id + 1
  list[#list + 1] = post
  by_id[post.id] = post
  if #list > MAX_POSTS then
    by_id[table.remove(list, 1).id] = nil
  end
  for _, fn in ipairs(listeners) do
    fn(post)
  end
  return post
end

-- fn(post) runs for every post made from now on.
function posts.on_created(fn)
  listeners[#listeners + 1] = fn
end

return posts
