"""Python websockets echo server (Debian's python3-websockets, asyncio).

    /usr/bin/python3 py_websockets_echo.py PORT
"""
import asyncio
import logging
import signal
import sys

import websockets


async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)


async def main(port):
    # Clients that vanish without a close frame are routine under load.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(echo, "127.0.0.1", port, max_size=16 << 20,
                                backlog=4096):
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
