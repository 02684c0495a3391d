"""Hostile field VALUES in validly signed pushes: timestamps out of range or in non-ASCII
digits, NaN / Infinity coordinates, NUL characters, lone surrogates, huge integers.

Each is refused with a clear 400 (nothing stored) or kept as a storable value (a coordinate
that is not a finite number becomes None). The inbound service refuses any event that storage
would refuse, alone, before it joins a group-commit batch, so one bad push never fails the
other pushes in flight (run on SQLite and on PostgreSQL, whose JSON refuses NaN)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest
from sqlalchemy import func, select

from scrm.channels.base import InboundEvent, InboundRejected, Sender, json_problem
from scrm.channels.wechat import parser as wechat_parser
from scrm.channels.wechat import simulate as wechat_sim
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.parser import parse_document
from scrm.channels.weibo import simulate as weibo_sim
from scrm.channels.weibo.config import WeiboAccountConfig
from scrm.channels.weibo.parser import loads_strict, parse_created_at, parse_push_payload
from scrm.config import Settings
from scrm.db import Database
from scrm.inbound import codec
from scrm.inbound.service import Batch, stored_event
from scrm.models import InboundEvent as InboundEventRow
from scrm.workspace import service
from tests.channels.helpers import AES_KEY, APPID, ORIGINAL_ID, TOKEN
from tests.channels.live import serve
from tests.conftest import Workspace
from tests.helpers import signed_headers, webhook_event

NS = f"wechat:{APPID}"
FAN = "oFAN_hostile_values_000000001"
WEIBO_UID = "1902538057"
WEIBO_SECRET = "xyz123xyz"


def wechat_xml(fields: dict[str, str]) -> str:
    head = {"ToUserName": ORIGINAL_ID, "FromUserName": FAN, "CreateTime": "1348831860", "MsgType": "text"}
    return "<xml>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in {**head, **fields}.items()) + "</xml>"


def assert_storable(event: InboundEvent) -> None:
    document = stored_event(event)
    assert json_problem(document) is None
    json.dumps(document, allow_nan=False)  # what PostgreSQL's JSON would accept
    assert codec.from_json(json.loads(json.dumps(document))) == event


# -- WeChat CreateTime -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "create_time",
    [
        "999999999999",  # 12 digits: year 33658
        "4102444801",  # one second past 2100-01-01
        "9999999999999",  # milliseconds, year 2286
        "99999999999999",  # 14 digits
        "²",  # str.isdigit() says yes, int() says no
        "١٣٤٨٨٣١٨٦٠",  # Arabic-Indic digits: int() would take them
        "１３４８８３１８６０",  # full-width digits
        "-1",
        "+1348831860",
        "1e9",
        "0x50000000",
        "1_348_831_860",
    ],
)
def test_create_time_out_of_range_or_not_ascii_digits_is_a_clean_400(create_time: str) -> None:
    with pytest.raises(InboundRejected) as err:
        parse_document(wechat_xml({"CreateTime": create_time, "Content": "x", "MsgId": "1"}), namespace=NS)
    assert err.value.status_code == 400 and "CreateTime" in err.value.detail


@pytest.mark.parametrize(
    ("create_time", "expected"),
    [
        ("1348831860", dt.datetime(2012, 9, 28, 11, 31, tzinfo=dt.UTC)),
        ("1348831860123", dt.datetime(2012, 9, 28, 11, 31, tzinfo=dt.UTC)),  # milliseconds
        ("0", dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
        ("4102444800", dt.datetime(2100, 1, 1, tzinfo=dt.UTC)),
    ],
)
def test_create_time_in_range_is_accepted(create_time: str, expected: dt.datetime) -> None:
    event = parse_document(
        wechat_xml({"CreateTime": create_time, "Content": "x", "MsgId": "7"}), namespace=NS
    )
    assert event.sent_at == expected
    assert_storable(event)


@pytest.mark.parametrize("msg_id", ["abc", "１２３", "²", "1" * 21, "12 34"])
def test_msg_id_that_is_not_a_64_bit_id_is_refused(msg_id: str) -> None:
    with pytest.raises(InboundRejected) as err:
        parse_document(wechat_xml({"Content": "x", "MsgId": msg_id}), namespace=NS)
    assert err.value.status_code == 400 and "MsgId" in err.value.detail


def test_overlong_openid_and_type_are_refused() -> None:
    for fields in ({"FromUserName": "o" * 129}, {"MsgType": "t" * 65}):
        with pytest.raises(InboundRejected) as err:
            parse_document(wechat_xml({"Content": "x", "MsgId": "1", **fields}), namespace=NS)
        assert err.value.status_code == 400


# -- WeChat coordinates ---------------------------------------------------------------------------

NOT_FINITE = ["nan", "NaN", "-nan", "inf", "Infinity", "-Infinity", "1e999", "-1e400", "٣", "1" * 40]


@pytest.mark.parametrize("value", NOT_FINITE)
def test_location_message_with_a_non_finite_coordinate_keeps_none(value: str) -> None:
    xml = wechat_xml(
        {
            "MsgType": "location",
            "Location_X": value,
            "Location_Y": "113.358803",
            "Scale": value,
            "Label": "位置信息",
            "MsgId": "1234567890123456",
        }
    )
    event = parse_document(xml, namespace=NS)
    assert event.location == {"lat": None, "lng": 113.358803, "scale": None, "label": "位置信息"}
    assert_storable(event)


@pytest.mark.parametrize("value", NOT_FINITE)
def test_location_event_with_non_finite_values_keeps_none(value: str) -> None:
    xml = wechat_xml(
        {"MsgType": "event", "Event": "LOCATION", "Latitude": value, "Longitude": value, "Precision": value}
    )
    event = parse_document(xml, namespace=NS)
    assert event.kind == "location"
    assert event.location == {"lat": None, "lng": None, "precision": None}
    assert_storable(event)


# -- Weibo ------------------------------------------------------------------------------------------


def weibo_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "text",
        "receiver_id": int(WEIBO_UID),
        "sender_id": 2489518277,
        "created_at": "Mon Jul 16 18:09:20 +0800 2012",
        "text": "你好",
        "data": {},
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "value", ["nan", "NaN", "Infinity", "-inf", "1e999", "٣٩", "1" * 40, True, None, [1]]
)
def test_weibo_position_with_non_finite_coordinates_keeps_none(value: object) -> None:
    payload = weibo_body(type="position", data={"latitude": value, "longitude": "116.308586"})
    event = parse_push_payload(loads_strict(json.dumps(payload).encode()))
    assert event.location == {"lat": None, "lng": 116.308586, "label": "你好"}
    assert_storable(event)


@pytest.mark.parametrize(
    ("raw_body", "reason"),
    [
        ('{"type":"position","data":{"latitude":1e999}}', "out of range"),
        ('{"type":"position","data":{"latitude":-1e999}}', "out of range"),
        ('{"type":"position","data":{"latitude":NaN}}', "NaN"),
        ('{"type":"position","data":{"latitude":Infinity}}', "Infinity"),
        ('{"type":"text","sender_id":123456789012345678901234567890}', "out of range"),
        ('{"type":"text","text":"a\\u0000b"}', "NUL"),
        ('{"type":"text","text":"\\ud800"}', "surrogate"),
        ('{"type":"text","data":{"\\udfff":1}}', "surrogate"),
    ],
)
def test_weibo_json_values_that_storage_refuses_are_a_clean_400(raw_body: str, reason: str) -> None:
    with pytest.raises(InboundRejected) as err:
        loads_strict(raw_body.encode())
    assert err.value.status_code == 400 and reason in err.value.detail


def test_weibo_escaped_emoji_is_fine() -> None:
    payload = loads_strict(json.dumps(weibo_body(text="\U0001f600 好")).encode())  # ensure_ascii escapes
    event = parse_push_payload(payload)
    assert event.text == "\U0001f600 好"
    assert_storable(event)


@pytest.mark.parametrize("sender_id", ["²", "١٢٣", "１２３", 2**64, -1, "1" * 21, 1.5])
def test_weibo_ids_must_be_ascii_int64(sender_id: object) -> None:
    with pytest.raises(InboundRejected) as err:
        parse_push_payload(weibo_body(sender_id=sender_id))
    assert err.value.status_code == 400 and "sender_id" in err.value.detail


@pytest.mark.parametrize(
    "created_at",
    [
        "Mon Jul 16 18:09:20 +0800 99999",
        "Mon Jul 16 18:09:20 +0800 1969",
        "Mon Jul 16 18:09:20 +0800 2101",
        "Mon Jul 16 18:09:20 +0800 ٢٠١٢",
        "Mon Jul ١٦ 18:09:20 +0800 2012",
        "Mon Jul 16 18:09:+1 +0800 2012",
        "Mon Jul 16 18:09 +0800 2012",
        "Mon Jul 16 18:09:20 +0800 2012 " + "x" * 100,
    ],
)
def test_weibo_created_at_out_of_range_or_not_ascii_is_a_clean_400(created_at: str) -> None:
    with pytest.raises(InboundRejected) as err:
        parse_push_payload(weibo_body(created_at=created_at))
    assert err.value.status_code == 400 and "created_at" in err.value.detail


def test_weibo_created_at_in_range() -> None:
    assert parse_created_at("Fri Dec 31 23:59:59 -0800 2099") == dt.datetime(
        2100, 1, 1, 7, 59, 59, tzinfo=dt.UTC
    )


def test_weibo_mention_with_odd_status_ids_keeps_a_bounded_thread_key() -> None:
    for odd in ({"a": 1}, "x" * 65, "12 34", True, -5):
        payload = weibo_body(type="event", data={"subtype": "mention", "status_id": odd})
        event = parse_push_payload(payload)
        assert event.kind == "mention" and event.thread_key == ""
        assert_storable(event)
    event = parse_push_payload(weibo_body(type="event", data={"subtype": "mention", "mid": "Jq8kBxYz"}))
    assert event.thread_key == "Jq8kBxYz"


# -- the inbound service's last line ---------------------------------------------------------------

BASE = InboundEvent(
    external_id="e-1",
    kind="message",
    sender=Sender(external_id="u1", namespace="webhook:1"),
    sent_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
    text="你好",
)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"metadata": {"lat": math.nan}}, "non-finite"),
        ({"location": {"lat": math.inf, "lng": 1.0}}, "non-finite"),
        ({"media": [{"size": -math.inf}]}, "non-finite"),
        ({"text": "a\x00b"}, "NUL"),
        ({"external_id": "id\x00"}, "NUL"),
        ({"metadata": {"k": "\ud800"}}, "surrogate"),
        ({"metadata": {"\udc00": 1}}, "surrogate"),
        ({"sender": Sender(external_id="u1", name="\ud83d", namespace="webhook:1")}, "surrogate"),
        ({"metadata": {"n": 10**30}}, "out of range"),
        ({"metadata": {"s": {1, 2}}}, "cannot be stored"),
        ({"metadata": {1: "int key"}}, "not a string"),
        ({"metadata": {"d": dt.datetime(2024, 1, 1)}}, "cannot be stored"),
    ],
)
def test_batch_refuses_an_event_storage_would_refuse(change: dict[str, Any], reason: str) -> None:
    event = dataclasses.replace(BASE, **change)
    with pytest.raises(InboundRejected) as err:
        Batch(1, 2, "webhook", (BASE, event), raw="{}")
    assert err.value.status_code == 400 and reason in err.value.detail


def test_batch_refuses_a_raw_body_with_nul() -> None:
    with pytest.raises(InboundRejected) as err:
        Batch(1, 2, "webhook", (BASE,), raw="a\x00b")
    assert err.value.status_code == 400


def test_batch_keeps_plain_events_as_the_codec_would() -> None:
    event = dataclasses.replace(
        BASE, metadata={"nested": [1, 2.5, None, True, {"x": "好"}], "big": 2**63 - 1}, location={"lat": 1.0}
    )
    batch = Batch(1, 2, "webhook", (event,), raw="{}")
    assert json.dumps(batch.documents[0]) == json.dumps(codec.to_json(event))


# -- through the real endpoint, with other pushes in flight ------------------------------------------


@dataclass
class Accounts:
    url: str
    wechat_id: int
    wechat: WechatAccountConfig
    weibo_id: int
    weibo: WeiboAccountConfig
    webhook_id: int
    webhook_secret: str


@pytest.fixture
def live(db: Database, settings: Settings, workspace: Workspace) -> Iterator[Accounts]:
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
    with serve(db, settings) as url:
        yield Accounts(
            url,
            ids[0],
            WechatAccountConfig(
                appid=APPID, token=TOKEN, encoding_aes_key=AES_KEY, original_id=ORIGINAL_ID, secret="s"
            ),
            ids[1],
            WeiboAccountConfig(uid=WEIBO_UID, app_secret=WEIBO_SECRET),
            workspace.channel_id,
            workspace.channel_secret,
        )


def stored(db: Database) -> list[InboundEventRow]:
    with db.transaction(readonly=True) as s:
        return list(s.execute(select(InboundEventRow)).scalars())


def count(db: Database) -> int:
    with db.transaction(readonly=True) as s:
        return int(s.execute(select(func.count()).select_from(InboundEventRow)).scalar_one())


def post_wechat(http: httpx.Client, acc: Accounts, xml: str, *, encrypt: bool) -> httpx.Response:
    query, body = wechat_sim.build_push(acc.wechat, xml, encrypt=encrypt, openid=FAN)
    return http.post(f"{acc.url}/hooks/wechat/{acc.wechat_id}", params=query, content=body)


def post_weibo(http: httpx.Client, acc: Accounts, raw_body: str) -> httpx.Response:
    return http.post(
        f"{acc.url}/hooks/weibo/{acc.weibo_id}",
        params=weibo_sim.signed_query(acc.weibo),
        content=raw_body.encode(),
        headers={"content-type": "application/json"},
    )


def weibo_raw(
    text_field: str = '"你好"', data: str = "{}", sender: str = "2489518277", second: int = 20
) -> str:
    return (
        f'{{"type":"position","receiver_id":{WEIBO_UID},"sender_id":{sender},'
        f'"created_at":"Mon Jul 16 18:09:{second:02d} +0800 2012","text":{text_field},"data":{data}}}'
    )


def test_hostile_values_store_nothing_while_the_pushes_in_flight_with_them_succeed(
    live: Accounts, db: Database
) -> None:
    jobs: list[tuple[str, Any, int]] = []  # (channel, request, expected status)
    for i in range(30):
        xml = wechat_xml(
            {"Content": f"第 {i} 条", "MsgId": str(10**15 + i), "CreateTime": str(1700000000 + i)}
        )
        jobs.append(("wechat", (xml, i % 2 == 0), 200))
    for i in range(10):
        jobs.append(("weibo", weibo_raw(sender=str(2489518200 + i), data='{"latitude":"39.9"}'), 200))
    # A plain string that merely looks like an escape is fine.
    jobs.append(("webhook", webhook_event("hook-ok", "ok", metadata={"lone": "\\ud800"}), 202))
    good = len(jobs)
    jobs += [
        ("wechat", (wechat_xml({"Content": "x", "MsgId": "1", "CreateTime": "999999999999"}), False), 400),
        ("wechat", (wechat_xml({"Content": "x", "MsgId": "2", "CreateTime": "²"}), True), 400),
        ("wechat", (wechat_xml({"Content": "x", "MsgId": "²"}), False), 400),
        ("weibo", weibo_raw(data='{"latitude":1e999}'), 400),
        ("weibo", weibo_raw(data='{"latitude":NaN}'), 400),
        ("weibo", weibo_raw(text_field='"\\u0000"'), 400),
        ("weibo", weibo_raw(text_field='"\\ud800"'), 400),
        ("weibo", weibo_raw(sender="123456789012345678901234567890"), 400),
        ("webhook", webhook_event("hook-nul", "a\u0000b"), 400),  # the service's last line
    ]
    jobs.sort(key=lambda j: hash(str(j[1])))  # interleave the bad among the good

    def send(job: tuple[str, Any, int]) -> int:
        kind, arg, _expected = job
        with httpx.Client(timeout=30) as http:
            if kind == "wechat":
                return post_wechat(http, live, arg[0], encrypt=arg[1]).status_code
            if kind == "weibo":
                return post_weibo(http, live, arg).status_code
            url = f"{live.url}/hooks/webhook/{live.webhook_id}"
            return http.post(url, content=arg, headers=signed_headers(live.webhook_secret, arg)).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(send, jobs))
    assert [(kind, status) for (kind, _a, _e), status in zip(jobs, statuses, strict=True)] == [
        (kind, expected) for kind, _a, expected in jobs
    ]
    rows = stored(db)
    assert len(rows) == good
    assert all(json_problem(row.event) is None and "\x00" not in row.raw for row in rows)
    assert "hook-nul" not in {row.external_id for row in rows}


def test_nan_coordinates_are_stored_as_null(live: Accounts, db: Database) -> None:
    xml = wechat_xml({"MsgType": "event", "Event": "LOCATION", "Latitude": "nan", "Longitude": "Infinity"})
    with httpx.Client(timeout=30) as http:
        assert post_wechat(http, live, xml, encrypt=True).text == "success"
        assert (
            post_weibo(http, live, weibo_raw(data='{"latitude":"nan","longitude":"Infinity"}')).status_code
            == 200
        )
    locations = sorted((row.event["location"] for row in stored(db)), key=str)
    assert locations == [
        {"lat": None, "lng": None, "label": "你好"},
        {"lat": None, "lng": None, "precision": None},
    ]


def test_a_channel_that_lets_nan_through_is_refused_alone(
    live: Accounts, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line: were a parser to return NaN again, the inbound service refuses that push
    with a 400 before it joins a batch, and the pushes committed with it are unaffected."""
    real_float = wechat_parser._float

    def regressed(fields: Any, name: str) -> float | None:
        return math.nan if name == "Latitude" else real_float(fields, name)

    monkeypatch.setattr(wechat_parser, "_float", regressed)
    poisoned = wechat_xml({"MsgType": "event", "Event": "LOCATION", "Latitude": "1", "Longitude": "2"})
    texts = [wechat_xml({"Content": f"m{i}", "MsgId": str(10**16 + i)}) for i in range(20)]

    def send(xml: str) -> httpx.Response:
        with httpx.Client(timeout=30) as http:
            return post_wechat(http, live, xml, encrypt=False)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(send, [*texts[:10], poisoned, poisoned, *texts[10:]]))
    statuses = [r.status_code for r in responses]
    assert statuses[10:12] == [400, 400] and "cannot be stored" in responses[10].json()["detail"]
    assert statuses[:10] + statuses[12:] == [200] * 20
    assert count(db) == 20
