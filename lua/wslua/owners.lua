-- Who owns each connection on the Lua side: the object (a Client, a
-- Response) whose _data and _closed methods get the connection's events.
-- Message data goes from the core straight to owner:_data (conn:_own), on
-- the owner's own budget: it is the path of every message.
local scheduler = require "wslua.scheduler"

local owners = {}

-- The owner is held by the connection's handle itself (conn:_own), not in
-- a table here: one entry fewer per connection.
function owners.set(conn, owner)
  conn:_own(owner)
end

function owners.get(conn)
  return conn:_owner()
end

-- Event handlers for core.listen/core.connect, with request added by the
-- caller. With budget (seconds), the handler coroutines the events start
-- are held to it (scheduler.within).
function owners.handlers(request, budget)
  local handlers = {
    request = request,
    open = function(conn, protocol)
      local owner = conn:_owner()
      if owner and owner._open then
        owner:_open(protocol)
      end
    end,
    drain = function(conn)
      local owner = conn:_owner()
      if owner and owner._drained then
        owner:_drained()
      end
    end,
    close = function(conn, code, reason, err)
      local owner = conn:_owner()
      conn:_own(nil)
      if owner and owner._closed then
        owner:_closed(code, reason, err)
      end
    end,
  }
  if budget then
    for name, fn in pairs(handlers) do
      handlers[name] = function(...)
        return scheduler.within(budget, fn, ...)
      end
    end
  end
  return handlers
end

return owners
