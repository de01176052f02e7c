"""A TCP proxy on loopback that holds every HTTP request back for a fixed delay and counts
them: moto's S3 as far away as a real bucket (S3 answers a small request in tens of
milliseconds; moto on 127.0.0.1 in about one).

Each request waits ``delay_s`` before it goes on to the server, on its own connection, so
requests made at once wait at once, as they do on a network. Responses come back as they
are. The proxy runs in a process of its own (deltalake holds the GIL while it waits on a
request, which would stop a proxy thread in the caller's process); :meth:`LatencyProxy.reset`
asks it, on a second port, for the requests it counted by HTTP method and the most it held
back at once, and starts the counts afresh.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections import Counter

#: How a chunk sent by the client starts when it starts a request (the AWS SDK sends one
#: request at a time on a connection, so a request's first bytes open a chunk).
_METHODS = (b"GET ", b"HEAD ", b"PUT ", b"POST ", b"DELETE ")


class LatencyProxy:
    """``with LatencyProxy(upstream_port, 0.02) as proxy:`` serves ``proxy.endpoint``."""

    def __init__(self, upstream_port: int, delay_s: float) -> None:
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self.port = self.control_port = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> tuple[Counter[str], int]:
        """The requests since the last reset, by HTTP method, and the most held at once."""
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as conn:
            data = b""
            while chunk := conn.recv(1 << 16):
                data += chunk
        doc = json.loads(data)
        return Counter(doc["requests"]), doc["peak"]

    def __enter__(self) -> LatencyProxy:
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(self.upstream_port), str(self.delay_s)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.port, self.control_port = map(int, self._process.stdout.readline().split())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)


async def _serve(upstream_port: int, delay_s: float) -> None:
    counts: Counter[str] = Counter()
    held = [0, 0]  # requests being held back now, and the most at once

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: bool):
        try:
            while chunk := await reader.read(1 << 16):
                if delay and chunk.startswith(_METHODS):
                    counts[chunk.split(b" ", 1)[0].decode()] += 1
                    held[0] += 1
                    held[1] = max(held)
                    await asyncio.sleep(delay_s)
                    held[0] -= 1
                writer.write(chunk)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    async def control(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(json.dumps({"requests": counts, "peak": held[1]}).encode())
        counts.clear()
        held[1] = held[0]
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    controller = await asyncio.start_server(control, "127.0.0.1", 0)
    ports = (s.sockets[0].getsockname()[1] for s in (server, controller))
    print(*ports, flush=True)
    await asyncio.gather(server.serve_forever(), controller.serve_forever())


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), float(sys.argv[2])))
