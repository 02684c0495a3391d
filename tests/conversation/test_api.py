"""Conversations through the REST API: pipeline result, replies via the outbox, isolation."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scrm.app import create_app
from scrm.db import Database
from scrm.models import Job, OutboxMessage
from scrm.workspace import service as workspace_service
from tests.conftest import Workspace
from tests.helpers import Recorder, run_jobs, signed_headers, webhook_event


@pytest.fixture
def client(db: Database, settings) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_app(settings, db))


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def deliver(
    client: TestClient, ws: Workspace, event_id: str, text: str, sender: str = "fan-1", **extra
) -> None:  # type: ignore[no-untyped-def]
    body = webhook_event(event_id, text, sender=sender, **extra)
    r = client.post(
        f"/hooks/webhook/{ws.channel_id}", content=body, headers=signed_headers(ws.channel_secret, body)
    )
    assert r.status_code in (200, 202), r.text


def set_callback(db: Database, ws: Workspace, url: str) -> None:
    with db.transaction() as s:
        account = workspace_service.get_channel_account(s, ws.id, ws.channel_id)
        account.config = {"callback_url": url}


def test_messages_of_one_fan_join_one_conversation_with_a_contact(client, workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    deliver(client, workspace, "e1", "我的包丢了", sender="fan-1")
    deliver(client, workspace, "e2", "是黑色双肩包", sender="fan-1")
    deliver(client, workspace, "e3", "请问几点登机", sender="fan-2")
    run_jobs(db, settings)
    page = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()
    assert len(page["items"]) == 2
    by_count = sorted(page["items"], key=lambda c: c["message_count"])
    assert [c["message_count"] for c in by_count] == [1, 2]
    conv = by_count[1]
    assert conv["status"] == "open" and conv["contact"]["name"] == "小李"
    messages = client.get(
        f"/api/v1/conversations/{conv['id']}/messages", headers=auth(workspace.agent_token)
    ).json()
    assert [m["text"] for m in messages["items"]] == ["我的包丢了", "是黑色双肩包"]
    contact = client.get(
        f"/api/v1/contacts/{conv['contact']['id']}", headers=auth(workspace.agent_token)
    ).json()
    assert contact["identities"][0]["namespace"] == f"webhook:{workspace.channel_id}"
    assert contact["identities"][0]["external_id"] == "fan-1"


def test_conversation_key_separates_threads(client, workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    deliver(client, workspace, "k1", "订单一", conversation_key="order-1")
    deliver(client, workspace, "k2", "订单二", conversation_key="order-2")
    run_jobs(db, settings)
    items = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"]
    assert sorted(c["thread_key"] for c in items) == ["order-1", "order-2"]


def test_cursor_pagination_walks_every_conversation_once(client, workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    for i in range(7):
        deliver(client, workspace, f"p{i}", f"消息 {i}", sender=f"fan-{i}")
    run_jobs(db, settings)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/conversations", params=params, headers=auth(workspace.agent_token)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 7 and len(set(seen)) == 7
    bad = client.get("/api/v1/conversations", params={"cursor": "%%%"}, headers=auth(workspace.agent_token))
    assert bad.status_code == 422


def test_reply_goes_through_the_outbox_and_is_delivered_once_after_two_failures(
    client, workspace, db, settings
) -> None:  # type: ignore[no-untyped-def]
    with Recorder(fail_first=2).running() as callback:
        set_callback(db, workspace, callback.url)
        deliver(client, workspace, "r1", "你好，航班延误了吗？", sender="fan-9")
        run_jobs(db, settings)
        conv = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"][0]
        r = client.post(
            f"/api/v1/conversations/{conv['id']}/messages",
            json={"text": "您好，MU5137 今天准点。"},
            headers=auth(workspace.agent_token),
        )
        assert r.status_code == 201 and r.json()["status"] == "pending"
        # Run the send job three times: fail, fail, succeed (backoff skipped by resetting run_at).
        for _ in range(3):
            with db.transaction() as s:
                for job in s.execute(
                    select(Job).where(Job.kind == "outbox.send", Job.status == "queued")
                ).scalars():
                    job.run_at = job.created_at
            run_jobs(db, settings)
        # More runs change nothing: it is never sent twice.
        run_jobs(db, settings)
    assert len(callback.requests) == 3
    delivered = json.loads(callback.requests[-1]["body"])
    assert delivered["text"] == "您好，MU5137 今天准点。" and delivered["recipient"]["id"] == "fan-9"
    keys = {r["headers"]["idempotency-key"] for r in callback.requests}
    assert len(keys) == 1
    msgs = client.get(
        f"/api/v1/conversations/{conv['id']}/messages", headers=auth(workspace.agent_token)
    ).json()
    assert msgs["items"][-1]["status"] == "sent"
    with db.transaction(readonly=True) as s:
        row = s.execute(select(OutboxMessage)).scalar_one()
    assert row.status == "sent" and row.attempts == 3
    conv_after = client.get(f"/api/v1/conversations/{conv['id']}", headers=auth(workspace.agent_token)).json()
    assert conv_after["first_response_at"] is not None
    assert conv_after["assignee_id"] == str(workspace.agent_member_id)


def test_a_refused_reply_is_marked_failed_not_retried(client, workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    with Recorder(status=400).running() as callback:
        set_callback(db, workspace, callback.url)
        deliver(client, workspace, "f1", "在吗", sender="fan-3")
        run_jobs(db, settings)
        conv = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"][0]
        client.post(
            f"/api/v1/conversations/{conv['id']}/messages",
            json={"text": "在的"},
            headers=auth(workspace.agent_token),
        )
        run_jobs(db, settings)
        run_jobs(db, settings)
    assert len(callback.requests) == 1
    msgs = client.get(
        f"/api/v1/conversations/{conv['id']}/messages", headers=auth(workspace.agent_token)
    ).json()
    assert msgs["items"][-1]["status"] == "failed" and "400" in msgs["items"][-1]["error"]


def test_patch_status_assignee_team_and_timeline(client, workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    deliver(client, workspace, "s1", "失物", sender="fan-4")
    run_jobs(db, settings)
    conv = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"][0]
    url = f"/api/v1/conversations/{conv['id']}"
    r = client.patch(
        url,
        json={"team_id": str(workspace.team_ids["lost"]), "status": "pending", "priority": "high"},
        headers=auth(workspace.agent_token),
    )
    assert r.status_code == 200
    assert r.json()["team_id"] == str(workspace.team_ids["lost"]) and r.json()["status"] == "pending"
    assert (
        client.patch(url, json={"status": "closed"}, headers=auth(workspace.agent_token)).status_code == 422
    )
    assert (
        client.patch(url, json={"assignee_id": "abc"}, headers=auth(workspace.agent_token)).status_code == 422
    )
    assert (
        client.patch(url, json={"assignee_id": "123"}, headers=auth(workspace.agent_token)).status_code == 404
    )
    filtered = client.get(
        "/api/v1/conversations",
        params={"team": workspace.team_ids["lost"], "status": "pending"},
        headers=auth(workspace.agent_token),
    ).json()
    assert [c["id"] for c in filtered["items"]] == [conv["id"]]
    # A fan's new message reopens the pending conversation.
    deliver(client, workspace, "s2", "有消息吗", sender="fan-4")
    run_jobs(db, settings)
    assert client.get(url, headers=auth(workspace.agent_token)).json()["status"] == "open"
    timeline = client.get(f"{url}/activities", headers=auth(workspace.agent_token)).json()
    assert [a["kind"] for a in timeline] == ["created", "transferred", "priority", "status", "reopened"]


def test_internal_note_is_never_sent(client, workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    with Recorder().running() as callback:
        set_callback(db, workspace, callback.url)
        deliver(client, workspace, "n1", "投诉", sender="fan-5")
        run_jobs(db, settings)
        conv = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"][0]
        r = client.post(
            f"/api/v1/conversations/{conv['id']}/messages",
            json={"text": "VIP，注意语气", "internal": True},
            headers=auth(workspace.agent_token),
        )
        assert r.status_code == 201 and r.json()["direction"] == "internal"
        run_jobs(db, settings)
    assert callback.requests == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": ""},
        {"text": "x" * 2001},
        {"text": "hi", "visibility": "secret"},
        {"text": "hi", "bogus": 1},
    ],
)
def test_bad_reply_bodies_are_422_and_store_nothing(client, workspace, db, settings, body) -> None:  # type: ignore[no-untyped-def]
    deliver(client, workspace, "b1", "hello", sender="fan-6")
    run_jobs(db, settings)
    conv = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"][0]
    r = client.post(
        f"/api/v1/conversations/{conv['id']}/messages", json=body, headers=auth(workspace.agent_token)
    )
    assert r.status_code == 422
    with db.transaction(readonly=True) as s:
        assert s.execute(select(OutboxMessage)).first() is None


def test_auth_is_required_and_tokens_are_checked(client, workspace) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/conversations").status_code == 401
    assert client.get("/api/v1/conversations", headers=auth("scrm_1_forged")).status_code == 401
    assert client.get("/api/v1/conversations", headers=auth("garbage")).status_code == 401
    assert client.get("/api/v1/conversations", headers={"authorization": "Basic abc"}).status_code == 401
    forged = workspace.agent_token[:-4] + "AAAA"
    assert client.get("/api/v1/conversations", headers=auth(forged)).status_code == 401


def test_one_workspace_never_sees_another(client, workspace, other_workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    deliver(client, workspace, "iso-1", "云程的消息", sender="fan-a")
    deliver(client, other_workspace, "iso-2", "小墨的消息", sender="fan-b")
    run_jobs(db, settings)
    mine = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"]
    theirs = client.get("/api/v1/conversations", headers=auth(other_workspace.agent_token)).json()["items"]
    assert [c["subject"] for c in mine] == ["云程的消息"] and [c["subject"] for c in theirs] == ["小墨的消息"]
    foreign_conv, foreign_contact = theirs[0]["id"], theirs[0]["contact"]["id"]
    h = auth(workspace.admin_token)
    for method, url, kwargs in [
        ("get", f"/api/v1/conversations/{foreign_conv}", {}),
        ("get", f"/api/v1/conversations/{foreign_conv}/messages", {}),
        ("get", f"/api/v1/conversations/{foreign_conv}/activities", {}),
        ("patch", f"/api/v1/conversations/{foreign_conv}", {"json": {"status": "resolved"}}),
        ("post", f"/api/v1/conversations/{foreign_conv}/messages", {"json": {"text": "hi"}}),
        ("get", f"/api/v1/contacts/{foreign_contact}", {}),
        ("get", f"/api/v1/channels/{other_workspace.channel_id}", {}),
    ]:
        r = getattr(client, method)(url, headers=h, **kwargs)
        assert r.status_code == 404, (method, url, r.status_code)
    # Assigning to another workspace's member or team is refused too.
    r = client.patch(
        f"/api/v1/conversations/{mine[0]['id']}",
        json={"assignee_id": str(other_workspace.agent_member_id)},
        headers=h,
    )
    assert r.status_code == 404
    r = client.patch(
        f"/api/v1/conversations/{mine[0]['id']}",
        json={"team_id": str(other_workspace.team_ids["lost"])},
        headers=h,
    )
    assert r.status_code == 404
    contact_ids = [c["id"] for c in client.get("/api/v1/contacts", headers=h).json()["items"]]
    assert contact_ids == [mine[0]["contact"]["id"]]
    assert {c["name"] for c in client.get("/api/v1/channels", headers=h).json()} == {"App"}


def test_channel_secrets_are_masked_and_only_admins_create_channels(client, workspace) -> None:  # type: ignore[no-untyped-def]
    listed = client.get("/api/v1/channels", headers=auth(workspace.agent_token)).json()
    assert listed[0]["secrets"]["secret"] != workspace.channel_secret
    assert workspace.channel_secret not in json.dumps(listed)
    body = {"kind": "webhook", "name": "POS", "secrets": {"secret": "s3cr3t-value-123"}}
    assert client.post("/api/v1/channels", json=body, headers=auth(workspace.agent_token)).status_code == 403
    created = client.post("/api/v1/channels", json=body, headers=auth(workspace.admin_token))
    assert created.status_code == 201 and "s3cr3t-value-123" not in created.text
    assert client.post("/api/v1/channels", json=body, headers=auth(workspace.admin_token)).status_code == 409
    bad = client.post(
        "/api/v1/channels", json={"kind": "fax", "name": "x"}, headers=auth(workspace.admin_token)
    )
    assert bad.status_code == 422


def test_a_retried_reply_with_the_same_idempotency_key_is_sent_once(client, workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    deliver(client, workspace, "k1", "行李到了吗", sender="fan-k1")
    deliver(client, workspace, "k2", "还有一个问题", sender="fan-k2")
    run_jobs(db, settings)
    convs = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"]
    first, second = convs[0]["id"], convs[1]["id"]
    headers = {**auth(workspace.agent_token), "Idempotency-Key": "reply-7f3a"}
    answers = [
        client.post(
            f"/api/v1/conversations/{first}/messages", json={"text": "已找到，在3号柜台"}, headers=headers
        )
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    # the same key on another conversation is a client error, not a second reply
    other = client.post(f"/api/v1/conversations/{second}/messages", json={"text": "x"}, headers=headers)
    assert other.status_code == 409
    bad = client.post(
        f"/api/v1/conversations/{first}/messages",
        json={"text": "y"},
        headers={**auth(workspace.agent_token), "Idempotency-Key": "k" * 101},
    )
    assert bad.status_code == 422
    # without a key, two posts are two replies
    for _ in range(2):
        client.post(
            f"/api/v1/conversations/{first}/messages",
            json={"text": "再补充一句"},
            headers=auth(workspace.agent_token),
        )
    with db.transaction(readonly=True) as s:
        keys = [r.idempotency_key for r in s.execute(select(OutboxMessage)).scalars()]
    assert len(keys) == 3 and sum(k.startswith("api:") for k in keys) == 1
