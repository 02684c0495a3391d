"""Build correctly signed (and, in safe mode, encrypted) pushes and POST them to our server.

``scrm channels simulate wechat --account ID --text "…"`` calls :func:`simulate`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping

import httpx

from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.crypto import MessageCrypto, sha1_signature
from scrm.channels.wechat.replies import cdata


def build_message_xml(
    *,
    to_user: str,
    from_user: str,
    text: str | None = None,
    event: str | None = None,
    event_key: str | None = None,
    msg_id: int | None = None,
    create_time: int | None = None,
    location: tuple[float, float, str] | None = None,
) -> str:
    """A text message (default), a location message (`location` = (lat, lng, label)) or an
    event push (``subscribe``, ``SCAN``, ``CLICK``, …)."""
    created = create_time if create_time is not None else int(dt.datetime.now(dt.UTC).timestamp())
    head = (
        f"<ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime>"
    )
    if event is not None:
        key = f"<EventKey>{cdata(event_key)}</EventKey>" if event_key is not None else ""
        return f"<xml>{head}<MsgType>{cdata('event')}</MsgType><Event>{cdata(event)}</Event>{key}</xml>"
    mid = msg_id if msg_id is not None else secrets.randbelow(10**17) + 10**16
    if location is not None:
        lat, lng, label = location
        return (
            f"<xml>{head}<MsgType>{cdata('location')}</MsgType><Location_X>{lat}</Location_X>"
            f"<Location_Y>{lng}</Location_Y><Scale>15</Scale><Label>{cdata(label)}</Label>"
            f"<MsgId>{mid}</MsgId></xml>"
        )
    return (
        f"<xml>{head}<MsgType>{cdata('text')}</MsgType><Content>{cdata(text or '')}</Content>"
        f"<MsgId>{mid}</MsgId></xml>"
    )


def build_push(
    account: WechatAccountConfig,
    xml: str,
    *,
    encrypt: bool | None = None,
    timestamp: str | None = None,
    nonce: str | None = None,
    openid: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """The query parameters and body WeChat would send for `xml` (safe mode if `encrypt`)."""
    ts = timestamp or str(int(dt.datetime.now(dt.UTC).timestamp()))
    nonce = nonce or str(secrets.randbelow(10**10))
    token = account.token.get_secret_value()
    query = {"signature": sha1_signature(token, ts, nonce), "timestamp": ts, "nonce": nonce}
    if openid:
        query["openid"] = openid
    use_aes = bool(account.aes_keys()) if encrypt is None else encrypt
    if not use_aes:
        return query, xml.encode("utf-8")
    crypto = MessageCrypto(token, account.aes_keys(), account.appid)
    encrypted = crypto.encrypt(xml.encode("utf-8"))
    query.update(encrypt_type="aes", msg_signature=crypto.sign(ts, nonce, encrypted))
    to_user = account.original_id or "gh_simulated"
    body = f"<xml><ToUserName>{cdata(to_user)}</ToUserName><Encrypt>{cdata(encrypted)}</Encrypt></xml>"
    return query, body.encode("utf-8")


def build_verification(account: WechatAccountConfig, echostr: str = "") -> dict[str, str]:
    """The query of a GET URL verification."""
    ts = str(int(dt.datetime.now(dt.UTC).timestamp()))
    nonce = str(secrets.randbelow(10**10))
    signature = sha1_signature(account.token.get_secret_value(), ts, nonce)
    return {
        "signature": signature,
        "timestamp": ts,
        "nonce": nonce,
        "echostr": echostr or str(secrets.randbits(62)),
    }


def simulate(
    url: str,
    account: WechatAccountConfig,
    *,
    text: str | None = None,
    event: str | None = None,
    event_key: str | None = None,
    openid: str = "oSimulatedFan000000000000000",
    encrypt: bool | None = None,
    http: httpx.Client | None = None,
    timeout: float = 5.0,
    extra_query: Mapping[str, str] | None = None,
    location: tuple[float, float, str] | None = None,
) -> httpx.Response:
    """POST one push to our callback `url` as WeChat would and return the response."""
    xml = build_message_xml(
        to_user=account.original_id or "gh_simulated",
        from_user=openid,
        text=text,
        event=event,
        event_key=event_key,
        location=location,
    )
    query, body = build_push(account, xml, encrypt=encrypt, openid=openid)
    query.update(extra_query or {})
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    if http is not None:
        return http.post(url, params=query, content=body, headers=headers, timeout=timeout)
    with httpx.Client(timeout=timeout) as client:
        return client.post(url, params=query, content=body, headers=headers)
