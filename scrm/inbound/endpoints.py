"""Inbound webhook endpoints: verify → store → enqueue → acknowledge.

Nothing is stored for a request that fails verification or parsing.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from scrm import metrics
from scrm.channels.base import InboundRejected
from scrm.channels.webhook import handler as webhook
from scrm.config import get_settings
from scrm.db import Database
from scrm.inbound.committer import cached_account, committer
from scrm.inbound.service import Batch

log = logging.getLogger(__name__)
router = APIRouter(prefix="/hooks", tags=["inbound"], include_in_schema=True)


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
        account = await cached_account(db, "webhook", channel_id)
        webhook.verify(
            request.headers, body, account.secrets["secret"], tolerance=settings.webhook_tolerance_seconds
        )
        event = webhook.parse(body, account.id)
        # Refuses what storage would (NaN, NUL...) alone, before it can join a batch.
        pending = Batch(
            account.workspace_id, account.id, "webhook", (event,), body.decode("utf-8", "replace")
        )
    except InboundRejected as exc:
        return _reject("webhook", exc)
    (accepted,) = await committer(db).store(pending)  # durable before the answer
    if accepted.new:
        return JSONResponse({"status": "accepted"}, status_code=202)
    return JSONResponse({"status": "duplicate"}, status_code=200)


# WeChat / Weibo / WeCom callbacks share this router (registered after the webhook route).
from scrm.inbound import social  # noqa: E402,F401
