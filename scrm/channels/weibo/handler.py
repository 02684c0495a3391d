"""Pure functions the HTTP layer calls for a Weibo fan-service callback URL (reference §2.1).

GET  → :func:`verify_url` → answer the returned echostr as ``text/plain``.
POST → :func:`parse_push` → store ``push.events`` (dedup on ``external_id``), then answer
:data:`ACK` (empty body: Weibo stops retrying) or ``render_passive_reply(push, text)``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from scrm.channels.base import InboundEvent, InboundRejected
from scrm.channels.wechat.crypto import signature_matches
from scrm.channels.weibo.config import WeiboAccountConfig
from scrm.channels.weibo.parser import MAX_BODY, loads_strict, parse_push_payload

__all__ = ["ACK", "MAX_BODY", "WeiboPush", "parse_push", "render_passive_reply", "verify_url"]

ACK = b""  # an empty body acknowledges and stops Weibo's retries
MAX_TEXT_REPLY = 300
_MAX_PARAM = 128


@dataclass(frozen=True, slots=True)
class WeiboPush:
    events: tuple[InboundEvent, ...]
    account: WeiboAccountConfig
    fan: str  # sender_id: the reply's receiver_id
    receiver_id: str  # our uid: the reply's sender_id
    raw: bytes

    @property
    def event(self) -> InboundEvent:
        return self.events[0]


def _param(query: Mapping[str, str], name: str) -> str:
    value = query.get(name) or ""
    if not value or len(value) > _MAX_PARAM:
        raise InboundRejected(400, f"missing or invalid {name}")
    return value


def _check_signature(query: Mapping[str, str], account: WeiboAccountConfig) -> str:
    timestamp = _param(query, "timestamp")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 13:
        raise InboundRejected(400, "timestamp must be a unix time")
    nonce = _param(query, "nonce")
    secret = account.app_secret.get_secret_value()
    if not signature_matches(query.get("signature"), secret, timestamp, nonce):
        raise InboundRejected(401, "invalid signature")
    return timestamp


def _check_fresh(timestamp: str, now: dt.datetime | None, max_age: float | None) -> None:
    if max_age is None:
        return
    seconds = int(timestamp) / (1000 if len(timestamp) == 13 else 1)  # Weibo sends milliseconds
    if abs((now or dt.datetime.now(dt.UTC)).timestamp() - seconds) > max_age:
        raise InboundRejected(401, "stale timestamp")


def verify_url(query: Mapping[str, str], account: WeiboAccountConfig) -> str:
    """Check the GET verification (``sha1(sorted([app_secret, timestamp, nonce]))``); return echostr."""
    echostr = _param(query, "echostr")
    _check_signature(query, account)
    return echostr


def parse_push(
    query: Mapping[str, str],
    body: bytes,
    account: WeiboAccountConfig,
    *,
    now: dt.datetime | None = None,
    max_age: float | None = None,
) -> WeiboPush:
    """Verify the signature (every POST carries it) and parse the JSON push."""
    if len(body) > MAX_BODY:
        raise InboundRejected(413, f"body larger than {MAX_BODY} bytes")
    timestamp = _check_signature(query, account)
    _check_fresh(timestamp, now, max_age)
    event = parse_push_payload(loads_strict(body), receiver_uid=account.uid or None)
    return WeiboPush(
        events=(event,),
        account=account,
        fan=event.sender.external_id,
        receiver_id=str(event.metadata["receiver_id"]),
        raw=body,
    )


def _reply(push: WeiboPush, reply_type: str, data: Mapping[str, Any]) -> bytes:
    encoded = quote(json.dumps(data, ensure_ascii=False, separators=(",", ":")), safe="")
    body = {
        "result": True,
        "sender_id": int(push.receiver_id),
        "receiver_id": int(push.fan),
        "type": reply_type,
        "data": encoded,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def render_passive_reply(push: WeiboPush, text: str) -> bytes:
    """A passive text reply (``data`` is the URL-encoded JSON ``{"text": …}``, < 300 chars)."""
    if not text or len(text) >= MAX_TEXT_REPLY:
        raise ValueError(f"a passive text reply has 1 to {MAX_TEXT_REPLY - 1} characters")
    return _reply(push, "text", {"text": text})


def render_articles_reply(push: WeiboPush, articles: Sequence[Mapping[str, str]]) -> bytes:
    """Passive article reply: each ``{"display_name", "summary", "image", "url"}`` (1 to 8)."""
    if not 1 <= len(articles) <= 8:
        raise ValueError("an articles reply holds 1 to 8 articles")
    return _reply(push, "articles", {"articles": [dict(a) for a in articles]})
