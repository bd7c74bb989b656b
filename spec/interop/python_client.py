"""Interop peer for spec/interop_python_spec.lua: Python's websockets library
(Debian's python3-websockets) against a wslua server.

usage: python_client.py echo URL    messages of every size echoed byte-exact,
                                    a fragmented one, pings answered, a clean
                                    close with 1000
       python_client.py deflate URL the same with permessage-deflate (which
                                    websockets offers by default): the
                                    extension negotiated, compressible and
                                    random messages of every size up to 1 MiB
       python_client.py probe URL   spec/interop/probe_app.lua: subprotocol
                                    choice, a client close with 1000

Prints one line per check and "PYTHON INTEROP OK" at the end; on any
mismatch prints "FAIL: ..." and exits 1. Everything is bounded in time.
"""
import asyncio
import random
import sys
import time

import websockets

KiB = 1024
MiB = 1024 * KiB
SIZES = [0, 125, 126, 64 * KiB, 1 * MiB]
BIG = 16 * MiB
STEP_TIMEOUT = 20   # seconds for one message, ping or close
TOTAL_TIMEOUT = 50  # seconds for the whole run


class Mismatch(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Mismatch(what)


def text_of(size, rng):
    """Valid UTF-8 of exactly size bytes, with 1- to 4-byte characters so
    that characters straddle frame and read boundaries."""
    chars = ["a", "\u00e9", "\u20ac", "\U0001F600", "z", "\u00df"]
    parts, n = [], 0
    while n < size:
        c = rng.choice(chars)
        b = len(c.encode())
        if n + b > size:
            c, b = "x", 1
        parts.append(c)
        n += b
    s = "".join(parts)
    assert len(s.encode()) == size
    return s


def describe(data):
    kind = "text" if isinstance(data, str) else "binary"
    n = len(data.encode()) if isinstance(data, str) else len(data)
    return "%s %d B" % (kind, n)


async def roundtrip(ws, data, label=""):
    await asyncio.wait_for(ws.send(data), STEP_TIMEOUT)
    got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
    check(type(got) is type(data),
          "%s came back as %s" % (describe(data), type(got).__name__))
    if got != data:
        a = data.encode() if isinstance(data, str) else data
        b = got.encode() if isinstance(got, str) else got
        first = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]),
                     min(len(a), len(b)))
        raise Mismatch("%s came back as %d B, first difference at byte %d"
                       % (describe(data), len(b), first))
    print("ok echo %s%s" % (label, describe(data)), flush=True)


async def ping(ws):
    payload = b"ping-\x00\xff-" + bytes(range(16))
    waiter = await ws.ping(payload)
    try:
        await asyncio.wait_for(waiter, STEP_TIMEOUT)
    except asyncio.TimeoutError:
        raise Mismatch("no pong for a ping with %d B" % len(payload))
    print("ok ping answered", flush=True)


async def fragmented(ws):
    """A text message in four frames with a ping between two of them
    (control frames may come amid fragments, RFC 6455 section 5.4); it must
    come back whole, as one text message."""
    parts = ["h\u00e9", "\u20ac", "", "\U0001F600 in fragments"]
    pongs = []

    async def frames():
        for i, part in enumerate(parts):
            if i == 2:
                pongs.append(await ws.ping(b"amid"))
            yield part

    await asyncio.wait_for(ws.send(frames()), STEP_TIMEOUT)
    got = await asyncio.wait_for(ws.recv(), STEP_TIMEOUT)
    check(got == "".join(parts), "fragmented text came back as %r" % got)
    try:
        await asyncio.wait_for(pongs[0], STEP_TIMEOUT)
    except asyncio.TimeoutError:
        raise Mismatch("no pong for a ping amid fragments")
    print("ok echo fragmented text, ping amid answered", flush=True)


async def clean_close(ws):
    start = time.monotonic()
    await asyncio.wait_for(ws.close(1000, "bye from python"), STEP_TIMEOUT)
    took = time.monotonic() - start
    check(ws.close_code == 1000,
          "server's close code was %r, not 1000" % ws.close_code)
    # websockets waits for the server to close TCP; a slow close means the
    # server never did and the client timed out.
    check(took < 2, "closing handshake took %.1f s" % took)
    print("ok close 1000 (server replied %d, %.3f s)" % (ws.close_code, took),
          flush=True)


async def echo(url):
    rng = random.Random(6455)
    async with websockets.connect(url, max_size=None, open_timeout=10,
                                  close_timeout=5, ping_interval=None) as ws:
        for size in SIZES:
            await roundtrip(ws, text_of(size, rng))
            await roundtrip(ws, rng.randbytes(size))
        await ping(ws)
        await fragmented(ws)
        await roundtrip(ws, rng.randbytes(BIG))
        await roundtrip(ws, "after the big one")
        await clean_close(ws)


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


async def deflate(url):
    rng = random.Random(7692)
    async with websockets.connect(url, max_size=None, open_timeout=10,
                                  close_timeout=5, ping_interval=None) as ws:
        agreed = ws.response_headers.get("Sec-WebSocket-Extensions")
        check(agreed is not None and agreed.startswith("permessage-deflate"),
              "permessage-deflate was not negotiated (%r)" % agreed)
        check([e.name for e in ws.extensions] == ["permessage-deflate"],
              "extensions in use: %r" % ws.extensions)
        print("ok negotiated %s" % agreed, flush=True)
        for size in SIZES:
            await roundtrip(ws, text_of(size, rng))
            await roundtrip(ws, rng.randbytes(size))
            await roundtrip(ws, compressible(size), "compressible ")
            await roundtrip(ws, compressible(size).encode(), "compressible ")
        await ping(ws)
        await fragmented(ws)
        await roundtrip(ws, "after the fragments")
        await clean_close(ws)


async def probe(url):
    async with websockets.connect(url, subprotocols=["x.unknown", "v2.wslua"],
                                  open_timeout=10, close_timeout=5,
                                  ping_interval=None) as ws:
        check(ws.subprotocol == "v2.wslua",
              "subprotocol %r, expected 'v2.wslua'" % ws.subprotocol)
        print("ok subprotocol %s" % ws.subprotocol, flush=True)
        await roundtrip(ws, "probe")
        await clean_close(ws)


async def main():
    runs = {"echo": echo, "deflate": deflate, "probe": probe}
    if len(sys.argv) != 3 or sys.argv[1] not in runs:
        print(__doc__, file=sys.stderr)
        return 2
    run = runs[sys.argv[1]]
    try:
        await asyncio.wait_for(run(sys.argv[2]), TOTAL_TIMEOUT)
    except Mismatch as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    except asyncio.TimeoutError:
        print("FAIL: timed out", flush=True)
        return 1
    except (OSError, websockets.exceptions.WebSocketException) as e:
        print("FAIL: %s: %s" % (type(e).__name__, e), flush=True)
        return 1
    print("PYTHON INTEROP OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
