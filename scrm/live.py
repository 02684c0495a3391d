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

from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction

from scrm.db import undone_by

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


_PENDING = "scrm_live_pending"
_NOTIFY_ALL = text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p")


def notify(session: Session, workspace_id: int, event: str, data: dict[str, Any]) -> None:
    """PostgreSQL: queue the event for every process's listener.

    Nothing is sent now: the transaction's events go out in one statement just before it
    commits (see `_send_pending`), and not at all if it rolls back. An event emitted inside a
    savepoint that rolls back is dropped with it."""
    payload = json.dumps({"w": workspace_id, "e": event, "d": slim(data)}, separators=(",", ":"))
    root = session.get_transaction()
    entry = session.info.get(_PENDING)
    if entry is None or entry[0] is not root:
        pending: list[tuple[SessionTransaction | None, str]] = []
        entry = session.info[_PENDING] = (root, pending)
    entry[1].append((session.get_nested_transaction() or root, payload))


@sa_event.listens_for(Session, "before_commit")
def _send_pending(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint is released: its events wait for the real commit
    entry = session.info.pop(_PENDING, None)
    if entry is None or entry[0] is not session.get_transaction() or not entry[1]:
        return
    payloads = [payload for _txn, payload in entry[1]]
    session.connection().execute(_NOTIFY_ALL, {"channel": CHANNEL, "payloads": payloads})


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    entry = session.info.get(_PENDING)
    if entry is None:
        return
    if previous_transaction is entry[0] or not previous_transaction.nested:
        session.info.pop(_PENDING, None)
        return
    entry[1][:] = [(txn, payload) for txn, payload in entry[1] if not undone_by(txn, previous_transaction)]


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
