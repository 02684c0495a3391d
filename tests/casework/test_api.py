"""Casework over REST: creating follow-up and department tasks, recording outcomes (who may),
what the department gets (who, what, booking, photos, masked phone), and overdue follow-ups."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scrm.automation import service as rules
from scrm.channels.webhook.handler import parse
from scrm.inbound import service as inbound_service
from scrm.models import CaseTask, Contact, Conversation, ConversationActivity, Job, Order, Workspace
from scrm.workspace import service as ws_service
from tests.automation.helpers import deliver
from tests.helpers import Recorder, run_jobs

LOST_BAG = "昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了"
PHONE = "13812345678"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def route_lost(db, ws) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        rules.save_rule(
            s,
            ws.id,
            {
                "name": "失物",
                "event": "message.received",
                "conditions": {"all": [{"field": "text", "op": "contains_any", "value": ["落在"]}]},
                "actions": [{"type": "route", "team": "lost"}],
            },
        )


def conversation_id(db) -> int:  # type: ignore[no-untyped-def]
    with db.transaction(readonly=True) as s:
        return int(s.execute(select(Conversation.id)).scalar_one())


def member_of_lost(db, ws) -> str:  # type: ignore[no-untyped-def]
    """A lost-and-found clerk (an agent of that department only) and their API token."""
    with db.transaction() as s:
        user = ws_service.create_user(s, "clerk@yuncheng.test", "password123", "失物招领小刘")
        clerk = ws_service.add_member(s, ws.id, user, "agent")
        ws_service.add_to_team(s, ws.id, ws.team_ids["lost"], clerk.id)
        token, _ = ws_service.create_api_token(s, ws.id, clerk.id, "clerk")
        return token


def test_creating_tasks_over_rest(db, settings, workspace, other_workspace, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    deliver(db, workspace, "e1", "我要投诉，请回电")
    run_jobs(db, settings)
    conv = conversation_id(db)
    agent = bearer(workspace.agent_token)
    r = client.post(
        "/api/v1/casework/tasks",
        json={"conversation_id": str(conv), "title": "回电安抚", "due_in_minutes": 90},
        headers=agent,
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["kind"] == "follow_up" and task["status"] == "open" and task["title"] == "回电安抚"
    due = dt.datetime.fromisoformat(task["due_at"])
    assert abs((due - dt.datetime.now(dt.UTC)).total_seconds() - 90 * 60) < 30
    with db.transaction(readonly=True) as s:
        (job,) = s.execute(select(Job).where(Job.kind == "casework.task_due")).scalars()
        assert job.payload == {"task_id": int(task["id"])} and job.run_at == due
        assert task["details"]["who"]["name"] == "小李"
    # the same open follow-up is not made twice
    again = client.post("/api/v1/casework/tasks", json={"conversation_id": str(conv)}, headers=agent)
    assert again.status_code == 201 and again.json()["id"] == task["id"]
    dept = client.post(
        "/api/v1/casework/tasks",
        json={"conversation_id": str(conv), "kind": "department", "team": "lost"},
        headers=agent,
    )
    assert dept.status_code == 201 and dept.json()["team"] == "lost" and dept.json()["kind"] == "department"

    for body, status, text in [
        ({"conversation_id": "abc"}, 422, "conversation_id must be an id"),
        ({"conversation_id": str(conv), "kind": "department"}, 422, "needs a team"),
        ({"conversation_id": str(conv), "team": "nowhere"}, 404, "team"),
        ({"conversation_id": str(conv), "due_in_minutes": 0}, 422, "due_in_minutes"),
        ({"conversation_id": str(conv), "due_in_minutes": 60 * 24 * 31}, 422, "due_in_minutes"),
        ({"conversation_id": str(conv), "kind": "call"}, 422, "kind"),
        ({"conversation_id": str(conv), "assignee": "me"}, 422, "assignee"),
        ({"conversation_id": "999999999"}, 404, "no such conversation"),
    ]:
        bad = client.post("/api/v1/casework/tasks", json=body, headers=agent)
        assert bad.status_code == status and text in bad.text, (body, bad.text)
    # another workspace's token cannot see or add to this conversation
    foreign = client.post(
        "/api/v1/casework/tasks",
        json={"conversation_id": str(conv)},
        headers=bearer(other_workspace.admin_token),
    )
    assert foreign.status_code == 404
    assert client.post("/api/v1/casework/tasks", json={"conversation_id": str(conv)}).status_code == 401
    with db.transaction(readonly=True) as s:
        assert len(s.execute(select(CaseTask)).scalars().all()) == 2


def test_who_may_record_an_outcome(db, settings, workspace, other_workspace, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    route_lost(db, workspace)
    clerk = member_of_lost(db, workspace)
    deliver(db, workspace, "e1", LOST_BAG)
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        task_id = s.execute(select(CaseTask.id).where(CaseTask.kind == "department")).scalar_one()
    url = f"/api/v1/casework/tasks/{task_id}/outcome"
    found = {"text": "已找到，在 T2 到达层 3 号柜台"}

    # an agent outside the department: refused, nothing recorded
    r = client.post(url, json=found, headers=bearer(workspace.agent_token))
    assert r.status_code == 403 and "only the task's team or a supervisor" in r.text
    assert client.post(url, json=found, headers=bearer(other_workspace.admin_token)).status_code == 404
    assert client.post(url, json={"text": ""}, headers=bearer(clerk)).status_code == 422
    assert client.post(url, json={"text": "x" * 2001}, headers=bearer(clerk)).status_code == 422
    assert client.post(url, json={**found, "by": "me"}, headers=bearer(clerk)).status_code == 422
    with db.transaction(readonly=True) as s:
        assert s.get(CaseTask, (workspace.id, task_id)).status == "open"  # type: ignore[union-attr]

    # the department's clerk records it; a repeat is no change; a different one is a conflict
    r = client.post(url, json=found, headers=bearer(clerk))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "done" and r.json()["outcome_source"] == "api"
    assert client.post(url, json=found, headers=bearer(clerk)).status_code == 200
    r = client.post(url, json={"text": "没找到"}, headers=bearer(workspace.admin_token))  # a supervisor
    assert r.status_code == 409
    with db.transaction(readonly=True) as s:
        out = [a for a in s.execute(select(ConversationActivity)).scalars() if a.kind == "outcome"]
        assert [(a.data["text"], a.data["by"]) for a in out] == [(found["text"], "失物招领小刘")]

    # a supervisor may record the outcome of any team's task; a follow-up has no team
    with db.transaction() as s:
        conv = s.execute(select(Conversation)).scalar_one()
    follow = client.post(
        "/api/v1/casework/tasks",
        json={"conversation_id": str(conv.id)},
        headers=bearer(workspace.agent_token),
    ).json()
    r = client.post(
        f"/api/v1/casework/tasks/{follow['id']}/outcome",
        json={"text": "已回电"},
        headers=bearer(workspace.agent_token),
    )
    assert r.status_code == 201 and r.json()["outcome"] == "已回电"


def test_the_department_task_holds_who_what_booking_photos_and_a_masked_phone(
    db, settings, workspace, client
) -> None:  # type: ignore[no-untyped-def]
    route_lost(db, workspace)
    with db.transaction() as s:
        # the fan's bookings, imported earlier (a matching one and another)
        contact = Contact(
            workspace_id=workspace.id,
            name="小李",
            phone=PHONE,
            member_no="YC8800123",
            attributes={"tier": "gold"},
        )
        s.add(contact)
        s.flush()
        s.add(
            Order(
                workspace_id=workspace.id,
                contact_id=contact.id,
                source="pss",
                external_id="PNR9XK",
                status="flown",
                details={"flight_no": "MU5137", "origin": "PVG", "destination": "CTU", "seat": "32C"},
            )
        )
        s.add(
            Order(
                workspace_id=workspace.id,
                contact_id=contact.id,
                source="pss",
                external_id="PNR1AA",
                status="booked",
                details={"flight_no": "MU5401"},
            )
        )
    photos = [
        {"type": "image", "url": "https://img.example/bag-1.jpg"},
        {"type": "image", "url": "https://img.example/bag-2.jpg"},
    ]
    body = {
        "id": "e1",
        "type": "message",
        "sender": {"id": "fan-1", "name": "小李", "phone": PHONE},
        "text": LOST_BAG,
        "sent_at": dt.datetime.now(dt.UTC).isoformat(),
        "attachments": photos,
    }
    event = parse(json.dumps(body, ensure_ascii=False).encode(), workspace.channel_id)
    with db.transaction() as s:
        inbound_service.accept(
            s,
            workspace_id=workspace.id,
            channel_account_id=workspace.channel_id,
            channel_kind="webhook",
            events=[event],
            raw="{}",
        )
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        task = s.execute(select(CaseTask).where(CaseTask.kind == "department")).scalar_one()
    d = task.details
    assert d["who"]["phone"] == "138****5678" and d["who"]["member_no"] == "YC8800123"
    assert d["who"]["tier"] == "gold" and d["who"]["name"] == "小李"
    assert PHONE not in json.dumps(d)  # the full number never reaches the department
    assert d["what"][0]["text"] == LOST_BAG
    assert [p["url"] for p in d["photos"]] == [p["url"] for p in photos]
    assert d["booking"] == {
        "order_id": "PNR9XK",
        "source": "pss",
        "status": "flown",
        "flight_no": "MU5137",
        "origin": "PVG",
        "destination": "CTU",
        "seat": "32C",
    }
    assert {("flight_no", "MU5137"), ("seat", "32C")} <= {(e["type"], e["value"]) for e in d["entities"]}
    # the same over REST, for the department's own screen
    got = client.get(f"/api/v1/casework/tasks/{task.id}", headers=bearer(workspace.admin_token)).json()
    assert got["details"]["who"]["phone"] == "138****5678" and len(got["details"]["photos"]) == 2


@pytest.fixture
def later(monkeypatch):  # type: ignore[no-untyped-def]
    """Move the clock of the worker and the task job forward."""

    def move(delta: dt.timedelta) -> None:
        when = dt.datetime.now(dt.UTC) + delta
        for target in (
            "scrm.worker.repository.utcnow",
            "scrm.casework.tasks.utcnow",
            "scrm.worker.service.utcnow",
        ):
            monkeypatch.setattr(target, lambda: when)

    return move


def test_an_overdue_follow_up_is_flagged_and_the_supervisors_notified_once(
    db, settings, workspace, client, later
) -> None:  # type: ignore[no-untyped-def]
    with Recorder().running() as hook:
        with db.transaction() as s:
            ws_row = s.get(Workspace, workspace.id)
            assert ws_row is not None
            ws_row.settings = {**(ws_row.settings or {}), "escalation_webhook_url": hook.url}
        deliver(db, workspace, "e1", "航班延误，我要投诉")
        run_jobs(db, settings)
        conv = conversation_id(db)
        agent = bearer(workspace.agent_token)
        late = client.post(
            "/api/v1/casework/tasks", json={"conversation_id": str(conv), "due_in_minutes": 30}, headers=agent
        ).json()
        dept = client.post(
            "/api/v1/casework/tasks",
            json={"conversation_id": str(conv), "kind": "department", "team": "lost", "due_in_minutes": 30},
            headers=agent,
        ).json()
        # the department answers in time; the call-back is forgotten
        r = client.post(
            f"/api/v1/casework/tasks/{dept['id']}/outcome",
            json={"text": "已处理"},
            headers=bearer(workspace.admin_token),
        )
        assert r.status_code == 201
        run_jobs(db, settings)
        assert overdue(db) == []  # not due yet: nothing flagged
        later(dt.timedelta(minutes=31))
        run_jobs(db, settings)
        run_jobs(db, settings)
    assert overdue(db) == [late["id"]]
    notices = [json.loads(r["body"]) for r in hook.requests]
    assert [(n["event"], n["reason"]) for n in notices] == [
        ("escalation", f"follow_up task {late['id']} overdue")
    ]
    with db.transaction(readonly=True) as s:
        kinds = [a.kind for a in s.execute(select(ConversationActivity)).scalars()]
    assert kinds.count("escalated") == 1


def overdue(db) -> list[str]:  # type: ignore[no-untyped-def]
    with db.transaction(readonly=True) as s:
        acts = s.execute(
            select(ConversationActivity).where(ConversationActivity.kind == "task_overdue")
        ).scalars()
        return [str(a.data["task_id"]) for a in acts]
