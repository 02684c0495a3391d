"""The product app answers platform pushes through the pure-ASGI fast path
(`scrm.inbound.social.InboundFastPath`) exactly as the FastAPI route does."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import xmltodict
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from wechatpy.crypto import WeChatCrypto

from scrm.app import create_app
from scrm.channels.base import InboundRejected
from scrm.channels.registry import AccountView
from scrm.channels.wechat import simulate
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.config import Settings
from scrm.db import Database
from scrm.inbound import committer, passive, social
from scrm.inbound.endpoints import router
from scrm.models import InboundEvent, Job
from scrm.workspace import service
from tests.channels.helpers import AES_KEY, APPID, ORIGINAL_ID, TOKEN
from tests.conftest import Workspace

FAN = "oFAN_fastpath_000000000000001"
CONFIG = WechatAccountConfig(
    appid=APPID, token=TOKEN, secret="s", encoding_aes_key=AES_KEY, original_id=ORIGINAL_ID
)


@pytest.fixture
def account_id(db: Database, workspace: Workspace) -> int:
    with db.transaction() as s:
        account = service.create_channel_account(
            s,
            workspace.id,
            "wechat",
            "公众号",
            external_id=APPID,
            config={"original_id": ORIGINAL_ID},
            secrets={"token": TOKEN, "secret": "s", "encoding_aes_key": AES_KEY},
        )
        return account.id


@pytest.fixture
def product(db: Database, settings: Settings) -> TestClient:
    return TestClient(create_app(settings, db), raise_server_exceptions=False)


@pytest.fixture
def route_only(db: Database) -> TestClient:
    app = FastAPI()
    app.include_router(router)
    app.state.db = db
    return TestClient(app)


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Query strings the fast path parsed (it alone calls `parse_query`)."""
    calls: list[bytes] = []
    original = social.parse_query

    def spy(query_string: bytes) -> dict[str, str]:
        calls.append(query_string)
        return original(query_string)

    monkeypatch.setattr(social, "parse_query", spy)
    yield calls


def count(db: Database, model: type) -> int:
    with db.transaction(readonly=True) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def push(**kw: Any) -> tuple[dict[str, str], bytes]:
    xml = simulate.build_message_xml(to_user=ORIGINAL_ID, from_user=FAN, **kw)
    return simulate.build_push(CONFIG, xml, encrypt=True, openid=FAN)


def answer(client: TestClient, path: str, query: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
    r = client.post(path, params=query, content=body, headers={"content-type": "text/xml"})
    return r.status_code, r.content, r.headers.get("content-type", "")


def test_pushes_take_the_fast_path_and_get_the_routes_answers(
    product: TestClient, route_only: TestClient, account_id: int, db: Database, fast_calls: list[bytes]
) -> None:
    path = f"/hooks/wechat/{account_id}"
    query, body = push(text="航班延误了", msg_id=5550001)
    bad_sig = {**query, "msg_signature": "f" * 40}
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b"<xml><ToUserName>&xxe;</ToUserName><Encrypt>x</Encrypt></xml>"
    )
    cases = [
        (path, query, body),  # stored
        (path, query, body),  # WeChat's retry: a duplicate, same answer
        (path, bad_sig, body),  # 401
        (path, {**query, "msg_signature": "0" * 40}, xxe),  # 400, DTD refused
        (path, query, b"<xml>" + b"A" * (300 * 1024) + b"</xml>"),  # 413
        (path, {k: v for k, v in query.items() if k != "timestamp"}, body),  # 400
        ("/hooks/wechat/999999", query, body),  # 404 unknown account
        (f"/hooks/nosuchchannel/{account_id}", query, body),  # 404 (not a fast-path kind)
    ]
    for case_path, case_query, case_body in cases:
        expected = answer(route_only, case_path, case_query, case_body)
        got = answer(product, case_path, case_query, case_body)
        assert got == expected, (case_path, got, expected)
    # A non-numeric id is not the fast path's: FastAPI validates it (the product's 422 format).
    invalid = product.post("/hooks/wechat/not-a-number", params=query, content=body)
    assert invalid.status_code == 422 and invalid.json()["field"] == "channel_id"
    assert len(fast_calls) == 7  # every wechat push with a numeric id, not the other kinds/paths
    assert count(db, InboundEvent) == 1 and count(db, Job) == 1


def test_fast_path_answers_carry_the_request_id(product: TestClient, account_id: int) -> None:
    query, body = push(text="你好")
    r = product.post(f"/hooks/wechat/{account_id}", params=query, content=body)
    assert r.status_code == 200 and r.content == b"success"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert len(r.headers["x-request-id"]) == 32
    mine = product.post(
        f"/hooks/wechat/{account_id}", params=query, content=body, headers={"x-request-id": "req-1"}
    )
    assert mine.headers["x-request-id"] == "req-1"


def test_concurrent_duplicates_through_the_fast_path_store_one_event(
    product: TestClient, account_id: int, db: Database, fast_calls: list[bytes]
) -> None:
    query, body = push(text="重复", msg_id=5550002)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: answer(product, f"/hooks/wechat/{account_id}", query, body), range(12))
        )
    assert set(answers) == {(200, b"success", "text/plain; charset=utf-8")}
    assert len(fast_calls) == 12
    assert count(db, InboundEvent) == 1 and count(db, Job) == 1


def test_passive_reply_through_the_fast_path(product: TestClient, account_id: int, db: Database) -> None:
    passive.register("test-fast", lambda account, event: "收到" if event.text == "ping" else None)
    try:
        query, body = push(text="ping", msg_id=5550003)
        for _ in range(2):
            r = product.post(f"/hooks/wechat/{account_id}", params=query, content=body)
            assert r.status_code == 200 and r.headers["content-type"] == "application/xml"
            envelope = xmltodict.parse(r.text)["xml"]
            plain = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
                r.text, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]
            )
            assert xmltodict.parse(plain)["xml"]["Content"] == "收到"
        with db.transaction(readonly=True) as s:
            stored = s.execute(select(InboundEvent)).scalar_one()
        assert stored.event["metadata"]["passive_reply"] == {"text": "收到"}
    finally:
        passive.unregister("test-fast")


def test_database_errors_keep_the_apps_answers(
    product: TestClient, account_id: int, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    query, body = push(text="数据库忙", msg_id=5550004)
    path = f"/hooks/wechat/{account_id}"
    product.post(path, params=query, content=body)  # warm the account cache

    async def busy(self: Any, item: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(committer.GroupCommitter, "store", busy)
    r = product.post(path, params=query, content=body)
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"] == "unavailable"

    async def broken(self: Any, item: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(committer.GroupCommitter, "store", broken)
    assert product.post(path, params=query, content=body).status_code == 500


@given(st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=6), st.booleans())
def test_parse_query_is_starlettes(pairs: list[tuple[str, str]], raw: bool) -> None:
    from urllib.parse import quote_plus

    if raw:  # unencoded, including stray separators and percent signs
        qs = "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8")
    else:
        qs = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs).encode("ascii")
    assert social.parse_query(qs) == dict(parse_qsl(qs.decode("latin-1"), keep_blank_values=True))


# -- the group committer and the account cache ---------------------------------------------------


def test_store_resolves_each_request_after_the_commit(
    db: Database, account_id: int, workspace: Workspace
) -> None:
    from scrm.channels.wechat import handler

    gc = committer.GroupCommitter(db, linger=0.001, busy=2)

    async def many() -> list[Any]:
        batches = []
        for i in range(20):
            q, b = push(text=f"批量 {i}", msg_id=5560000 + i % 10)  # ten retried twice
            p = handler.parse_push(q, b, CONFIG)
            batches.append(committer.service.Batch(workspace.id, account_id, "wechat", p.events, "raw"))
        return list(await asyncio.gather(*(gc.store(b) for b in batches)))

    results = asyncio.run(many())
    assert sum(accepted.new for (accepted,) in results) == 10
    by_id = {r[0].event_id for r in results}
    assert len(by_id) == 20  # each delivery got its own row id attempt; duplicates point nowhere new
    assert count(db, InboundEvent) == 10 and count(db, Job) == 10


def test_a_cancelled_waiter_does_not_stop_the_others() -> None:
    async def go() -> list[Any]:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        first.cancel()
        committer._resolve([(loop, first), (loop, second)], [[], RuntimeError("x")])
        with pytest.raises(RuntimeError):
            await second
        return []

    asyncio.run(go())


def test_expired_account_is_read_once_while_the_others_use_the_view_they_have(
    db: Database, account_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ("wechat", account_id)
    old = AccountView(account_id, 1, "wechat", "old", APPID, {}, {})
    committer._accounts[key] = committer._Cached(old, time.monotonic() - committer.ACCOUNT_TTL - 1)
    committer._refreshing.add(key)  # another request is reading it
    try:
        assert asyncio.run(committer.cached_account(db, "wechat", account_id)) is old
    finally:
        committer._refreshing.discard(key)
    fresh = asyncio.run(committer.cached_account(db, "wechat", account_id))
    assert fresh is not old and fresh.name == "公众号"
    assert key not in committer._refreshing
    with pytest.raises(InboundRejected) as exc:
        asyncio.run(committer.cached_account(db, "wechat", 987654321))
    assert exc.value.status_code == 404


# -- the stored form of an event and the per-account crypto ------------------------------------


def test_event_json_is_the_codecs_for_every_fixture_and_odd_values() -> None:
    import dataclasses
    import json
    from pathlib import Path

    from scrm.channels.wechat.parser import parse_document
    from scrm.inbound import codec
    from scrm.inbound.service import event_json

    fixtures = Path(__file__).resolve().parents[2] / "scrm" / "channels" / "wechat" / "fixtures"
    events = [
        parse_document(p.read_text("utf-8"), namespace="wechat:x") for p in sorted(fixtures.glob("*.xml"))
    ]
    assert len(events) > 10

    @dataclasses.dataclass
    class Odd:
        n: int

    base = events[0]
    events += [
        dataclasses.replace(base, metadata={"nested": {"list": [1, (2, 3)], "none": None, "f": 1.5}}),
        dataclasses.replace(base, metadata={"odd": Odd(1)}),  # not plain JSON: the codec's asdict
        dataclasses.replace(base, media=[{"type": "image", "odd": [Odd(2)]}]),
    ]
    for event in events:
        ours, theirs = event_json(event), codec.to_json(event)
        assert json.dumps(ours) == json.dumps(theirs)
        assert list(ours) == list(theirs)
    assert event_json(events[-2])["metadata"] == {"odd": {"n": 1}}


def test_crypto_is_built_once_per_account_config() -> None:
    from scrm.channels.wechat import handler, spec

    view = AccountView(1, 1, "wechat", "a", APPID, {}, {"token": TOKEN, "encoding_aes_key": AES_KEY})
    config = spec.cached_account_config(view)
    assert spec.cached_account_config(view) is config
    assert handler.crypto_for(config) is handler.crypto_for(config)
    edited = AccountView(1, 1, "wechat", "a", APPID, {}, {"token": "other", "encoding_aes_key": AES_KEY})
    other = spec.cached_account_config(edited)
    assert other is not config and other.token.get_secret_value() == "other"
    assert handler.crypto_for(other) is not handler.crypto_for(config)


def test_weibo_pushes_take_the_fast_path_with_the_routes_answers(
    product: TestClient, route_only: TestClient, db: Database, workspace: Workspace, fast_calls: list[bytes]
) -> None:
    import json

    from scrm.channels.weibo import simulate as weibo_sim
    from scrm.channels.weibo.config import WeiboAccountConfig

    with db.transaction() as s:
        account = service.create_channel_account(
            s,
            workspace.id,
            "weibo",
            "微博",
            external_id="1902538057",
            secrets={"app_secret": "weibo-secret", "access_token": "tok"},
        )
        path = f"/hooks/weibo/{account.id}"
    config = WeiboAccountConfig(uid="1902538057", app_secret="weibo-secret", access_token="tok")
    payload = weibo_sim.build_payload(config, sender_id="2000000001", text="快递三天没到")
    body = json.dumps(payload, ensure_ascii=False).encode()
    query = weibo_sim.signed_query(config)
    for case_query, case_body in [
        (query, body),  # stored
        (query, body),  # a retry: same answer
        ({**query, "signature": "0" * 40}, body),  # 401
        (query, b"{not json"),  # 400
    ]:
        expected = answer(route_only, path, case_query, case_body)
        assert answer(product, path, case_query, case_body) == expected
    assert len(fast_calls) == 4
    assert count(db, InboundEvent) == 1
