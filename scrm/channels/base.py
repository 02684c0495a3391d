"""The contract between the domain and the channels.

Channels know nothing of the database. Inbound, a channel turns a verified HTTP request into
one or more channel-neutral :class:`InboundEvent` objects. Outbound, the domain asks a channel
for a capability ("send this text on this conversation") through :class:`ChannelClient`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

EventKind = Literal[
    "message",  # a fan's message (text, image, voice, video, location, link, ...)
    "mention",  # a public post that @mentions the brand (Weibo)
    "comment",  # a public comment on the brand's post (Weibo)
    "subscribe",  # follow / subscribe (with optional QR scene)
    "unsubscribe",
    "scan",  # QR code scanned by an existing follower (scene in `scene`)
    "click",  # menu click (key in `menu_key`)
    "view",  # menu link opened
    "location",  # location report event (not a location message)
    "unknown",  # stored, logged and acknowledged; never dropped
]

Visibility = Literal["public", "private"]


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent the event, as the channel knows them."""

    external_id: str  # WeChat openid, Weibo uid, webhook sender id
    name: str | None = None
    namespace: str = ""  # identity namespace, e.g. "wechat:<appid>", "weibo", "webhook:<channel id>"
    unionid: str | None = None  # WeChat unionid when the platform gives one
    followers: int | None = None  # influence, when known (Weibo)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One event from a channel, already verified and parsed."""

    external_id: str  # the channel's dedup key: MsgId, FromUserName+CreateTime, status id, ...
    kind: EventKind
    sender: Sender
    sent_at: dt.datetime  # timezone-aware UTC
    text: str = ""
    msg_type: str = "text"  # text, image, voice, video, shortvideo, location, link, event, ...
    visibility: Visibility = "private"
    # Thread the reply belongs to: a Weibo status id for a public mention, a conversation key
    # given by a webhook sender, or "" for the fan's one private thread on this account.
    thread_key: str = ""
    media: list[dict[str, Any]] = field(default_factory=list)  # {"type", "media_id"|"url", ...}
    scene: str | None = None  # QR scene (qrscene_ prefix stripped)
    menu_key: str | None = None
    location: dict[str, Any] | None = None  # {"lat", "lng", "label", "precision"}
    metadata: dict[str, Any] = field(default_factory=dict)  # channel specifics kept for the record


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What the domain asks a channel to deliver."""

    idempotency_key: str
    recipient: str  # external id of the fan (openid, uid, webhook sender id)
    text: str = ""
    msg_type: str = "text"  # text, image, news, template, ...
    visibility: Visibility = "private"
    thread_key: str = ""  # e.g. the Weibo status id to comment on
    reply_to_external_id: str | None = None  # e.g. the Weibo comment id being answered
    payload: dict[str, Any] = field(default_factory=dict)  # template data, media ids, articles


@dataclass(frozen=True, slots=True)
class SendResult:
    external_message_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class ChannelError(Exception):
    """A send failed. `retryable` says whether trying again later can help."""

    retryable: bool = True
    code: str = "channel_error"

    def __init__(self, message: str, *, retryable: bool | None = None, code: str | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        if code is not None:
            self.code = code


class PermanentChannelError(ChannelError):
    """Will never succeed as asked (bad recipient, window closed, content refused)."""

    retryable = False
    code = "permanent"


class SendRefused(PermanentChannelError):
    """Refused before calling the platform (fan unsubscribed, service window closed).

    `fallback`, when given, is what to deliver instead (e.g. a WeChat template message).
    """

    code = "refused"

    def __init__(
        self, message: str, *, code: str | None = None, fallback: OutboundMessage | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.fallback = fallback


class RateLimitedError(ChannelError):
    """The platform's quota is hit; retry after `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float = 60.0) -> None:
        super().__init__(message, retryable=True)
        self.retry_after = retry_after


class ChannelClient(Protocol):
    """Outbound capability of one configured channel account."""

    def send(self, message: OutboundMessage) -> SendResult: ...

    def close(self) -> None: ...


@runtime_checkable
class SentLookup(Protocol):
    """A client that can list what its account sent, so a retry after an attempt whose outcome
    is unknown (a timeout, a worker killed between the platform's answer and the commit) looks
    first and never posts the same reply twice. Platforms without such a listing (WeChat's
    customer-service API) are at-least-once there."""

    def find_sent(self, message: OutboundMessage, *, not_before: dt.datetime) -> SendResult | None: ...


class InboundRejected(Exception):
    """An inbound request that must be refused with a 4xx status; nothing is stored."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class InvalidAccount(ValueError):
    """A channel account's settings (external id, config or secrets) are not usable; `field`
    names the offending one. Raised by a channel's account validator, before anything is stored."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# -- values that JSON storage on SQLite and PostgreSQL accepts -------------------------------------
# ``json.dumps`` writes NaN/Infinity (PostgreSQL refuses them), cannot write ints past
# ``sys.get_int_max_str_digits``, and PostgreSQL text refuses NUL and strings that are not
# valid UTF-8 (a lone surrogate from a ``\ud800`` escape).
JSON_INT_MIN = -(2**63)
JSON_INT_MAX = 2**64 - 1


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    if "\x00" in value:
        return "a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate (not valid Unicode)"
    return None


def json_problem(value: object, *, depth: int = 0) -> str | None:
    """Why `value` (dicts with str keys, lists, tuples, scalars) is not storable JSON, or None."""
    if isinstance(value, str):
        return text_problem(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if JSON_INT_MIN <= value <= JSON_INT_MAX else "an integer out of range"
    if isinstance(value, float):
        return None if math.isfinite(value) else "a non-finite number (NaN or Infinity)"
    if depth > 64:
        return "nesting too deep"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "a key that is not a string"
            problem = text_problem(key) or json_problem(item, depth=depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, list | tuple):
        for item in value:
            problem = json_problem(item, depth=depth + 1)
            if problem:
                return problem
        return None
    return f"a value of type {type(value).__name__}"
