from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import xmltodict
from wechatpy.crypto import WeChatCrypto

from scrm.channels.base import InboundEvent
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.handler import SUCCESS, parse_push, render_passive_reply, verify_url
from scrm.channels.wechat.simulate import build_message_xml, build_push, build_verification, simulate

from .callback_server import CallbackServer
from .helpers import AES_KEY, APPID, ORIGINAL_ID, TOKEN

SAFE = WechatAccountConfig(appid=APPID, token=TOKEN, encoding_aes_key=AES_KEY, original_id=ORIGINAL_ID)
PLAIN = WechatAccountConfig(appid=APPID, token=TOKEN, original_id=ORIGINAL_ID)


def serve(account: WechatAccountConfig) -> CallbackServer:
    def on_post(query: dict[str, str], body: bytes) -> tuple[list[InboundEvent], bytes]:
        push = parse_push(query, body, account)
        if push.event.kind == "message" and push.event.text.startswith("echo "):
            return list(push.events), render_passive_reply(push, push.event.text[5:])
        return list(push.events), SUCCESS

    return CallbackServer(lambda q: verify_url(q, account), on_post)


@pytest.fixture(params=[SAFE, PLAIN], ids=["safe", "plain"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[CallbackServer, WechatAccountConfig]]:
    with serve(request.param) as s:
        yield s, request.param


def test_simulated_text_reaches_the_server(server: tuple[CallbackServer, WechatAccountConfig]) -> None:
    callback, account = server
    response = simulate(callback.base_url + "/wechat", account, text="我的行李丢了")
    assert response.status_code == 200
    assert response.content == SUCCESS
    (event,) = callback.stored.values()
    assert event.text == "我的行李丢了"
    if account.encoding_aes_key:
        assert callback.requests[0].query["encrypt_type"] == "aes"
        assert b"<Encrypt>" in callback.requests[0].body and "行李".encode() not in callback.requests[0].body


def test_simulated_event_and_passive_reply(server: tuple[CallbackServer, WechatAccountConfig]) -> None:
    callback, account = server
    simulate(callback.base_url, account, event="subscribe", event_key="qrscene_777")
    assert next(iter(callback.stored.values())).scene == "777"
    reply = simulate(callback.base_url, account, text="echo 你好")
    doc = xmltodict.parse(reply.text)["xml"]
    if account.encoding_aes_key:
        plain = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
            reply.text, doc["MsgSignature"], doc["TimeStamp"], doc["Nonce"]
        )
        doc = xmltodict.parse(plain)["xml"]
    assert doc["Content"] == "你好"


def test_retries_are_stored_once() -> None:
    with serve(SAFE) as callback:
        xml = build_message_xml(to_user=ORIGINAL_ID, from_user="oFan", text="hi", msg_id=42)
        query, body = build_push(SAFE, xml)
        responses = [httpx.post(callback.base_url, params=query, content=body) for _ in range(4)]
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert list(callback.stored) == ["42"] and callback.duplicates == 3


def test_url_verification_over_http() -> None:
    with serve(SAFE) as callback:
        query = build_verification(SAFE, echostr="5927782489442352469")
        assert httpx.get(callback.base_url, params=query).text == "5927782489442352469"
        query["signature"] = "0" * 40
        assert httpx.get(callback.base_url, params=query).status_code == 401


def test_hostile_bodies_over_http_are_4xx() -> None:
    with serve(SAFE) as callback:
        query, _ = build_push(SAFE, "<xml/>")
        for body in [
            b"<xml>" + b"a" * (10 * 1024 * 1024) + b"</xml>",
            b"\xff\xfe",
            b"<!DOCTYPE x [<!ENTITY a 'b'>]><xml/>",
        ]:
            response = httpx.post(callback.base_url, params=query, content=body, timeout=10)
            assert 400 <= response.status_code < 500
