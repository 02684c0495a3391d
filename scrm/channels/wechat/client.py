"""Outbound Official Account API client (reference §1.5): implements ``base.ChannelClient``.

Tokens come from ``/cgi-bin/stable_token`` through a shared :class:`TokenStore`; on
40001/40014/42001 the token is refreshed once and the call retried once. The client never
retries anything else: the outbox owns retries (a retried customer-service send may arrive
twice, WeChat has no idempotency key).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from scrm.channels.base import (
    ChannelError,
    OutboundMessage,
    PermanentChannelError,
    RateLimitedError,
    SendResult,
)
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.errors import TOKEN_INVALID_CODES, WechatCredentialsError, error_for
from scrm.channels.wechat.menu import validate_buttons
from scrm.channels.wechat.tokens import CachedToken, TokenStore, utcnow

log = logging.getLogger(__name__)

SERVICE_WINDOW = dt.timedelta(hours=48)
SERVICE_WINDOW_MESSAGES = 5
MAX_TEMP_QR_SECONDS = 2_592_000
MIN_TEMP_QR_SECONDS = 60
MAX_PERMANENT_SCENE_ID = 100_000
MAX_TEMP_SCENE_ID = 2**32 - 1
MAX_SCENE_STR = 64
MAX_TAG_NAME_BYTES = 30
RESERVED_TAG_IDS = frozenset({0, 1, 2})  # 星标组 and the system groups: WeChat refuses edits (45058)
MAX_TAG_BATCH = 50
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")  # and lone surrogates (not UTF-8)


def in_service_window(
    last_inbound_at: dt.datetime | None,
    sent_since: int,
    now: dt.datetime,
    *,
    window: dt.timedelta = SERVICE_WINDOW,
    max_messages: int = SERVICE_WINDOW_MESSAGES,
) -> bool:
    """Whether a customer-service message may still go out (48 h / 5 messages rule).

    `last_inbound_at` is the fan's last message (None: never wrote), `sent_since` the number
    of customer-service messages sent after it. Outside the window use a template message.
    """
    if last_inbound_at is None:
        return False
    if last_inbound_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("timezone-aware datetimes required")
    return now - last_inbound_at < window and sent_since < max_messages


class _RedactTokens(logging.Filter):
    """httpx logs request URLs at INFO; WeChat puts the access token in the query."""

    _pattern = re.compile(r"(access_token=)[^&\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._pattern.sub(r"\1***", str(a)) if isinstance(a, str | httpx.URL) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1***", record.msg)
        return True


def install_log_redaction() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactTokens) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactTokens())


install_log_redaction()


@dataclass(frozen=True, slots=True)
class QrCode:
    ticket: str
    url: str  # the content encoded in the QR image
    image_url: str  # showqrcode URL to display the image
    expire_seconds: int | None  # None for permanent codes


@dataclass(frozen=True, slots=True)
class WechatTag:
    id: int
    name: str
    count: int = 0


class WechatClient:
    """One Official Account's outbound API; thread-safe, share one per account."""

    def __init__(
        self,
        account: WechatAccountConfig,
        *,
        base_url: str,
        token_store: TokenStore,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
        refresh_margin: dt.timedelta = dt.timedelta(minutes=5),
        clock: Callable[[], dt.datetime] = utcnow,
        qr_image_base: str = "https://mp.weixin.qq.com",
    ) -> None:
        self.account = account
        self._base = base_url.rstrip("/")
        self._store = token_store
        self._own_http = http is None
        self._http = http or httpx.Client(timeout=timeout)
        self._margin = refresh_margin
        self._clock = clock
        self._qr_image_base = qr_image_base.rstrip("/")
        self.account_key = f"wechat:{account.appid}"

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> WechatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tokens -------------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid token from the store, refreshed (single-flight) when close to expiry."""
        cached = self._store.get(self.account_key)
        if cached is not None and cached.is_valid(self._clock(), self._margin):
            return cached.access_token
        stale = cached.access_token if cached is not None else None
        return self._store.refresh(
            self.account_key, lambda: self._fetch_token(force=False), stale
        ).access_token

    def _refresh_invalid(self, stale: str) -> str:
        def fetch() -> CachedToken:
            token = self._fetch_token(force=False)
            if token.access_token == stale:  # WeChat still hands out the refused token
                token = self._fetch_token(force=True)
            return token

        return self._store.refresh(self.account_key, fetch, stale).access_token

    def _fetch_token(self, *, force: bool) -> CachedToken:
        body = {
            "grant_type": "client_credential",
            "appid": self.account.appid,
            "secret": self.account.secret.get_secret_value(),
            "force_refresh": force,
        }
        data = self._post("stable_token", "/cgi-bin/stable_token", body, params={})
        errcode = int(data.get("errcode") or 0)
        if errcode:
            error = error_for(errcode, str(data.get("errmsg", "")), "stable_token")
            if errcode in TOKEN_INVALID_CODES:  # makes no sense for a token fetch: credentials
                raise WechatCredentialsError(str(error)) from None
            raise error
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise ChannelError("WeChat stable_token returned no access_token", code="bad_response")
        expires_in = int(data.get("expires_in") or 7200)
        log.info(
            "wechat token refreshed for %s (force=%s, expires_in=%s)", self.account.appid, force, expires_in
        )
        return CachedToken(token, self._clock() + dt.timedelta(seconds=expires_in))

    # -- HTTP ---------------------------------------------------------------------------

    def _post(
        self, api: str, path: str, body: Mapping[str, Any], *, params: Mapping[str, str]
    ) -> dict[str, Any]:
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return self._request(api, "POST", path, params=params, content=content)

    def _request(
        self, api: str, method: str, path: str, *, params: Mapping[str, str], content: bytes | None = None
    ) -> dict[str, Any]:
        headers = {"Content-Type": "application/json; charset=utf-8"} if content is not None else {}
        try:
            response = self._http.request(
                method, self._base + path, params=dict(params), content=content, headers=headers
            )
        except httpx.TimeoutException:
            # `from None`: httpx errors carry the URL, which holds the access token.
            raise ChannelError(f"WeChat {api} timed out", code="timeout") from None
        except httpx.HTTPError as exc:
            raise ChannelError(f"WeChat {api} network error ({type(exc).__name__})", code="network") from None
        if response.status_code == 429:
            raise RateLimitedError(f"WeChat {api}: HTTP 429", retry_after=_retry_after(response, 60.0))
        if response.status_code >= 500:
            raise ChannelError(f"WeChat {api}: HTTP {response.status_code}", code="http_5xx")
        if response.status_code >= 400:
            raise ChannelError(f"WeChat {api}: HTTP {response.status_code}", code="http_4xx")
        try:
            data = json.loads(response.content)
        except ValueError:
            raise ChannelError(f"WeChat {api} returned a non-JSON body", code="bad_response") from None
        if not isinstance(data, dict):
            raise ChannelError(f"WeChat {api} returned unexpected JSON", code="bad_response")
        return data

    def call(
        self, api: str, path: str, body: Mapping[str, Any] | None = None, *, method: str = "POST"
    ) -> dict[str, Any]:
        """Call an authenticated API; refresh the token once on 40001/40014/42001."""
        token = self.access_token()
        for attempt in (1, 2):
            content = None
            if body is not None:
                content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            data = self._request(api, method, path, params={"access_token": token}, content=content)
            errcode = int(data.get("errcode") or 0)
            if errcode == 0:
                return data
            if errcode in TOKEN_INVALID_CODES and attempt == 1:
                log.warning("wechat %s: token refused (errcode %s), refreshing once", api, errcode)
                token = self._refresh_invalid(token)
                continue
            log.warning("wechat %s failed: errcode %s", api, errcode)
            raise error_for(errcode, str(data.get("errmsg", "")), api)
        raise AssertionError("unreachable")

    # -- ChannelClient ------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        """Deliver `message`: customer-service text/image/voice/video/music/news/mpnews, or template."""
        if message.visibility != "private":
            raise PermanentChannelError("WeChat Official Accounts have no public replies", code="unsupported")
        payload = message.payload
        kind = message.msg_type
        if kind == "template":
            msgid = self.send_template(
                message.recipient,
                _required(payload, "template_id"),
                payload.get("data") or {},
                url=payload.get("url"),
                miniprogram=payload.get("miniprogram"),
            )
            return SendResult(external_message_id=msgid, raw={"msgid": msgid})
        if kind == "subscribe":
            raw = self.send_subscribe(
                message.recipient,
                _required(payload, "template_id"),
                payload.get("data") or {},
                page=payload.get("page"),
                miniprogram=payload.get("miniprogram"),
            )
            return SendResult(external_message_id=None, raw=raw)
        if kind == "text":
            if not message.text:
                raise PermanentChannelError("empty text message", code="invalid_message")
            body: dict[str, Any] = {"msgtype": "text", "text": {"content": message.text}}
        elif kind in ("image", "voice", "mpnews"):
            body = {"msgtype": kind, kind: {"media_id": _required(payload, "media_id")}}
        elif kind == "video":
            video = {"media_id": _required(payload, "media_id")}
            video.update(
                {k: str(payload[k]) for k in ("thumb_media_id", "title", "description") if k in payload}
            )
            body = {"msgtype": "video", "video": video}
        elif kind == "music":
            body = {"msgtype": "music", "music": music_body(payload)}
        elif kind == "news":
            body = {"msgtype": "news", "news": {"articles": _articles(payload.get("articles"))}}
        else:
            raise PermanentChannelError(f"WeChat cannot send msg_type {kind!r}", code="unsupported")
        return self._custom_send(message.recipient, body, payload.get("kf_account"))

    def _custom_send(self, openid: str, body: dict[str, Any], kf_account: Any = None) -> SendResult:
        full = {"touser": openid, **body}
        if kf_account:
            full["customservice"] = {"kf_account": str(kf_account)}
        data = self.call("message/custom/send", "/cgi-bin/message/custom/send", full)
        return SendResult(external_message_id=None, raw=data)

    def send_text(self, openid: str, content: str, *, kf_account: str | None = None) -> SendResult:
        return self._custom_send(openid, {"msgtype": "text", "text": {"content": content}}, kf_account)

    def send_image(self, openid: str, media_id: str) -> SendResult:
        return self._custom_send(openid, {"msgtype": "image", "image": {"media_id": media_id}})

    def send_news(self, openid: str, articles: Sequence[Mapping[str, Any]]) -> SendResult:
        """`articles`: ``{"title", "description", "url", "picurl"}`` (WeChat allows one today)."""
        return self._custom_send(openid, {"msgtype": "news", "news": {"articles": _articles(articles)}})

    def send_template(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        url: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
    ) -> str:
        """Send a template message; `data` values are strings or ``{"value", "color"?}``. Returns msgid."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {k: v if isinstance(v, Mapping) else {"value": str(v)} for k, v in data.items()},
        }
        if url:
            body["url"] = url
        if miniprogram:
            body["miniprogram"] = dict(miniprogram)
        result = self.call("message/template/send", "/cgi-bin/message/template/send", body)
        return str(result.get("msgid", ""))

    def send_subscribe(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        page: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send a subscription message (``message/subscribe/bizsend``, reference §1.5).

        Needs the fan's prior consent for `template_id` (one message per consent for one-time
        templates); without it WeChat answers 43101 (:class:`SubscriptionRefusedError`).
        `data` values are strings or ``{"value": ...}``; `page` is a web page URL opened from
        the message, `miniprogram` ``{"appid", "pagepath"}`` a mini program page.
        """
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {k: v if isinstance(v, Mapping) else {"value": str(v)} for k, v in data.items()},
        }
        if page:
            body["page"] = str(page)
        if miniprogram:
            body["miniprogram"] = dict(miniprogram)
        return self.call("message/subscribe/bizsend", "/cgi-bin/message/subscribe/bizsend", body)

    # -- QR codes, menu, tags -----------------------------------------------------------

    def create_qrcode(
        self, scene: int | str, *, permanent: bool = False, expire_seconds: int = MAX_TEMP_QR_SECONDS
    ) -> QrCode:
        """A QR code carrying `scene` (int → ``scene_id``, str → ``scene_str``).

        Raises ValueError, before any call, for a scene or lifetime WeChat would refuse.
        """
        body = qrcode_body(scene, permanent=permanent, expire_seconds=expire_seconds)
        data = self.call("qrcode/create", "/cgi-bin/qrcode/create", body)
        ticket = str(data.get("ticket", ""))
        return QrCode(
            ticket=ticket,
            url=str(data.get("url", "")),
            image_url=f"{self._qr_image_base}/cgi-bin/showqrcode?ticket={quote(ticket, safe='')}",
            expire_seconds=None if permanent else int(data.get("expire_seconds") or expire_seconds),
        )

    def create_menu(self, buttons: Sequence[Mapping[str, Any]]) -> None:
        """Replace the custom menu: at most 3 buttons, each with at most 5 ``sub_button``.

        The whole menu is checked first (:func:`scrm.channels.wechat.menu.validate_buttons`):
        a :class:`~scrm.channels.wechat.menu.MenuError` (a ValueError) names the bad field.
        """
        self.call("menu/create", "/cgi-bin/menu/create", {"button": validate_buttons(buttons)})

    def get_menu(self) -> dict[str, Any]:
        return self.call("menu/get", "/cgi-bin/menu/get", method="GET")

    def delete_menu(self) -> None:
        self.call("menu/delete", "/cgi-bin/menu/delete", method="GET")

    def create_tag(self, name: str) -> WechatTag:
        name = check_tag_name(name)
        data = self.call("tags/create", "/cgi-bin/tags/create", {"tag": {"name": name}})
        tag = data.get("tag") or {}
        try:
            return WechatTag(id=int(tag.get("id", 0)), name=str(tag.get("name", name)))
        except (TypeError, ValueError):
            raise ChannelError("WeChat tags/create returned no tag id", code="bad_response") from None

    def update_tag(self, tag_id: int, name: str) -> None:
        """Rename a tag (``tags/update``); the reserved tags 0, 1, 2 cannot be changed."""
        check_tag_id(tag_id, editable=True)
        name = check_tag_name(name)
        self.call("tags/update", "/cgi-bin/tags/update", {"tag": {"id": tag_id, "name": name}})

    def delete_tag(self, tag_id: int) -> None:
        """Delete a tag (``tags/delete``); WeChat refuses tags with more than 100,000 fans (45057)."""
        check_tag_id(tag_id, editable=True)
        self.call("tags/delete", "/cgi-bin/tags/delete", {"tag": {"id": tag_id}})

    def fan_tag_ids(self, openid: str) -> list[int]:
        """The tag ids of one fan (``tags/getidlist``)."""
        check_openids([openid])
        data = self.call("tags/getidlist", "/cgi-bin/tags/getidlist", {"openid": openid})
        ids = data.get("tagid_list") or []
        if not isinstance(ids, list):
            raise ChannelError("WeChat tags/getidlist returned unexpected JSON", code="bad_response")
        return [int(i) for i in ids if isinstance(i, int) and not isinstance(i, bool)]

    def tag_fans(self, tag_id: int, next_openid: str = "") -> tuple[list[str], str]:
        """One page (up to 10,000) of a tag's fans (``user/tag/get``) and the next cursor ("" at the end)."""
        check_tag_id(tag_id, editable=False)
        data = self.call(
            "user/tag/get", "/cgi-bin/user/tag/get", {"tagid": tag_id, "next_openid": next_openid}
        )
        page = data.get("data")
        openids = page.get("openid") if isinstance(page, dict) else None
        if not isinstance(openids, list):
            openids = []
        return [str(o) for o in openids], str(data.get("next_openid") or "")

    def get_tags(self) -> list[WechatTag]:
        data = self.call("tags/get", "/cgi-bin/tags/get", method="GET")
        try:
            return [
                WechatTag(id=int(t["id"]), name=str(t.get("name", "")), count=int(t.get("count", 0)))
                for t in data.get("tags") or []
            ]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ChannelError("WeChat tags/get returned unexpected JSON", code="bad_response") from None

    def batch_tag(self, openids: Sequence[str], tag_id: int) -> None:
        """Tag up to 50 fans per call (larger lists are split)."""
        self._batch("tags/members/batchtagging", openids, tag_id)

    def batch_untag(self, openids: Sequence[str], tag_id: int) -> None:
        self._batch("tags/members/batchuntagging", openids, tag_id)

    def _batch(self, api: str, openids: Sequence[str], tag_id: int) -> None:
        check_tag_id(tag_id, editable=False)
        check_openids(openids)
        for start in range(0, len(openids), MAX_TAG_BATCH):
            chunk = list(openids[start : start + MAX_TAG_BATCH])
            self.call(api, f"/cgi-bin/{api}", {"openid_list": chunk, "tagid": tag_id})


def qrcode_body(scene: int | str, *, permanent: bool, expire_seconds: int) -> dict[str, Any]:
    """The ``qrcode/create`` body, or ValueError for a scene / lifetime WeChat would refuse."""
    if isinstance(scene, bool):
        raise ValueError("scene must be an integer id or a string")
    if isinstance(scene, int):
        limit = MAX_PERMANENT_SCENE_ID if permanent else MAX_TEMP_SCENE_ID
        if not 1 <= scene <= limit:
            raise ValueError(f"scene_id must be in 1..{limit}")
        scene_info: dict[str, Any] = {"scene_id": scene}
        action = "QR_LIMIT_SCENE" if permanent else "QR_SCENE"
    elif isinstance(scene, str):
        if not 1 <= len(scene) <= MAX_SCENE_STR:
            raise ValueError(f"scene_str must be 1 to {MAX_SCENE_STR} characters")
        if _CONTROL_CHARS.search(scene) or scene != scene.strip():
            raise ValueError("scene_str must not contain control characters or surrounding spaces")
        scene_info = {"scene_str": scene}
        action = "QR_LIMIT_STR_SCENE" if permanent else "QR_STR_SCENE"
    else:
        raise ValueError("scene must be an integer id or a string")
    body: dict[str, Any] = {"action_name": action, "action_info": {"scene": scene_info}}
    if not permanent:
        if isinstance(expire_seconds, bool) or not isinstance(expire_seconds, int):
            raise ValueError("expire_seconds must be an integer")
        if not MIN_TEMP_QR_SECONDS <= expire_seconds <= MAX_TEMP_QR_SECONDS:
            raise ValueError(f"expire_seconds must be in {MIN_TEMP_QR_SECONDS}..{MAX_TEMP_QR_SECONDS}")
        body["expire_seconds"] = expire_seconds
    return body


def check_tag_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ValueError("a tag name must be a string")
    name = name.strip()
    if _CONTROL_CHARS.search(name):
        raise ValueError("a tag name must not contain control characters")
    if not name or len(name.encode("utf-8")) > MAX_TAG_NAME_BYTES:
        raise ValueError(f"a tag name is 1 to {MAX_TAG_NAME_BYTES} bytes (UTF-8; a Chinese character is 3)")
    return name


def check_tag_id(tag_id: Any, *, editable: bool) -> int:
    if isinstance(tag_id, bool) or not isinstance(tag_id, int) or not 0 <= tag_id < 2**31:
        raise ValueError("a tag id is a non-negative integer")
    if editable and tag_id in RESERVED_TAG_IDS:
        raise ValueError("tags 0, 1 and 2 are reserved by WeChat and cannot be renamed or deleted")
    return tag_id


def check_openids(openids: Sequence[Any]) -> None:
    if not openids:
        raise ValueError("give at least one openid")
    for openid in openids:
        if not isinstance(openid, str) or not 1 <= len(openid) <= 64 or not openid.isascii():
            raise ValueError("an openid is 1 to 64 ASCII characters")
        if _CONTROL_CHARS.search(openid) or " " in openid:
            raise ValueError("an openid must not contain spaces or control characters")


def _required(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not value:
        raise PermanentChannelError(f"payload needs {key!r}", code="invalid_message")
    return str(value)


_HTTP_URL = re.compile(r"^https?://[^\s/]+\S*$")


def music_body(payload: Mapping[str, Any]) -> dict[str, str]:
    """The ``music`` object of a customer-service message from a reply payload (the keys of
    ``scrm.automation.engine.REPLY_TYPES["music"]``): title, music_url, hq_music_url (the
    high-quality link, WiFi; WeChat wants one, so it defaults to music_url), description,
    thumb_media_id (the cover, an uploaded media id; sent when given).

    Raises PermanentChannelError for a payload WeChat cannot play: no title, no music_url, or
    a link that is not http(s)."""
    title = payload.get("title")
    if not isinstance(title, str) or not title.strip():
        raise PermanentChannelError("a music message needs a title", code="invalid_message")
    music: dict[str, str] = {"title": title}
    urls = {
        "musicurl": payload.get("music_url"),
        "hqmusicurl": payload.get("hq_music_url") or payload.get("music_url"),
    }
    for key, url in urls.items():
        if not isinstance(url, str) or len(url) > 2000 or not _HTTP_URL.match(url):
            name = "music_url" if key == "musicurl" else "hq_music_url"
            raise PermanentChannelError(
                f"a music message needs {name} as an http(s) URL", code="invalid_message"
            )
        music[key] = url
    for key in ("description", "thumb_media_id"):
        value = payload.get(key)
        if value:
            music[key] = str(value)
    return music


def _articles(articles: Any) -> list[dict[str, str]]:
    if not articles:
        raise PermanentChannelError("news needs at least one article", code="invalid_message")
    keys = ("title", "description", "url", "picurl")
    return [{k: str(a[k]) for k in keys if a.get(k)} for a in articles]


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(1.0, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default
