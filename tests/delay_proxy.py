"""A TCP proxy on loopback that adds a round-trip time: a remote server for tests on one machine.

This machine's kernel has no ``netem``, so the delay is added here: every
byte forwarded waits half the round-trip time in each direction, in order,
without limiting bandwidth. Run it as a separate process and stop it by PID::

    python tests/delay_proxy.py --target 127.0.0.1:1094 --rtt-ms 10 --port-file proxy.port
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

READ_SIZE = 1 << 18


async def _forward(source: asyncio.StreamReader, destination: asyncio.StreamWriter, delay: float) -> None:
    """Bytes from ``source`` to ``destination``, each read delivered ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            destination.write(data)
            await destination.drain()
        destination.close()

    delivering = asyncio.create_task(deliver())
    try:
        while data := await source.read(READ_SIZE):
            queue.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((0.0, b""))
    try:
        await delivering
    except ConnectionError:
        pass


async def _serve(target: tuple[str, int], rtt: float, port_file: Path) -> None:
    async def connect(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_forward(client_reader, server_writer, rtt / 2), _forward(server_reader, client_writer, rtt / 2))

    server = await asyncio.start_server(connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    temporary = port_file.with_name(f".{port_file.name}.{os.getpid()}")
    temporary.write_text(str(port))
    temporary.replace(port_file)  # whole, so a reader never sees half a number
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--rtt-ms", type=float, required=True, help="round-trip time to add, in milliseconds")
    parser.add_argument("--port-file", type=Path, required=True, help="where to write the port the proxy listens on")
    arguments = parser.parse_args()
    host, port = arguments.target.rsplit(":", 1)
    asyncio.run(_serve((host, int(port)), arguments.rtt_ms / 1000, arguments.port_file))


if __name__ == "__main__":
    main()
