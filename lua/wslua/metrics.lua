-- wslua.metrics(): a route handler serving the server's counters in the
-- Prometheus text format 0.0.4:
--
--   router:get("/metrics", wslua.metrics())
--
-- The counters are this Lua VM's (wslua.observe): with workers, each
-- worker serves its own, labelled worker="N", and a scrape reaches one of
-- them (scrape each worker's port, or sum in the query). Per endpoint
-- counts carry the route's pattern: route="/ws" (route="*" for an endpoint
-- listed in the host itself). Counts of open sessions are read from the
-- core when scraped, so a counter includes them as they stand.
local core = require "wslua.core"
local observe = require "wslua.observe"

local metrics = {}

local function escape(v)
  return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

-- A writer of one exposition: families in the order written, each with
-- HELP and TYPE, samples with labels in the order given.
local function writer(common)
  local out = {}
  local w = {}
  function w.family(name, kind, help)
    out[#out + 1] = "# HELP " .. name .. " " .. help .. "\n"
    out[#out + 1] = "# TYPE " .. name .. " " .. kind .. "\n"
  end
  function w.sample(name, labels, value)
    local parts = {}
    for _, l in ipairs(common) do
      parts[#parts + 1] = l[1] .. '="' .. escape(l[2]) .. '"'
    end
    for i = 1, #(labels or {}), 2 do
      parts[#parts + 1] = labels[i] .. '="' .. escape(labels[i + 1]) .. '"'
    end
    local v = value
    if math.type(v) == "float" and v == math.floor(v) and v < 2 ^ 53 then
      v = math.tointeger(v)
    end
    out[#out + 1] = name .. (#parts > 0 and "{" .. table.concat(parts, ",") .. "}" or "")
      .. " " .. tostring(v) .. "\n"
  end
  function w.text()
    return table.concat(out)
  end
  return w
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) then
      return a < b
    end
    return tostring(a) < tostring(b)
  end)
  return keys
end

-- Each route's counters with the open sessions' counts added in.
local function current()
  local now = {}
  for label, r in pairs(observe.routes) do
    now[label] = {
      opened = r.opened, open = r.open, errors = r.errors,
      messages_in = r.messages_in, messages_out = r.messages_out,
      bytes_in = r.bytes_in, bytes_out = r.bytes_out, dropped = r.dropped,
      refused = r.refused, closes = r.closes, buffered = 0,
    }
  end
  for clients in pairs(observe.sessions) do
    for _, client in pairs(clients) do
      local n = now[client._label]
      local bytes_in, bytes_out, msgs_in, msgs_out = client.conn:stats()
      n.bytes_in = n.bytes_in + bytes_in
      n.bytes_out = n.bytes_out + bytes_out
      n.messages_in = n.messages_in + msgs_in
      n.messages_out = n.messages_out + msgs_out
      n.dropped = n.dropped + client.conn:dropped()
      n.buffered = n.buffered + client.conn:buffered()
    end
  end
  return now
end

-- The exposition text, now.
function metrics.render()
  local common = {}
  if core.worker then
    common[1] = { "worker", (core.worker()) }
  end
  local w = writer(common)
  local now = current()
  local routes = sorted_keys(now)

  w.family("wslua_info", "gauge", "The server's version (the value is 1).")
  w.sample("wslua_info", { "version", core.version }, 1)

  local function per_route(name, kind, help, field)
    w.family(name, kind, help)
    for _, label in ipairs(routes) do
      w.sample(name, { "route", label }, now[label][field])
    end
  end
  local function per_route_by(name, help, field, key)
    w.family(name, "counter", help)
    for _, label in ipairs(routes) do
      local t = now[label][field]
      for _, k in ipairs(sorted_keys(t)) do
        w.sample(name, { "route", label, key, k }, t[k])
      end
    end
  end

  per_route("wslua_connections_open", "gauge", "WebSocket connections open.", "open")
  per_route("wslua_connections_total", "counter",
    "WebSocket connections opened (successful handshakes).", "opened")
  per_route_by("wslua_handshakes_refused_total",
    "WebSocket handshakes refused, by the status answered.", "refused", "status")
  per_route("wslua_messages_received_total", "counter",
    "WebSocket messages received whole.", "messages_in")
  per_route("wslua_messages_sent_total", "counter",
    "WebSocket messages queued for sending (a broadcast counts once per client).",
    "messages_out")
  per_route("wslua_bytes_received_total", "counter",
    "WebSocket bytes received (frames, headers included; TLS excluded).", "bytes_in")
  per_route("wslua_bytes_sent_total", "counter",
    "WebSocket bytes queued for sending (frames, headers included; TLS excluded).",
    "bytes_out")
  per_route("wslua_messages_dropped_total", "counter",
    "Messages skipped for clients over max_backpressure (backpressure = \"drop\").",
    "dropped")
  per_route_by("wslua_close_codes_total", "WebSocket sessions ended, by close code.",
    "closes", "code")
  per_route("wslua_send_buffer_bytes", "gauge",
    "Bytes queued for sending that the kernel has not taken yet.", "buffered")
  per_route("wslua_handler_errors_total", "counter",
    "Lua handler errors (the client closed with 1011, or a 500).", "errors")

  w.family("wslua_http_requests_total", "counter",
    "HTTP responses finished (upgrades that succeeded excepted), by status.")
  for _, status in ipairs(sorted_keys(observe.http_requests)) do
    w.sample("wslua_http_requests_total", { "status", status },
      observe.http_requests[status])
  end

  local reloader = package.loaded["wslua.reload"] and package.loaded["wslua.reload"].current
  w.family("wslua_reloads_total", "counter", "Hot reloads that succeeded.")
  w.sample("wslua_reloads_total", nil, reloader and reloader.count or 0)
  w.family("wslua_reload_failures_total", "counter",
    "Hot reloads that failed (the old code kept serving).")
  w.sample("wslua_reload_failures_total", nil, observe.reload_failures)

  w.family("wslua_lua_memory_bytes", "gauge", "Memory the Lua VM holds.")
  w.sample("wslua_lua_memory_bytes", nil, math.floor(collectgarbage("count") * 1024))
  return w.text()
end

-- The route handler: GET (or HEAD) answers the exposition.
function metrics.handler()
  return function(_, res)
    res:header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
    res:header("Cache-Control", "no-store")
    res:send(metrics.render())
  end
end

return metrics
