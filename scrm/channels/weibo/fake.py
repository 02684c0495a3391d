"""A fake Weibo API on 127.0.0.1 (Open API v2 + fan-service reply), for tests and the demo.

    with FakeWeiboServer(brand_uid="1902538057", access_token="tok") as fake:
        fake.add_mention("@品牌 我的行李丢了", user_id="2489518277")
        client = WeiboClient(account, base_url=fake.base_url)
        events, cursor = client.fetch_mentions(None)

Serves ``statuses/mentions``, ``comments/mentions``, ``comments/to_me``, ``comments/by_me`` with Weibo's
since_id / max_id / count / page semantics (newest first), ``comments/reply``,
``comments/create`` and ``messages/reply``. Faults: ``rate_limit_next`` (HTTP 403 with
error_code 10023 by default) plus everything :class:`FakeHttpServer` offers.
Standalone: ``python -m scrm.channels.weibo.fake --port 9102``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import logging
import secrets
import threading
import time
from typing import Any

from scrm.channels.wechat.fake import FakeHttpServer, RecordedRequest, Response, json_response

log = logging.getLogger(__name__)

_FIRST_ID = 4_900_000_000_000_000


def weibo_time(moment: dt.datetime) -> str:
    local = moment.astimezone(dt.timezone(dt.timedelta(hours=8)))
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return f"{days[local.weekday()]} {months[local.month - 1]} {local:%d %H:%M:%S} +0800 {local.year}"


class FakeWeiboServer(FakeHttpServer):
    def __init__(
        self,
        *,
        brand_uid: str = "1902538057",
        brand_name: str = "品牌官方微博",
        access_token: str = "fake_weibo_token",  # noqa: S107 (fake)
        access_tokens: set[str] | None = None,
        strict: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.brand_uid = brand_uid
        self.brand_name = brand_name
        self.access_token = access_token
        # More brand accounts served by one fake (the demo), and whether replies must target
        # statuses / comments the fake knows (False: any id, for pushes replayed by the demo).
        self.access_tokens = {access_token, *(access_tokens or set())}
        self.strict = strict
        self.statuses: list[dict[str, Any]] = []  # posts that @mention the brand
        self.brand_posts: dict[str, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []  # comments by fans
        self.replies: list[dict[str, Any]] = []  # comments the brand posted via the API
        self.messages: list[dict[str, Any]] = []  # fan-service private replies
        self._ids = itertools.count(_FIRST_ID, 7)
        self._id_lock = threading.Lock()

    def _next_id(self) -> str:
        with self._id_lock:
            return str(next(self._ids))

    def rate_limit_next(self, n: int = 1, *, error_code: int = 10023, path: str | None = None) -> None:
        error = {"error": "User requests out of rate limit!", "error_code": error_code, "request": path or ""}
        self.respond_next(error, n, path=path, status=403)

    # -- data builders ------------------------------------------------------------------

    def user(self, user_id: str, name: str | None = None, followers: int = 100) -> dict[str, Any]:
        return {
            "id": int(user_id),
            "idstr": user_id,
            "screen_name": name or f"user{user_id}",
            "followers_count": followers,
            "verified": False,
        }

    def add_brand_post(self, text: str) -> str:
        status_id = self._next_id()
        self.brand_posts[status_id] = {
            "id": int(status_id),
            "idstr": status_id,
            "mid": status_id,
            "created_at": weibo_time(dt.datetime.now(dt.UTC)),
            "text": text,
            "user": self.user(self.brand_uid, self.brand_name, 1_000_000),
        }
        return status_id

    def add_mention(
        self, text: str, *, user_id: str = "2489518277", name: str | None = None, followers: int = 100
    ) -> str:
        status_id = self._next_id()
        with self._lock:
            self.statuses.append(
                {
                    "id": int(status_id),
                    "idstr": status_id,
                    "mid": status_id,
                    "created_at": weibo_time(dt.datetime.now(dt.UTC)),
                    "text": text,
                    "source": '<a href="http://app.weibo.com" rel="nofollow">微博 weibo.com</a>',
                    "user": self.user(user_id, name, followers),
                }
            )
        return status_id

    def add_comment(
        self,
        text: str,
        *,
        status_id: str | None = None,
        user_id: str = "2489518277",
        followers: int = 100,
        mentions_brand: bool = False,
    ) -> str:
        """A fan's comment, on the brand's post `status_id` (a new one if None)."""
        post_id = status_id or self.add_brand_post("新品发布")
        status = self.brand_posts.get(post_id) or next(s for s in self.statuses if s["idstr"] == post_id)
        comment_id = self._next_id()
        with self._lock:
            self.comments.append(
                {
                    "id": int(comment_id),
                    "idstr": comment_id,
                    "created_at": weibo_time(dt.datetime.now(dt.UTC)),
                    "text": text,
                    "user": self.user(user_id, None, followers),
                    "status": status,
                    "_mentions_brand": mentions_brand,
                }
            )
        return comment_id

    # -- routes -------------------------------------------------------------------------

    def _authorised(self, request: RecordedRequest) -> bool:
        supplied = request.headers.get("authorization", "").removeprefix("OAuth2 ")
        supplied = supplied or request.query.get("access_token", "")
        if not supplied and request.method == "POST":
            supplied = request.form().get("access_token", "")
        return any(secrets.compare_digest(supplied.encode(), t.encode()) for t in self.access_tokens)

    def route(self, request: RecordedRequest) -> Response:
        if not self._authorised(request):
            return json_response({"error": "invalid_access_token", "error_code": 21332}, 401)
        path = request.path
        with self._lock:
            if path == "/2/statuses/mentions.json":
                return self._page(request, self.statuses, "statuses")
            if path == "/2/comments/mentions.json":
                items = [c for c in self.comments if c["_mentions_brand"]]
                return self._page(request, items, "comments")
            if path == "/2/comments/to_me.json":
                items = [c for c in self.comments if c["status"]["user"]["idstr"] == self.brand_uid]
                return self._page(request, items, "comments")
            if path == "/2/comments/by_me.json":
                return self._by_me(request)
        if path in ("/2/comments/reply.json", "/2/comments/create.json"):
            return self._comment(request, reply=path.endswith("reply.json"))
        if path == "/2/messages/reply.json":
            return self._message(request)
        return json_response({"error": "not found", "error_code": 10014}, 404)

    def _page(self, request: RecordedRequest, items: list[dict[str, Any]], key: str) -> Response:
        q = request.query
        try:
            since_id = int(q.get("since_id") or 0)
            max_id = int(q.get("max_id") or 0)
            count = min(int(q.get("count") or 20), 200)
            page = max(int(q.get("page") or 1), 1)
        except ValueError:
            return json_response({"error": "invalid parameter", "error_code": 10008}, 400)
        selected = sorted(
            (i for i in items if i["id"] > since_id and (not max_id or i["id"] <= max_id)),
            key=lambda i: i["id"],
            reverse=True,
        )
        chunk = selected[(page - 1) * count : page * count]
        public = [{k: v for k, v in i.items() if not k.startswith("_")} for i in chunk]
        return json_response(
            {key: public, "total_number": len(selected), "previous_cursor": 0, "next_cursor": 0}
        )

    def _comment(self, request: RecordedRequest, *, reply: bool) -> Response:
        form = request.form()
        status_id, text = form.get("id", ""), form.get("comment", "")
        if not text or len(text) > 140:
            return json_response({"error": "text too long", "error_code": 20012}, 400)
        known = {s["idstr"] for s in self.statuses} | set(self.brand_posts)
        if self.strict and status_id not in known:
            return json_response({"error": "target weibo does not exist!", "error_code": 20101}, 400)
        if self.strict and reply and form.get("cid") not in {c["idstr"] for c in self.comments}:
            return json_response({"error": "target comment does not exist", "error_code": 20101}, 400)
        comment_id = self._next_id()
        record = {
            "id": int(comment_id),
            "idstr": comment_id,
            "text": text,
            "status_id": status_id,
            "created_at": weibo_time(dt.datetime.now(dt.UTC)),
            **form,
        }
        with self._lock:
            self.replies.append(record)
        return json_response(record)

    def _by_me(self, request: RecordedRequest) -> Response:
        """``comments/by_me``: the brand's own comments, newest first, as Weibo shapes them (a
        reply to a comment reads "回复@name:text" and names the comment it answers)."""
        try:
            count = min(int(request.query.get("count") or 50), 200)
            page = max(int(request.query.get("page") or 1), 1)
        except ValueError:
            return json_response({"error": "invalid parameter", "error_code": 10008}, 400)
        fans = {c["idstr"]: c for c in self.comments}
        items = []
        for r in reversed(self.replies):
            item = {
                "id": r["id"],
                "idstr": r["idstr"],
                "created_at": r["created_at"],
                "text": r["text"],
                "status": {"id": int(r["status_id"] or 0), "idstr": r["status_id"]},
                "user": self.user(self.brand_uid, self.brand_name, 1_000_000),
            }
            if r.get("cid"):
                fan = fans.get(r["cid"], {}).get("user", {}).get("screen_name", "fan")
                item["text"] = f"回复@{fan}:{r['text']}"
                item["reply_comment"] = {"id": int(r["cid"]) if r["cid"].isdigit() else 0, "idstr": r["cid"]}
            items.append(item)
        chunk = items[(page - 1) * count : page * count]
        return json_response({"comments": chunk, "total_number": len(items)})

    def _message(self, request: RecordedRequest) -> Response:
        form = request.form()
        try:
            data = json.loads(form.get("data", ""))
        except ValueError:
            return json_response({"error": "data is not JSON", "error_code": 10008}, 400)
        if form.get("type") != "text" or not form.get("receiver_id") or not data.get("text"):
            return json_response({"error": "invalid parameter", "error_code": 10008}, 400)
        self.messages.append({"receiver_id": form["receiver_id"], "type": "text", "text": data["text"]})
        return json_response(
            {"result": True, "sender_id": int(self.brand_uid), "receiver_id": int(form["receiver_id"])}
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Weibo API server for demos and tests")
    parser.add_argument("--port", type=int, default=9102)
    parser.add_argument("--brand-uid", default="1902538057")
    parser.add_argument("--access-token", default="fake_weibo_token")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = FakeWeiboServer(brand_uid=args.brand_uid, access_token=args.access_token, port=args.port).start()
    server.add_mention("@品牌官方微博 你好，我的快递三天没到了")
    log.info("fake Weibo API on %s", server.base_url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
