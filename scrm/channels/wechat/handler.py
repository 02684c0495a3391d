"""Pure functions the HTTP layer calls for an Official Account's callback URL.

GET  → :func:`verify_url` → answer the returned echostr as ``text/plain``.
POST → :func:`parse_push` → store ``push.events`` (dedup on ``external_id``), then answer
:data:`SUCCESS` or ``render_passive_reply(push, ...)`` within 5 s.
Any :class:`InboundRejected` becomes its ``status_code``; nothing else is expected.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from scrm.channels.base import InboundEvent, InboundRejected
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.crypto import MessageCrypto, signature_matches
from scrm.channels.wechat.parser import MAX_BODY, parse_message, parse_xml
from scrm.channels.wechat.replies import Reply, TextReply, render_encrypted_envelope, render_reply_xml

__all__ = ["MAX_BODY", "SUCCESS", "WechatPush", "parse_push", "render_passive_reply", "verify_url"]

SUCCESS = b"success"  # "received, no passive reply"; stops WeChat's retries
_MAX_PARAM = 128


@dataclass(frozen=True, slots=True)
class WechatPush:
    """One verified push: its event plus what a passive reply needs."""

    events: tuple[InboundEvent, ...]
    account: WechatAccountConfig
    fan: str  # FromUserName (openid): the reply's ToUserName
    to_user: str  # ToUserName (gh_ id): the reply's FromUserName
    encrypted: bool  # request came in compat/safe mode; the reply must be encrypted
    key_index: int  # which EncodingAESKey decrypted it (0 current, 1 previous)
    plaintext: bytes  # the (decrypted) push XML, for the raw-event record

    @property
    def event(self) -> InboundEvent:
        return self.events[0]


def _param(query: Mapping[str, str], name: str, *, status: int = 400) -> str:
    value = query.get(name) or ""
    if not value or len(value) > _MAX_PARAM:
        raise InboundRejected(status, f"missing or invalid {name}")
    return value


def _timestamp(query: Mapping[str, str]) -> str:
    timestamp = _param(query, "timestamp")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 13:
        raise InboundRejected(400, "timestamp must be a unix time")
    return timestamp


def _check_fresh(timestamp: str, now: dt.datetime | None, max_age: float | None) -> None:
    """Optional replay window; WeChat itself defines none (reference §1.4)."""
    if max_age is None:
        return
    seconds = int(timestamp) / (1000 if len(timestamp) == 13 else 1)
    current = (now or dt.datetime.now(dt.UTC)).timestamp()
    if abs(current - seconds) > max_age:
        raise InboundRejected(401, "stale timestamp")


def verify_url(query: Mapping[str, str], account: WechatAccountConfig) -> str:
    """Check a GET URL-verification request and return ``echostr`` verbatim.

    The Official Account's echostr is plaintext even in safe mode.
    """
    timestamp = _timestamp(query)
    nonce = _param(query, "nonce")
    echostr = _param(query, "echostr")
    if not signature_matches(query.get("signature"), account.token.get_secret_value(), timestamp, nonce):
        raise InboundRejected(401, "invalid signature")
    return echostr


# MessageCrypto per account config object (decoded keys and ciphers are built once, not per
# push). Keyed by identity and holding the config itself, so a new config object (a changed
# account, read again by the caller) gets a new MessageCrypto; bounded by clearing.
_CRYPTO_CACHE_MAX = 1024
_crypto_cache: dict[int, tuple[WechatAccountConfig, MessageCrypto]] = {}


def crypto_for(account: WechatAccountConfig) -> MessageCrypto:
    hit = _crypto_cache.get(id(account))
    if hit is not None and hit[0] is account:
        return hit[1]
    keys = account.aes_keys()
    if not keys:
        raise InboundRejected(400, "encrypted push but no EncodingAESKey is configured")
    crypto = MessageCrypto(account.token.get_secret_value(), keys, account.appid)
    if len(_crypto_cache) >= _CRYPTO_CACHE_MAX:
        _crypto_cache.clear()
    _crypto_cache[id(account)] = (account, crypto)
    return crypto


# The safe-mode envelope as WeChat sends it: <xml>, an optional <ToUserName> (before or after),
# one <Encrypt> of base64 in CDATA, </xml>; whitespace between elements. A body that is exactly
# this (ASCII only, so no DTD, entity or encoding trick can hide in it) means the same to
# `parse_xml`; anything else goes through the parser.
_WS = rb"[ \t\r\n]*"
_TO = rb"<ToUserName><!\[CDATA\[[A-Za-z0-9_@.-]*\]\]></ToUserName>" + _WS
_ENCRYPT = rb"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]></Encrypt>" + _WS
_ENVELOPE = re.compile(
    rb"<xml>" + _WS + rb"(?:" + _ENCRYPT + rb"(?:" + _TO + rb")?|" + _TO + _ENCRYPT + rb")</xml>" + _WS
)


def envelope_encrypt(body: bytes) -> object:
    """The ``Encrypt`` field of a safe-mode body (``parse_xml(body).get("Encrypt")``), without
    running the XML parser for the envelope WeChat actually sends."""
    match = _ENVELOPE.fullmatch(body)
    if match is not None:
        return (match.group(1) or match.group(2)).decode("ascii")
    return parse_xml(body).get("Encrypt")


def parse_push(
    query: Mapping[str, str],
    body: bytes,
    account: WechatAccountConfig,
    *,
    now: dt.datetime | None = None,
    max_age: float | None = None,
) -> WechatPush:
    """Verify and parse a POSTed push in plaintext, compat or safe mode.

    In compat mode only the decrypted part is trusted. `max_age` (seconds) turns on a replay
    window on the signed timestamp; duplicates inside it are the caller's dedup job.
    """
    if len(body) > MAX_BODY:
        raise InboundRejected(413, f"body larger than {MAX_BODY} bytes")
    timestamp = _timestamp(query)
    nonce = _param(query, "nonce")
    token = account.token.get_secret_value()
    encrypt_type = (query.get("encrypt_type") or "raw").lower()
    if encrypt_type == "aes":
        crypto = crypto_for(account)
        encrypt = envelope_encrypt(body)
        if not isinstance(encrypt, str) or not encrypt.strip():
            raise InboundRejected(400, "missing Encrypt")
        encrypt = encrypt.strip()
        crypto.verify_signature(query.get("msg_signature"), timestamp, nonce, encrypt)
        if "signature" in query and not signature_matches(query.get("signature"), token, timestamp, nonce):
            raise InboundRejected(401, "invalid signature")
        _check_fresh(timestamp, now, max_age)
        decrypted = crypto.decrypt(encrypt)
        plaintext, key_index, encrypted = decrypted.plaintext, decrypted.key_index, True
    elif encrypt_type == "raw":
        if not signature_matches(query.get("signature"), token, timestamp, nonce):
            raise InboundRejected(401, "invalid signature")
        if account.require_encryption:
            raise InboundRejected(403, "plaintext push refused: this account requires safe mode")
        _check_fresh(timestamp, now, max_age)
        plaintext, key_index, encrypted = body, 0, False
    else:
        raise InboundRejected(400, "unsupported encrypt_type")
    fields = parse_xml(plaintext)
    event = parse_message(fields, namespace=account.namespace, original_id=account.original_id)
    return WechatPush(
        events=(event,),
        account=account,
        fan=event.sender.external_id,
        to_user=str(event.metadata["to"]),
        encrypted=encrypted,
        key_index=key_index,
        plaintext=plaintext,
    )


def render_passive_reply(
    push: WechatPush,
    reply: Reply | str,
    *,
    now: dt.datetime | None = None,
    nonce: str | None = None,
) -> bytes:
    """The response body answering `push` with `reply` (a str is a text reply).

    Encrypted and signed with the key that decrypted the push when it came in compat/safe mode.
    """
    if isinstance(reply, str):
        reply = TextReply(reply)
    create_time = int((now or dt.datetime.now(dt.UTC)).timestamp())
    xml = render_reply_xml(reply, to_user=push.fan, from_user=push.to_user, create_time=create_time)
    if not push.encrypted:
        return xml.encode("utf-8")
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
