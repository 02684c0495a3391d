"""Pure functions the HTTP layer calls for a WeCom app's callback URL (reference §3).

GET  → :func:`verify_url` → answer the *decrypted* echostr as ``text/plain`` (no quotes, BOM or
newline), within 1 s. POST → :func:`parse_push` → store ``push.events`` and answer
:data:`SUCCESS` or ``render_passive_reply(push, ...)`` (always encrypted).
Query parameters must be URL-decoded first (Starlette's ``request.query_params`` are).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from scrm.channels.base import InboundEvent, InboundRejected
from scrm.channels.wechat.replies import Reply, TextReply, render_encrypted_envelope, render_reply_xml
from scrm.channels.wecom.config import WecomAccountConfig
from scrm.channels.wecom.crypto import crypto_for
from scrm.channels.wecom.parser import MAX_BODY, parse_callback_message, parse_xml

__all__ = ["MAX_BODY", "SUCCESS", "WecomPush", "parse_push", "render_passive_reply", "verify_url"]

SUCCESS = b""  # an empty 200 acknowledges without a passive reply
_MAX_PARAM = 128
_MAX_ECHOSTR = 1024


@dataclass(frozen=True, slots=True)
class WecomPush:
    events: tuple[InboundEvent, ...]
    account: WecomAccountConfig
    member: str  # FromUserName (userid): the reply's ToUserName
    to_user: str  # ToUserName (CorpID): the reply's FromUserName
    key_index: int
    plaintext: bytes

    @property
    def event(self) -> InboundEvent:
        return self.events[0]


def _param(query: Mapping[str, str], name: str, limit: int = _MAX_PARAM) -> str:
    value = query.get(name) or ""
    if not value or len(value) > limit:
        raise InboundRejected(400, f"missing or invalid {name}")
    return value


def _timestamp(query: Mapping[str, str]) -> str:
    timestamp = _param(query, "timestamp")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 13:
        raise InboundRejected(400, "timestamp must be a unix time")
    return timestamp


def verify_url(query: Mapping[str, str], account: WecomAccountConfig) -> str:
    """Verify ``msg_signature`` over the encrypted echostr, decrypt it and return the plaintext."""
    timestamp = _timestamp(query)
    nonce = _param(query, "nonce")
    echostr = _param(query, "echostr", _MAX_ECHOSTR)
    crypto = crypto_for(account)
    crypto.verify_signature(query.get("msg_signature"), timestamp, nonce, echostr)
    plaintext = crypto.decrypt(echostr).plaintext
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise InboundRejected(400, "echostr does not decrypt to text") from None


def parse_push(
    query: Mapping[str, str],
    body: bytes,
    account: WecomAccountConfig,
    *,
    now: dt.datetime | None = None,
    max_age: float | None = None,
) -> WecomPush:
    """Verify, decrypt and parse a callback POST; only the decrypted part is trusted."""
    if len(body) > MAX_BODY:
        raise InboundRejected(413, f"body larger than {MAX_BODY} bytes")
    timestamp = _timestamp(query)
    nonce = _param(query, "nonce")
    outer = parse_xml(body)
    encrypt = outer.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt.strip():
        raise InboundRejected(400, "missing Encrypt")
    crypto = crypto_for(account)
    crypto.verify_signature(query.get("msg_signature"), timestamp, nonce, encrypt.strip())
    if max_age is not None:
        seconds = int(timestamp) / (1000 if len(timestamp) == 13 else 1)
        if abs((now or dt.datetime.now(dt.UTC)).timestamp() - seconds) > max_age:
            raise InboundRejected(401, "stale timestamp")
    decrypted = crypto.decrypt(encrypt.strip())
    event = parse_callback_message(parse_xml(decrypted.plaintext), account)
    return WecomPush(
        events=(event,),
        account=account,
        member=event.sender.external_id,
        to_user=str(event.metadata["to"]),
        key_index=decrypted.key_index,
        plaintext=decrypted.plaintext,
    )


def render_passive_reply(
    push: WecomPush, reply: Reply | str, *, now: dt.datetime | None = None, nonce: str | None = None
) -> bytes:
    """The encrypted, signed reply body (WeCom has no plaintext mode)."""
    if isinstance(reply, str):
        reply = TextReply(reply)
    create_time = int((now or dt.datetime.now(dt.UTC)).timestamp())
    xml = render_reply_xml(reply, to_user=push.member, from_user=push.to_user, create_time=create_time)
    envelope = crypto_for(push.account).seal(
        xml.encode("utf-8"),
        timestamp=str(create_time),
        nonce=nonce or str(secrets.randbelow(10**10)),
        key_index=push.key_index,
    )
    return render_encrypted_envelope(
        encrypt=envelope.encrypt,
        msg_signature=envelope.msg_signature,
        timestamp=envelope.timestamp,
        nonce=envelope.nonce,
    ).encode("utf-8")
