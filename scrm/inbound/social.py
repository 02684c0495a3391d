"""Callback endpoints of the social platforms: ``GET/POST /hooks/<kind>/<account id>``.

One route for every channel whose spec has an :class:`~scrm.channels.registry.InboundAdapter`
(WeChat Official Account, Weibo fan service, WeCom). GET answers the URL verification; POST:
cap the body → load the account (cached) → verify + decrypt + parse (pure, in the channel) →
store the events and their jobs in one transaction (UNIQUE key: retries are duplicates) →
answer the platform the same way for every retry: its plain acknowledgement, or a passive
reply when a registered replier already knows the answer. Nothing is stored for a refused
request; unknown event types are stored and acknowledged. The stored raw is the plaintext.

The POST is the hot path (thousands of pushes a second on one process), so the product app
also serves it through :class:`InboundFastPath`, a pure-ASGI middleware that answers
``POST /hooks/<kind>/<digits>`` for those channels without FastAPI's routing, request objects
and dependency resolution; both run :func:`handle_push`, so the answers are the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response
from starlette.requests import ClientDisconnect

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
    return await handle_push(
        request.app.state.db,
        kind,
        channel_id,
        request.query_params,
        lambda limit: read_body_capped(request, limit),
    )


async def handle_push(
    db: Database,
    kind: str,
    channel_id: int,
    query: Mapping[str, str],
    read_body: Callable[[int], Awaitable[bytes]],
) -> Response:
    """Verify, parse, store (committed) and answer one push; `read_body(limit)` reads it capped."""
    try:
        _spec, adapter = _adapter(kind)
        body = await read_body(adapter.max_body)
        account = await cached_account(db, kind, channel_id)
        push = adapter.parse(query, body, account)
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
    try:  # refuses what storage would (NaN, NUL...) alone, before it can join a batch
        pending = Batch(account.workspace_id, account.id, kind, events, push.raw.decode("utf-8", "replace"))
    except InboundRejected as exc:
        return _reject(kind, exc)
    await committer(db).store(pending)  # committed before we answer
    if answer_body is not None:
        return Response(answer_body, media_type=adapter.reply_media_type)
    return Response(adapter.ack, media_type=adapter.ack_media_type)


# -- the pure-ASGI fast path ------------------------------------------------------------------

# The route's path with a plain decimal id; anything else (a non-numeric id: 422) goes the slow
# way through FastAPI. 18 digits stay inside a signed 64-bit id.
_PUSH_PATH = re.compile(r"/hooks/([A-Za-z0-9_-]{1,32})/([0-9]{1,18})")


def _fast_kind(kind: str) -> bool:
    try:
        return registry.get(kind).inbound is not None
    except KeyError:
        return False


class InboundFastPath:
    """Pure-ASGI middleware answering ``POST /hooks/<kind>/<id>`` (channels with an inbound
    adapter) with :func:`handle_push`, exactly as the route does but without FastAPI's routing,
    request parsing and dependency resolution, which cost more than verifying, decrypting and
    parsing a push. Every other request goes to the app unchanged.

    Errors keep their answers: an exception the app has a handler for (the database being
    unavailable → 503) is answered by that handler; anything else propagates to the server
    error middleware (500), as it would from the route.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._kinds: dict[str, bool] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        match = _PUSH_PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        kind = match.group(1)
        fast = self._kinds.get(kind)
        if fast is None:
            fast = self._kinds[kind] = _fast_kind(kind)
        if not fast:
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        query = parse_query(scope["query_string"])

        async def read_body(limit: int) -> bytes:
            return await _read_body_capped(scope, receive, limit)

        try:
            response = await handle_push(app.state.db, kind, int(match.group(2)), query, read_body)
        except ClientDisconnect:
            return  # nobody to answer; nothing was stored
        except Exception as exc:
            handler = _exception_handler(app, exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
        await response(scope, receive, send)


def parse_query(query_string: bytes) -> dict[str, str]:
    """``dict(QueryParams(query_string))`` as Starlette builds it (``parse_qsl`` with blank values
    kept, the last of a repeated name wins), unquoting only the parts that need it."""
    out: dict[str, str] = {}
    for part in query_string.decode("latin-1").split("&"):
        if not part:
            continue
        if "%" in part or "+" in part:
            pairs = parse_qsl(part, keep_blank_values=True)
            if pairs:
                name, value = pairs[0]
                out[name] = value
            continue
        name, _, value = part.partition("=")
        out[name] = value
    return out


def _exception_handler(app: Any, exc: Exception) -> Any:
    """The app's handler for `exc` (by class, most specific first), as Starlette looks it up."""
    handlers = getattr(app, "exception_handlers", {})
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None  # the server error middleware's, outside this one
        if cls in handlers:
            return handlers[cls]
    return None


async def _read_body_capped(scope: Any, receive: Any, limit: int) -> bytes:
    """:func:`read_body_capped` on the raw ASGI messages."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise InboundRejected(400, "bad Content-Length") from None
            if declared > limit:
                raise InboundRejected(413, f"body larger than {limit} bytes")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise InboundRejected(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
