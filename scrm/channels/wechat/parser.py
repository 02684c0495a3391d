"""WeChat push XML → :class:`InboundEvent` (reference §1.2). Also used by WeCom.

Every standard message and event is mapped explicitly; an unknown ``MsgType`` or ``Event``
becomes ``kind="unknown"`` with its fields in ``metadata`` (acknowledged, stored, never a
500). Malformed or hostile documents raise :class:`InboundRejected` (400/413).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any
from xml.parsers import expat

import defusedxml
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from scrm.channels.base import EventKind, InboundEvent, InboundRejected, Sender

MAX_BODY = 256 * 1024  # bytes; a real push is a few KB (compat mode about 3×)
_MAX_NESTED_DEPTH = 4
_REQUIRED = ("ToUserName", "FromUserName", "CreateTime", "MsgType")
QR_SCENE_PREFIX = "qrscene_"

Fields = dict[str, Any]  # leaf → str, element with children → Fields, repeated child → list


def parse_xml(body: bytes | str, *, max_body: int = MAX_BODY) -> Fields:
    """Parse a ``<xml>…</xml>`` document safely into its root's fields.

    The size is capped before parsing, the body must be UTF-8, DTDs and entities are refused
    (billion laughs, XXE), the root must be ``<xml>`` and a root field may not repeat.

    This drives expat directly with defusedxml's guards (DTDs, entity declarations and
    external references raise defusedxml's own exceptions) instead of building an
    ElementTree: the result is the same as ``defusedxml.ElementTree.fromstring(...,
    forbid_dtd=True)`` walked by :func:`_value`, at a fraction of the cost per push.
    """
    if len(body) > max_body:
        raise InboundRejected(413, f"body larger than {max_body} bytes")
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InboundRejected(400, "body is not UTF-8") from None
    else:
        text = body
    builder = _TreeBuilder()
    try:
        # Parsing a str makes expat ignore any encoding declaration: the wire format is UTF-8.
        builder.parse(text)
    except defusedxml.DefusedXmlException as exc:
        raise InboundRejected(400, f"forbidden XML construct ({type(exc).__name__})") from None
    except (expat.ExpatError, ValueError):
        raise InboundRejected(400, "malformed XML") from None
    root = builder.root
    if root is None:  # pragma: no cover - expat refuses a document without a root element
        raise InboundRejected(400, "malformed XML")
    if root[0] != "xml":
        raise InboundRejected(400, "root element must be <xml>")
    fields: Fields = {}
    for child in root[2]:
        if child[0] in fields:
            raise InboundRejected(400, f"duplicate element <{child[0]}>")
        fields[child[0]] = _value(child, 1)
    return fields


# A parsed element: [tag, text parts (before its first child), children].
_Node = list[Any]


def _forbid_dtd(name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool) -> None:
    raise DTDForbidden(name, sysid, pubid)


def _forbid_entity_decl(
    name: str,
    is_parameter_entity: bool,
    value: str | None,
    base: str | None,
    sysid: str | None,
    pubid: str | None,
    notation_name: str | None,
) -> None:
    raise EntitiesForbidden(name, value, base, sysid, pubid, notation_name)


def _forbid_unparsed_entity_decl(
    name: str, base: str | None, sysid: str | None, pubid: str | None, notation_name: str | None
) -> None:
    raise EntitiesForbidden(name, None, base, sysid, pubid, notation_name)


def _forbid_external_ref(context: str, base: str | None, sysid: str | None, pubid: str | None) -> int:
    raise ExternalReferenceForbidden(context, base, sysid, pubid)


class _TreeBuilder:
    """A minimal tree from expat callbacks (tags as ElementTree names them, text, children)."""

    __slots__ = ("root", "stack")

    def __init__(self) -> None:
        self.root: _Node | None = None
        self.stack: list[_Node] = []

    def parse(self, text: str) -> None:
        # Same expat set-up as ElementTree's XMLParser ("}" namespace separator) plus
        # defusedxml's handlers for forbid_dtd, forbid_entities and forbid_external.
        parser = expat.ParserCreate(None, "}")
        parser.buffer_text = True
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = _forbid_dtd
        parser.EntityDeclHandler = _forbid_entity_decl
        parser.UnparsedEntityDeclHandler = _forbid_unparsed_entity_decl
        parser.ExternalEntityRefHandler = _forbid_external_ref
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._data
        parser.Parse(text, True)

    def _start(self, name: str, _attrs: Any) -> None:
        node: _Node = ["{" + name if "}" in name else name, [], []]
        stack = self.stack
        if stack:
            stack[-1][2].append(node)
        else:
            self.root = node
        stack.append(node)

    def _end(self, _name: str) -> None:
        self.stack.pop()

    def _data(self, data: str) -> None:
        node = self.stack[-1]
        if not node[2]:  # text after a child element is a tail: ElementTree drops it here too
            node[1].append(data)


def _value(element: _Node, depth: int) -> Any:
    children = element[2]
    if not children:
        return "".join(element[1])
    if depth >= _MAX_NESTED_DEPTH:
        return {}
    nested: Fields = {}
    for child in children:
        value = _value(child, depth + 1)
        tag = child[0]
        if tag in nested:
            previous = nested[tag]
            nested[tag] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            nested[tag] = value
    return nested


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _float(fields: Mapping[str, Any], name: str) -> float | None:
    """A coordinate, scale or precision; None unless it is a finite number (``nan``, ``inf``
    and ``1e999`` would not survive JSON storage, and no real push sends them)."""
    text = _text(fields, name)
    if not text or len(text) > _MAX_NUMBER_CHARS or not text.isascii():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# CreateTime is unix seconds (13 digits: milliseconds, tolerated). Anything outside these
# bounds is not a real push, and years past 9999 would not even make a datetime.
MIN_CREATE_TIME = 0
MAX_CREATE_TIME = 4_102_444_800  # 2100-01-01T00:00:00Z
_MAX_NUMBER_CHARS = 32
MAX_TYPE_CHARS = 64
MAX_USER_CHARS = 128  # an openid is 28 characters; the contact identity column holds 128


def create_time_seconds(create_time: str) -> int:
    """The unix seconds of a CreateTime; InboundRejected(400) unless it is ASCII digits in range.

    ``str.isdigit`` alone also accepts ``²`` or Arabic-Indic digits, which ``int`` then refuses
    or converts; only ``[0-9]`` is a WeChat timestamp.
    """
    if not create_time.isascii() or not create_time.isdigit() or len(create_time) > 13:
        raise InboundRejected(400, "CreateTime is not a unix timestamp")
    seconds = int(create_time)
    if len(create_time) == 13:  # tolerate milliseconds
        seconds //= 1000
    if not MIN_CREATE_TIME <= seconds <= MAX_CREATE_TIME:
        raise InboundRejected(400, "CreateTime is out of range")
    return seconds


def _sent_at(create_time: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(create_time_seconds(create_time), dt.UTC)


def parse_message(
    fields: Mapping[str, Any],
    *,
    namespace: str,
    original_id: str | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> InboundEvent:
    """Map parsed push fields to an :class:`InboundEvent`.

    `namespace` becomes ``Sender.namespace`` (``wechat:<appid>`` or ``wecom:<corpid>``). When
    `original_id` is given, ``ToUserName`` must equal it (403 otherwise).
    """
    missing = [name for name in _REQUIRED if not _text(fields, name)]
    if missing:
        raise InboundRejected(400, f"missing {', '.join(missing)}")
    to_user = _text(fields, "ToUserName")
    if original_id and to_user != original_id:
        raise InboundRejected(403, "ToUserName is not this account")
    from_user = _text(fields, "FromUserName")
    if len(from_user) > MAX_USER_CHARS or len(to_user) > MAX_USER_CHARS:
        raise InboundRejected(400, "FromUserName / ToUserName is too long for an openid")
    create_time = _text(fields, "CreateTime")
    sent_at = _sent_at(create_time)
    msg_type = _text(fields, "MsgType").lower()
    if len(msg_type) > MAX_TYPE_CHARS or len(_text(fields, "Event")) > MAX_TYPE_CHARS:
        raise InboundRejected(400, "MsgType / Event is too long")
    sender = Sender(external_id=from_user, namespace=namespace)
    metadata: dict[str, Any] = {"to": to_user, "create_time": int(create_time), **(extra_metadata or {})}
    base: dict[str, Any] = {"sender": sender, "sent_at": sent_at, "msg_type": msg_type, "metadata": metadata}
    if msg_type == "event":
        return _event(fields, base, from_user, create_time)
    msg_id = _text(fields, "MsgId")
    if msg_id and not (msg_id.isascii() and msg_id.isdigit() and len(msg_id) <= 20):
        raise InboundRejected(400, "MsgId is not a 64-bit id")
    # Messages dedup on MsgId; an odd message without one falls back to the event recipe.
    external_id = msg_id or f"{from_user}:{create_time}:{msg_type}"
    if msg_id:
        metadata["msg_id"] = msg_id
    handler = _MESSAGES.get(msg_type)
    if handler is None:
        metadata["fields"] = dict(fields)
        return InboundEvent(external_id=external_id, kind="unknown", **base)
    return InboundEvent(external_id=external_id, kind="message", **handler(fields, metadata), **base)


def _text_message(fields: Mapping[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    content = fields.get("Content", "")
    for name, key in (("MsgDataId", "msg_data_id"), ("Idx", "idx"), ("BizMsgMenuId", "bizmsgmenuid")):
        if _text(fields, name):
            metadata[key] = _text(fields, name)
    return {"text": content if isinstance(content, str) else ""}


def _image(fields: Mapping[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    media = {"type": "image", "media_id": _text(fields, "MediaId"), "url": _text(fields, "PicUrl")}
    return {"media": [media]}


def _voice(fields: Mapping[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    media = {"type": "voice", "media_id": _text(fields, "MediaId"), "format": _text(fields, "Format")}
    recognition = _text(fields, "Recognition")
    if recognition:
        metadata["recognition"] = recognition
    return {"text": recognition, "media": [media]}


def _video(fields: Mapping[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    media = {
        "type": _text(fields, "MsgType").lower(),
        "media_id": _text(fields, "MediaId"),
        "thumb_media_id": _text(fields, "ThumbMediaId"),
    }
    return {"media": [media]}


def _location_message(fields: Mapping[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    label = _text(fields, "Label")
    location = {
        "lat": _float(fields, "Location_X"),
        "lng": _float(fields, "Location_Y"),
        "scale": _float(fields, "Scale"),
        "label": label,
    }
    return {"text": label, "location": location}


def _link(fields: Mapping[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    title, url = _text(fields, "Title"), _text(fields, "Url")
    metadata.update(title=title, description=_text(fields, "Description"), url=url)
    return {"text": title, "media": [{"type": "link", "url": url, "title": title}]}


_MESSAGES = {
    "text": _text_message,
    "image": _image,
    "voice": _voice,
    "video": _video,
    "shortvideo": _video,
    "location": _location_message,
    "link": _link,
}


def _event(fields: Mapping[str, Any], base: dict[str, Any], from_user: str, create_time: str) -> InboundEvent:
    raw_event = _text(fields, "Event")
    event = raw_event.lower()
    metadata: dict[str, Any] = base["metadata"]
    metadata["event"] = raw_event
    # Events carry no MsgId: From+CreateTime, plus the event so a LOCATION report in the same
    # second as a subscribe is not mistaken for a retry.
    external_id = f"{from_user}:{create_time}:{event or 'event'}"
    event_key = _text(fields, "EventKey")
    ticket = _text(fields, "Ticket")
    if ticket:
        metadata["ticket"] = ticket
    kind: EventKind
    extra: dict[str, Any] = {}
    if event == "subscribe":
        kind = "subscribe"
        if event_key.startswith(QR_SCENE_PREFIX):
            extra["scene"] = event_key[len(QR_SCENE_PREFIX) :]
            metadata["subscribe_scan"] = True
    elif event == "unsubscribe":
        kind = "unsubscribe"
    elif event == "scan":
        kind = "scan"
        extra["scene"] = event_key
    elif event == "location":
        kind = "location"
        extra["location"] = {
            "lat": _float(fields, "Latitude"),
            "lng": _float(fields, "Longitude"),
            "precision": _float(fields, "Precision"),
        }
    elif event == "click":
        kind = "click"
        extra["menu_key"] = event_key
    elif event == "view":
        kind = "view"
        extra["menu_key"] = event_key
        metadata["url"] = event_key
        if _text(fields, "MenuId"):
            metadata["menu_id"] = _text(fields, "MenuId")
    else:
        kind = "unknown"
        metadata["fields"] = dict(fields)
    return InboundEvent(external_id=external_id, kind=kind, **extra, **base)


def parse_document(
    body: bytes | str, *, namespace: str, original_id: str | None = None, max_body: int = MAX_BODY
) -> InboundEvent:
    """:func:`parse_xml` then :func:`parse_message` on a plaintext push body."""
    return parse_message(parse_xml(body, max_body=max_body), namespace=namespace, original_id=original_id)
