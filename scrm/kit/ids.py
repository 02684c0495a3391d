"""64-bit, time-ordered ids, unique across workspaces so rows can move between shards unchanged.

Layout: 41 bits of milliseconds since 2025-01-01 UTC, then 22 bits that are random at each new
millisecond and incremented within it. Ids from one process are strictly increasing; two processes
collide only if they draw the same 22 random bits in the same millisecond.

The random bits only spread processes apart; they are not secrets. They come from the `random`
module (seeded from the OS at start-up and again in every forked child), not from `secrets`:
`os.urandom` releases the GIL on every call, which costs a thread switch per row on hot paths.
"""

from __future__ import annotations

import random
import threading
import time

_EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_LOW_BITS = 22
_LOW_MASK = (1 << _LOW_BITS) - 1
_lock = threading.Lock()
_last = 0


def new_id() -> int:
    global _last
    with _lock:
        candidate = ((int(time.time() * 1000) - _EPOCH_MS) << _LOW_BITS) | random.getrandbits(_LOW_BITS - 2)
        if candidate <= _last:
            candidate = _last + 1
        _last = candidate
        return candidate


def id_time_ms(value: int) -> int:
    """Unix milliseconds at which an id was made."""
    return (value >> _LOW_BITS) + _EPOCH_MS
