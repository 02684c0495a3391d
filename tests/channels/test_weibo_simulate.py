from __future__ import annotations

import httpx

from scrm.channels.base import InboundEvent
from scrm.channels.weibo.config import WeiboAccountConfig
from scrm.channels.weibo.handler import ACK, parse_push, render_passive_reply, verify_url
from scrm.channels.weibo.simulate import signed_query, simulate

from .callback_server import CallbackServer

ACCOUNT = WeiboAccountConfig(uid="1902538057", app_secret="xyz123xyz", access_token="t")


def serve() -> CallbackServer:
    def on_post(query: dict[str, str], body: bytes) -> tuple[list[InboundEvent], bytes]:
        push = parse_push(query, body, ACCOUNT)
        if push.event.kind == "subscribe":
            return list(push.events), render_passive_reply(push, "欢迎关注！")
        return list(push.events), ACK

    return CallbackServer(lambda q: verify_url(q, ACCOUNT), on_post)


def test_simulated_text_and_follow() -> None:
    with serve() as callback:
        response = simulate(callback.base_url + "/weibo", ACCOUNT, text="你好 @品牌")
        assert response.status_code == 200 and response.content == b""
        follow = simulate(callback.base_url + "/weibo", ACCOUNT, event="scan_follow", key="qrscene_42")
        assert follow.json()["type"] == "text"
    kinds = sorted((e.kind, e.scene or "") for e in callback.stored.values())
    assert kinds == [("message", ""), ("subscribe", "42")]
    assert int(callback.requests[0].query["timestamp"]) > 10**12  # milliseconds, as Weibo sends


def test_verification_and_wrong_secret_over_http() -> None:
    with serve() as callback:
        assert httpx.get(callback.base_url, params={**signed_query(ACCOUNT), "echostr": "abc"}).text == "abc"
        other = WeiboAccountConfig(uid="1902538057", app_secret="other")
        assert simulate(callback.base_url, other, text="x").status_code == 401
    assert callback.stored == {}
