"""Property tests over field VALUES (not just structure) of validly signed pushes.

Timestamps, message ids, coordinates, scales, precisions and free text are drawn from hostile
value sets (huge ints, non-ASCII digits, NaN / Infinity spellings, NUL and surrogate escapes,
random text) and go through the parser and through the real endpoint (the product app, group
committer, real database: SQLite or PostgreSQL). The properties: never anything but a 4xx or
the acknowledgement, and an accepted push is stored as JSON that storage and the codec take."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from sqlalchemy import select

from scrm.app import create_app
from scrm.channels.base import InboundRejected, json_problem
from scrm.channels.wechat import simulate as wechat_sim
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.parser import parse_document
from scrm.channels.weibo import simulate as weibo_sim
from scrm.channels.weibo.config import WeiboAccountConfig
from scrm.channels.weibo.parser import loads_strict, parse_push_payload
from scrm.config import Settings
from scrm.db import Database
from scrm.inbound import codec
from scrm.inbound.service import stored_event
from scrm.models import InboundEvent as InboundEventRow
from scrm.workspace import service
from tests.channels.helpers import AES_KEY, APPID, ORIGINAL_ID, TOKEN
from tests.conftest import Workspace

NS = f"wechat:{APPID}"
WEIBO_UID = "1902538057"
WEIBO_SECRET = "xyz123xyz"
PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# -- value strategies -------------------------------------------------------------------------------

ODD_NUMBERS = st.sampled_from(
    [
        "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "-1e400", "1e-400", "0", "-0",
        "²", "٣", "１２", "1_0", "0x1F", " 12 ", "1,5", "", "9" * 30, "1" * 400, "23.137466",
    ]
)  # fmt: skip
NUMBERS = st.one_of(
    ODD_NUMBERS,
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.text(max_size=12),
)
TIMES = st.one_of(
    st.integers(-10, 10**14).map(str),
    st.integers(0, 4_200_000_000).map(str),
    st.sampled_from(["999999999999", "²", "١٣٤٨٨٣١٨٦٠", "4102444800", "4102444801", "1348831860123", "0"]),
    st.text(alphabet="0123456789²³¹١٢٣٤٥٦٧٨٩٠０１２", min_size=1, max_size=14),
)
IDS = st.one_of(
    st.integers(0, 2**70).map(str),
    st.sampled_from(["", "abc", "²", "１２３", "1" * 21, "18446744073709551615"]),
    st.text(max_size=22),
)
TEXT = st.text(max_size=40)


def _xml_safe(value: str) -> str:
    return escape(value)


def _pick(draw: st.DrawFn, names: list[str]) -> set[str]:
    """Which fields get a hostile value this time (at most two: most documents stay close to a
    real push, so each odd value is also tried next to otherwise valid fields)."""
    return draw(st.sets(st.sampled_from(names), max_size=2))


def wechat_document(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(["text", "location", "LOCATION", "unknown"]))
    fields: dict[str, str] = {
        "ToUserName": ORIGINAL_ID,
        "FromUserName": "oFAN_props_0000000000000001",
        "CreateTime": str(draw(st.integers(1_300_000_000, 1_900_000_000))),
    }
    odd: dict[str, st.SearchStrategy[str]] = {"FromUserName": TEXT, "CreateTime": TIMES}
    if shape == "text":
        fields.update(MsgType="text", Content=draw(TEXT), MsgId=str(draw(st.integers(0, 2**63))))
        odd.update(MsgId=IDS)
    elif shape == "location":
        fields.update(
            MsgType="location",
            Location_X="23.134521",
            Location_Y="113.358803",
            Scale="20",
            Label=draw(TEXT),
            MsgId=str(draw(st.integers(0, 2**63))),
        )
        odd.update(Location_X=NUMBERS, Location_Y=NUMBERS, Scale=NUMBERS, MsgId=IDS)
    elif shape == "LOCATION":
        fields.update(
            MsgType="event", Event="LOCATION", Latitude="23.137466", Longitude="113.352425", Precision="119.3"
        )
        odd.update(Latitude=NUMBERS, Longitude=NUMBERS, Precision=NUMBERS)
    else:
        fields.update(MsgType=draw(TEXT), Extra=draw(NUMBERS), MsgId=str(draw(st.integers(0, 2**63))))
        odd.update(MsgId=IDS)
    for name in _pick(draw, sorted(odd)):
        fields[name] = draw(odd[name])
    return "<xml>" + "".join(f"<{k}>{_xml_safe(v)}</{k}>" for k, v in fields.items()) + "</xml>"


JSON_TOKENS = st.one_of(
    st.sampled_from(
        [
            "1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1.5", '"nan"', '"1e999"', '"Infinity"',
            "123456789012345678901234567890", '"٣"', '"\\u0000"', '"\\ud800"', '"\\udfff"',
            '"\\ud83d\\ude00"', "null", "true", "{}", "[]", '"²"', "-1", "0", "18446744073709551616",
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
    st.integers(-(10**25), 10**25).map(str),
    TEXT.map(json.dumps),
)  # fmt: skip
CREATED = st.one_of(
    st.just('"Mon Jul 16 18:09:20 +0800 2012"'),
    st.builds(
        lambda y, d, t: json.dumps(f"Mon Jul {d} {t} +0800 {y}"),
        st.one_of(st.integers(0, 100000).map(str), st.sampled_from(["٢٠١٢", "2012", "1969", "2101"])),
        st.sampled_from(["16", "١٦", "99", "0"]),
        st.sampled_from(["18:09:20", "18:09:+1", "25:00:00", "18:09"]),
    ),
    JSON_TOKENS,
)


def weibo_document(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["text", "position", "event"]))
    values = {
        "sender_id": str(draw(st.integers(1, 2**63))),
        "created_at": '"Mon Jul 16 18:09:20 +0800 2012"',
        "text": json.dumps(draw(TEXT)),
        "a": json.dumps(str(draw(st.floats(-90, 90)))),
        "b": str(draw(st.integers(0, 2**62))),
    }
    odd = {
        "sender_id": JSON_TOKENS,
        "created_at": CREATED,
        "text": JSON_TOKENS,
        "a": JSON_TOKENS,
        "b": JSON_TOKENS,
    }
    for name in _pick(draw, sorted(odd)):
        values[name] = draw(odd[name])
    a, b = values["a"], values["b"]
    data = (
        f'{{"latitude":{a},"longitude":{b}}}'
        if kind == "position"
        else f'{{"subtype":"mention","status_id":{a},"comment_id":{b}}}'
        if kind == "event"
        else f'{{"extra":{a},"more":{b}}}'
    )
    return (
        f'{{"type":"{kind}","receiver_id":{WEIBO_UID},"sender_id":{values["sender_id"]},'
        f'"created_at":{values["created_at"]},"text":{values["text"]},"data":{data}}}'
    )


wechat_documents = st.composite(lambda draw: wechat_document(draw))()
weibo_documents = st.composite(lambda draw: weibo_document(draw))()


def assert_storable(event: Any) -> None:
    document = stored_event(event)
    assert json_problem(document) is None
    assert codec.from_json(json.loads(json.dumps(document, allow_nan=False))) == event


# -- the parsers --------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(wechat_documents)
def test_wechat_values_parse_to_a_storable_event_or_a_clean_400(xml: str) -> None:
    try:
        event = parse_document(xml, namespace=NS)
    except InboundRejected as exc:
        assert exc.status_code in (400, 403)
        return
    assert_storable(event)


@settings(max_examples=500, deadline=None)
@given(weibo_documents)
def test_weibo_values_parse_to_a_storable_event_or_a_clean_400(body: str) -> None:
    try:
        event = parse_push_payload(loads_strict(body.encode()), receiver_uid=WEIBO_UID)
    except InboundRejected as exc:
        assert exc.status_code in (400, 403)
        return
    assert_storable(event)


# -- the endpoint -------------------------------------------------------------------------------------


@pytest.fixture
def app_client(
    db: Database, settings: Settings, workspace: Workspace
) -> Iterator[tuple[TestClient, int, int]]:
    with db.transaction() as s:
        wechat = service.create_channel_account(
            s,
            workspace.id,
            "wechat",
            "公众号",
            external_id=APPID,
            config={"original_id": ORIGINAL_ID},
            secrets={"token": TOKEN, "secret": "wechat-app-secret-0001", "encoding_aes_key": AES_KEY},
        )
        weibo = service.create_channel_account(
            s,
            workspace.id,
            "weibo",
            "官方微博",
            external_id=WEIBO_UID,
            secrets={"app_secret": WEIBO_SECRET, "access_token": "weibo-access-token-0001"},
        )
        ids = wechat.id, weibo.id
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as client:
        yield client, *ids


def _row(db: Database, external_id: str) -> InboundEventRow | None:
    with db.transaction(readonly=True) as s:
        return s.execute(
            select(InboundEventRow).where(InboundEventRow.external_id == external_id[:200])
        ).scalar_one_or_none()


WECHAT = WechatAccountConfig(appid=APPID, token=TOKEN, encoding_aes_key=AES_KEY, original_id=ORIGINAL_ID)
WEIBO = WeiboAccountConfig(uid=WEIBO_UID, app_secret=WEIBO_SECRET)


@PROPERTY
@given(xml=wechat_documents, encrypt=st.booleans())
def test_wechat_values_through_the_endpoint_are_stored_or_refused_never_a_500(
    app_client: tuple[TestClient, int, int], db: Database, xml: str, encrypt: bool
) -> None:
    client, wechat_id, _weibo_id = app_client
    query, body = wechat_sim.build_push(WECHAT, xml, encrypt=encrypt)
    response = client.post(f"/hooks/wechat/{wechat_id}", params=query, content=body)
    hypothesis_event(f"HTTP {response.status_code}")
    assert response.status_code in (200, 400, 403), (response.status_code, response.text)
    if response.status_code != 200:
        return
    assert response.text == "success"
    event = parse_document(xml, namespace=NS)  # what the endpoint accepted
    row = _row(db, event.external_id)
    assert row is not None and json_problem(row.event) is None
    assert codec.from_json(row.event).external_id == event.external_id


@PROPERTY
@given(body=weibo_documents)
def test_weibo_values_through_the_endpoint_are_stored_or_refused_never_a_500(
    app_client: tuple[TestClient, int, int], db: Database, body: str
) -> None:
    client, _wechat_id, weibo_id = app_client
    response = client.post(
        f"/hooks/weibo/{weibo_id}",
        params=weibo_sim.signed_query(WEIBO),
        content=body.encode(),
        headers={"content-type": "application/json"},
    )
    hypothesis_event(f"HTTP {response.status_code}")
    assert response.status_code in (200, 400, 403), (response.status_code, response.text)
    if response.status_code != 200:
        return
    event = parse_push_payload(loads_strict(body.encode()), receiver_uid=WEIBO_UID)
    row = _row(db, event.external_id)
    assert row is not None and json_problem(row.event) is None
    assert codec.from_json(row.event).external_id == event.external_id
