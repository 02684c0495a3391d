"""Build signed, encrypted WeCom callbacks (URL verification and pushes) for tests and demos."""

from __future__ import annotations

import datetime as dt
import secrets

from scrm.channels.wechat.replies import cdata
from scrm.channels.wecom.config import WecomAccountConfig
from scrm.channels.wecom.crypto import crypto_for


def build_verification(account: WecomAccountConfig, echo: str) -> dict[str, str]:
    """The GET query WeCom sends to verify the URL; the server must answer `echo`."""
    ts = str(int(dt.datetime.now(dt.UTC).timestamp()))
    nonce = str(secrets.randbelow(10**10))
    crypto = crypto_for(account)
    echostr = crypto.encrypt(echo.encode("utf-8"))
    return {
        "msg_signature": crypto.sign(ts, nonce, echostr),
        "timestamp": ts,
        "nonce": nonce,
        "echostr": echostr,
    }


def build_push(
    account: WecomAccountConfig, xml: str, *, agent_id: str = "1000002"
) -> tuple[dict[str, str], bytes]:
    """The query and body of an encrypted callback POST carrying `xml`."""
    ts = str(int(dt.datetime.now(dt.UTC).timestamp()))
    nonce = str(secrets.randbelow(10**10))
    crypto = crypto_for(account)
    encrypt = crypto.encrypt(xml.encode("utf-8"))
    body = (
        f"<xml><ToUserName>{cdata(account.corpid)}</ToUserName><AgentID>{cdata(agent_id)}</AgentID>"
        f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>"
    )
    return {"msg_signature": crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}, body.encode()
