from __future__ import annotations

import datetime as dt

import pytest
import xmltodict
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.crypto import WeChatCrypto

from scrm.channels.base import InboundRejected
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.handler import SUCCESS, parse_push, render_passive_reply, verify_url
from scrm.channels.wechat.replies import (
    Article,
    ImageReply,
    MusicReply,
    NewsReply,
    TextReply,
    VideoReply,
    VoiceReply,
)

from .helpers import AES_KEY, APPID, OLD_AES_KEY, ORIGINAL_ID, TOKEN, fixture_text, sha1_sorted

TS, NONCE = "1409304348", "xxxxxx"
NOW = dt.datetime.fromtimestamp(int(TS), dt.UTC)
PLAIN = WechatAccountConfig(appid=APPID, token=TOKEN)
SAFE = WechatAccountConfig(
    appid=APPID,
    token=TOKEN,
    encoding_aes_key=AES_KEY,
    previous_encoding_aes_key=OLD_AES_KEY,
    original_id=ORIGINAL_ID,
)
TEXT = fixture_text("wechat", "msg__text.xml")


def plain_query(ts: str = TS, nonce: str = NONCE, token: str = TOKEN) -> dict[str, str]:
    return {"signature": sha1_sorted(token, ts, nonce), "timestamp": ts, "nonce": nonce, "openid": "o"}


def safe_push(
    xml: bytes, *, key: str = AES_KEY, appid: str = APPID, compat: bool = False
) -> tuple[dict[str, str], bytes]:
    """Encrypt with wechatpy (an independent implementation) the way WeChat pushes in safe mode."""
    envelope = xmltodict.parse(WeChatCrypto(TOKEN, key, appid).encrypt_message(xml.decode(), NONCE, TS))[
        "xml"
    ]
    query = {**plain_query(), "encrypt_type": "aes", "msg_signature": envelope["MsgSignature"]}
    encrypt = envelope["Encrypt"]
    outer = f"<ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
    if compat:  # compat mode also carries (untrusted) plaintext fields
        outer = (
            outer + "<FromUserName>oATTACKER</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>"
            "<Content>forged</Content><MsgId>999</MsgId>"
        )
    return query, f"<xml>{outer}</xml>".encode()


def decrypt_reply(body: bytes, key: str = AES_KEY) -> dict[str, str]:
    reply = xmltodict.parse(body.decode())["xml"]
    plain = WeChatCrypto(TOKEN, key, APPID).decrypt_message(
        body.decode(), reply["MsgSignature"], reply["TimeStamp"], reply["Nonce"]
    )
    return xmltodict.parse(plain)["xml"]


# -- URL verification ---------------------------------------------------------------------


def test_verify_url_returns_echostr_verbatim() -> None:
    query = {**plain_query(), "echostr": "5927782489442352469"}
    assert verify_url(query, PLAIN) == "5927782489442352469"
    # The Official Account's echostr stays plaintext in safe mode.
    assert verify_url(query, SAFE) == "5927782489442352469"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"signature": sha1_sorted("wrong-token", TS, NONCE)}, 401),
        ({"signature": ""}, 401),
        ({"signature": "abc"}, 401),
        ({"signature": "z" * 40}, 401),
        ({"echostr": ""}, 400),
        ({"timestamp": ""}, 400),
        ({"timestamp": "12a"}, 400),
        ({"nonce": ""}, 400),
    ],
)
def test_verify_url_rejections(change: dict[str, str], status: int) -> None:
    query = {**plain_query(), "echostr": "42", **change}
    with pytest.raises(InboundRejected) as info:
        verify_url(query, PLAIN)
    assert info.value.status_code == status


def test_verify_url_missing_signature_param() -> None:
    query = {**plain_query(), "echostr": "42"}
    del query["signature"]
    with pytest.raises(InboundRejected) as info:
        verify_url(query, PLAIN)
    assert info.value.status_code == 401


def test_verify_url_accepts_millisecond_timestamps() -> None:
    query = {**plain_query(ts="1397022061823"), "echostr": "e"}
    assert verify_url(query, PLAIN) == "e"


# -- plaintext mode -----------------------------------------------------------------------


def test_plaintext_push() -> None:
    push = parse_push(plain_query(), TEXT, PLAIN)
    assert push.event.text == "this is a test"
    assert not push.encrypted
    assert push.plaintext == TEXT


def test_plaintext_push_with_bad_signature() -> None:
    with pytest.raises(InboundRejected) as info:
        parse_push(plain_query(token="nope"), TEXT, PLAIN)
    assert info.value.status_code == 401


def test_plaintext_refused_when_account_requires_encryption() -> None:
    strict = SAFE.model_copy(update={"require_encryption": True})
    with pytest.raises(InboundRejected) as info:
        parse_push(plain_query(), TEXT, strict)
    assert info.value.status_code == 403


def test_unknown_encrypt_type() -> None:
    with pytest.raises(InboundRejected) as info:
        parse_push({**plain_query(), "encrypt_type": "rot13"}, TEXT, PLAIN)
    assert info.value.status_code == 400


def test_plaintext_reply_swaps_to_and_from() -> None:
    push = parse_push(plain_query(), TEXT, PLAIN)
    reply = xmltodict.parse(render_passive_reply(push, "收到，马上处理", now=NOW).decode())["xml"]
    assert reply == {
        "ToUserName": "oU7Hq5wS1dJm_0XkR4fLpA2eBcYz",
        "FromUserName": ORIGINAL_ID,
        "CreateTime": TS,
        "MsgType": "text",
        "Content": "收到，马上处理",
    }


def test_retried_push_has_same_key_and_same_reply() -> None:
    results = [parse_push(plain_query(), TEXT, PLAIN) for _ in range(4)]  # original + 3 retries
    assert {p.event.external_id for p in results} == {"1234567890123456"}
    assert len({render_passive_reply(p, "hi", now=NOW) for p in results}) == 1


def test_success_constant() -> None:
    assert SUCCESS == b"success"


# -- safe and compat mode -----------------------------------------------------------------


def test_safe_mode_push_and_encrypted_reply() -> None:
    query, body = safe_push(TEXT)
    push = parse_push(query, body, SAFE)
    assert push.encrypted and push.key_index == 0
    assert push.event.text == "this is a test"
    assert push.event.sender.namespace == f"wechat:{APPID}"
    out = render_passive_reply(push, TextReply("回复 ]]> 测试"), now=NOW, nonce="n1")
    envelope = xmltodict.parse(out.decode())["xml"]
    assert set(envelope) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    assert envelope["MsgSignature"] == sha1_sorted(TOKEN, envelope["TimeStamp"], "n1", envelope["Encrypt"])
    inner = decrypt_reply(out)
    assert inner["Content"] == "回复 ]]> 测试"
    assert inner["ToUserName"] == "oU7Hq5wS1dJm_0XkR4fLpA2eBcYz"


def test_compat_mode_trusts_only_the_decrypted_part() -> None:
    query, body = safe_push(TEXT, compat=True)
    push = parse_push(query, body, SAFE)
    assert push.event.sender.external_id == "oU7Hq5wS1dJm_0XkR4fLpA2eBcYz"
    assert push.event.text == "this is a test"
    assert push.event.external_id == "1234567890123456"


def test_previous_aes_key_still_decrypts_and_reply_uses_it() -> None:
    query, body = safe_push(TEXT, key=OLD_AES_KEY)
    push = parse_push(query, body, SAFE)
    assert push.key_index == 1
    assert decrypt_reply(render_passive_reply(push, "ok"), key=OLD_AES_KEY)["Content"] == "ok"


def test_safe_mode_wrong_appid_is_rejected() -> None:
    query, body = safe_push(TEXT, appid="wx_not_ours")
    with pytest.raises(InboundRejected) as info:
        parse_push(query, body, SAFE)
    assert info.value.status_code == 403


@pytest.mark.parametrize(
    "change",
    [
        {"msg_signature": "0" * 40},
        {"msg_signature": ""},
        {"signature": "0" * 40},  # the plain signature, when present, must be right too
        {"timestamp": "1409304349"},
    ],
)
def test_safe_mode_signature_failures(change: dict[str, str]) -> None:
    query, body = safe_push(TEXT)
    with pytest.raises(InboundRejected) as info:
        parse_push({**query, **change}, body, SAFE)
    assert info.value.status_code == 401


def test_safe_mode_without_configured_key() -> None:
    query, body = safe_push(TEXT)
    with pytest.raises(InboundRejected) as info:
        parse_push(query, body, PLAIN)
    assert info.value.status_code == 400


def test_safe_mode_missing_encrypt() -> None:
    body = b"<xml><ToUserName>gh</ToUserName></xml>"
    query = {**plain_query(), "encrypt_type": "aes", "msg_signature": sha1_sorted(TOKEN, TS, NONCE, "")}
    with pytest.raises(InboundRejected) as info:
        parse_push(query, body, SAFE)
    assert info.value.status_code == 400


def test_safe_mode_bad_base64_with_valid_signature() -> None:
    encrypt = "@@not-base64@@"
    query = {**plain_query(), "encrypt_type": "aes", "msg_signature": sha1_sorted(TOKEN, TS, NONCE, encrypt)}
    with pytest.raises(InboundRejected) as info:
        parse_push(query, f"<xml><Encrypt>{encrypt}</Encrypt></xml>".encode(), SAFE)
    assert info.value.status_code == 400


def test_body_over_cap_is_refused_before_anything_else() -> None:
    with pytest.raises(InboundRejected) as info:
        parse_push({}, b"<xml>" + b"x" * (10 * 1024 * 1024) + b"</xml>", SAFE)
    assert info.value.status_code == 413


def test_freshness_window_is_optional() -> None:
    query, body = safe_push(TEXT)
    late = NOW + dt.timedelta(minutes=10)
    assert parse_push(query, body, SAFE, now=late).event.external_id == "1234567890123456"
    assert parse_push(query, body, SAFE, now=NOW, max_age=300).event.text == "this is a test"
    with pytest.raises(InboundRejected) as info:
        parse_push(query, body, SAFE, now=late, max_age=300)
    assert info.value.status_code == 401


def test_safe_mode_subscribe_scan_event() -> None:
    query, body = safe_push(fixture_text("wechat", "event__subscribe_scan.xml"))
    event = parse_push(query, body, SAFE).event
    assert (event.kind, event.scene) == ("subscribe", "123123")


# -- reply shapes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (ImageReply("m1"), {"MsgType": "image", "Image": {"MediaId": "m1"}}),
        (VoiceReply("m2"), {"MsgType": "voice", "Voice": {"MediaId": "m2"}}),
        (
            VideoReply("m3", "t", "d"),
            {"MsgType": "video", "Video": {"MediaId": "m3", "Title": "t", "Description": "d"}},
        ),
        (
            MusicReply("星巴克", "心情音乐", "http://m/1.mp3", "http://m/1hq.mp3", "thumb"),
            {
                "MsgType": "music",
                "Music": {
                    "Title": "星巴克",
                    "Description": "心情音乐",
                    "MusicUrl": "http://m/1.mp3",
                    "HQMusicUrl": "http://m/1hq.mp3",
                    "ThumbMediaId": "thumb",
                },
            },
        ),
        (
            NewsReply((Article("航班提醒", "明日天气晴", "http://p/1.jpg", "http://u/1"),)),
            {
                "MsgType": "news",
                "ArticleCount": "1",
                "Articles": {
                    "item": {
                        "Title": "航班提醒",
                        "Description": "明日天气晴",
                        "PicUrl": "http://p/1.jpg",
                        "Url": "http://u/1",
                    }
                },
            },
        ),
    ],
)
def test_reply_shapes_round_trip_through_safe_mode(reply: object, expected: dict[str, object]) -> None:
    query, body = safe_push(TEXT)
    push = parse_push(query, body, SAFE)
    inner = decrypt_reply(render_passive_reply(push, reply, now=NOW))  # type: ignore[arg-type]
    for key, value in expected.items():
        assert inner[key] == value


def test_news_reply_article_limits() -> None:
    push = parse_push(plain_query(), TEXT, PLAIN)
    with pytest.raises(ValueError):
        render_passive_reply(push, NewsReply(()))
    with pytest.raises(ValueError):
        render_passive_reply(push, NewsReply(tuple(Article(str(i)) for i in range(9))))


def test_control_characters_are_dropped_from_replies() -> None:
    push = parse_push(plain_query(), TEXT, PLAIN)
    out = render_passive_reply(push, "a\x00b\x07c\nd", now=NOW)
    assert xmltodict.parse(out.decode())["xml"]["Content"] == "abc\nd"


# -- property: corrupted envelopes --------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_corrupted_safe_mode_push_only_raises_inbound_rejected(data: st.DataObject) -> None:
    query, body = safe_push(TEXT)
    encrypt = xmltodict.parse(body.decode())["xml"]["Encrypt"]
    chars = list(encrypt)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(chars) - 1))
        chars[i] = data.draw(st.sampled_from("ABCxyz019+/=@ \n"))
    if data.draw(st.booleans()):
        chars = chars[: data.draw(st.integers(0, len(chars)))]
    bad = "".join(chars)
    # Re-sign so the corruption reaches the decryption step, as a key-holding attacker could.
    query = {**query, "msg_signature": sha1_sorted(TOKEN, TS, NONCE, bad.strip())}
    try:
        push = parse_push(query, f"<xml><Encrypt><![CDATA[{bad}]]></Encrypt></xml>".encode(), SAFE)
    except InboundRejected as exc:
        assert 400 <= exc.status_code < 500
    else:
        assert push.event.external_id == "1234567890123456"  # only a no-op change can parse


# -- the envelope shortcut means what the parser says ---------------------------------------------

_PIECES = [
    "<xml>",
    "</xml>",
    "<ToUserName><![CDATA[gh_3f8a1c2b9d0e]]></ToUserName>",
    "<ToUserName><![CDATA[gh_x]]></ToUserName>",
    "<Encrypt><![CDATA[QUJD+/0=]]></Encrypt>",
    "<Encrypt><![CDATA[REVG]]></Encrypt>",
    "<Encrypt>QUJD</Encrypt>",
    "<AgentID><![CDATA[1]]></AgentID>",
    "\n    ",
    " ",
    "\x0b",
    "\t",
    "<!DOCTYPE xml>",
    "&amp;",
    "<?xml version='1.0'?>",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=8))
def test_envelope_shortcut_agrees_with_parse_xml(pieces: list[str]) -> None:
    from scrm.channels.wechat.handler import envelope_encrypt
    from scrm.channels.wechat.parser import parse_xml

    body = "".join(pieces).encode()
    try:
        expected: object = parse_xml(body).get("Encrypt")
    except InboundRejected as exc:
        expected = exc.status_code
    try:
        got: object = envelope_encrypt(body)
    except InboundRejected as exc:
        got = exc.status_code
    assert got == expected


def test_envelope_shortcut_takes_the_bodies_wechat_sends() -> None:
    from scrm.channels.wechat import handler

    for body in (
        b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[QUJD]]></Encrypt></xml>",
        b"<xml>\n    <ToUserName><![CDATA[gh_1]]></ToUserName>\n    <Encrypt><![CDATA[QUJD]]></Encrypt>\n</xml>\n",
        b"<xml><Encrypt><![CDATA[QUJD]]></Encrypt><ToUserName><![CDATA[gh_1]]></ToUserName></xml>",
    ):
        assert handler._ENVELOPE.fullmatch(body) is not None
        assert handler.envelope_encrypt(body) == "QUJD"
    twice = b"<xml><ToUserName><![CDATA[a]]></ToUserName><Encrypt><![CDATA[QUJD]]></Encrypt><ToUserName><![CDATA[a]]></ToUserName></xml>"
    assert handler._ENVELOPE.fullmatch(twice) is None  # the parser refuses the duplicate
