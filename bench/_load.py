"""A small open-loop HTTP/1.1 load generator over keep-alive connections (asyncio, no deps).

Requests are built beforehand (signed bodies), so the generator spends its CPU on sockets, not
on JSON or HMAC, and leaves the server the other core.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0

    @property
    def duration(self) -> float:
        return self.finished - self.started

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def run(
    host: str, port: int, requests: list[bytes], *, connections: int = 32, rate: float | None = None
) -> Result:
    """Send every request once. rate=None: as fast as possible; else open loop at `rate`/s."""
    result = Result()
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for i, r in enumerate(requests):
        queue.put_nowait((i, r))
    result.started = time.perf_counter()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                try:
                    i, req = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if rate:
                    due = result.started + i / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    t0 = max(due, time.perf_counter()) if delay > 0 else due
                else:
                    t0 = time.perf_counter()
                try:
                    writer.write(req)
                    status = await _read_response(reader)
                except (ConnectionError, asyncio.IncompleteReadError):
                    # Counted as a failure (status 0); carry on over a fresh connection.
                    result.statuses[0] = result.statuses.get(0, 0) + 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.latencies.append(time.perf_counter() - t0)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    result.finished = time.perf_counter()
    return result


def build_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
