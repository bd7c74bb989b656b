-- Users and their tokens, kept in memory: the api example's sign-in,
-- shared by POST /tokens and the "tokens.create" socket message.
local accounts = {}

-- The demo's users (name -> password). A real app checks a password hash.
local users = {
  alice = "wonderland",
  bob = "builder",
}

-- A user keeps at most this many live tokens; a new one retires the oldest,
-- so signing in again and again cannot grow the table without bound.
local MAX_TOKENS_PER_USER = 16

local user_by_token = {}  -- token -> user name
local tokens_of = {}      -- user name -> list of tokens, oldest first

-- 128 random bits as hex, from the kernel: tokens must not be guessable.
local function new_token()
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(16)
  f:close()
  return (bytes:gsub(".", function(c)
    return string.format("%02x", c:byte())
  end))
end

-- Returns a new token for user if password is theirs; nil, message if not.
function accounts.sign_in(user, password)
  if type(user) ~= "string" or type(password) ~= "string"
      or users[user] == nil or users[user] ~= password then
    return nil, "wrong user or password"
  end
  local list = tokens_of[user] or {}
  tokens_of[user] = list
  if #list >= MAX_TOKENS_PER_USER then
    user_by_token[table.remove(list, 1)] = nil
  end
  local token = new_token()
  list[#list + 1] = token
  user_by_token[token] = user
  return token
end

-- The user a token belongs to, or nil.
function accounts.user(token)
  return type(token) == "string" and user_by_token[token] or nil
end

return accounts
