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
from dataclasses import replace

from fastapi import Request, Response

from scrm.channels import registry
from scrm.channels.base import InboundRejected
from scrm.channels.registry import ChannelSpec, InboundAdapter
from scrm.db import Database
from scrm.inbound.committer import cached_account, committer
from scrm.inbound.endpoints import _reject, read_body_capped, router
from scrm.inbound.passive import passive_reply_for
from scrm.inbound.service import Batch

log = logging.getLogger(__name__)


def _adapter(kind: str) -> tuple[ChannelSpec, InboundAdapter]:
    try:
        spec = registry.get(kind)
    except KeyError:
        raise InboundRejected(404, "unknown channel") from None
    if spec.inbound is None:
        raise InboundRejected(404, "unknown channel")
    return spec, spec.inbound


@router.get("/{kind}/{channel_id}", summary="URL verification of WeChat / Weibo / WeCom callbacks")
async def channel_verify(kind: str, channel_id: int, request: Request) -> Response:
    try:
        _spec, adapter = _adapter(kind)
        account = await cached_account(request.app.state.db, kind, channel_id)
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
        account = await cached_account(db, kind, channel_id)
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
    pending = Batch(account.workspace_id, account.id, kind, events, push.raw.decode("utf-8", "replace"))
    await asyncio.wrap_future(committer(db).submit(pending))  # committed before we answer
    if answer_body is not None:
        return Response(answer_body, media_type=adapter.reply_media_type)
    return Response(adapter.ack, media_type=adapter.ack_media_type)
