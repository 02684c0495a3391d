"""Weibo outbound and polling client (reference §2.1 async reply, §2.2 Open API v2).

Polling: each ``fetch_*`` takes the stored cursor and returns ``(events, new_since_id)``;
persist the new cursor in the same transaction as the events. Replies: private messages go
through the fan-service ``messages/reply`` API, public ones through ``comments/reply`` (when
answering a comment) or ``comments/create`` (when answering a post).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from scrm.channels.base import ChannelError, InboundEvent, OutboundMessage, PermanentChannelError, SendResult
from scrm.channels.weibo.config import WeiboAccountConfig
from scrm.channels.weibo.errors import error_for
from scrm.channels.weibo.parser import comment_event, object_id, parse_created_at, status_event

log = logging.getLogger(__name__)

Fetched = tuple[list[InboundEvent], str | None]


def _messages_base(base_url: str) -> str:
    """The fan-service reply API lives on m.api.weibo.com; fakes serve both on one host."""
    parts = urlsplit(base_url)
    if parts.hostname == "api.weibo.com":
        return f"{parts.scheme}://m.api.weibo.com"
    return base_url


def _strip(prefix: str, value: str) -> str:
    return value[len(prefix) :] if value.startswith(prefix) else value


class WeiboClient:
    """One brand account's Weibo API; thread-safe."""

    def __init__(
        self,
        account: WeiboAccountConfig,
        *,
        base_url: str,
        messages_base_url: str | None = None,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        page_size: int = 100,
        max_pages: int = 5,
    ) -> None:
        if not 1 <= page_size <= 200:
            raise ValueError("page_size must be in 1..200")
        self.account = account
        self._base = base_url.rstrip("/")
        self._messages_base = (messages_base_url or _messages_base(self._base)).rstrip("/")
        self._own_http = http is None
        self._http = http or httpx.Client(timeout=timeout)
        self._page_size = page_size
        self._max_pages = max_pages

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> WeiboClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ---------------------------------------------------------------------------

    def _request(
        self,
        api: str,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        bearer: bool = True,
    ) -> Any:
        headers = {}
        if bearer:  # a header keeps the token out of URLs and logs
            headers["Authorization"] = f"OAuth2 {self.account.access_token.get_secret_value()}"
        try:
            response = self._http.request(method, url, params=params, data=form, headers=headers)
        except httpx.TimeoutException:
            raise ChannelError(f"Weibo {api} timed out", code="timeout") from None
        except httpx.HTTPError as exc:
            raise ChannelError(f"Weibo {api} network error ({type(exc).__name__})", code="network") from None
        try:
            data = json.loads(response.content) if response.content else None
        except ValueError:
            data = None
        if (
            isinstance(data, dict) and ("error_code" in data or "error" in data)
        ) or response.status_code >= 400:
            error_code = 0
            error = ""
            if isinstance(data, dict):
                try:
                    error_code = int(data.get("error_code") or 0)
                except (TypeError, ValueError):
                    error_code = 0
                error = str(data.get("error", ""))[:200]
            log.warning("weibo %s failed: HTTP %s error_code %s", api, response.status_code, error_code)
            raise error_for(
                error_code, error, api, status=response.status_code, retry_after=_retry_after(response)
            )
        if data is None:
            raise ChannelError(f"Weibo {api} returned a non-JSON body", code="bad_response")
        return data

    def _get(self, api: str, params: Mapping[str, str]) -> dict[str, Any]:
        data = self._request(api, "GET", f"{self._base}/2/{api}.json", params=params)
        if not isinstance(data, dict):
            raise ChannelError(f"Weibo {api} returned unexpected JSON", code="bad_response")
        return data

    # -- polling ------------------------------------------------------------------------

    def _fetch(
        self,
        api: str,
        key: str,
        since_id: str | int | None,
        to_event: Callable[[Mapping[str, Any]], InboundEvent],
    ) -> Fetched:
        """Page newest → oldest with max_id until everything newer than `since_id` is read."""
        since = int(since_id) if since_id not in (None, "", 0, "0") else None
        found: dict[int, Mapping[str, Any]] = {}
        max_id: int | None = None
        for _ in range(self._max_pages):
            params = {"count": str(self._page_size)}
            if since is not None:
                params["since_id"] = str(since)
            if max_id is not None:
                params["max_id"] = str(max_id)
            items = self._get(api, params).get(key) or []
            page = [
                item
                for item in items
                if isinstance(item, Mapping)
                and object_id(item).isdigit()
                and (since is None or int(object_id(item)) > since)
                and (max_id is None or int(object_id(item)) <= max_id)
            ]
            for item in page:
                found[int(object_id(item))] = item
            if not page or len(items) < self._page_size:
                break
            max_id = min(int(object_id(item)) for item in page) - 1
        else:
            log.warning(
                "weibo %s: more than %s pages since %s; older items skipped", api, self._max_pages, since
            )
        events = [to_event(found[i]) for i in sorted(found)]
        new_since = str(max(found)) if found else (str(since) if since is not None else None)
        return events, new_since

    def fetch_mentions(self, since_id: str | int | None) -> Fetched:
        """Posts that @mention the brand (``statuses/mentions``) → ``kind="mention"`` events."""
        return self._fetch(
            "statuses/mentions", "statuses", since_id, lambda s: status_event(s, endpoint="statuses/mentions")
        )

    def fetch_comment_mentions(self, since_id: str | int | None) -> Fetched:
        """Comments that @mention the brand (``comments/mentions``)."""
        return self._fetch("comments/mentions", "comments", since_id, self._comment("comments/mentions"))

    def fetch_comments(self, since_id: str | int | None) -> Fetched:
        """Comments received on the brand's posts (``comments/to_me``) → ``kind="comment"``."""
        return self._fetch("comments/to_me", "comments", since_id, self._comment("comments/to_me"))

    def _comment(self, endpoint: str) -> Callable[[Mapping[str, Any]], InboundEvent]:
        return lambda c: comment_event(c, brand_uid=self.account.uid, endpoint=endpoint)

    # -- replies ------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """Private → fan-service ``messages/reply``; public → ``comments/reply`` or ``comments/create``."""
        if not message.text:
            raise PermanentChannelError("empty Weibo reply", code="invalid_message")
        if message.msg_type != "text":
            raise PermanentChannelError(
                f"Weibo cannot send msg_type {message.msg_type!r}", code="unsupported"
            )
        if message.visibility == "private":
            return self.reply_private(message.recipient, message.text)
        status_id, comment_id = self._public_target(message)
        if comment_id:
            return self.reply_comment(status_id, comment_id, message.text)
        return self.create_comment(status_id, message.text)

    def _public_target(self, message: OutboundMessage) -> tuple[str, str]:
        """(status id, comment id or "") a public reply goes to."""
        if not message.thread_key:
            raise PermanentChannelError(
                "a public Weibo reply needs thread_key (the status id)", code="invalid_message"
            )
        status_id = _strip("status:", message.thread_key)
        reply_to = message.reply_to_external_id or ""
        comment_id = _strip("comment:", reply_to)
        if reply_to and not reply_to.startswith("status:") and comment_id.isdigit():
            return status_id, comment_id
        return status_id, ""

    def find_sent(self, message: OutboundMessage, *, not_before: dt.datetime) -> SendResult | None:
        """The brand's own comment for this public reply, if an earlier attempt posted it.

        Looks through the account's latest comments (``comments/by_me``, newest first) for one on
        the same post (and answering the same comment) with the same text, made at or after
        `not_before`. Weibo prefixes a reply to a comment with "回复@name:", so the text is
        compared at the end. Private fan-service replies cannot be listed: None.
        """
        if message.visibility == "private" or not message.text:
            return None
        status_id, comment_id = self._public_target(message)
        data = self._get("comments/by_me", {"count": "50", "page": "1"})
        for item in data.get("comments") or ():
            if not isinstance(item, Mapping):
                continue
            status = item.get("status")
            replied = item.get("reply_comment")
            if not isinstance(status, Mapping) or object_id(status) != status_id:
                continue
            if comment_id and not (isinstance(replied, Mapping) and object_id(replied) == comment_id):
                continue
            if not str(item.get("text") or "").endswith(message.text):
                continue
            try:
                made = parse_created_at(item.get("created_at"))
            except ValueError:
                continue
            if made >= not_before and object_id(item):
                return SendResult(external_message_id=f"comment:{object_id(item)}", raw=dict(item))
        return None

    def reply_private(self, uid: str, text: str) -> SendResult:
        """Fan-service customer-service reply (within 48 h of the fan's last interaction)."""
        form = {
            "access_token": self.account.access_token.get_secret_value(),
            "type": "text",
            "data": json.dumps({"text": text}, ensure_ascii=False),
            "receiver_id": uid,
        }
        url = f"{self._messages_base}/2/messages/reply.json"
        data = self._request("messages/reply", "POST", url, form=form, bearer=False)
        msg_id = data.get("id") or data.get("idstr") if isinstance(data, dict) else None
        return SendResult(
            external_message_id=str(msg_id) if msg_id else None, raw=data if isinstance(data, dict) else {}
        )

    def reply_comment(self, status_id: str, comment_id: str, text: str) -> SendResult:
        form = {"id": status_id, "cid": comment_id, "comment": text, "comment_ori": "0"}
        data = self._request("comments/reply", "POST", f"{self._base}/2/comments/reply.json", form=form)
        return self._comment_result(data)

    def create_comment(self, status_id: str, text: str) -> SendResult:
        form = {"id": status_id, "comment": text, "comment_ori": "0"}
        data = self._request("comments/create", "POST", f"{self._base}/2/comments/create.json", form=form)
        return self._comment_result(data)

    @staticmethod
    def _comment_result(data: Any) -> SendResult:
        if not isinstance(data, dict) or not object_id(data):
            raise ChannelError("Weibo comment API returned no comment id", code="bad_response")
        return SendResult(external_message_id=f"comment:{object_id(data)}", raw=data)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(1.0, float(value)) if value else None
    except ValueError:
        return None
