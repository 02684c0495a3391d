"""Weibo JSON → :class:`InboundEvent`: fan-service pushes (reference §2.1) and Open API
statuses/comments (reference §2.2).

Pushes carry no message id: they dedup on ``sender_id + created_at`` (plus type/subtype, so a
keyword message and the subscribe event it triggers in the same second stay apart). Statuses
dedup as ``status:<id>``, comments as ``comment:<id>`` whichever endpoint returned them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

from scrm.channels.base import (
    JSON_INT_MAX,
    JSON_INT_MIN,
    EventKind,
    InboundEvent,
    InboundRejected,
    Sender,
    json_problem,
)
from scrm.channels.weibo.config import NAMESPACE

MAX_BODY = 256 * 1024
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
# Scene prefixes seen in data.key ("<action_name>_<scene_id>") of scan/scan_follow events.
_SCENE_PREFIXES = ("qrscene_", "QR_LIMIT_STR_SCENE_", "QR_LIMIT_SCENE_", "QR_STR_SCENE_", "QR_SCENE_")


# created_at outside these years is not a real push (and a year past 9999 is not a datetime).
MIN_YEAR, MAX_YEAR = 1970, 2100
_MAX_ID_DIGITS = 20  # Weibo ids are int64
_MAX_NUMBER_CHARS = 32
_MAX_TYPE_CHARS = 32


def _ascii_int(text: str) -> int:
    """``int`` of ``[0-9]+`` only: ``int()`` alone takes ``٣``, ``+1``, `` 1`` and ``1_0``."""
    if not text.isascii() or not text.isdigit():
        raise ValueError("not a number")
    return int(text)


def parse_created_at(value: Any) -> dt.datetime:
    """``"Mon Jul 16 18:09:20 +0800 2012"`` → aware UTC datetime (locale independent).

    ValueError for anything else, including years outside 1970-2100 and non-ASCII digits.
    """
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("created_at must be a string")
    parts = value.split()
    if len(parts) != 6 or parts[1] not in _MONTHS or len(parts[4]) != 5 or parts[4][0] not in "+-":
        raise ValueError("bad created_at")
    clock = parts[3].split(":")
    if len(clock) != 3 or len(parts[5]) != 4:
        raise ValueError("bad created_at")
    hh, mm, ss = (_ascii_int(x) for x in clock)
    offset = parts[4]
    sign = 1 if offset[0] == "+" else -1
    tz = dt.timezone(sign * dt.timedelta(hours=_ascii_int(offset[1:3]), minutes=_ascii_int(offset[3:5])))
    year = _ascii_int(parts[5])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError("created_at is out of range")
    local = dt.datetime(year, _MONTHS[parts[1]], _ascii_int(parts[2]), hh, mm, ss, tzinfo=tz)
    return local.astimezone(dt.UTC)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf, which no JSON column stores
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    value = int(text) if len(text.lstrip("-")) <= _MAX_ID_DIGITS else None
    if value is None or not JSON_INT_MIN <= value <= JSON_INT_MAX:
        raise ValueError(f"integer {text[:20]} is out of range")
    return value


def loads_strict(body: bytes, *, max_body: int = MAX_BODY) -> Any:
    """Size-capped, UTF-8 only JSON without duplicate keys, NaN/Infinity, numbers out of range,
    NUL characters or lone surrogates (``\\ud800``): 4xx on anything else, so what is accepted
    is storable JSON on SQLite and PostgreSQL."""
    if len(body) > max_body:
        raise InboundRejected(413, f"body larger than {max_body} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InboundRejected(400, "body is not UTF-8") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_no_constants,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except RecursionError:
        raise InboundRejected(400, "JSON nested too deeply") from None
    except ValueError as exc:
        raise InboundRejected(400, f"malformed JSON ({str(exc)[:80]})") from None
    # Raw control characters and invalid UTF-8 are refused above; a NUL or a lone surrogate can
    # only come from a \u escape, so the walk runs only for bodies that have one.
    if "\\u" in text:
        problem = json_problem(value)
        if problem:
            raise InboundRejected(400, f"JSON holds {problem}")
    return value


def _id(value: Any, name: str) -> str:
    """Weibo int64 ids arrive as numbers or digit strings; anything else is malformed."""
    if isinstance(value, bool):
        raise InboundRejected(400, f"{name} is not an id")
    if isinstance(value, int) and 0 <= value < 2**64:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= _MAX_ID_DIGITS:
        return value
    raise InboundRejected(400, f"missing or invalid {name}")


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _float(value: Any) -> float | None:
    """A coordinate: a finite number, or None (``"nan"``, ``"Infinity"`` and ``"1e999"`` are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and (len(value) > _MAX_NUMBER_CHARS or not value.isascii()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _thread_id(value: Any) -> str | None:
    """A status / comment id (int64, or a base62 ``mid``) as text; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value) if 0 <= value < 2**64 else None
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isascii() and value.isalnum():
        return value
    return None


def _scene(key: str) -> str:
    for prefix in _SCENE_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def parse_push_payload(payload: Any, *, receiver_uid: str | None = None) -> InboundEvent:
    """Map one fan-service push (already JSON-decoded) to an :class:`InboundEvent`."""
    if not isinstance(payload, dict):
        raise InboundRejected(400, "push must be a JSON object")
    msg_type = payload.get("type")
    if not isinstance(msg_type, str) or not msg_type:
        raise InboundRejected(400, "missing type")
    if len(msg_type) > _MAX_TYPE_CHARS:
        raise InboundRejected(400, "type is too long")
    sender_id = _id(payload.get("sender_id"), "sender_id")
    receiver_id = _id(payload.get("receiver_id"), "receiver_id")
    if receiver_uid and receiver_id != receiver_uid:
        raise InboundRejected(403, "receiver_id is not this account")
    created_at = payload.get("created_at")
    try:
        sent_at = parse_created_at(created_at)
    except (ValueError, OverflowError):
        raise InboundRejected(400, "missing or invalid created_at") from None
    data = payload.get("data")
    if data is None or data == "":
        data = {}
    if not isinstance(data, dict):
        raise InboundRejected(400, "data must be an object")
    text = _str(payload.get("text"))
    subtype = _str(data.get("subtype")) if msg_type == "event" else ""
    if len(subtype) > _MAX_TYPE_CHARS:
        raise InboundRejected(400, "data.subtype is too long")
    metadata: dict[str, Any] = {"receiver_id": receiver_id, "type": msg_type, "created_at": created_at}
    # sender_id + created_at is the documented key; type/subtype keeps same-second events apart.
    external_id = f"{sender_id}:{int(sent_at.timestamp())}:{subtype or msg_type}"
    common: dict[str, Any] = {
        "external_id": external_id,
        "sender": Sender(external_id=sender_id, namespace=NAMESPACE),
        "sent_at": sent_at,
        "metadata": metadata,
    }
    kind: EventKind
    extra: dict[str, Any] = {}
    if msg_type == "text":
        kind, extra = "message", {"text": text, "msg_type": "text"}
    elif msg_type == "position":
        location = {"lat": _float(data.get("latitude")), "lng": _float(data.get("longitude")), "label": text}
        kind, extra = "message", {"text": text, "msg_type": "location", "location": location}
    elif msg_type in ("image", "voice"):
        media = {"type": msg_type, "vfid": _str(data.get("vfid")), "tovfid": _str(data.get("tovfid"))}
        kind, extra = "message", {"text": "", "msg_type": msg_type, "media": [media]}
    elif msg_type == "event":
        metadata["subtype"] = subtype
        key = _str(data.get("key"))
        if data.get("ticket"):
            metadata["ticket"] = _str(data.get("ticket"))
        extra = {"msg_type": "event"}
        if subtype in ("follow", "subscribe"):
            kind = "subscribe"
            metadata["follow_kind"] = subtype
        elif subtype in ("unfollow", "unsubscribe"):
            kind = "unsubscribe"
            metadata["follow_kind"] = subtype
        elif subtype in ("scan", "scan_follow"):
            kind = "subscribe" if subtype == "scan_follow" else "scan"
            extra["scene"] = _scene(key)
            metadata["key"] = key
        elif subtype == "click":
            kind = "click"
            extra["menu_key"] = key
        elif subtype == "view":
            kind = "view"
            extra["menu_key"] = key
            metadata["url"] = key
        elif subtype == "mention":
            kind = "mention"
            extra.update(text=text, visibility="public")
            status_id = _thread_id(data.get("status_id") or data.get("mid") or data.get("id"))
            if status_id is not None:
                extra["thread_key"] = status_id
                metadata["status_id"] = status_id
            metadata["data"] = data
            # A mention push that names its status / comment dedups with the poller's import
            # of the same item, and a reply to it goes out as a comment reply.
            comment_id = _thread_id(data.get("comment_id"))
            if comment_id is not None and comment_id.isdigit():
                metadata["comment_id"] = comment_id
                common["external_id"] = f"comment:{comment_id}"
            elif status_id is not None and status_id.isdigit():
                common["external_id"] = f"status:{status_id}"
        else:
            kind = "unknown"
            metadata["data"] = data
    else:
        kind, extra = "unknown", {"text": text, "msg_type": msg_type}
        metadata["data"] = data
    return InboundEvent(kind=kind, **extra, **common)


# -- Open API objects -----------------------------------------------------------------------


def _user_sender(user: Any) -> Sender:
    if not isinstance(user, Mapping):
        return Sender(external_id="", namespace=NAMESPACE)
    followers = user.get("followers_count")
    attributes = {
        k: user[k]
        for k in ("verified", "verified_type", "location", "gender", "friends_count", "statuses_count")
        if k in user and json_problem(user[k]) is None
    }
    return Sender(
        external_id=_str(user.get("idstr") or user.get("id")),
        name=_str(user.get("screen_name")) or None,
        namespace=NAMESPACE,
        followers=followers if isinstance(followers, int) and not isinstance(followers, bool) else None,
        attributes=attributes,
    )


def object_id(obj: Mapping[str, Any]) -> str:
    return _str(obj.get("idstr") or obj.get("id"))


def _sent_at(obj: Mapping[str, Any]) -> dt.datetime:
    try:
        return parse_created_at(obj.get("created_at"))
    except (ValueError, OverflowError):
        return dt.datetime.now(dt.UTC)


def status_event(status: Mapping[str, Any], *, endpoint: str = "statuses/mentions") -> InboundEvent:
    """A post that @mentions the brand → ``kind="mention"``, public, threaded on the status id."""
    status_id = object_id(status)
    metadata: dict[str, Any] = {"status_id": status_id, "endpoint": endpoint, "mid": _str(status.get("mid"))}
    if status.get("source"):
        metadata["source"] = _str(status.get("source"))
    retweeted = status.get("retweeted_status")
    if isinstance(retweeted, Mapping):
        metadata["retweeted_status_id"] = object_id(retweeted)
    media = [
        {"type": "image", "url": _str(p.get("thumbnail_pic"))}
        for p in status.get("pic_urls") or []
        if isinstance(p, Mapping)
    ]
    return InboundEvent(
        external_id=f"status:{status_id}",
        kind="mention",
        sender=_user_sender(status.get("user")),
        sent_at=_sent_at(status),
        text=_str(status.get("text")),
        msg_type="status",
        visibility="public",
        thread_key=status_id,
        media=media,
        metadata=metadata,
    )


def comment_event(comment: Mapping[str, Any], *, brand_uid: str, endpoint: str) -> InboundEvent:
    """A comment: ``kind="comment"`` on the brand's own post, ``"mention"`` elsewhere.

    The kind depends on the post's owner, not on the endpoint, so the same comment returned
    by ``comments/to_me`` and ``comments/mentions`` is one event with one key.
    """
    comment_id = object_id(comment)
    status = comment.get("status") if isinstance(comment.get("status"), Mapping) else {}
    status_id = object_id(status) if status else ""
    status_owner = _user_sender(status.get("user")).external_id if status else ""
    metadata: dict[str, Any] = {
        "comment_id": comment_id,
        "status_id": status_id,
        "status_owner_id": status_owner,
        "endpoint": endpoint,
    }
    if status:
        metadata["status_text"] = _str(status.get("text"))[:280]
    reply_to = comment.get("reply_comment")
    if isinstance(reply_to, Mapping):
        metadata["reply_to_comment_id"] = object_id(reply_to)
    return InboundEvent(
        external_id=f"comment:{comment_id}",
        kind="comment" if status_owner == brand_uid else "mention",
        sender=_user_sender(comment.get("user")),
        sent_at=_sent_at(comment),
        text=_str(comment.get("text")),
        msg_type="comment",
        visibility="public",
        thread_key=status_id,
        metadata=metadata,
    )
