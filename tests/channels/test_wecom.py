from __future__ import annotations

import time

import pytest
import xmltodict
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.enterprise.crypto import WeChatCrypto as WecomOracle

from scrm.channels.base import InboundRejected
from scrm.channels.wecom.config import WecomAccountConfig
from scrm.channels.wecom.handler import SUCCESS, parse_push, render_passive_reply, verify_url
from scrm.channels.wecom.simulate import build_push, build_verification

from .helpers import fixture_text, sha1_sorted

# The official WeCom sample (WXBizMsgCrypt demos): token, key and CorpID.
CORP = "wx5823bf96d3bd56c7"
TOKEN = "QDG6eK"
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
OFFICIAL = WecomAccountConfig(corpid=CORP, token=TOKEN, encoding_aes_key=KEY)
ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
ECHO_QUERY = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": ECHOSTR,
}
POST_QUERY = {
    "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
    "timestamp": "1409659813",
    "nonce": "1372623149",
}

FIXTURE_CORP = "ww_corp_fixture"
ACCOUNT = WecomAccountConfig(
    corpid=FIXTURE_CORP,
    token="wecom-token",
    encoding_aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    previous_encoding_aes_key="ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj",
    agent_id="1000002",
)


def test_official_url_verification_vector() -> None:
    echo = verify_url(ECHO_QUERY, OFFICIAL)
    assert echo == "1616140317555161061"
    assert WecomOracle(TOKEN, KEY, CORP).check_signature(**{
        "signature": ECHO_QUERY["msg_signature"], "timestamp": ECHO_QUERY["timestamp"],
        "nonce": ECHO_QUERY["nonce"], "echo_str": ECHOSTR,
    }) == echo  # fmt: skip


def test_official_message_vector() -> None:
    body = fixture_text("wecom", "callback__text_official_vector.xml")
    push = parse_push(POST_QUERY, body, OFFICIAL)
    event = push.event
    assert (event.kind, event.text, event.external_id) == ("message", "hello", "4561255354251345929")
    assert event.sender.external_id == "mycreate"
    assert event.sender.namespace == f"wecom:{CORP}"
    assert event.metadata["agent_id"] == "218"
    assert int(event.sent_at.timestamp()) == 1409659813


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd4"}, 401),
        ({"msg_signature": ""}, 401),
        ({"echostr": ""}, 400),
        ({"echostr": ECHOSTR[:-4]}, 401),  # signature covers the echostr
        ({"timestamp": "x"}, 400),
    ],
)
def test_url_verification_rejections(change: dict[str, str], status: int) -> None:
    with pytest.raises(InboundRejected) as info:
        verify_url({**ECHO_QUERY, **change}, OFFICIAL)
    assert info.value.status_code == status


def test_url_verification_wrong_corp_is_refused() -> None:
    other = WecomAccountConfig(corpid="ww_other", token=TOKEN, encoding_aes_key=KEY)
    with pytest.raises(InboundRejected) as info:
        verify_url(ECHO_QUERY, other)
    assert info.value.status_code == 403


def test_url_verification_is_fast() -> None:
    start = time.perf_counter()
    for _ in range(100):
        verify_url(ECHO_QUERY, OFFICIAL)
    assert (time.perf_counter() - start) / 100 < 0.05  # the platform allows 1 s


def test_simulated_verification_round_trip() -> None:
    assert verify_url(build_verification(ACCOUNT, "98765"), ACCOUNT) == "98765"


# -- fixtures through the full encrypted path ---------------------------------------------

EXPECTED = {
    "msg__text.xml": ("message", "请帮我查一下 PO-2024-0042 的物流", None),
    "event__enter_agent.xml": ("unknown", "", None),
    "event__click.xml": ("click", "", "CASE_LIST"),
    "event__subscribe.xml": ("subscribe", "", None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str) -> None:
    query, body = build_push(ACCOUNT, fixture_text("wecom", name).decode())
    event = parse_push(query, body, ACCOUNT).event
    assert (event.kind, event.text, event.menu_key) == EXPECTED[name]
    assert event.sender.external_id == "zhangsan"
    assert event.metadata["agent_id"] == "1000002"


def test_push_from_another_agent_is_refused() -> None:
    xml = fixture_text("wecom", "msg__text.xml").decode().replace("1000002", "1000099")
    query, body = build_push(ACCOUNT, xml)
    with pytest.raises(InboundRejected) as info:
        parse_push(query, body, ACCOUNT)
    assert info.value.status_code == 403


def test_previous_key_and_encrypted_reply() -> None:
    old = ACCOUNT.model_copy(update={"encoding_aes_key": ACCOUNT.previous_encoding_aes_key})
    query, body = build_push(old, fixture_text("wecom", "msg__text.xml").decode())
    push = parse_push(query, body, ACCOUNT)
    assert push.key_index == 1
    out = render_passive_reply(push, "已收到")
    envelope = xmltodict.parse(out.decode())["xml"]
    oracle = WecomOracle("wecom-token", "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj", FIXTURE_CORP)
    inner = xmltodict.parse(
        oracle.decrypt_message(
            out.decode(), envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]
        )
    )["xml"]
    assert (inner["ToUserName"], inner["FromUserName"], inner["Content"]) == (
        "zhangsan",
        FIXTURE_CORP,
        "已收到",
    )
    assert SUCCESS == b""


def test_wechatpy_encrypted_push_is_accepted() -> None:
    xml = fixture_text("wecom", "msg__text.xml").decode()
    encrypted = WecomOracle(
        "wecom-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", FIXTURE_CORP
    ).encrypt_message(xml, "nonce7", "1409659813")
    envelope = xmltodict.parse(encrypted)["xml"]
    query = {"msg_signature": envelope["MsgSignature"], "timestamp": "1409659813", "nonce": "nonce7"}
    assert parse_push(query, encrypted.encode(), ACCOUNT).event.text.startswith("请帮我查一下")


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><ToUserName>x</ToUserName></xml>",
        b"<!DOCTYPE x [<!ENTITY a SYSTEM 'file:///etc/passwd'>]><xml><Encrypt>&a;</Encrypt></xml>",
        b"\xff\xfe",
        b"<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
    ],
)
def test_hostile_bodies(body: bytes) -> None:
    with pytest.raises(InboundRejected) as info:
        parse_push(POST_QUERY, body, OFFICIAL)
    assert info.value.status_code == 400


def test_body_cap() -> None:
    with pytest.raises(InboundRejected) as info:
        parse_push(POST_QUERY, b"<xml>" + b"a" * (10 * 1024 * 1024) + b"</xml>", OFFICIAL)
    assert info.value.status_code == 413


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_corrupted_echostr_only_raises_inbound_rejected(data: st.DataObject) -> None:
    chars = list(ECHOSTR)
    for _ in range(data.draw(st.integers(1, 5))):
        chars[data.draw(st.integers(0, len(chars) - 1))] = data.draw(st.sampled_from("Aa09+/=!"))
    bad = "".join(chars)
    query = {
        **ECHO_QUERY,
        "echostr": bad,
        "msg_signature": sha1_sorted(TOKEN, "1409659589", "263014780", bad),
    }
    try:
        verify_url(query, OFFICIAL)
    except InboundRejected as exc:
        assert 400 <= exc.status_code < 500
