"""Storing pushes durably before they are acknowledged, shared by every inbound endpoint.

:class:`GroupCommitter` writes the pushes of concurrent requests in shared transactions and
resolves each request only after the COMMIT; :func:`cached_account` reads the channel account
a push is for without a thread hop when it was read in the last few seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool

from scrm.channels.base import InboundRejected
from scrm.channels.registry import AccountView
from scrm.db import Database
from scrm.errors import NotFound
from scrm.inbound import service
from scrm.workspace import service as workspace

log = logging.getLogger(__name__)

# -- channel accounts, read on every push: kept for a few seconds per process ----------------------
ACCOUNT_TTL = 10.0


@dataclass
class _Cached:
    view: AccountView
    at: float


_accounts: dict[tuple[str, int], _Cached] = {}


def load_account(db: Database, kind: str, account_id: int) -> AccountView:
    key = (kind, account_id)
    cached = _accounts.get(key)
    now = time.monotonic()
    if cached and now - cached.at < ACCOUNT_TTL:
        return cached.view
    with db.transaction(readonly=True) as session:
        account = workspace.find_channel_account_for_inbound(session, account_id, kind)
        view = workspace.account_view(account)
    _accounts[key] = _Cached(view, now)
    return view


async def cached_account(db: Database, kind: str, channel_id: int) -> AccountView:
    """The account a push is for; 404 (InboundRejected) if there is no such account."""
    cached = _accounts.get((kind, channel_id))
    if cached is not None and time.monotonic() - cached.at < ACCOUNT_TTL:
        return cached.view  # the hot path: no thread hop
    try:
        return await run_in_threadpool(load_account, db, kind, channel_id)
    except NotFound:
        raise InboundRejected(404, "unknown channel") from None


# -- group commit ------------------------------------------------------------------------------


_Item = tuple[service.Batch, Future[list[service.Accepted]]]


class GroupCommitter:
    """Stores pushes from concurrent requests in shared transactions (group commit).

    One writer thread per database and process takes everything waiting (up to `max_batch`),
    writes it in ONE transaction and resolves each request's future only after the COMMIT, so
    every acknowledged push is durable. Many small concurrent transactions would instead queue
    on SQLite's single write lock (busy-wait sleeps) and cost one commit each on PostgreSQL.
    If a batch fails, every request in it fails (500) and the platform retries it.
    """

    def __init__(self, db: Database, max_batch: int = 256) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="scrm-inbound-commit", daemon=True)
        self._thread.start()

    def submit(self, item: service.Batch) -> Future[list[service.Accepted]]:
        """Store `item`; the future resolves after the COMMIT, with each event's outcome."""
        future: Future[list[service.Accepted]] = Future()
        self._queue.put((item, future))
        return future

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self._db.transaction() as session:
                    results = service.accept_many(session, [item for item, _future in batch])
            except Exception as exc:
                log.exception("storing %s pushes failed; the platforms will retry", len(batch))
                for _item, future in batch:
                    future.set_exception(exc)
                continue
            for (_item, future), accepted in zip(batch, results, strict=True):
                future.set_result(accepted)


_committers: dict[int, GroupCommitter] = {}
_committers_lock = threading.Lock()


def committer(db: Database) -> GroupCommitter:
    with _committers_lock:
        committer = _committers.get(id(db))
        if committer is None or committer._db is not db:
            committer = _committers[id(db)] = GroupCommitter(db)
        return committer
