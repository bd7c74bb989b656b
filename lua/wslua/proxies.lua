-- Trusted proxies (host option trusted_proxies): when the peer is one of
-- them, the client's address comes from X-Forwarded-For (or, without it,
-- Forwarded's for=), read from the right: the right-most address that is
-- not itself a trusted proxy is the client. Addresses to the left of it
-- were written by whoever the client is and are not believed.
local proxies = {}

-- "1.2.3.4" -> its 4 bytes, or nil.
local function ipv4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then
    return nil
  end
  local out = {}
  for i, part in ipairs { a, b, c, d } do
    local n = tonumber(part)
    if n > 255 or #part > 3 then
      return nil
    end
    out[i] = n
  end
  return out
end

-- An IPv6 address (with "::" and a dotted IPv4 tail allowed) -> its 16
-- bytes, or nil.
local function ipv6(s)
  if not s:find(":", 1, true) then
    return nil
  end
  local head, tail = s, nil
  local dbl = s:find("::", 1, true)
  if dbl then
    head, tail = s:sub(1, dbl - 1), s:sub(dbl + 2)
    if tail:find("::", 1, true) then
      return nil
    end
  end
  local function groups(part)
    local out = {}
    if part == "" then
      return out
    end
    for g in (part .. ":"):gmatch("([^:]*):") do
      out[#out + 1] = g
    end
    return out
  end
  local left, right = groups(head), tail and groups(tail) or {}
  local bytes = {}
  local function push(list)
    for i, g in ipairs(list) do
      local v4 = i == #list and g:find(".", 1, true) and ipv4(g)
      if v4 then
        for _, b in ipairs(v4) do
          bytes[#bytes + 1] = b
        end
      else
        if not g:match("^%x%x?%x?%x?$") then
          return false
        end
        local n = tonumber(g, 16)
        bytes[#bytes + 1] = n >> 8
        bytes[#bytes + 1] = n & 255
      end
    end
    return true
  end
  if not push(left) then
    return nil
  end
  local at = #bytes
  if not push(right) then
    return nil
  end
  local missing = 16 - #bytes
  if (tail and missing < 2) or (not tail and missing ~= 0) then
    return nil
  end
  for _ = 1, missing do
    table.insert(bytes, at + 1, 0)
  end
  return bytes
end

-- An address as it comes ("1.2.3.4", "1.2.3.4:80", "[::1]:80", "::1",
-- "\"[::1]:80\"") -> its bytes, or nil.
local function parse(addr)
  addr = addr:gsub('^"(.*)"$', "%1")
  local v6 = addr:match("^%[([^%]]+)%]")
  if v6 then
    return ipv6(v6)
  end
  return ipv4(addr) or ipv4(addr:match("^([%d.]+):%d+$") or "") or ipv6(addr)
end
proxies.parse = parse

-- The list of the option -> a list of {bytes, prefix bits}; raises naming
-- an entry that is not an address or a range ("10.0.0.0/8", "fd00::/8").
function proxies.compile(list)
  local ranges = {}
  for _, entry in ipairs(list) do
    local addr, bits = entry:match("^(.-)/(%d+)$")
    addr = addr or entry
    local bytes = ipv4(addr) or ipv6(addr)
    bits = tonumber(bits) or (bytes and #bytes * 8)
    if not bytes or bits > #bytes * 8 then
      error("host option trusted_proxies: '" .. entry
        .. "' is not an IP address or a range like 10.0.0.0/8", 0)
    end
    ranges[#ranges + 1] = { bytes, bits }
  end
  return ranges
end

local function in_range(bytes, range)
  local want, bits = range[1], range[2]
  if #want ~= #bytes then
    return false
  end
  for i = 1, #want do
    if bits <= 0 then
      return true
    end
    local mask = bits >= 8 and 255 or (0xff << (8 - bits)) & 255
    if (bytes[i] & mask) ~= (want[i] & mask) then
      return false
    end
    bits = bits - 8
  end
  return true
end

local function trusted(ranges, addr)
  local bytes = parse(addr)
  if not bytes then
    return false
  end
  for _, r in ipairs(ranges) do
    if in_range(bytes, r) then
      return true
    end
  end
  return false
end
proxies.trusted = trusted

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Forwarded (RFC 7239): the for= of each element, in order.
local function forwarded_for(value)
  local out = {}
  for element in (value .. ","):gmatch("([^,]*),") do
    for pair in element:gmatch("[^;]+") do
      local k, v = pair:match("^%s*([%w_-]+)%s*=%s*(.-)%s*$")
      if k and k:lower() == "for" then
        out[#out + 1] = (v:gsub('^"(.*)"$', "%1"))
      end
    end
  end
  return out
end

-- The client's address for a request from peer ("1.2.3.4:5678" or
-- "[::1]:5678") with these headers (lower-case names), given the compiled
-- trusted ranges: peer itself unless it is trusted and a header names
-- someone; then the right-most untrusted address of the header (the
-- left-most if all are trusted), as written there (an X-Forwarded-For
-- entry is usually an address without a port).
function proxies.client_addr(ranges, peer, headers)
  if not peer or not trusted(ranges, peer) then
    return peer
  end
  local chain = {}
  local xff = headers["x-forwarded-for"]
  if xff then
    for entry in (xff .. ","):gmatch("([^,]*),") do
      entry = trim(entry)
      if entry ~= "" then
        chain[#chain + 1] = entry
      end
    end
  elseif headers.forwarded then
    chain = forwarded_for(headers.forwarded)
  end
  if #chain == 0 then
    return peer
  end
  for i = #chain, 1, -1 do
    if not trusted(ranges, chain[i]) then
      return chain[i]
    end
  end
  return chain[1]
end

return proxies
