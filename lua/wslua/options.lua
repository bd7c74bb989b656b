-- Option tables are checked when the app loads: an unknown name or a wrong
-- type is an error naming the option, never a silent default.
local options = {}

local checks = {
  number = function(v)
    return type(v) == "number" and v >= 0
  end,
  positive = function(v)
    return type(v) == "number" and v > 0
  end,
  boolean = function(v)
    return type(v) == "boolean"
  end,
  string = function(v)
    return type(v) == "string"
  end,
  table = function(v)
    return type(v) == "table"
  end,
  strings = function(v)
    if type(v) ~= "table" then
      return false
    end
    for _, s in ipairs(v) do
      if type(s) ~= "string" then
        return false
      end
    end
    return true
  end,
  ["boolean|table"] = function(v)
    return type(v) == "boolean" or type(v) == "table"
  end,
}

local descriptions = {
  number = "a non-negative number",
  positive = "a positive number",
  strings = "a list of strings",
  ["boolean|table"] = "a boolean or a table",
}

-- Checks the named (non-integer) keys of t against spec (name -> kind);
-- what is where names the table in the error. Raises at the caller's caller.
function options.check(what, t, spec)
  for k, v in pairs(t) do
    if type(k) ~= "number" then
      local kind = spec[k]
      if kind == nil then
        error(string.format("unknown option '%s' in %s", tostring(k), what), 3)
      end
      if not checks[kind](v) then
        error(string.format("option '%s' in %s must be %s, got %s", k, what,
          descriptions[kind] or ("a " .. kind), type(v)), 3)
      end
    end
  end
  return t
end

local compression_kinds = {
  level = "number",
  mem_level = "positive",
  window_bits = "positive",
  peer_window_bits = "positive",
  threshold = "number",
  server_no_context_takeover = "boolean",
  client_no_context_takeover = "boolean",
}

local function in_range(what, t, name, lo, hi)
  local v = t[name]
  if v ~= nil and (v % 1 ~= 0 or v < lo or v > hi) then
    error(string.format("option 'compression.%s' in %s must be an integer from %d to %d",
      name, what, lo, hi), 4)
  end
end

-- The compression option (true, false or a table of settings), checked;
-- returns the table the core takes, or nil for none.
function options.compression(what, value)
  if not value then
    return nil
  end
  if value == true then
    return {}
  end
  options.check(what .. " (compression)", value, compression_kinds)
  in_range(what, value, "level", 0, 9)
  in_range(what, value, "mem_level", 1, 9)
  in_range(what, value, "window_bits", 9, 15)
  in_range(what, value, "peer_window_bits", 9, 15)
  return value
end

return options
