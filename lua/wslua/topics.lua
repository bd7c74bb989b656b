-- Topics: every publish goes out through topics.publish, which delivers to
-- this process's subscribers in one core call (the frame built once and
-- shared by every recipient's write queue) and hands the message to
-- topics.forward when a bus is set. A bus that carries topics across
-- workers or machines sets topics.forward(topic, payload, binary, group)
-- and calls topics.deliver for what arrives from elsewhere (local only, so
-- nothing loops back).
--
-- Groups: 0 reaches every subscriber (wslua.publish); an endpoint's group
-- only the clients that subscribed through that endpoint (endpoint:publish).
local core = require "wslua.core"

local topics = {
  forward = nil,
}

local function check(topic, payload, mode, level)
  if type(topic) ~= "string" then
    error("bad argument #1 to 'publish' (string expected, got " .. type(topic) .. ")",
      level + 1)
  end
  if type(payload) ~= "string" then
    error("bad argument #2 to 'publish' (string expected, got " .. type(payload) .. ")",
      level + 1)
  end
  if mode == nil or mode == "text" or mode == false then
    return false
  elseif mode == "binary" or mode == true then
    return true
  end
  error("publish mode must be \"text\" or \"binary\"", level + 1)
end

-- Returns how many local subscribers the message was queued for.
function topics.publish(topic, payload, binary, group)
  local n = core.publish(topic, payload, binary, group)
  local forward = topics.forward
  if forward then
    forward(topic, payload, binary, group)
  end
  return n
end

-- A message from elsewhere, for this process's subscribers only.
function topics.deliver(topic, payload, binary, group)
  return core.publish(topic, payload, binary, group)
end

-- publish(topic, payload [, "binary"]) as the scripts call it, checked;
-- level is where an argument error points.
function topics.checked_publish(topic, payload, mode, group, level)
  return topics.publish(topic, payload, check(topic, payload, mode, (level or 1) + 1), group)
end

return topics
