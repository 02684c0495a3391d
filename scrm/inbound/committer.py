"""Storing pushes durably before they are acknowledged, shared by every inbound endpoint.

:class:`GroupCommitter` writes the pushes of concurrent requests in shared transactions and
resolves each request only after the COMMIT; :func:`cached_account` reads the channel account
a push is for without a thread hop when it was read in the last few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

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


def forget_account(kind: str, account_id: int) -> None:
    """Drop a cached account (it was edited): this process reads it again on the next push.
    Other processes keep their copy for at most ACCOUNT_TTL seconds."""
    _accounts.pop((kind, account_id), None)


_refreshing: set[tuple[str, int]] = set()


async def cached_account(db: Database, kind: str, channel_id: int) -> AccountView:
    """The account a push is for; 404 (InboundRejected) if there is no such account.

    When the cached view expires under load, one request reads the account again while the
    others keep using the view they have for those few milliseconds, instead of every request
    in flight queueing its own read on the thread pool.
    """
    key = (kind, channel_id)
    cached = _accounts.get(key)
    if cached is not None and (time.monotonic() - cached.at < ACCOUNT_TTL or key in _refreshing):
        return cached.view  # the hot path: no thread hop
    _refreshing.add(key)
    try:
        return await run_in_threadpool(load_account, db, kind, channel_id)
    except NotFound:
        _accounts.pop(key, None)
        raise InboundRejected(404, "unknown channel") from None
    finally:
        _refreshing.discard(key)


# -- group commit ------------------------------------------------------------------------------


_Result = list[service.Accepted]
# Who waits for a batch: a thread (a concurrent Future) or a coroutine (an asyncio future and its loop).
_Waiter = Future[_Result] | tuple[asyncio.AbstractEventLoop, "asyncio.Future[_Result]"]
_Item = tuple[service.Batch, _Waiter]


class GroupCommitter:
    """Stores pushes from concurrent requests in shared transactions (group commit).

    One writer thread per database and process takes everything waiting (up to `max_batch`),
    writes it in ONE transaction and resolves each request only after the COMMIT, so every
    acknowledged push is durable. Many small concurrent transactions would instead queue on
    SQLite's single write lock (busy-wait sleeps) and cost one commit each on PostgreSQL.
    If a batch fails, every request in it fails (500) and the platform retries it.

    Coroutines wait with :meth:`store`: the writer wakes each event loop once per batch (one
    ``call_soon_threadsafe`` for all its requests), not once per request.

    A transaction costs about a millisecond of CPU whatever its size, which the writer thread
    takes from the request thread (one GIL). So when the previous batch held `busy` or more
    pushes (the process is loaded), the writer waits `linger` seconds (2 ms) before taking the
    next batch: more pushes share each COMMIT (about 15 % less CPU per push in
    bench/channels.py). An idle process stores a lone push at once, with no wait.
    """

    def __init__(self, db: Database, max_batch: int = 256, linger: float = 0.002, busy: int = 4) -> None:
        self._db = db
        self._max_batch = max_batch
        self._linger = linger
        self._busy = busy
        self._last = 0  # size of the previous batch
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="scrm-inbound-commit", daemon=True)
        self._thread.start()

    def submit(self, item: service.Batch) -> Future[_Result]:
        """Store `item`; the future resolves after the COMMIT, with each event's outcome."""
        future: Future[_Result] = Future()
        self._queue.put((item, future))
        return future

    async def store(self, item: service.Batch) -> _Result:
        """Store `item` and return, after the COMMIT, each event's outcome."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Result] = loop.create_future()
        self._queue.put((item, (loop, waiter)))
        return await waiter

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            if self._linger and self._last >= self._busy:
                time.sleep(self._linger)  # busy: let a few more requests join this transaction
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                with self._db.transaction() as session:
                    results: Sequence[_Result | BaseException] = service.accept_many(
                        session, [item for item, _waiter in batch]
                    )
            except Exception as exc:
                log.exception("storing %s pushes failed; the platforms will retry", len(batch))
                results = [exc] * len(batch)
            self._last = len(batch)
            _resolve([waiter for _item, waiter in batch], results)


def _resolve(waiters: Sequence[_Waiter], results: Sequence[_Result | BaseException]) -> None:
    """Hand each waiter its outcome; coroutines get theirs in one callback per event loop."""
    per_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[_Result], Any]]] = {}
    for waiter, result in zip(waiters, results, strict=True):
        if isinstance(waiter, Future):
            if isinstance(result, BaseException):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)
        else:
            loop, future = waiter
            per_loop.setdefault(loop, []).append((future, result))
    for loop, pairs in per_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, pairs)
        except RuntimeError:  # the loop was closed meanwhile: nobody is waiting any more
            log.debug("event loop closed before %s stored pushes were acknowledged", len(pairs))


def _settle(pairs: list[tuple[asyncio.Future[_Result], Any]]) -> None:
    for future, result in pairs:
        if future.done():  # the request was cancelled (client gone); the push is stored anyway
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


_committers: dict[int, GroupCommitter] = {}
_committers_lock = threading.Lock()


def committer(db: Database) -> GroupCommitter:
    with _committers_lock:
        committer = _committers.get(id(db))
        if committer is None or committer._db is not db:
            committer = _committers[id(db)] = GroupCommitter(db)
        return committer
