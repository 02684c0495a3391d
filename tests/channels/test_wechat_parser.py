from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy import parse_message as wechatpy_parse

from scrm.channels.base import InboundRejected
from scrm.channels.wechat.parser import MAX_BODY, parse_document, parse_xml

from .helpers import REPO, fixture_text

NS = "wechat:wx5823bf96d3bd56c7"
FAN = "oU7Hq5wS1dJm_0XkR4fLpA2eBcYz"
FIXTURES = REPO / "scrm" / "channels" / "wechat" / "fixtures"

# One expectation per recorded payload: attribute → expected value.
EXPECTED: dict[str, dict[str, Any]] = {
    "msg__text.xml": {
        "kind": "message",
        "msg_type": "text",
        "text": "this is a test",
        "external_id": "1234567890123456",
    },
    "msg__text_chinese_from_article.xml": {
        "kind": "message",
        "text": "我的行李丢了，航班号 CA1234，怎么办？",
        "external_id": "23987654321098765",
        "metadata.msg_data_id": "2247483651",
        "metadata.idx": "1",
    },
    "msg__image.xml": {
        "kind": "message",
        "msg_type": "image",
        "media": [
            {"type": "image", "media_id": "media_id_image_1", "url": "http://mmbiz.qpic.cn/mmbiz_jpg/abc/0"}
        ],
    },
    "msg__voice.xml": {
        "msg_type": "voice",
        "text": "",
        "media": [{"type": "voice", "media_id": "media_id_voice_1", "format": "amr"}],
    },
    "msg__voice_recognition.xml": {
        "msg_type": "voice",
        "text": "腾讯微信团队",
        "metadata.recognition": "腾讯微信团队",
    },
    "msg__video.xml": {
        "msg_type": "video",
        "media": [{"type": "video", "media_id": "media_id_video_1", "thumb_media_id": "thumb_media_id_1"}],
    },
    "msg__shortvideo.xml": {
        "msg_type": "shortvideo",
        "media": [
            {"type": "shortvideo", "media_id": "media_id_shortvideo_1", "thumb_media_id": "thumb_media_id_2"}
        ],
    },
    "msg__location.xml": {
        "kind": "message",
        "msg_type": "location",
        "text": "位置信息",
        "location": {"lat": 23.134521, "lng": 113.358803, "scale": 20.0, "label": "位置信息"},
    },
    "msg__link.xml": {
        "msg_type": "link",
        "text": "公众平台官网链接",
        "metadata.url": "https://mp.weixin.qq.com",
    },
    "msg__unknown_type.xml": {
        "kind": "unknown",
        "msg_type": "miniprogrampage",
        "external_id": "1234567890123464",
        "metadata.fields.AppId": "wx_mini_1",
    },
    "event__subscribe.xml": {"kind": "subscribe", "scene": None, "external_id": f"{FAN}:123456789:subscribe"},
    "event__subscribe_scan.xml": {
        "kind": "subscribe",
        "scene": "123123",
        "metadata.ticket": "TICKET",
        "metadata.subscribe_scan": True,
    },
    "event__unsubscribe.xml": {"kind": "unsubscribe", "external_id": f"{FAN}:123456790:unsubscribe"},
    "event__scan.xml": {"kind": "scan", "scene": "SCENE_VALUE", "external_id": f"{FAN}:123456789:scan"},
    "event__location.xml": {
        "kind": "location",
        "location": {"lat": 23.137466, "lng": 113.352425, "precision": 119.38504},
    },
    "event__click.xml": {"kind": "click", "menu_key": "V1001_TODAY_MUSIC"},
    "event__view.xml": {
        "kind": "view",
        "menu_key": "https://www.example.com/order?from=menu",
        "metadata.menu_id": "208379533",
    },
    "event__templatesendjobfinish.xml": {
        "kind": "unknown",
        "msg_type": "event",
        "metadata.event": "TEMPLATESENDJOBFINISH",
        "metadata.fields.Status": "success",
    },
    "event__scancode_push.xml": {
        "kind": "unknown",
        "metadata.event": "scancode_push",
        "metadata.fields.ScanCodeInfo": {"ScanType": "qrcode", "ScanResult": "1"},
    },
}


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.xml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str) -> None:
    event = parse_document(fixture_text("wechat", name), namespace=NS)
    for attribute, expected in EXPECTED[name].items():
        assert _get(event, attribute) == expected, attribute
    assert event.sender.external_id == FAN
    assert event.sender.namespace == NS
    assert event.sent_at.tzinfo is not None
    assert event.visibility == "private"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_agrees_with_wechatpy(name: str) -> None:
    body = fixture_text("wechat", name)
    theirs = wechatpy_parse(body.decode())
    ours = parse_document(body, namespace=NS)
    assert ours.sender.external_id == theirs.source
    assert ours.sent_at == dt.datetime.fromtimestamp(theirs.create_time.timestamp(), dt.UTC)
    if ours.kind == "message":
        assert ours.external_id == str(theirs.id)
    if theirs.type == "subscribe_scan":
        assert ours.scene == theirs.scene_id


def test_created_time_and_metadata() -> None:
    event = parse_document(fixture_text("wechat", "msg__text.xml"), namespace=NS)
    assert event.sent_at == dt.datetime(2012, 9, 28, 11, 31, tzinfo=dt.UTC)
    assert event.metadata["to"] == "gh_3f8a1c2b9d0e"


def test_event_names_compare_case_insensitively() -> None:
    body = fixture_text("wechat", "event__click.xml").replace(b"CLICK", b"click")
    assert parse_document(body, namespace=NS).kind == "click"


def test_wrong_to_user_is_rejected_when_original_id_known() -> None:
    body = fixture_text("wechat", "msg__text.xml")
    assert parse_document(body, namespace=NS, original_id="gh_3f8a1c2b9d0e").kind == "message"
    with pytest.raises(InboundRejected) as info:
        parse_document(body, namespace=NS, original_id="gh_someone_else")
    assert info.value.status_code == 403


def test_same_message_retried_keeps_its_dedup_key() -> None:
    body = fixture_text("wechat", "event__subscribe_scan.xml")
    keys = {parse_document(body, namespace=NS).external_id for _ in range(4)}
    assert len(keys) == 1


# -- hostile input (reference §5.4) --------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd">
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>"""
PARAMETER_ENTITY = (
    b"""<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x">%p;]><xml/>"""
)
HEAD = b"<ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (BILLION_LAUGHS, 400),
        (XXE, 400),
        (EXTERNAL_DTD, 400),
        (PARAMETER_ENTITY, 400),
        (b"<xml>" + b"<a>" * 15_000 + b"</a>" * 15_000 + b"</xml>", 400),  # deep nesting, no MsgType
        (b"<xml>" + b" " * (10 * 1024 * 1024) + b"</xml>", 413),  # 10 MB
        ("<xml><Content>中文</Content></xml>".encode("gbk"), 400),  # not UTF-8
        (b"\xff\xfe<\x00x\x00", 400),
        (b"<xml>" + HEAD + b"<Content>x</Content><MsgId>1</MsgId></xml>", 400),  # missing MsgType
        (b"<xml>" + HEAD + b"<MsgType>text</MsgType><MsgType>event</MsgType></xml>", 400),  # duplicate
        (b"<xml>" + HEAD + b"<FromUserName>o2</FromUserName><MsgType>text</MsgType></xml>", 400),
        (b"<notxml>" + HEAD + b"<MsgType>text</MsgType></notxml>", 400),
        (b"<xml>" + HEAD + b"<MsgType>text</MsgType>", 400),  # truncated
        (b"", 400),
        (b'{"MsgType": "text"}', 400),  # JSON instead of XML
        (b"<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>yesterday</CreateTime>"
         b"<MsgType>text</MsgType></xml>", 400),
    ],
    ids=[
        "billion-laughs", "xxe", "external-dtd", "parameter-entity", "deep-nesting", "10MB", "gbk",
        "utf16", "missing-msgtype", "duplicate-msgtype", "duplicate-from", "wrong-root", "truncated",
        "empty", "json", "bad-createtime",
    ],
)  # fmt: skip
def test_hostile_documents_are_rejected_cleanly(body: bytes, status: int) -> None:
    with pytest.raises(InboundRejected) as info:
        parse_document(body, namespace=NS)
    assert info.value.status_code == status


def test_deep_nesting_inside_a_valid_message_is_bounded() -> None:
    deep = b"<Extra>" + b"<a>" * 15_000 + b"x" + b"</a>" * 15_000 + b"</Extra>"
    body = b"<xml>" + HEAD + b"<MsgType>weird</MsgType>" + deep + b"</xml>"
    event = parse_document(body, namespace=NS)
    assert event.kind == "unknown"
    depth, node = 0, event.metadata["fields"]["Extra"]
    while isinstance(node, dict) and node:
        node, depth = next(iter(node.values())), depth + 1
    assert depth <= 4


def test_size_cap_is_checked_before_parsing() -> None:
    # Just over the cap but otherwise a perfectly valid message: still refused.
    valid = fixture_text("wechat", "msg__text.xml")
    padded = valid.replace(b"</xml>", b" " * (MAX_BODY - len(valid) + 1) + b"</xml>")
    assert len(padded) == MAX_BODY + 1
    with pytest.raises(InboundRejected) as info:
        parse_document(padded, namespace=NS)
    assert info.value.status_code == 413


def test_encoding_declaration_cannot_switch_away_from_utf8() -> None:
    body = '<?xml version="1.0" encoding="GBK"?><xml><Content>你好</Content></xml>'.encode()
    assert parse_xml(body)["Content"] == "你好"


def test_unknown_event_keeps_all_fields() -> None:
    body = b"<xml>" + HEAD + b"<MsgType>event</MsgType><Event>brand_new_event</Event><Foo>bar</Foo></xml>"
    event = parse_document(body, namespace=NS)
    assert event.kind == "unknown"
    assert event.metadata["fields"]["Foo"] == "bar"
    assert event.external_id == "o:1:brand_new_event"


def test_cdata_end_marker_in_content_round_trips() -> None:
    body = b"<xml>" + HEAD + b"<MsgType>text</MsgType><Content><![CDATA[a]]]]><![CDATA[>b]]></Content></xml>"
    assert parse_document(body, namespace=NS).text == "a]]>b"


field_names = st.sampled_from(
    ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event", "EventKey", "X"]
)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_random_xml_corruption_never_raises_anything_else(data: st.DataObject) -> None:
    base = bytearray(fixture_text("wechat", data.draw(st.sampled_from(sorted(EXPECTED)))))
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.integers(0, 2))
        i = data.draw(st.integers(0, len(base)))
        if op == 0 and base:
            del base[min(i, len(base) - 1)]
        elif op == 1:
            base[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            tag = data.draw(field_names).encode()
            base[i:i] = b"<" + tag + b">" + data.draw(st.binary(max_size=6)) + b"</" + tag + b">"
    try:
        event = parse_document(bytes(base), namespace=NS)
    except InboundRejected as exc:
        assert exc.status_code in (400, 403, 413)
    else:
        assert event.kind in {
            "message",
            "subscribe",
            "unsubscribe",
            "scan",
            "click",
            "view",
            "location",
            "unknown",
        }


# -- the expat tree builder is defusedxml's ElementTree, walked the same way -------------------


def _reference_parse_xml(text: str) -> dict[str, Any] | str:
    """What `parse_xml` returned when it built a defusedxml ElementTree (kept as the oracle)."""
    import xml.etree.ElementTree as StdET

    import defusedxml
    import defusedxml.ElementTree as SafeET

    def value(element: Any, depth: int) -> Any:
        if len(element) == 0:
            return element.text or ""
        if depth >= 4:
            return {}
        nested: dict[str, Any] = {}
        for child in element:
            v = value(child, depth + 1)
            if child.tag in nested:
                prev = nested[child.tag]
                nested[child.tag] = [*prev, v] if isinstance(prev, list) else [prev, v]
            else:
                nested[child.tag] = v
        return nested

    try:
        root = SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        return f"forbidden:{type(exc).__name__}"
    except (StdET.ParseError, ValueError):
        return "malformed"
    if root.tag != "xml":
        return "root"
    fields: dict[str, Any] = {}
    for child in root:
        if child.tag in fields:
            return "duplicate"
        fields[child.tag] = value(child, 1)
    return fields


def _ours(text: str) -> dict[str, Any] | str:
    try:
        return parse_xml(text)
    except InboundRejected as exc:
        if exc.detail.startswith("forbidden XML construct"):
            return "forbidden:" + exc.detail.split("(")[1].rstrip(")")
        return {
            "malformed XML": "malformed",
            "root element must be <xml>": "root",
        }.get(exc.detail, "duplicate" if exc.detail.startswith("duplicate") else exc.detail)


_TAGS = st.sampled_from(["xml", "ToUserName", "Content", "a", "b", "ns:x", "item"])
_TEXT = st.sampled_from(
    ["", "x", " ", "你好", "&amp;", "&lt;b&gt;", "&#20320;", "a]]b", "&bogus;", "<", "\n"]
)


@st.composite
def _element(draw: Any, depth: int = 0) -> str:
    tag = draw(_TAGS)
    if depth >= 5 or draw(st.booleans()):
        inner = draw(_TEXT)
        if draw(st.booleans()):
            inner = f"<![CDATA[{inner}]]>"
    else:
        parts = [draw(_element(depth + 1)) for _ in range(draw(st.integers(0, 3)))]
        inner = draw(_TEXT).join(parts) + draw(st.sampled_from(["", "tail", "<!-- c -->"]))
    attrs = draw(st.sampled_from(["", ' id="1"', ' xmlns:ns="urn:x"']))
    return f"<{tag}{attrs}>{inner}</{tag}>"


_PROLOGUE = st.sampled_from(
    [
        "",
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0" encoding="GBK"?>',
        '<!DOCTYPE xml [<!ENTITY a "aaaa">]>',
        '<!DOCTYPE xml SYSTEM "http://example.com/x.dtd">',
        "<!-- hi -->",
    ]
)


@settings(max_examples=400, deadline=None)
@given(_PROLOGUE, _element(), st.sampled_from(["", " ", "<x/>", "junk"]))
def test_parse_xml_matches_the_defusedxml_elementtree_it_replaced(
    prologue: str, body: str, trailer: str
) -> None:
    text = prologue + body + trailer
    assert _ours(text) == _reference_parse_xml(text)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.xml")))
def test_parse_xml_of_every_fixture_matches_the_elementtree_reference(name: str) -> None:
    text = (FIXTURES / name).read_text("utf-8")
    assert _ours(text) == _reference_parse_xml(text)
