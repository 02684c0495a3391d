"""Build signed fan-service pushes and POST them to our server, as Weibo would.

``scrm channels simulate weibo --account ID --text "…"`` calls :func:`simulate`.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

import httpx

from scrm.channels.wechat.crypto import sha1_signature
from scrm.channels.weibo.config import WeiboAccountConfig
from scrm.channels.weibo.fake import weibo_time


def signed_query(
    account: WeiboAccountConfig, *, timestamp: str | None = None, nonce: str | None = None
) -> dict[str, str]:
    """``signature, timestamp (ms), nonce`` for a GET or POST."""
    ts = timestamp or str(int(dt.datetime.now(dt.UTC).timestamp() * 1000))
    nonce = nonce or str(secrets.randbelow(10**8))
    return {
        "signature": sha1_signature(account.app_secret.get_secret_value(), ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
    }


def build_payload(
    account: WeiboAccountConfig,
    *,
    sender_id: str,
    text: str | None = None,
    event: str | None = None,
    key: str | None = None,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """A text message, or an event push when `event` (follow, unfollow, scan_follow, click…) is given."""
    payload: dict[str, Any] = {
        "type": "event" if event else "text",
        "receiver_id": int(account.uid),
        "sender_id": int(sender_id),
        "created_at": weibo_time(created_at or dt.datetime.now(dt.UTC)),
        "text": text or "",
        "data": {},
    }
    if event:
        payload["data"] = {"subtype": event, **({"key": key} if key is not None else {})}
    return payload


def simulate(
    url: str,
    account: WeiboAccountConfig,
    *,
    text: str | None = None,
    event: str | None = None,
    key: str | None = None,
    sender_id: str = "2489518277",
    http: httpx.Client | None = None,
    timeout: float = 5.0,
) -> httpx.Response:
    """POST one signed push to our callback `url` and return the response."""
    body = json.dumps(
        build_payload(account, sender_id=sender_id, text=text, event=event, key=key), ensure_ascii=False
    )
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if http is not None:
        return http.post(
            url, params=signed_query(account), content=body.encode(), headers=headers, timeout=timeout
        )
    with httpx.Client(timeout=timeout) as client:
        return client.post(url, params=signed_query(account), content=body.encode(), headers=headers)
