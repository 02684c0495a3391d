"""The generic signed webhook: accepted once, acknowledged, never stored when refused."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from scrm.app import create_app
from scrm.db import Database
from scrm.models import InboundEvent, Job, Message
from tests.conftest import Workspace
from tests.helpers import run_jobs, signed_headers, webhook_event


@pytest.fixture
def client(db: Database, settings) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_app(settings, db))


def count(db: Database, model: type) -> int:
    with db.transaction(readonly=True) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def post(client: TestClient, ws: Workspace, body: bytes, **kw):  # type: ignore[no-untyped-def]
    headers = kw.pop("headers", None) or signed_headers(ws.channel_secret, body)
    return client.post(f"/hooks/webhook/{ws.channel_id}", content=body, headers=headers, **kw)


def test_new_event_is_accepted_then_a_repeat_is_a_duplicate(client, workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    body = webhook_event("evt-1", "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！")
    first = post(client, workspace, body)
    assert first.status_code == 202 and first.json() == {"status": "accepted"}
    again = post(client, workspace, body)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert count(db, InboundEvent) == 1
    assert count(db, Job) == 1
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        messages = s.execute(select(Message)).scalars().all()
    assert [m.text for m in messages] == [
        "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！"
    ]


def test_ten_concurrent_deliveries_store_one_event_one_job_one_message(
    client, workspace, db, settings
) -> None:  # type: ignore[no-untyped-def]
    body = webhook_event("evt-concurrent", "航班延误了怎么办")
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        codes = sorted(pool.map(lambda _: post(client, workspace, body).status_code, range(10)))
    assert codes.count(202) == 1 and codes.count(200) == 9
    assert count(db, InboundEvent) == 1
    assert count(db, Job) == 1
    run_jobs(db, settings)
    assert count(db, Message) == 1


@pytest.mark.parametrize(
    "case",
    [
        "no_signature",
        "bad_signature",
        "wrong_secret",
        "old_timestamp",
        "future_timestamp",
        "non_numeric_timestamp",
    ],
)
def test_bad_signatures_get_401_and_store_nothing(client, workspace, db, case) -> None:  # type: ignore[no-untyped-def]
    body = webhook_event(f"evt-{case}")
    headers = signed_headers(workspace.channel_secret, body)
    if case == "no_signature":
        headers.pop("x-scrm-signature")
    elif case == "bad_signature":
        headers["x-scrm-signature"] = "sha256=" + "0" * 64
    elif case == "wrong_secret":
        headers = signed_headers("not-the-secret", body)
    elif case == "old_timestamp":
        headers = signed_headers(workspace.channel_secret, body, int(time.time()) - 330)
    elif case == "future_timestamp":
        headers = signed_headers(workspace.channel_secret, body, int(time.time()) + 330)
    else:
        headers["x-scrm-timestamp"] = "yesterday"
    response = post(client, workspace, body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "rejected"
    assert count(db, InboundEvent) == 0 and count(db, Job) == 0


def test_body_over_one_mebibyte_is_413(client, workspace, db) -> None:  # type: ignore[no-untyped-def]
    body = webhook_event("evt-big", "长" * (1024 * 1024))
    response = post(client, workspace, body)
    assert response.status_code == 413
    assert count(db, InboundEvent) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "JSON"),
        (b"[1, 2]", "object"),
        (b'{"id": "x", "type": "message", "sender": {"id": "u"}, "text": "hi"}', "sent_at"),
        (
            b'{"id": "", "type": "message", "sender": {"id": "u"}, "sent_at": "2026-11-23T10:00:00+08:00"}',
            "id",
        ),
        (
            b'{"id": "x", "type": "call", "sender": {"id": "u"}, "sent_at": "2026-11-23T10:00:00+08:00"}',
            "type",
        ),
        (
            b'{"id": "x", "type": "message", "sender": {}, "sent_at": "2026-11-23T10:00:00+08:00"}',
            "sender.id",
        ),
        (
            b'{"id": "x", "type": "message", "sender": {"id": "u"}, "sent_at": "2026-11-23T10:00:00"}',
            "sent_at",
        ),
        (b'{"id": "x", "type": "message", "sender": {"id": "u"}, "sent_at": "soon"}', "sent_at"),
        (
            b'{"id": "x", "type": "message", "sender": {"id": "u"}, "sent_at": "2026-11-23T10:00:00Z", "extra": 1}',
            "extra",
        ),
        (b"\xff\xfe\x00garbage", "JSON"),
    ],
)
def test_malformed_body_is_422_naming_the_field(client, workspace, db, body, field) -> None:  # type: ignore[no-untyped-def]
    response = post(client, workspace, body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert count(db, InboundEvent) == 0 and count(db, Job) == 0


def test_unknown_channel_is_404(client, workspace, db) -> None:  # type: ignore[no-untyped-def]
    body = webhook_event("evt-x")
    response = client.post(
        "/hooks/webhook/12345", content=body, headers=signed_headers(workspace.channel_secret, body)
    )
    assert response.status_code == 404
    response = client.post("/hooks/webhook/not-a-number", content=body)
    assert response.status_code == 422
    assert count(db, InboundEvent) == 0


def test_another_workspaces_secret_does_not_open_this_channel(client, workspace, other_workspace, db) -> None:  # type: ignore[no-untyped-def]
    body = webhook_event("evt-cross")
    response = post(client, workspace, body, headers=signed_headers(other_workspace.channel_secret, body))
    assert response.status_code == 401
    assert count(db, InboundEvent) == 0
