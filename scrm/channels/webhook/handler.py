"""The generic signed JSON webhook: verify, then parse. Pure functions, no database.

Contract (docs/channels/webhook.md): `X-Scrm-Timestamp: <unix seconds>` and
`X-Scrm-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scrm.channels.base import InboundEvent, InboundRejected, Sender

SIGNATURE_HEADER = "x-scrm-signature"
TIMESTAMP_HEADER = "x-scrm-timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(headers: Any, body: bytes, secret: str, *, tolerance: int = 300, now: float | None = None) -> None:
    """Raise InboundRejected(401) unless the request is signed with `secret` and fresh."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise InboundRejected(401, "missing X-Scrm-Timestamp or X-Scrm-Signature")
    try:
        ts = int(timestamp)
    except ValueError:
        raise InboundRejected(401, "X-Scrm-Timestamp must be unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise InboundRejected(401, f"timestamp is more than {tolerance} s away from now")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise InboundRejected(401, "signature does not match")


class _SenderIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=128)
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)


class _Attachment(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(min_length=1, max_length=40)
    url: str | None = Field(default=None, max_length=2000)


class WebhookEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    type: Literal["message"]
    sender: _SenderIn
    text: str = Field(default="", max_length=20000)
    sent_at: dt.datetime
    conversation_key: str | None = Field(default=None, max_length=128)
    attachments: list[_Attachment] = Field(default_factory=list, max_length=20)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("sent_at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("sent_at must include a time zone offset")
        return value.astimezone(dt.UTC)


def parse(body: bytes, channel_id: int) -> InboundEvent:
    """Raise InboundRejected(422) naming the field when the body is not a valid event."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InboundRejected(422, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InboundRejected(422, "body must be a JSON object")
    try:
        event = WebhookEventIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InboundRejected(422, f"{where}: {first['msg']}") from None
    attributes: dict[str, Any] = {}
    if event.sender.phone:
        attributes["phone"] = event.sender.phone
    return InboundEvent(
        external_id=event.id,
        kind="message",
        sender=Sender(
            external_id=event.sender.id,
            name=event.sender.name,
            namespace=f"webhook:{channel_id}",
            attributes=attributes,
        ),
        sent_at=event.sent_at,
        text=event.text,
        msg_type="text" if not event.attachments else event.attachments[0].type,
        visibility="private",
        thread_key=event.conversation_key or "",
        media=[a.model_dump(exclude_none=True) for a in event.attachments],
        metadata=event.metadata,
    )
