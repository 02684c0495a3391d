"""Access-token cache shared by every worker of one account (reference §1.5, §5.6).

Never fetch a token per call: each fetch may invalidate the token other workers hold. The
client reads :meth:`TokenStore.get`, and when the token is missing, close to expiry or refused
by WeChat (40001/40014/42001) it calls :meth:`TokenStore.refresh`, which must be single-flight.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class CachedToken:
    access_token: str = field(repr=False)  # a secret: never logged
    expires_at: dt.datetime  # timezone-aware

    def is_valid(self, now: dt.datetime, margin: dt.timedelta = dt.timedelta(0)) -> bool:
        return now + margin < self.expires_at


class TokenStore(Protocol):
    """Where access tokens live between calls (memory in tests, a DB row in production).

    ``account_key`` is an opaque string such as ``"wechat:<appid>"``.
    """

    def get(self, account_key: str) -> CachedToken | None:
        """The stored token, expired or not, or None. No locking needed."""
        ...

    def refresh(
        self, account_key: str, fetch: Callable[[], CachedToken], stale_token: str | None
    ) -> CachedToken:
        """Replace `stale_token`, calling `fetch` at most once across all concurrent callers.

        Under an exclusive lock for `account_key` (e.g. ``SELECT … FOR UPDATE`` on the row):
        if the stored token is not expired and differs from `stale_token`, somebody else has
        refreshed already: return it without fetching. Otherwise call ``fetch()``, store its
        result and return it. If `fetch` raises, store nothing and let the error propagate.
        """
        ...


class InMemoryTokenStore:
    """Thread-safe :class:`TokenStore` for tests and single-process use."""

    def __init__(self, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._clock = clock
        self._tokens: dict[str, CachedToken] = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self.fetch_count = 0

    def _lock(self, account_key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(account_key, threading.Lock())

    def get(self, account_key: str) -> CachedToken | None:
        with self._guard:
            return self._tokens.get(account_key)

    def refresh(
        self, account_key: str, fetch: Callable[[], CachedToken], stale_token: str | None
    ) -> CachedToken:
        with self._lock(account_key):
            current = self.get(account_key)
            if (
                current is not None
                and current.access_token != stale_token
                and current.is_valid(self._clock())
            ):
                return current
            token = fetch()
            with self._guard:
                self.fetch_count += 1
                self._tokens[account_key] = token
            return token
