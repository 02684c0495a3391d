"""In-process fan-out of committed domain events to live UI connections (SSE).

Each subscriber gets a bounded queue; a slow browser drops updates (it re-syncs on the next
one) rather than holding memory.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Subscription:
    workspace_id: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=200)
    )


_subs: set[Subscription] = set()
_lock = threading.Lock()


def subscribe(workspace_id: int) -> Subscription:
    sub = Subscription(workspace_id, asyncio.get_running_loop())
    with _lock:
        _subs.add(sub)
    return sub


def unsubscribe(sub: Subscription) -> None:
    with _lock:
        _subs.discard(sub)


def _put(sub: Subscription, item: tuple[str, dict[str, Any]]) -> None:
    if not sub.queue.full():
        sub.queue.put_nowait(item)


def publish(workspace_id: int, event: str, data: dict[str, Any]) -> None:
    with _lock:
        targets = [s for s in _subs if s.workspace_id == workspace_id]
    for sub in targets:
        try:
            sub.loop.call_soon_threadsafe(_put, sub, (event, data))
        except RuntimeError:  # loop closed
            unsubscribe(sub)


def subscriber_count() -> int:
    with _lock:
        return len(_subs)
