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

return options
