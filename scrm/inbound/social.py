"""Callback endpoints of the social platforms: ``GET/POST /hooks/<kind>/<account id>``.

One route for every channel whose spec has an :class:`~scrm.channels.registry.InboundAdapter`
(WeChat Official Account, Weibo fan service, WeCom). GET answers the URL verification; POST:
cap the body → load the account (cached) → verify + decrypt + parse (pure, in the channel) →
store the events and their jobs in one transaction (UNIQUE key: retries are duplicates) →
answer the platform the same way for every retry: its plain acknowledgement, or a passive
reply when a registered replier already knows the answer. Nothing is stored for a refused
request; unknown event types are stored and acknowledged. The stored raw is the plaintext.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool

from scrm.channels import registry
from scrm.channels.base import InboundEvent, InboundRejected
from scrm.channels.registry import AccountView, ChannelSpec, InboundAdapter
from scrm.db import Database
from scrm.errors import NotFound
from scrm.inbound import service
from scrm.inbound.endpoints import _ACCOUNT_TTL, _accounts, _reject, load_account, read_body_capped, router
from scrm.inbound.passive import passive_reply_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    workspace_id: int
    account_id: int
    kind: str
    events: tuple[InboundEvent, ...]
    raw: str


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
        self._queue: queue.SimpleQueue[tuple[_Pending, Future[None]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="scrm-inbound-commit", daemon=True)
        self._thread.start()

    def submit(self, item: _Pending) -> Future[None]:
        future: Future[None] = Future()
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
                    for item, _future in batch:
                        service.accept(
                            session,
                            workspace_id=item.workspace_id,
                            channel_account_id=item.account_id,
                            channel_kind=item.kind,
                            events=item.events,
                            raw=item.raw,
                        )
            except Exception as exc:
                log.exception("storing %s pushes failed; the platforms will retry", len(batch))
                for _item, future in batch:
                    future.set_exception(exc)
                continue
            for _item, future in batch:
                future.set_result(None)


_committers: dict[int, GroupCommitter] = {}
_committers_lock = threading.Lock()


def _committer(db: Database) -> GroupCommitter:
    with _committers_lock:
        committer = _committers.get(id(db))
        if committer is None or committer._db is not db:
            committer = _committers[id(db)] = GroupCommitter(db)
        return committer


def _adapter(kind: str) -> tuple[ChannelSpec, InboundAdapter]:
    try:
        spec = registry.get(kind)
    except KeyError:
        raise InboundRejected(404, "unknown channel") from None
    if spec.inbound is None:
        raise InboundRejected(404, "unknown channel")
    return spec, spec.inbound


async def _account(db: Database, kind: str, channel_id: int) -> AccountView:
    cached = _accounts.get((kind, channel_id))
    if cached is not None and time.monotonic() - cached.at < _ACCOUNT_TTL:
        return cached.view  # the hot path: no thread hop
    try:
        return await run_in_threadpool(load_account, db, kind, channel_id)
    except NotFound:
        raise InboundRejected(404, "unknown channel") from None


@router.get("/{kind}/{channel_id}", summary="URL verification of WeChat / Weibo / WeCom callbacks")
async def channel_verify(kind: str, channel_id: int, request: Request) -> Response:
    try:
        _spec, adapter = _adapter(kind)
        account = await _account(request.app.state.db, kind, channel_id)
        answer = adapter.verify(request.query_params, account)
    except InboundRejected as exc:
        return _reject(kind, exc)
    return Response(answer.encode("utf-8"), media_type="text/plain")


@router.post("/{kind}/{channel_id}", summary="Pushes from WeChat / Weibo fan service / WeCom")
async def channel_push(kind: str, channel_id: int, request: Request) -> Response:
    db: Database = request.app.state.db
    try:
        _spec, adapter = _adapter(kind)
        body = await read_body_capped(request, adapter.max_body)
        account = await _account(db, kind, channel_id)
        push = adapter.parse(request.query_params, body, account)
    except InboundRejected as exc:
        return _reject(kind, exc)
    # The passive answer is decided and rendered before the push is stored, and stored with it:
    # the pipeline then records the reply as delivered instead of sending it a second time.
    events = tuple(push.events)
    answer_body: bytes | None = None
    answer = passive_reply_for(account, events[0]) if events and push.render_reply is not None else None
    if answer is not None and push.render_reply is not None:
        try:
            answer_body = push.render_reply(answer.reply)
        except ValueError:
            log.warning("passive reply for %s account %s could not be rendered", kind, account.id)
        else:
            first = events[0]
            text = answer.reply if isinstance(answer.reply, str) else getattr(answer.reply, "content", "")
            stamp = {**answer.source, "text": text}
            events = (replace(first, metadata={**first.metadata, "passive_reply": stamp}), *events[1:])
    pending = _Pending(account.workspace_id, account.id, kind, events, push.raw.decode("utf-8", "replace"))
    await asyncio.wrap_future(_committer(db).submit(pending))  # committed before we answer
    if answer_body is not None:
        return Response(answer_body, media_type=adapter.reply_media_type)
    return Response(adapter.ack, media_type=adapter.ack_media_type)
