"""Fan-out of committed domain events to live UI connections (SSE).

Each subscriber gets a bounded queue; a slow browser drops updates (it re-syncs on the next
one) rather than holding memory.

On SQLite everything runs in one process: events are published to local subscribers after
the commit. On PostgreSQL the transaction's events are written with one ``pg_notify``
statement just before its COMMIT (PostgreSQL delivers them only once it commits), and every
API process runs a :class:`Listener` that relays notifications to its own subscribers, so an
event committed by a worker process reaches browsers connected to any API process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from scrm.db import CommitBuffer

log = logging.getLogger(__name__)
CHANNEL = "scrm_live"
# Only what the browser needs to know what to refresh (NOTIFY payloads are capped at 8,000 bytes).
FORWARDED_KEYS = ("conversation_id", "message_id", "status", "assignee_id", "team_id")


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


def slim(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in FORWARDED_KEYS if k in data}


_NOTIFY_ALL = text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p")


def _send_pending(session: Session, payloads: list[str]) -> None:
    session.connection().execute(_NOTIFY_ALL, {"channel": CHANNEL, "payloads": payloads})


_pending = CommitBuffer("live", _send_pending)


def notify(session: Session, workspace_id: int, event: str, data: dict[str, Any]) -> None:
    """PostgreSQL: queue the event for every process's listener.

    Nothing is sent now: the transaction's events go out in one statement just before it
    commits, and not at all if it rolls back. An event emitted inside a savepoint that rolls
    back is dropped with it."""
    _pending.add(session, json.dumps({"w": workspace_id, "e": event, "d": slim(data)}, separators=(",", ":")))


class Listener:
    """LISTENs on PostgreSQL and relays each notification to this process's subscribers."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._stop = threading.Event()
        self.listening = threading.Event()  # set while a LISTEN connection is up
        self._thread = threading.Thread(target=self._run, name="scrm-live-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._relay(note.payload)
            except Exception:
                self.listening.clear()
                log.warning("live listener lost its connection; reconnecting", exc_info=True)
                self._stop.wait(1.0)

    @staticmethod
    def _relay(payload: str) -> None:
        try:
            msg = json.loads(payload)
            publish(int(msg["w"]), str(msg["e"]), dict(msg["d"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed live notification")
