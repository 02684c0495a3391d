"""Inbound webhook endpoints: verify → store → enqueue → acknowledge.

Nothing is stored for a request that fails verification or parsing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from scrm import metrics
from scrm.channels.base import InboundRejected
from scrm.channels.registry import AccountView
from scrm.channels.webhook import handler as webhook
from scrm.config import get_settings
from scrm.db import Database
from scrm.errors import NotFound
from scrm.inbound import service
from scrm.workspace import service as workspace

log = logging.getLogger(__name__)
router = APIRouter(prefix="/hooks", tags=["inbound"], include_in_schema=True)

_ACCOUNT_TTL = 10.0


@dataclass
class _Cached:
    view: AccountView
    at: float


_accounts: dict[tuple[str, int], _Cached] = {}


def load_account(db: Database, kind: str, account_id: int) -> AccountView:
    """Channel accounts are read on every push; keep them for a few seconds per process."""
    key = (kind, account_id)
    cached = _accounts.get(key)
    now = time.monotonic()
    if cached and now - cached.at < _ACCOUNT_TTL:
        return cached.view
    with db.transaction(readonly=True) as session:
        account = workspace.find_channel_account_for_inbound(session, account_id, kind)
        view = workspace.account_view(account)
    _accounts[key] = _Cached(view, now)
    return view


def forget_account(account_id: int) -> None:
    for key in [k for k in _accounts if k[1] == account_id]:
        _accounts.pop(key, None)


async def read_body_capped(request: Request, limit: int) -> bytes:
    """Read at most `limit` bytes; refuse larger bodies before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise InboundRejected(413, f"body larger than {limit} bytes")
        except ValueError:
            raise InboundRejected(400, "bad Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InboundRejected(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject(kind: str, exc: InboundRejected) -> JSONResponse:
    metrics.INBOUND_REJECTED.labels(kind, str(exc.status_code)).inc()
    return JSONResponse({"error": "rejected", "detail": exc.detail}, status_code=exc.status_code)


@router.post("/webhook/{channel_id}", summary="Generic signed webhook (see docs/channels/webhook.md)")
async def webhook_push(channel_id: int, request: Request) -> Response:
    settings = get_settings()
    db: Database = request.app.state.db
    try:
        body = await read_body_capped(request, settings.webhook_max_body)
        try:
            account = await run_in_threadpool(load_account, db, "webhook", channel_id)
        except NotFound:
            raise InboundRejected(404, "unknown channel") from None
        webhook.verify(
            request.headers, body, account.secrets["secret"], tolerance=settings.webhook_tolerance_seconds
        )
        event = webhook.parse(body, account.id)
    except InboundRejected as exc:
        return _reject("webhook", exc)

    def store() -> bool:
        with db.transaction() as session:
            (accepted,) = service.accept(
                session,
                workspace_id=account.workspace_id,
                channel_account_id=account.id,
                channel_kind="webhook",
                events=[event],
                raw=body.decode("utf-8", "replace"),
            )
        return accepted.new

    new = await run_in_threadpool(store)
    if new:
        return JSONResponse({"status": "accepted"}, status_code=202)
    return JSONResponse({"status": "duplicate"}, status_code=200)


# WeChat / Weibo / WeCom callbacks share this router (registered after the webhook route).
from scrm.inbound import social  # noqa: E402,F401
