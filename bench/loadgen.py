"""A small HTTP/1.1 load generator, for when wrk is not installed.

Run as its own process (so that it does not share the server's interpreter):

    python bench/loadgen.py --url http://127.0.0.1:PORT/path --seconds 5 --connections 32 \
        [--header 'Name: value' ...]

Each connection sends the same GET over and over on one keep-alive socket, one request
in flight at a time (like wrk without pipelining), reading each answer in full by its
Content-Length. Prints one JSON line: requests completed, seconds, req/s, and the count
of each status code. Raw asyncio protocols, no HTTP library: the generator must cost far
less per request than the servers it loads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import urlsplit


class _Connection(asyncio.Protocol):
    def __init__(self, request: bytes, stats: Counter[int], stop_at: float) -> None:
        self.request = request
        self.stats = stats
        self.stop_at = stop_at
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                    break
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            status = int(head[9:12])
            self.buffer = self.buffer[end:]
            self.stats[status] += 1
            assert self.transport is not None
            if time.monotonic() >= self.stop_at:
                self.transport.close()
                return
            self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def load(url: str, headers: list[str], seconds: float, connections: int) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", *headers, "", ""]
    request = "\r\n".join(lines).encode()
    stats: Counter[int] = Counter()
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    stop_at = started + seconds
    protocols = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(
            lambda: _Connection(request, stats, stop_at), host, port
        )
        protocols.append(protocol)
    await asyncio.gather(*(p.done for p in protocols))
    elapsed = time.monotonic() - started
    total = sum(stats.values())
    return {
        "requests": total,
        "seconds": round(elapsed, 3),
        "rps": round(total / elapsed, 1),
        "status": {str(k): v for k, v in sorted(stats.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(load(args.url, args.header, args.seconds, args.connections))))


if __name__ == "__main__":
    main()
