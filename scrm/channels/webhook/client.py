"""Outbound for the webhook channel: POST the reply to the source's callback URL, signed."""

from __future__ import annotations

import time

import httpx
import orjson

from scrm.channels.base import (
    ChannelError,
    OutboundMessage,
    PermanentChannelError,
    RateLimitedError,
    SendResult,
)
from scrm.channels.webhook.handler import sign


class WebhookClient:
    def __init__(self, callback_url: str, secret: str, *, timeout: float = 10.0) -> None:
        self._url = callback_url
        self._secret = secret
        self._http = httpx.Client(timeout=timeout)

    def send(self, message: OutboundMessage) -> SendResult:
        if not self._url:
            raise PermanentChannelError(
                "this webhook channel has no callback URL configured", code="no_callback"
            )
        body = orjson.dumps(
            {
                "id": message.idempotency_key,
                "type": "reply",
                "recipient": {"id": message.recipient},
                "text": message.text,
                "msg_type": message.msg_type,
                "visibility": message.visibility,
                "conversation_key": message.thread_key or None,
                "payload": message.payload,
            }
        )
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-scrm-timestamp": timestamp,
            "x-scrm-signature": sign(self._secret, timestamp, body),
            "idempotency-key": message.idempotency_key,
        }
        try:
            response = self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ChannelError(f"callback unreachable: {exc.__class__.__name__}") from exc
        if response.status_code == 429:
            retry_after = float(response.headers.get("retry-after", "30") or 30)
            raise RateLimitedError("callback rate-limited", retry_after=retry_after)
        if response.status_code >= 500:
            raise ChannelError(f"callback answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentChannelError(f"callback refused the reply with {response.status_code}")
        external_id = None
        try:
            data = response.json()
            if isinstance(data, dict) and data.get("id") is not None:
                external_id = str(data["id"])
        except ValueError:
            pass
        return SendResult(external_message_id=external_id)

    def close(self) -> None:
        self._http.close()
