"""Login throttling: at most N failures per (email, client IP) in a sliding window.

Kept in process memory: enough for one API process (the default deployment). With several
API processes behind a balancer each enforces its own window, so the effective limit is
N x processes; a shared limiter would need a table (see docs/benchmarks.md, UI section).
"""

from __future__ import annotations

import threading
import time
from collections import deque


class LoginLimiter:
    def __init__(self, max_failures: int = 5, window_seconds: float = 300.0) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, email: str, ip: str, now: float | None = None) -> int:
        """Seconds until the next attempt is allowed; 0 when allowed now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._prune((email, ip), now)
            if len(q) < self.max_failures:
                return 0
            return max(1, int(q[0] + self.window - now) + 1)

    def failed(self, email: str, ip: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._prune((email, ip), now).append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of random emails
                self._failures = {k: v for k, v in self._failures.items() if v}

    def succeeded(self, email: str, ip: str) -> None:
        with self._lock:
            self._failures.pop((email, ip), None)
