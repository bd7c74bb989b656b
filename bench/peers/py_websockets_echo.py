"""Python websockets echo server (Debian's python3-websockets, asyncio).

    /usr/bin/python3 py_websockets_echo.py PORT [CERT KEY]

With CERT and KEY, wss:// through the standard library's ssl module.
"""
import asyncio
import logging
import signal
import ssl
import sys

import websockets


async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)


async def main(port, cert=None, key=None):
    # Clients that vanish without a close frame are routine under load.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    tls = None
    if cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
    async with websockets.serve(echo, "127.0.0.1", port, max_size=16 << 20,
                                backlog=4096, ssl=tls):
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), *sys.argv[2:4]))
