"""A fake WeChat API server on 127.0.0.1 speaking the real wire format, for tests and the demo.

    with FakeWechatServer(appid="wx123", secret="s3cret") as fake:
        client = WechatClient(account, base_url=fake.base_url, token_store=InMemoryTokenStore())
        client.send_text("oFAN", "hi")
        assert fake.sent[0]["text"]["content"] == "hi"

Run standalone for the demo: ``python -m scrm.channels.wechat.fake --port 9101``.
It records every request and can be told to fail: ``fail_next`` (HTTP status), ``reset_next``
(drop the connection), ``delay_next`` (hang), ``errcode_next`` (e.g. 40001/42001/45015/45047),
``expire_tokens`` (42001 for every issued token) and ``close_window`` (45015 for a fan).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

Response = tuple[int, dict[str, str], bytes]
_TOKEN_IN_QUERY = re.compile(r"(access_token=)[^&\s]+")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass(slots=True)
class _Fault:
    path: str | None
    kind: str  # "status", "reset", "delay", "json"
    status: int = 500
    delay: float = 0.0
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, path: str) -> bool:
        return self.path is None or path.endswith(self.path)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body


class FakeHttpServer:
    """Threaded HTTP server with scripted faults; subclasses implement :meth:`route`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer((host, port), _make_handler(self._dispatch))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripted faults ----------------------------------------------------------------

    def fail_next(
        self, n: int = 1, *, status: int = 500, path: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """The next `n` requests (to `path`, if given) get HTTP `status` with an empty body."""
        self._add(n, _Fault(path, "status", status=status, headers=dict(headers or {})))

    def reset_next(self, n: int = 1, *, path: str | None = None) -> None:
        """The next `n` requests get the connection closed without a response."""
        self._add(n, _Fault(path, "reset"))

    def delay_next(self, seconds: float, n: int = 1, *, path: str | None = None) -> None:
        """The next `n` requests are answered normally but only after `seconds`."""
        self._add(n, _Fault(path, "delay", delay=seconds))

    def respond_next(self, payload: Any, n: int = 1, *, path: str | None = None, status: int = 200) -> None:
        """The next `n` requests get `payload` as JSON."""
        self._add(n, _Fault(path, "json", status=status, payload=payload))

    def _add(self, n: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.extend(
                _Fault(fault.path, fault.kind, fault.status, fault.delay, fault.payload, fault.headers)
                for _ in range(n)
            )

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(path):
                    return self._faults.pop(i)
        return None

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path)]

    # -- dispatch -----------------------------------------------------------------------

    def _dispatch(self, request: RecordedRequest) -> Response | None:
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request.path)
        if fault is not None:
            if fault.kind == "reset":
                return None
            if fault.kind == "status":
                return fault.status, fault.headers, b""
            if fault.kind == "json":
                return json_response(fault.payload, fault.status)
            time.sleep(fault.delay)
        try:
            return self.route(request)
        except Exception:  # a bug in the fake should be visible, not a hung test
            log.exception("fake server route failed")
            return 500, {}, b"fake server error"

    def route(self, request: RecordedRequest) -> Response:
        raise NotImplementedError


def _make_handler(dispatch: Callable[[RecordedRequest], Response | None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = RecordedRequest(
                method=self.command,
                path=split.path,
                query=dict(parse_qsl(split.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            response = dispatch(request)
            if response is None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            status, headers, payload = response
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                self.close_connection = True

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("fake %s", _TOKEN_IN_QUERY.sub(r"\1***", format % args))

    return Handler


# -- WeChat -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float
    revoked: bool = False
    appid: str = ""


class FakeWechatServer(FakeHttpServer):
    """Fake ``api.weixin.qq.com``: stable_token, message/custom/send, message/template/send,
    message/subscribe/bizsend, qrcode/create, menu/create|get|delete,
    tags/create|get|update|delete, tags/members/batch(un)tagging, tags/getidlist, user/tag/get.

    Subscription messages need consent: :meth:`grant_subscription` (one message per grant,
    like a one-time template); without it bizsend answers 43101.
    """

    def __init__(
        self,
        *,
        appid: str = "wx_fake_app",
        secret: str = "fake_secret",  # noqa: S107 (fake)
        token_ttl: int = 7200,
        apps: dict[str, str] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.appid = appid
        self.secret = secret
        # More Official Accounts served by one fake (the demo: one per workspace), appid → secret.
        self.apps: dict[str, str] = {appid: secret, **(apps or {})}
        self.token_ttl = token_ttl
        self.tokens: list[_Token] = []
        self.sent: list[dict[str, Any]] = []  # customer-service bodies accepted
        self.templates_sent: list[dict[str, Any]] = []
        self.subscriptions_sent: list[dict[str, Any]] = []
        self.subscription_consents: dict[tuple[str, str], int] = {}
        self.qrcodes: list[dict[str, Any]] = []
        self.menu: dict[str, Any] | None = None
        self.tags: dict[int, dict[str, Any]] = {}
        self.tagged: dict[int, set[str]] = {}
        self.closed_windows: set[str] = set()
        self._ids = itertools.count(1000)
        self._tag_ids = itertools.count(100)  # WeChat's own tags start at 100 (0-2 are reserved)
        self._errcodes: list[tuple[str | None, int]] = []

    def errcode_next(self, errcode: int, n: int = 1, *, path: str | None = None) -> None:
        """The next `n` authenticated calls (to `path`) answer ``{"errcode": errcode}``."""
        with self._lock:
            self._errcodes.extend((path, errcode) for _ in range(n))

    def expire_tokens(self) -> None:
        with self._lock:
            for token in self.tokens:
                token.expires_at = 0

    def revoke_tokens(self) -> None:
        with self._lock:
            for token in self.tokens:
                token.revoked = True

    def grant_subscription(self, openid: str, template_id: str, times: int = 1) -> None:
        """`openid` accepts `times` more subscription messages of `template_id`."""
        with self._lock:
            key = (openid, template_id)
            self.subscription_consents[key] = self.subscription_consents.get(key, 0) + times

    def close_window(self, openid: str) -> None:
        """Customer-service sends to `openid` now fail with 45015."""
        self.closed_windows.add(openid)

    @property
    def token_fetches(self) -> int:
        return len(self.requests_to("/cgi-bin/stable_token")) + len(self.requests_to("/cgi-bin/token"))

    def route(self, request: RecordedRequest) -> Response:
        path = request.path
        if path == "/cgi-bin/stable_token":
            return self._stable_token(request.json())
        if path == "/cgi-bin/token":
            q = request.query
            return self._issue(q.get("appid", ""), q.get("secret", ""), force=True)
        with self._lock:
            token = next((t for t in self.tokens if t.value == request.query.get("access_token")), None)
            if token is None or token.revoked:
                return _err(40001, "invalid credential, access_token is invalid or not latest")
            if token.expires_at < time.time():
                return _err(42001, "access_token expired")
            for i, (fault_path, code) in enumerate(self._errcodes):
                if fault_path is None or path.endswith(fault_path):
                    del self._errcodes[i]
                    return _err(code, _ERRMSG.get(code, "scripted error"))
        body = request.json() if request.body else {}
        handler = _WECHAT_ROUTES.get(path)
        if handler is None:
            return 404, {}, b"not found"
        return handler(self, body)

    def _stable_token(self, body: dict[str, Any]) -> Response:
        return self._issue(
            str(body.get("appid", "")), str(body.get("secret", "")), bool(body.get("force_refresh"))
        )

    def _issue(self, appid: str, secret: str, force: bool) -> Response:
        if appid not in self.apps:
            return _err(40013, "invalid appid")
        if not secrets.compare_digest(secret.encode(), self.apps[appid].encode()):
            return _err(40125, "invalid appsecret")
        with self._lock:
            live = [
                t for t in self.tokens if not t.revoked and t.expires_at > time.time() and t.appid == appid
            ]
            if live and not force:
                token = live[-1]
            else:
                for old in live:
                    old.revoked = True
                token = _Token("FAKE_" + secrets.token_urlsafe(48), time.time() + self.token_ttl, appid=appid)
                self.tokens.append(token)
        return json_response({"access_token": token.value, "expires_in": int(token.expires_at - time.time())})

    def _custom_send(self, body: dict[str, Any]) -> Response:
        msgtype = body.get("msgtype")
        if not body.get("touser") or msgtype not in body:
            return _err(47001, "data format error")
        problem = _custom_body_problem(str(msgtype), body[msgtype])
        if problem:
            return _err(47001, f"data format error: {problem}")
        if body["touser"] in self.closed_windows:
            return _err(45015, _ERRMSG[45015])
        self.sent.append(body)
        return _err(0, "ok")

    def _template_send(self, body: dict[str, Any]) -> Response:
        if not body.get("touser") or not body.get("template_id") or not isinstance(body.get("data"), dict):
            return _err(47001, "data format error")
        msgid = next(self._ids)
        self.templates_sent.append({**body, "msgid": msgid})
        return json_response({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    def _subscribe_send(self, body: dict[str, Any]) -> Response:
        touser, template_id, data = body.get("touser"), body.get("template_id"), body.get("data")
        if not touser or not template_id or not isinstance(data, dict) or not data:
            return _err(47003, "argument invalid! data invalid")
        for key, value in data.items():
            if not isinstance(value, dict) or not isinstance(value.get("value"), str) or not value["value"]:
                return _err(47003, f"argument invalid! data.{key}.value invalid")
        with self._lock:
            left = self.subscription_consents.get((touser, template_id), 0)
            if left <= 0:
                return _err(43101, "user refuse to accept the msg")
            self.subscription_consents[(touser, template_id)] = left - 1
            self.subscriptions_sent.append(body)
        return _err(0, "ok")

    def _qrcode(self, body: dict[str, Any]) -> Response:
        action = body.get("action_name")
        scene = (body.get("action_info") or {}).get("scene") or {}
        if action not in {"QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"} or not scene:
            return _err(40053, "invalid action info")
        scene_id, scene_str = scene.get("scene_id"), scene.get("scene_str")
        if "STR" in action:
            if not isinstance(scene_str, str) or not 1 <= len(scene_str) <= 64:
                return _err(40053, "invalid action info")
        elif not isinstance(scene_id, int) or not 1 <= scene_id <= (
            100_000 if "LIMIT" in action else 2**32 - 1
        ):
            return _err(40053, "invalid action info")
        if "LIMIT" not in action and not 60 <= int(body.get("expire_seconds") or 60) <= 2_592_000:
            return _err(40053, "invalid expire_seconds")
        n = next(self._ids)
        ticket = f"gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL{n}=="
        self.qrcodes.append(body)
        data: dict[str, Any] = {"ticket": ticket, "url": f"http://weixin.qq.com/q/fake{n}"}
        if "LIMIT" not in action:
            data["expire_seconds"] = int(body.get("expire_seconds") or 60)
        return json_response(data)

    def _menu_create(self, body: dict[str, Any]) -> Response:
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return _err(40016, "invalid button size")
        for button in buttons:
            if not isinstance(button, dict) or len(str(button.get("name", "")).encode()) > 16:
                return _err(40018, "invalid button name size")
            subs = button.get("sub_button") or []
            if not isinstance(subs, list) or len(subs) > 5:
                return _err(40023, "invalid sub button size")
            for sub in subs or [button]:
                if not isinstance(sub, dict) or sub.get("type") not in _MENU_TYPES:
                    return _err(40017, "invalid button type")
                if len(str(sub.get("key", "")).encode()) > 128:
                    return _err(40019, "invalid button key size")
        self.menu = body
        return _err(0, "ok")

    def _menu_get(self, body: dict[str, Any]) -> Response:
        if self.menu is None:
            return _err(46003, "menu no exist")
        return json_response({"menu": self.menu})

    def _menu_delete(self, body: dict[str, Any]) -> Response:
        self.menu = None
        return _err(0, "ok")

    def _tag_name_error(self, name: str, tag_id: int | None = None) -> Response | None:
        if not name:
            return _err(45157, "invalid tag name")
        if len(name.encode()) > 30:
            return _err(45158, "tag name too long")
        if any(t["name"] == name and t["id"] != tag_id for t in self.tags.values()):
            return _err(45157, "invalid tag name")
        return None

    def _tags_create(self, body: dict[str, Any]) -> Response:
        name = str((body.get("tag") or {}).get("name", ""))
        with self._lock:
            error = self._tag_name_error(name)
            if error is not None:
                return error
            if len(self.tags) >= 100:
                return _err(45056, "too many tags now, no need to add new")
            tag_id = next(self._tag_ids)
            self.tags[tag_id] = {"id": tag_id, "name": name}
        return json_response({"tag": {"id": tag_id, "name": name}})

    def _tag_id(self, body: dict[str, Any]) -> int | None:
        tag = body.get("tag")
        tag_id = tag.get("id") if isinstance(tag, dict) else None
        return tag_id if isinstance(tag_id, int) and not isinstance(tag_id, bool) else None

    def _tags_update(self, body: dict[str, Any]) -> Response:
        tag_id = self._tag_id(body)
        name = str((body.get("tag") or {}).get("name", ""))
        with self._lock:
            if tag_id in (0, 1, 2):
                return _err(45058, "can't modify sys tag")
            if tag_id not in self.tags:
                return _err(45159, "invalid tag id")
            error = self._tag_name_error(name, tag_id)
            if error is not None:
                return error
            self.tags[tag_id]["name"] = name
        return _err(0, "ok")

    def _tags_delete(self, body: dict[str, Any]) -> Response:
        tag_id = self._tag_id(body)
        with self._lock:
            if tag_id in (0, 1, 2):
                return _err(45058, "can't modify sys tag")
            if tag_id not in self.tags:
                return _err(45159, "invalid tag id")
            if len(self.tagged.get(tag_id, ())) > 100_000:
                return _err(45057, "too many fans in this tag")
            del self.tags[tag_id]
            self.tagged.pop(tag_id, None)
        return _err(0, "ok")

    def _tags_of_fan(self, body: dict[str, Any]) -> Response:
        openid = body.get("openid")
        if not isinstance(openid, str) or not openid:
            return _err(40003, "invalid openid")
        with self._lock:
            ids = sorted(t for t, members in self.tagged.items() if openid in members)
        return json_response({"tagid_list": ids})

    def _tag_fans(self, body: dict[str, Any]) -> Response:
        tag_id = body.get("tagid")
        with self._lock:
            if tag_id not in self.tags:
                return _err(45159, "invalid tag id")
            members = sorted(self.tagged.get(tag_id, ()))
        start = str(body.get("next_openid") or "")
        page = [m for m in members if m > start][:10_000]
        more = len(members) > 0 and page and page[-1] != members[-1]
        return json_response(
            {"count": len(page), "data": {"openid": page}, "next_openid": page[-1] if more else ""}
        )

    def _tags_get(self, body: dict[str, Any]) -> Response:
        tags = [{**t, "count": len(self.tagged.get(t["id"], ()))} for t in self.tags.values()]
        return json_response({"tags": tags})

    def _batch(self, body: dict[str, Any], add: bool) -> Response:
        tag_id = body.get("tagid")
        openids = body.get("openid_list") or []
        with self._lock:
            if tag_id not in self.tags:
                return _err(45159, "invalid tag id")
            if not isinstance(openids, list) or not 1 <= len(openids) <= 50:
                return _err(40032, "invalid openid list size")
            if any(not isinstance(o, str) or not o for o in openids):
                return _err(40003, "invalid openid")
            current = self.tagged.get(tag_id, set())
            for openid in openids if add else ():
                tags_of_fan = sum(1 for m in self.tagged.values() if openid in m)
                if openid not in current and tags_of_fan >= 20:
                    return _err(45059, "has too many tags")
            members = self.tagged.setdefault(tag_id, set())
            (members.update if add else members.difference_update)(openids)
        return _err(0, "ok")


_MENU_TYPES = frozenset(
    {
        "click", "view", "scancode_push", "scancode_waitmsg", "pic_sysphoto", "pic_photo_or_album",
        "pic_weixin", "location_select", "media_id", "view_limited", "article_id",
        "article_view_limited", "miniprogram",
    }
)  # fmt: skip

_ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40014: "invalid access_token",
    42001: "access_token expired",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    45009: "reach max api daily quota limit",
    -1: "system error",
}


_URL = re.compile(r"^https?://[^\s/]+\S*$")


def _custom_body_problem(msgtype: str, content: Any) -> str | None:
    """What WeChat would refuse in a customer-service message's content object (the types
    whose shape the fake checks), or None."""
    if not isinstance(content, dict):
        return f"{msgtype} must be an object"
    if msgtype == "music":
        # musicurl / hqmusicurl are required by WeChat (hqmusicurl: the WiFi link); title,
        # description and thumb_media_id are strings when given.
        for key in ("musicurl", "hqmusicurl"):
            if not isinstance(content.get(key), str) or not _URL.match(content[key]):
                return f"music.{key} must be an http(s) URL"
        for key in ("title", "description", "thumb_media_id"):
            if key in content and not isinstance(content[key], str):
                return f"music.{key} must be a string"
        unknown = set(content) - {"title", "description", "musicurl", "hqmusicurl", "thumb_media_id"}
        if unknown:
            return f"music has no field {sorted(unknown)[0]!r}"
    elif msgtype == "text" and (not isinstance(content.get("content"), str) or not content["content"]):
        return "text.content is required"
    elif msgtype in ("image", "voice", "mpnews", "video") and (
        not isinstance(content.get("media_id"), str) or not content["media_id"]
    ):
        return f"{msgtype}.media_id is required"
    return None


def _err(errcode: int, errmsg: str) -> Response:
    return json_response({"errcode": errcode, "errmsg": errmsg})


_WECHAT_ROUTES: dict[str, Callable[[FakeWechatServer, dict[str, Any]], Response]] = {
    "/cgi-bin/message/custom/send": FakeWechatServer._custom_send,
    "/cgi-bin/message/template/send": FakeWechatServer._template_send,
    "/cgi-bin/message/subscribe/bizsend": FakeWechatServer._subscribe_send,
    "/cgi-bin/qrcode/create": FakeWechatServer._qrcode,
    "/cgi-bin/menu/create": FakeWechatServer._menu_create,
    "/cgi-bin/menu/get": FakeWechatServer._menu_get,
    "/cgi-bin/menu/delete": FakeWechatServer._menu_delete,
    "/cgi-bin/tags/create": FakeWechatServer._tags_create,
    "/cgi-bin/tags/get": FakeWechatServer._tags_get,
    "/cgi-bin/tags/update": FakeWechatServer._tags_update,
    "/cgi-bin/tags/delete": FakeWechatServer._tags_delete,
    "/cgi-bin/tags/getidlist": FakeWechatServer._tags_of_fan,
    "/cgi-bin/user/tag/get": FakeWechatServer._tag_fans,
    "/cgi-bin/tags/members/batchtagging": lambda s, b: s._batch(b, add=True),
    "/cgi-bin/tags/members/batchuntagging": lambda s, b: s._batch(b, add=False),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake WeChat API server for demos and tests")
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--appid", default="wx_fake_app")
    parser.add_argument("--secret", default="fake_secret")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = FakeWechatServer(appid=args.appid, secret=args.secret, port=args.port).start()
    log.info("fake WeChat API on %s (started %s)", server.base_url, dt.datetime.now(dt.UTC).isoformat())
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
