"""TLS peer for spec/tls_spec.lua: Python's ssl, http.client and websockets
against a wslua server with a certificate signed by the spec's CA.

usage: python_tls_client.py wss URL CA     echo over wss:// (text and binary,
                                           0 B to 1 MiB), permessage-deflate
                                           offered but not negotiated, a
                                           clean close with 1000
       python_tls_client.py wss-deflate URL CA
                                           the same echo (and JSON chat
                                           lines) with permessage-deflate
                                           negotiated; prints the payload
                                           bytes the server sent
       python_tls_client.py https URL CA   GET URL and a missing path on the
                                           same kept-alive connection
       python_tls_client.py held HOST:PORT CA NAME
                                           opens a TCP connection, prints
                                           "connected" and waits for a line
                                           on stdin before its handshake
                                           (SNI NAME, verified with CA):
                                           a handshake under way while the
                                           server swaps its certificates

Prints one line per check and "PYTHON TLS OK" at the end; on any mismatch
prints "FAIL: ..." and exits 1. Everything is bounded in time.
"""
import asyncio
import http.client
import random
import socket
import ssl
import sys
import urllib.parse

import websockets

SIZES = [0, 125, 126, 65536, 1024 * 1024]
STEP_TIMEOUT = 20
TOTAL_TIMEOUT = 50


class Mismatch(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Mismatch(what)


def context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


def text_of(size, rng):
    """Valid UTF-8 of exactly size bytes, with multi-byte characters."""
    parts, n = [], 0
    while n < size:
        c = rng.choice(["a", "\u00e9", "\u20ac", "\U0001F600"])
        if n + len(c.encode()) > size:
            c = "x"
        parts.append(c)
        n += len(c.encode())
    return "".join(parts)


def describe(data):
    kind = "text" if isinstance(data, str) else "binary"
    n = len(data.encode()) if isinstance(data, str) else len(data)
    return "%s %d B" % (kind, n)


def compressible(size):
    """JSON chat lines: what compression is for."""
    lines, n, i = [], 0, 0
    while n < size:
        i += 1
        line = '{"id":%d,"user":"guest%d","text":"hello number %d"}\n' % (
            i, i % 13, i * 7 % 101)
        lines.append(line)
        n += len(line)
    return "".join(lines)[:size]


async def roundtrip(ws, data, label=""):
    await asyncio.wait_for(ws.send(data), STEP_TIMEOUT)
    got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
    check(type(got) is type(data) and got == data,
          "%s came back as %s" % (describe(data), describe(got)))
    print("ok echo %s%s" % (label, describe(data)), flush=True)
    return len(data.encode()) if isinstance(data, str) else len(data)


async def wss(url, ca):
    rng = random.Random(5246)
    # websockets offers permessage-deflate unless told otherwise.
    async with websockets.connect(url, ssl=context(ca), max_size=None,
                                  open_timeout=10, close_timeout=5,
                                  ping_interval=None) as ws:
        tls = ws.transport.get_extra_info("ssl_object")
        print("ok %s" % tls.version(), flush=True)
        offered = ws.request_headers.get("Sec-WebSocket-Extensions", "")
        check("permessage-deflate" in offered,
              "the client did not offer permessage-deflate: %r" % offered)
        accepted = ws.response_headers.get("Sec-WebSocket-Extensions")
        check(accepted is None and not ws.extensions,
              "permessage-deflate was negotiated (%r): update tls_spec.lua "
              "now that compression is in" % accepted)
        print("ok permessage-deflate offered, not negotiated", flush=True)
        for size in SIZES:
            await roundtrip(ws, text_of(size, rng))
            await roundtrip(ws, rng.randbytes(size))
        await asyncio.wait_for(ws.close(1000, "bye"), STEP_TIMEOUT)
        check(ws.close_code == 1000, "close code %r" % ws.close_code)
        print("ok close 1000", flush=True)


async def wss_deflate(url, ca):
    rng = random.Random(7692)
    async with websockets.connect(url, ssl=context(ca), max_size=None,
                                  open_timeout=10, close_timeout=5,
                                  ping_interval=None) as ws:
        tls = ws.transport.get_extra_info("ssl_object")
        print("ok %s" % tls.version(), flush=True)
        agreed = ws.response_headers.get("Sec-WebSocket-Extensions")
        check(agreed is not None and agreed.startswith("permessage-deflate"),
              "permessage-deflate was not negotiated (%r)" % agreed)
        check([e.name for e in ws.extensions] == ["permessage-deflate"],
              "extensions in use: %r" % ws.extensions)
        print("ok negotiated %s" % agreed, flush=True)
        payload = 0
        for size in SIZES:
            payload += await roundtrip(ws, text_of(size, rng))
            payload += await roundtrip(ws, rng.randbytes(size))
            payload += await roundtrip(ws, compressible(size), "compressible ")
            payload += await roundtrip(ws, compressible(size).encode(),
                                       "compressible ")
        await asyncio.wait_for(ws.close(1000, "bye"), STEP_TIMEOUT)
        check(ws.close_code == 1000, "close code %r" % ws.close_code)
        print("ok close 1000", flush=True)
        print("payload bytes echoed %d" % payload, flush=True)


def https(url, ca):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=context(ca),
                                       timeout=STEP_TIMEOUT)
    conn.request("GET", u.path or "/")
    res = conn.getresponse()
    body = res.read()
    tls = conn.sock
    print("ok %s alpn %s" % (tls.version(), tls.selected_alpn_protocol()),
          flush=True)
    print("status %d %s" % (res.status, res.getheader("Content-Type")),
          flush=True)
    print("body %s" % body.decode(errors="replace").replace("\n", " ")[:200],
          flush=True)
    # The same connection again: keep-alive over TLS.
    conn.request("GET", "/no-such-file.txt")
    res = conn.getresponse()
    res.read()
    check(conn.sock is tls, "the connection was not kept alive")
    print("second status %d" % res.status, flush=True)
    conn.close()


def held(address, ca, name):
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=STEP_TIMEOUT)
    print("connected", flush=True)
    sys.stdin.readline()
    tls = context(ca).wrap_socket(sock, server_hostname=name)
    issuer = dict(x[0] for x in tls.getpeercert()["issuer"])
    print("ok handshake %s issuer %s" % (tls.version(), issuer["commonName"]),
          flush=True)
    tls.sendall(b"GET /no-such-path HTTP/1.1\r\nHost: %s\r\n"
                b"Connection: close\r\n\r\n" % name.encode())
    status = tls.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
    print("status line %s" % status, flush=True)
    tls.close()


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "held":
        try:
            held(*sys.argv[2:])
        except (OSError, ssl.SSLError) as e:
            print("FAIL: %s: %s" % (type(e).__name__, e), flush=True)
            return 1
        print("PYTHON TLS OK", flush=True)
        return 0
    if len(sys.argv) != 4 or sys.argv[1] not in ("wss", "wss-deflate",
                                                 "https"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, url, ca = sys.argv[1:]
    try:
        if mode == "wss":
            asyncio.run(asyncio.wait_for(wss(url, ca), TOTAL_TIMEOUT))
        elif mode == "wss-deflate":
            asyncio.run(asyncio.wait_for(wss_deflate(url, ca), TOTAL_TIMEOUT))
        else:
            https(url, ca)
    except Mismatch as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    except (OSError, asyncio.TimeoutError, http.client.HTTPException,
            websockets.exceptions.WebSocketException) as e:
        print("FAIL: %s: %s" % (type(e).__name__, e), flush=True)
        return 1
    print("PYTHON TLS OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
