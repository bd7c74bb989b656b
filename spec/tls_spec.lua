-- TLS end to end over loopback: wss:// and https:// with certificates made
-- here by the openssl command (a throwaway CA, leaves for localhost and
-- other.test, a chain through an intermediate), SNI, verification failures,
-- bytes that are not TLS, a stalled handshake, the binary's --tls-cert and
-- --tls-key with Python and Node as peers (with and without
-- permessage-deflate), certificates loaded again on SIGHUP, and
-- examples/wss.
local wslua = require "wslua"
local core = require "wslua.core"
local h = require "helpers"
local interop = require "helpers.interop"

local quote = interop.quote
local MiB = 1024 * 1024

local slurp = h.slurp

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- The certificates: ca signs localhost (DNS:localhost, IP:127.0.0.1);
-- other_ca signs only other.test; chain_ca signs inter, which signs
-- chained (localhost again). combined.pem is localhost's cert and key in one
-- file. new_ca signs renewed (localhost) and renewed_other (other.test): the
-- certificates a renewal brings.
local MAKE_CERTS = [[
set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
ca() { # name, common name
  key "$1"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign
}
sign() { # name, common name, issuer, extensions
  key "$1"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf '%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' "$4" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial \
    -days 2 -extfile "$1.ext" -out "$1.pem"
}
leaf='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth'
ca ca "wslua test CA"
ca other_ca "wslua other CA"
ca chain_ca "wslua chain root"
sign localhost localhost ca "$leaf
subjectAltName=DNS:localhost,IP:127.0.0.1"
sign other other.test other_ca "$leaf
subjectAltName=DNS:other.test"
sign inter "wslua intermediate" chain_ca 'basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign'
sign chained localhost inter "$leaf
subjectAltName=DNS:localhost,IP:127.0.0.1"
cat localhost.pem localhost.key >combined.pem
ca new_ca "wslua renewed CA"
sign renewed localhost new_ca "$leaf
subjectAltName=DNS:localhost,IP:127.0.0.1"
sign renewed_other other.test new_ca "$leaf
subjectAltName=DNS:other.test"
]]

local dir -- the temporary folder with the certificates
local function file(name)
  return dir .. "/" .. name
end

local function echo_endpoint()
  return wslua.websocket({
    on_data = function(_, client, msg)
      local body = msg:read()
      if body then
        client:send(body, msg.binary and "binary" or "text")
      end
    end,
  }, { max_message = 2 * MiB })
end

-- A host serving the echo endpoint on /ws with these tls options.
local function tls_host(tls, extra)
  local t = { tls = tls, wslua.router():get("/ws", echo_endpoint()) }
  for k, v in pairs(extra or {}) do
    t[k] = v
  end
  return wslua.host(t)
end

-- One round trip through an open client; fails unless it comes back whole.
local function roundtrip(c, payload, binary)
  assert.truthy(c:send(payload, binary and "binary" or "text"))
  local got, is_binary = c:receive()
  assert.equal(binary, is_binary)
  assert.equal(#payload, got and #got, "the echo of " .. #payload .. " B")
  assert.truthy(got == payload, "the echo of " .. #payload .. " B differs")
end

-- Connects to url with opts, sends one message and closes; returns true, or
-- nil and wslua.connect's error.
local function try_echo(url, opts)
  local c, err = wslua.connect(url, opts)
  if not c then
    return nil, err
  end
  roundtrip(c, "hello over TLS", false)
  c:close()
  return true
end

-- The binary on an app (a path, or text written to a file in dir) with
-- extra arguments; fails unless it listens.
local function spawn(app, args)
  if app:find("\n", 1, true) then
    write(file("app.lua"), app)
    app = file("app.lua")
  end
  local proc = h.spawn(quote(app), args)
  assert(proc:alive() and proc:log():find("listening on", 1, true),
    "the server did not start: " .. proc:log())
  return proc
end

-- How often a plain string occurs in s.
local function count(s, plain)
  local n, at = 0, 1
  while true do
    local i = s:find(plain, at, true)
    if not i then
      return n
    end
    n, at = n + 1, i + #plain
  end
end

-- Sends bytes (if any) on a raw TCP connection and waits for the server to
-- close it; returns what came back, the seconds it took, and why reading
-- stopped ("closed", or "timeout" after limit seconds).
local function raw_until_closed(port, bytes, limit)
  local s = assert(wslua.tcp("127.0.0.1", port))
  local started = core.now()
  if bytes then
    s:write(bytes)
  end
  local got, why = s:read_all(limit)
  s:close()
  return got, core.now() - started, why
end

describe("TLS", function()
  setup(function()
    assert(os.execute("command -v openssl >/dev/null 2>&1"),
      "the openssl command is missing (Debian: openssl); install it with "
      .. "`scripts/deps.sh test` (or `make test`)")
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. quote(dir)))
    local ok = os.execute(string.format("cd %s && sh -c %s >openssl.log 2>&1",
      quote(dir), quote(MAKE_CERTS)))
    assert(ok, "making the test certificates failed:\n" .. (slurp(file("openssl.log")) or ""))
  end)

  teardown(function()
    if dir and dir:match("^/tmp/") then
      os.execute("rm -rf " .. quote(dir))
    end
  end)

  describe("in this process", function()
    it("echoes text and binary from 0 B to 1 MiB over wss:// to wslua.connect with ca", function()
      local server = h.serve(tls_host { cert = file("localhost.pem"), key = file("localhost.key") })
      h.run(function()
        local url = server:url("/ws")
        assert.matches("^wss://127%.0%.0%.1:%d+/ws$", url)
        local c = assert(wslua.connect(url, { ca = file("ca.pem"), max_message = 2 * MiB }))
        local every_byte = {}
        for i = 0, 255 do
          every_byte[#every_byte + 1] = string.char((i * 7) % 256)
        end
        every_byte = table.concat(every_byte)
        for _, size in ipairs { 0, 1, 125, 126, 16385, 65535, 65536, MiB } do
          local text = ("wss\u{e9}\u{20ac}!"):rep(size // 9 + 1):sub(1, size)
          text = text:gsub("[\x80-\xff]+$", "") -- whole characters only
          roundtrip(c, text, false)
          roundtrip(c, every_byte:rep(size // 256 + 2):sub(1 + size % 256, size + size % 256), true)
        end
        c:close()
        assert.truthy(h.wait_for(function() return c.close_code ~= nil end))
        assert.equal(1000, c.close_code)
        h.stop(server)
      end)
    end)

    it("connects with many CA files, freeing the contexts past the eight it keeps", function()
      -- Contexts for the first 8 (ca, insecure) pairs are kept; the others
      -- go with their connections (under make asan a leak fails this spec).
      local server = h.serve(tls_host { cert = file("localhost.pem"), key = file("localhost.key") })
      h.run(function()
        for i = 1, 12 do
          local ca = file("ca-" .. i .. ".pem")
          write(ca, slurp(file("ca.pem")))
          assert(try_echo(server:url("/ws"), { ca = ca }))
        end
        h.stop(server)
      end)
    end)

    it("takes the key from the cert file when there is no key option", function()
      local server = h.serve(tls_host { cert = file("combined.pem") })
      h.run(function()
        assert(try_echo(server:url("/ws"), { ca = file("ca.pem") }))
        h.stop(server)
      end)
    end)

    it("sends the intermediates of the chain option", function()
      local with = h.serve(tls_host {
        cert = file("chained.pem"), key = file("chained.key"), chain = file("inter.pem"),
      })
      local without = h.serve(tls_host { cert = file("chained.pem"), key = file("chained.key") })
      h.run(function()
        assert(try_echo(with:url("/ws"), { ca = file("chain_ca.pem") }))
        -- Without the intermediate the root alone cannot vouch for the leaf.
        local ok, err = try_echo(without:url("/ws"), { ca = file("chain_ca.pem") })
        assert.is_nil(ok)
        assert.matches("certificate verify failed", err)
        h.stop(with)
        h.stop(without)
      end)
    end)

    it("serves the certificate of the name asked for by SNI, the default otherwise", function()
      local server = h.serve(tls_host {
        cert = file("localhost.pem"), key = file("localhost.key"),
        names = { ["other.test"] = { cert = file("other.pem"), key = file("other.key") } },
      })
      h.run(function()
        local url = server:url("/ws")
        -- other_ca signed only other.test's certificate, ca only localhost's.
        assert(try_echo(url, { ca = file("other_ca.pem"), server_name = "other.test" }))
        assert(try_echo(url, { ca = file("other_ca.pem"), server_name = "OTHER.test" }))
        assert(try_echo(url, { ca = file("ca.pem"), server_name = "localhost" }))
        assert(try_echo(url, { ca = file("ca.pem") }))
        local ok, err = try_echo(url, { ca = file("ca.pem"), server_name = "other.test" })
        assert.is_nil(ok)
        assert.matches("certificate verify failed", err)
        ok, err = try_echo(url, { ca = file("other_ca.pem"), server_name = "localhost" })
        assert.is_nil(ok)
        assert.matches("certificate verify failed", err)
        h.stop(server)
      end)
    end)

    it("verifies an IP address in the URL and sends no IP address by SNI (RFC 6066, 3)", function()
      -- other.test's certificate does not name 127.0.0.1.
      local other = h.serve(tls_host { cert = file("other.pem"), key = file("other.key") })
      -- A name "127.0.0.1" would get other.test's certificate, were it sent.
      local server = h.serve(tls_host {
        cert = file("localhost.pem"), key = file("localhost.key"),
        names = { ["127.0.0.1"] = { cert = file("other.pem"), key = file("other.key") } },
      })
      h.run(function()
        local ok, err = try_echo(other:url("/ws"), { ca = file("other_ca.pem") })
        assert.is_nil(ok)
        assert.matches("certificate verify failed: IP address mismatch", err)
        assert(try_echo(server:url("/ws"), { ca = file("ca.pem") }))
        h.stop(other)
        h.stop(server)
      end)
    end)

    it("fails wslua.connect clearly when the certificate cannot be verified", function()
      local server = h.serve(tls_host { cert = file("localhost.pem"), key = file("localhost.key") })
      h.run(function()
        local url = server:url("/ws")
        -- The system's CAs do not know the throwaway CA.
        local c, err = wslua.connect(url)
        assert.is_nil(c)
        assert.matches("TLS handshake failed", err)
        assert.matches("certificate verify failed", err)
        assert.matches("unable to get local issuer certificate", err)
        -- The right CA but another name.
        c, err = wslua.connect(url, { ca = file("ca.pem"), server_name = "elsewhere.test" })
        assert.is_nil(c)
        assert.matches("certificate verify failed", err)
        assert.matches("hostname mismatch", err)
        -- insecure skips verification; the server is still serving.
        assert(try_echo(url, { insecure = true }))
        assert(try_echo(url, { ca = file("ca.pem") }))
        h.stop(server)
      end)
    end)

    it("refuses a certificate or key file it cannot use with an error naming it", function()
      for _, case in ipairs {
        { { cert = file("nothing.pem"), key = file("localhost.key") }, "nothing%.pem" },
        { { cert = file("localhost.pem"), key = file("nokey.key") }, "nokey%.key" },
        { { cert = file("localhost.pem"), key = file("other.key") }, "other%.key.*mismatch" },
        { { cert = file("localhost.pem"), key = file("localhost.key"), chain = file("nochain.pem") },
          "nochain%.pem" },
        { { cert = file("localhost.pem"), key = file("localhost.key"),
            names = { ["other.test"] = { cert = file("noother.pem") } } }, "noother%.pem" },
      } do
        local ok, err = pcall(h.serve, tls_host(case[1]))
        assert.is_false(ok)
        assert.matches(case[2], err)
        -- The file's fault, not a line of wslua's own.
        assert.is_falsy(err:find("host.lua", 1, true), err)
      end
    end)

    it("stops the listeners it started when a later one's certificate fails", function()
      local port = h.free_port()
      local first = wslua.host { listen = "127.0.0.1:" .. port, function(_, res) res:send("") end }
      local second = tls_host({ cert = file("nothing.pem") }, { listen = "127.0.0.1:0" })
      local ok, err = pcall(wslua.serve, { first, second })
      assert.is_false(ok)
      assert.matches("nothing%.pem", err)
      h.run(function()
        local s = wslua.tcp("127.0.0.1", port)
        if s then
          s:close()
        end
        assert.is_nil(s, "127.0.0.1:" .. port .. " is still listening")
      end)
    end)

    it("points a malformed tls option at the app's line", function()
      local function host(tls)
        local ok, err = pcall(function()
          local made = wslua.host { tls = tls }
          return made
        end)
        assert.is_false(ok)
        return err
      end
      assert.matches("tls_spec%.lua:%d+: host option tls needs cert", host { key = "k.pem" })
      assert.matches("tls_spec%.lua:%d+: unknown option 'kye'", host { cert = "c.pem", kye = "k.pem" })
      assert.matches("tls_spec%.lua:%d+: host option tls%.names must map names",
        host { cert = "c.pem", names = { ["a.test"] = { key = "k.pem" } } })
      assert.matches("tls_spec%.lua:%d+: host option tls%.names must map names",
        host { cert = "c.pem", names = { ["a.test"] = "a.pem" } })
      assert.matches("tls_spec%.lua:%d+: unknown option 'chain' in host tls%.names%['a%.test'%]",
        host { cert = "c.pem", names = { ["a.test"] = { cert = "a.pem", chain = "x.pem" } } })
    end)
  end)

  describe("the binary with tls in the app", function()
    local APP = [[
local wslua = require "wslua"
local dir = %q
local echo = wslua.websocket(function(client)
  for msg in client:messages() do client:send(msg:read(), msg.binary and "binary" or "text") end
end)
return wslua.host { listen = "127.0.0.1:1", handshake_timeout = 0.5,
  tls = { cert = dir .. "/localhost.pem", key = dir .. "/localhost.key" },
  wslua.router():get("/ws", echo):get("/hello", function(req, res) res:send("hello over https") end) }
]]
    local proc
    before_each(function()
      proc = spawn(APP:format(dir))
    end)
    after_each(function()
      proc:stop()
    end)

    it("logs a client that refuses the certificate and carries on", function()
      h.run(function()
        local c, err = wslua.connect("wss://127.0.0.1:" .. proc.port .. "/ws")
        assert.is_nil(c)
        assert.matches("certificate verify failed", err)
      end)
      interop.wait_log(proc, "TLS handshake failed %(.*unknown ca")
      h.run(function()
        assert(try_echo("wss://127.0.0.1:" .. proc.port .. "/ws", { ca = file("ca.pem") }))
      end)
      assert.is_true(proc:alive())
    end)

    it("closes a connection that speaks plain HTTP and serves the next wss client", function()
      h.run(function()
        local got, took, why = raw_until_closed(proc.port,
          "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 3)
        assert.equal("closed", why)
        assert.is_falsy(got:find("hello over https", 1, true))
        assert.is_true(took < 3)
        assert(try_echo("wss://127.0.0.1:" .. proc.port .. "/ws", { ca = file("ca.pem") }))
      end)
      interop.wait_log(proc, "plain HTTP on the TLS port.*closing")
      assert.equal(0, count(proc:log(), "no complete request in time"), proc:log())
    end)

    it("closes a connection that sends bytes that are not TLS", function()
      h.run(function()
        local _, _, why = raw_until_closed(proc.port, ("\0\1\2\3\255\254garbage"):rep(8), 3)
        assert.equal("closed", why)
      end)
      interop.wait_log(proc, "TLS handshake failed %(")
      assert.equal(0, count(proc:log(), "no complete request in time"), proc:log())
      assert.is_true(proc:alive())
    end)

    it("closes a client that sends nothing, or half a record, after handshake_timeout", function()
      h.run(function()
        for _, bytes in ipairs { false, "\22\3\1\0" } do
          local got, took, why = raw_until_closed(proc.port, bytes or nil, 5)
          assert.equal("closed", why)
          assert.equal("", got)
          assert.is_true(took >= 0.4 and took < 2.5, "closed after " .. took .. " s")
        end
      end)
      interop.wait_log(proc, "no complete request in time.*no complete request in time")
      assert.equal(0, count(proc:log(), "TLS handshake failed"), proc:log())
    end)

    it("answers https:// GET of a route (Python's http.client, ALPN http/1.1)", function()
      interop.need_python()
      local status, out = interop.run({ interop.python, interop.dir .. "/python_tls_client.py",
        "https", "https://127.0.0.1:" .. proc.port .. "/hello", file("ca.pem") }, 20)
      interop.assert_passed(status, out, "PYTHON TLS OK")
      assert.matches("ok TLSv1%.[23] alpn http/1%.1\n", out)
      assert.matches("status 200 ", out)
      assert.matches("body hello over https\n", out, 1, true)
      assert.matches("second status 404\n", out, 1, true)
    end)
  end)

  describe("the binary with --tls-cert and --tls-key", function()
    local app = h.source_dir .. "/examples/wss/app.lua"

    local function serve_example()
      return spawn(app, "--tls-cert " .. quote(file("localhost.pem"))
        .. " --tls-key " .. quote(file("localhost.key")))
    end

    it("serves wss:// to Python websockets; permessage-deflate is not negotiated", function()
      interop.need_python()
      local proc = serve_example()
      finally(function() proc:stop() end)
      assert.matches("listening on 127%.0%.0%.1:" .. proc.port .. " %(TLS%)", proc:log())
      local status, out = interop.run({ interop.python, interop.dir .. "/python_tls_client.py",
        "wss", "wss://127.0.0.1:" .. proc.port .. "/ws", file("ca.pem") })
      interop.assert_passed(status, out, "PYTHON TLS OK")
      assert.matches("ok permessage-deflate offered, not negotiated\n", out, 1, true)
      for _, size in ipairs { 0, 125, 126, 65536, MiB } do
        assert.matches("ok echo text " .. size .. " B\n", out, 1, true)
        assert.matches("ok echo binary " .. size .. " B\n", out, 1, true)
      end
      assert.matches("ok close 1000\n", out, 1, true)
      assert.is_true(proc:alive())
    end)

    it("serves wss:// to Node ws; permessage-deflate is not negotiated", function()
      interop.need_node { "ws" }
      local proc = serve_example()
      finally(function() proc:stop() end)
      local status, out = interop.run({ "node", interop.dir .. "/node_tls_client.js",
        "wss://127.0.0.1:" .. proc.port .. "/ws", file("ca.pem") })
      interop.assert_passed(status, out, "NODE TLS OK")
      assert.matches("ok permessage-deflate offered, not negotiated\n", out, 1, true)
      for _, size in ipairs { 0, 125, 126, 65536, MiB } do
        assert.matches("ok echo text " .. size .. " B\n", out, 1, true)
        assert.matches("ok echo binary " .. size .. " B\n", out, 1, true)
      end
      assert.matches("ok close 1000\n", out, 1, true)
      assert.is_true(proc:alive())
    end)

    -- examples/echo's /deflate over wss://: permessage-deflate negotiated,
    -- every message echoed, and fewer bytes sent than echoed (the server's
    -- access line counts the WebSocket bytes, before TLS).
    for _, peer in ipairs {
      { "Python websockets", interop.need_python, "PYTHON TLS OK", function(url)
        return { interop.python, interop.dir .. "/python_tls_client.py", "wss-deflate", url, file("ca.pem") }
      end },
      { "Node ws", function() interop.need_node { "ws" } end, "NODE TLS OK", function(url)
        return { "node", interop.dir .. "/node_tls_client.js", url, file("ca.pem"), "deflate" }
      end },
    } do
      it("serves wss:// with permessage-deflate to " .. peer[1] .. ", 0 B to 1 MiB echoed", function()
        peer[2]()
        local proc = spawn(h.source_dir .. "/examples/echo/app.lua", "--tls-cert "
          .. quote(file("localhost.pem")) .. " --tls-key " .. quote(file("localhost.key")))
        finally(function() proc:stop() end)
        local status, out = interop.run(peer[4]("wss://127.0.0.1:" .. proc.port .. "/deflate"))
        interop.assert_passed(status, out, peer[3])
        assert.matches("ok TLSv1%.[23]\n", out)
        assert.matches("ok negotiated permessage-deflate; server_no_context_takeover; "
          .. "client_no_context_takeover\n", out, 1, true)
        for _, size in ipairs { 0, 125, 126, 65536, MiB } do
          for _, kind in ipairs { "text", "binary", "compressible text", "compressible binary" } do
            assert.matches("ok echo " .. kind .. " " .. size .. " B\n", out, 1, true)
          end
        end
        assert.matches("ok close 1000\n", out, 1, true)
        local payload = tonumber(out:match("payload bytes echoed (%d+)\n"))
        local line = '"route":"/deflate"[^\n]*"bytes_out":(%d+)'
        local sent = tonumber(interop.wait_log(proc, line):match(line))
        assert.is_true(sent < payload / 2, sent .. " bytes sent for " .. payload .. " echoed")
        assert.is_true(proc:alive())
      end)
    end

    for _, case in ipairs {
      { "--tls-cert", "--tls-cert %s/missing-cert.pem", "missing%-cert%.pem" },
      { "--tls-key", "--tls-cert %s/localhost.pem --tls-key %s/missing-key.pem", "missing%-key%.pem" },
    } do
      it("exits non-zero with one line naming a " .. case[1] .. " file that is not there", function()
        local err = os.tmpname()
        local args = case[2]:gsub("%%s", (quote(dir):gsub("%%", "%%%%")))
        local _, _, code = os.execute(string.format("timeout 10 %s %s --listen 127.0.0.1:0 %s 2>%s",
          quote(h.bin), quote(app), args, err))
        local text = slurp(err) or ""
        os.remove(err)
        assert.not_equal(0, code)
        assert.equal(1, count(text, "\n"), text)
        assert.matches(case[3], text)
        assert.is_falsy(text:find("traceback", 1, true), text)
      end)
    end
  end)

  describe("the binary reloading its certificates", function()
    -- The files the server is told about, in a folder of their own: each test
    -- starts them as localhost's and other.test's first certificates.
    local live
    local function put(name, text)
      -- As a renewal does: a new file renamed over the old one.
      write(live .. "/" .. name .. ".new", text)
      assert(os.rename(live .. "/" .. name .. ".new", live .. "/" .. name))
    end
    local function renew()
      put("cert.pem", slurp(file("renewed.pem")))
      put("key.pem", slurp(file("renewed.key")))
      put("other.pem", slurp(file("renewed_other.pem")))
      put("other.key", slurp(file("renewed_other.key")))
    end
    before_each(function()
      live = file("live")
      assert(os.execute("mkdir -p " .. quote(live)))
      put("cert.pem", slurp(file("localhost.pem")))
      put("key.pem", slurp(file("localhost.key")))
      put("other.pem", slurp(file("other.pem")))
      put("other.key", slurp(file("other.key")))
    end)

    -- Sends SIGHUP and waits for the log to show the n-th line matching
    -- pattern (a reload's certificates loaded, or not).
    local function hup(proc, pattern, n)
      proc:signal("HUP")
      h.wait_for(function()
        return count(proc:log(), pattern) >= n
      end, 10)
      assert.equal(n, count(proc:log(), pattern), proc:log())
    end

    local APP = [[
local wslua = require "wslua"
local live = %q
local echo = wslua.websocket(function(client)
  for msg in client:messages() do client:send(msg:read(), msg.binary and "binary" or "text") end
end)
return wslua.host { listen = "127.0.0.1:1",
  tls = { cert = live .. "/%s", key = live .. "/%s",
    names = { ["other.test"] = { cert = live .. "/other.pem", key = live .. "/other.key" } } },
  wslua.router():get("/ws", echo) }
]]

    it("serves renewed files at the same paths after SIGHUP, keeps open connections, "
      .. "handshakes under way and, when the files are broken, the old certificates", function()
      interop.need_python()
      local proc = spawn(APP:format(live, "cert.pem", "key.pem"))
      finally(function() proc:stop() end)
      local url = "wss://127.0.0.1:" .. proc.port .. "/ws"
      local held_out = file("held.out")
      h.run(function()
        local open = assert(wslua.connect(url, { ca = file("ca.pem") }))
        roundtrip(open, "before the renewal", false)
        -- A TCP connection accepted before the swap, its ClientHello (SNI
        -- other.test) sent after it.
        local held = assert(io.popen(string.format("timeout -k 5 30 %s %s held 127.0.0.1:%d %s other.test >%s 2>&1",
          interop.python, quote(interop.dir .. "/python_tls_client.py"), proc.port,
          quote(file("other_ca.pem")), quote(held_out)), "w"))
        assert.truthy(h.wait_for(function()
          return (slurp(held_out) or ""):find("connected", 1, true)
        end, 10), slurp(held_out))

        renew()
        hup(proc, "certificates loaded from", 1)
        -- The app's reload line follows the certificates' (a write of its
        -- own: a loaded machine may run this in between).
        assert.truthy(h.wait_for(function()
          return proc:log():find("reloaded app.lua (#1)", 1, true)
        end, 10), proc:log())
        held:write("go\n")
        held:close()
        local out = slurp(held_out)
        assert.matches("ok handshake TLSv1%.[23] issuer wslua other CA\n", out)
        assert.matches("status line HTTP/1.1 404", out)
        assert.matches("PYTHON TLS OK", out)

        roundtrip(open, "after the renewal", false)
        local ok, err = try_echo(url, { ca = file("ca.pem") })
        assert.is_nil(ok)
        assert.matches("certificate verify failed", err)
        assert(try_echo(url, { ca = file("new_ca.pem") }))
        ok, err = try_echo(url, { ca = file("other_ca.pem"), server_name = "other.test" })
        assert.is_nil(ok)
        assert.matches("certificate verify failed", err)
        assert(try_echo(url, { ca = file("new_ca.pem"), server_name = "other.test" }))

        -- Broken files: the certificates of the last good reload serve on.
        put("cert.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
        hup(proc, "certificates not reloaded", 1)
        assert.matches("certificates not reloaded, the old ones keep serving: "
          .. "cannot load certificate [^\n]*/live/cert%.pem", proc:log())
        assert(try_echo(url, { ca = file("new_ca.pem") }))
        put("cert.pem", slurp(file("renewed.pem")))
        put("other.key", "")
        hup(proc, "certificates not reloaded", 2)
        assert.matches("certificates not reloaded[^\n]*/live/other%.key", proc:log())
        assert(try_echo(url, { ca = file("new_ca.pem"), server_name = "other.test" }))
        assert(try_echo(url, { ca = file("new_ca.pem") }))

        roundtrip(open, "after the broken files", false)
        open:close()
        assert.truthy(h.wait_for(function() return open.close_code ~= nil end))
        assert.equal(1000, open.close_code)
      end)
      assert.equal(1, count(proc:log(), "certificates loaded from"), proc:log())
      assert.is_true(proc:alive())
    end)

    it("applies the app's changed tls paths; tls taken away needs a restart", function()
      local proc = spawn(APP:format(live, "cert.pem", "key.pem"))
      finally(function() proc:stop() end)
      local url = "wss://127.0.0.1:" .. proc.port .. "/ws"
      h.run(function()
        assert(try_echo(url, { ca = file("ca.pem") }))
        put("next.pem", slurp(file("renewed.pem")))
        put("next.key", slurp(file("renewed.key")))
        write(file("app.lua"), APP:format(live, "next.pem", "next.key"))
        hup(proc, "certificates loaded from", 1)
        assert.matches("certificates loaded from [^\n]*/live/next%.pem", proc:log())
        assert(try_echo(url, { ca = file("new_ca.pem") }))
        -- Without tls: said to need a restart; the listener keeps TLS and
        -- the paths it last loaded, where a renewal is still picked up.
        local plain = APP:format(live, "next.pem", "next.key"):gsub("  tls = {.-} },\n", "")
        assert.is_falsy(plain:find("tls", 1, true))
        write(file("app.lua"), plain)
        put("next.pem", slurp(file("localhost.pem")))
        put("next.key", slurp(file("localhost.key")))
        hup(proc, "certificates loaded from", 2)
        assert.matches("tls removed: needs a restart", proc:log())
        assert(try_echo(url, { ca = file("ca.pem") }))
      end)
      assert.is_true(proc:alive())
    end)

    it("reads --tls-cert and --tls-key again from the same files", function()
      local proc = spawn(h.source_dir .. "/examples/echo/app.lua", "--tls-cert " .. quote(live .. "/cert.pem")
        .. " --tls-key " .. quote(live .. "/key.pem"))
      finally(function() proc:stop() end)
      local url = "wss://127.0.0.1:" .. proc.port .. "/deflate"
      h.run(function()
        local open = assert(wslua.connect(url, { ca = file("ca.pem"), compression = true }))
        assert.is_true(open.compressed)
        roundtrip(open, ("compressed before the renewal "):rep(20), false)
        renew()
        hup(proc, "certificates loaded from", 1)
        roundtrip(open, ("compressed after the renewal "):rep(20), false)
        local ok, err = try_echo(url, { ca = file("ca.pem") })
        assert.is_nil(ok)
        assert.matches("certificate verify failed", err)
        assert(try_echo(url, { ca = file("new_ca.pem") }))
        open:close()
      end)
      assert.is_true(proc:alive())
    end)
  end)

  describe("examples/wss", function()
    it("serves its page over https:// and echoes over wss:// with the certificate make-cert.sh makes", function()
      interop.need_python()
      local certs = file("example")
      local ok = os.execute(string.format("%s %s >%s 2>&1",
        quote(h.source_dir .. "/examples/wss/make-cert.sh"), quote(certs), quote(file("make-cert.log"))))
      assert(ok, "make-cert.sh failed: " .. (slurp(file("make-cert.log")) or ""))
      assert.truthy(slurp(certs .. "/cert.pem"), "no cert.pem")
      assert.truthy(slurp(certs .. "/key.pem"), "no key.pem")
      local proc = spawn(h.source_dir .. "/examples/wss/app.lua", "--tls-cert " .. quote(certs .. "/cert.pem")
        .. " --tls-key " .. quote(certs .. "/key.pem"))
      finally(function() proc:stop() end)
      h.run(function()
        local c = assert(wslua.connect("wss://127.0.0.1:" .. proc.port .. "/ws",
          { ca = certs .. "/cert.pem" }))
        roundtrip(c, "hello, example", false)
        roundtrip(c, "\0\1\2\255", true)
        c:close()
      end)
      local status, out = interop.run({ interop.python, interop.dir .. "/python_tls_client.py",
        "https", "https://127.0.0.1:" .. proc.port .. "/", certs .. "/cert.pem" }, 20)
      interop.assert_passed(status, out, "PYTHON TLS OK")
      assert.matches("status 200 text/html", out, 1, true)
      assert.matches("<title>wslua over TLS</title>", out, 1, true)
    end)
  end)
end)
