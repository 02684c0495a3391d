"""Assignment through the REST API: both availability endpoints hand work on (and coming online
takes from the queue), member settings (PATCH /members/{id}) with hostile input, the queue's
reasons, a conversation's required skills and a manual auto-assign."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scrm.app import create_app
from scrm.conversation import assignment
from scrm.db import Database
from scrm.models import AuditLog, Conversation, Member
from scrm.workspace import service as ws_service
from tests.conftest import Workspace
from tests.conversation import test_assignment as base
from tests.conversation.test_assignment_skills import agent, needing, owner


@pytest.fixture
def client(db: Database, settings) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_app(settings, db))


@pytest.fixture(autouse=True)
def _fresh_pools() -> None:
    assignment._BUSY_POOLS.clear()
    assignment._POOLS.clear()


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def supervisor_token(db: Database, ws: Workspace) -> tuple[int, str]:
    with db.transaction() as s:
        user = ws_service.create_user(s, f"sup@{ws.slug}.test", "password123", "主管")
        member = ws_service.add_member(s, ws.id, user, "supervisor")
        token, _ = ws_service.create_api_token(s, ws.id, member.id, "tests")
        return member.id, token


def member_row(db: Database, ws: Workspace, member_id: int) -> dict[str, Any]:
    with db.transaction(readonly=True) as s:
        m = s.get(Member, (ws.id, member_id))
        assert m is not None
        return {
            "role": m.role,
            "capacity": m.capacity,
            "skills": list(m.skills),
            "is_senior": m.is_senior,
            "availability": m.availability,
            "display_name": m.display_name,
        }


# -- availability ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/v1/me/availability", "/api/v1/automation/availability"])
def test_both_availability_endpoints_hand_work_on_and_take_from_the_queue(
    client, db, workspace, path
) -> None:  # type: ignore[no-untyped-def]
    me = workspace.agent_member_id
    h = auth(workspace.agent_token)
    r = client.put(path, json={"availability": "online"}, headers=h)
    assert r.status_code == 200, r.text
    convs = [base.open_conversation(db, workspace, f"fan{i}") for i in range(2)]
    assert [base.assign(db, workspace, c) for c in convs] == [me, me]
    colleague = agent(db, workspace, "colleague")
    # going away hands both on at once
    r = client.put(path, json={"availability": "away"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"availability": "away", "conversations_moved": 2}
    assert [owner(db, workspace, c) for c in convs] == [colleague, colleague]
    assert member_row(db, workspace, me)["availability"] == "away"
    # coming back online takes waiting conversations from the queue
    with db.transaction() as s:
        assignment.set_availability(s, workspace.id, colleague, "offline")  # hands them to the queue
    assert [owner(db, workspace, c) for c in convs] == [None, None]
    r = client.put(path, json={"availability": "online"}, headers=h)
    assert r.status_code == 200, r.text
    assert [owner(db, workspace, c) for c in convs] == [me, me]
    # going offline hands work on too (here: to the queue, nobody else is online)
    r = client.put(path, json={"availability": "offline"}, headers=h)
    assert r.json() == {"availability": "offline", "conversations_moved": 2}
    assert [owner(db, workspace, c) for c in convs] == [None, None]


@pytest.mark.parametrize("path", ["/api/v1/me/availability", "/api/v1/automation/availability"])
@pytest.mark.parametrize(
    "body",
    [
        {"availability": "busy"},
        {"availability": ""},
        {"availability": 1},
        {"availability": None},
        {"availability": ["online"]},
        {},
        {"availability": "online", "capacity": 100},
        [],
        "online",
    ],
)
def test_availability_refuses_hostile_input(client, db, workspace, path, body) -> None:  # type: ignore[no-untyped-def]
    r = client.put(path, json=body, headers=auth(workspace.agent_token))
    assert r.status_code == 422, r.text
    assert member_row(db, workspace, workspace.agent_member_id)["availability"] == "offline"


def test_availability_needs_a_login(client, workspace) -> None:  # type: ignore[no-untyped-def]
    r = client.put("/api/v1/me/availability", json={"availability": "online"})
    assert r.status_code == 401
    r = client.put("/api/v1/me/availability", content=b"{not json", headers=auth(workspace.agent_token))
    assert r.status_code == 422


# -- member settings ---------------------------------------------------------------------------
def test_admin_sets_capacity_skills_seniority_and_role(client, db, workspace) -> None:  # type: ignore[no-untyped-def]
    target = workspace.agent_member_id
    r = client.patch(
        f"/api/v1/members/{target}",
        json={"capacity": 8, "skills": [" Lang:EN", "channel:weibo", "lang:en"], "is_senior": True},
        headers=auth(workspace.admin_token),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["capacity"], body["skills"], body["is_senior"]) == (8, ["lang:en", "channel:weibo"], True)
    listed = {m["id"]: m for m in client.get("/api/v1/members", headers=auth(workspace.agent_token)).json()}
    assert listed[str(target)]["skills"] == ["lang:en", "channel:weibo"]
    assert listed[str(target)]["is_senior"] is True and listed[str(target)]["teams"] == ["service"]
    r = client.patch(
        f"/api/v1/members/{target}", json={"role": "supervisor"}, headers=auth(workspace.admin_token)
    )
    assert r.status_code == 200 and r.json()["role"] == "supervisor"
    # an empty patch changes nothing
    r = client.patch(f"/api/v1/members/{target}", json={}, headers=auth(workspace.admin_token))
    assert r.status_code == 200 and r.json()["capacity"] == 8
    with db.transaction(readonly=True) as s:
        audits = s.execute(select(AuditLog).where(AuditLog.action == "member.updated")).scalars().all()
        assert len(audits) == 2
        assert audits[0].data["capacity"] == {"from": 20, "to": 8}


def test_supervisors_change_settings_but_not_roles_and_agents_nothing(client, db, workspace) -> None:  # type: ignore[no-untyped-def]
    _sup, token = supervisor_token(db, workspace)
    target = workspace.agent_member_id
    r = client.patch(f"/api/v1/members/{target}", json={"capacity": 3}, headers=auth(token))
    assert r.status_code == 200 and r.json()["capacity"] == 3
    r = client.patch(f"/api/v1/members/{target}", json={"role": "admin"}, headers=auth(token))
    assert r.status_code == 403
    r = client.patch(f"/api/v1/members/{_sup}", json={"role": "admin"}, headers=auth(token))
    assert r.status_code == 403  # nor their own
    r = client.patch(f"/api/v1/members/{target}", json={"capacity": 50}, headers=auth(workspace.agent_token))
    assert r.status_code == 403
    r = client.patch(f"/api/v1/members/{target}", json={"capacity": 50})
    assert r.status_code == 401
    assert member_row(db, workspace, target)["capacity"] == 3
    assert member_row(db, workspace, _sup)["role"] == "supervisor"


BEFORE = {"role": "agent", "capacity": 20, "skills": [], "is_senior": False}


@pytest.mark.parametrize(
    "body",
    [
        {"capacity": -1},
        {"capacity": 201},
        {"capacity": 10**12},
        {"capacity": "10"},
        {"capacity": 1.5},
        {"capacity": True},
        {"skills": "lang:en"},
        {"skills": [1]},
        {"skills": [None]},
        {"skills": [""]},
        {"skills": ["   "]},
        {"skills": ["x" * 41]},
        {"skills": ["a,b"]},
        {"skills": ["bell\x07"]},
        {"skills": [f"s{i}" for i in range(21)]},
        {"skills": [{"a": 1}]},
        {"is_senior": "yes"},
        {"is_senior": 1},
        {"role": "root"},
        {"role": ""},
        {"name": ""},
        {"name": "x" * 201},
        {"availability": "online"},  # availability has its own endpoint (it hands work on)
        {"is_active": False},
        {"capacity": 5, "skills": ["ok", 3]},  # nothing of a refused patch is kept
        [],
    ],
)
def test_member_patch_refuses_hostile_input_and_stores_nothing(client, db, workspace, body) -> None:  # type: ignore[no-untyped-def]
    r = client.patch(
        f"/api/v1/members/{workspace.agent_member_id}", json=body, headers=auth(workspace.admin_token)
    )
    assert r.status_code == 422, r.text
    assert "detail" in r.json()
    row = member_row(db, workspace, workspace.agent_member_id)
    assert {k: row[k] for k in BEFORE} == BEFORE


def test_member_patch_unknown_or_foreign_members(client, db, workspace, other_workspace) -> None:  # type: ignore[no-untyped-def]
    h = auth(workspace.admin_token)
    assert client.patch("/api/v1/members/424242", json={"capacity": 1}, headers=h).status_code == 404
    assert client.patch("/api/v1/members/abc", json={"capacity": 1}, headers=h).status_code == 422
    assert client.patch("/api/v1/members/1e99", json={"capacity": 1}, headers=h).status_code == 422
    r = client.patch(f"/api/v1/members/{other_workspace.agent_member_id}", json={"capacity": 1}, headers=h)
    assert r.status_code == 404  # another workspace's member is not found, not changed
    assert member_row(db, other_workspace, other_workspace.agent_member_id)["capacity"] == 20
    r = client.patch(
        f"/api/v1/members/{workspace.agent_member_id}",
        content=b"capacity=1",
        headers={**h, "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422


def test_the_last_admin_cannot_be_demoted(client, db, workspace) -> None:  # type: ignore[no-untyped-def]
    h = auth(workspace.admin_token)
    r = client.patch(f"/api/v1/members/{workspace.admin_member_id}", json={"role": "agent"}, headers=h)
    assert r.status_code == 409 and "last admin" in r.json()["detail"]
    assert member_row(db, workspace, workspace.admin_member_id)["role"] == "admin"
    client.patch(f"/api/v1/members/{workspace.agent_member_id}", json={"role": "admin"}, headers=h)
    r = client.patch(f"/api/v1/members/{workspace.admin_member_id}", json={"role": "agent"}, headers=h)
    assert r.status_code == 200


def test_more_capacity_or_a_new_skill_takes_waiting_conversations_at_once(client, db, workspace) -> None:  # type: ignore[no-untyped-def]
    me = workspace.agent_member_id
    with db.transaction() as s:
        s.get(Member, (workspace.id, me)).capacity = 1  # type: ignore[union-attr]
        assignment.set_availability(s, workspace.id, me, "online")
    plain = [base.open_conversation(db, workspace, f"p{i}") for i in range(2)]
    english = needing(db, workspace, "en", ["lang:en"])
    assert [base.assign(db, workspace, c) for c in plain] == [me, None]
    h = auth(workspace.admin_token)
    r = client.patch(f"/api/v1/members/{me}", json={"capacity": 2}, headers=h)
    assert r.status_code == 200
    assert owner(db, workspace, plain[1]) == me and owner(db, workspace, english) is None
    r = client.patch(f"/api/v1/members/{me}", json={"capacity": 3, "skills": ["lang:en"]}, headers=h)
    assert owner(db, workspace, english) == me


# -- the queue, required skills, auto-assign ------------------------------------------------------
def test_the_queue_shows_the_skills_and_why_each_waits(client, db, workspace) -> None:  # type: ignore[no-untyped-def]
    agent(db, workspace, "zh")
    waiting = needing(db, workspace, "en", ["lang:en"])
    assert base.assign(db, workspace, waiting) is None
    r = client.get("/api/v1/automation/queue", headers=auth(workspace.agent_token))
    assert r.status_code == 200
    assert [(q["id"], q["required_skills"], q["reason"]) for q in r.json()] == [
        (str(waiting), ["lang:en"], "no_agent_with_skills")
    ]


def test_an_agent_sets_a_conversations_skills_and_it_is_assigned_when_someone_fits(
    client, db, workspace, other_workspace
) -> None:  # type: ignore[no-untyped-def]
    zh = agent(db, workspace, "zh", capacity=1)
    conv = base.open_conversation(db, workspace, "fan")
    busy = base.open_conversation(db, workspace, "busy")
    assert base.assign(db, workspace, busy) == zh  # zh is now full
    h = auth(workspace.agent_token)
    url = f"/api/v1/conversations/{conv}/required-skills"
    r = client.put(url, json={"skills": ["lang:en"]}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "conversation_id": str(conv),
        "assignee_id": None,
        "required_skills": ["lang:en"],
        "queued_reason": "no_agent_with_skills",
    }
    en = agent(db, workspace, "en", ["lang:en"])
    r = client.put(url, json={"skills": ["LANG:EN"]}, headers=h)  # the same set: just assigned now
    assert r.json()["assignee_id"] == str(en) and r.json()["queued_reason"] is None
    got = client.get(f"/api/v1/conversations/{conv}", headers=h).json()
    assert got["required_skills"] == ["lang:en"] and got["assignee_id"] == str(en)
    for bad in ({"skills": "lang:en"}, {"skills": [""]}, {"skills": [7]}, {"skills": ["a;b"]}, {}, {"x": 1}):
        r = client.put(url, json=bad, headers=h)
        assert r.status_code == 422, (bad, r.text)
    r = client.put(url, json={"skills": ["s"] * 21}, headers=h)
    assert r.status_code == 422
    foreign = f"/api/v1/conversations/{conv}/required-skills"
    r = client.put(foreign, json={"skills": []}, headers=auth(other_workspace.agent_token))
    assert r.status_code == 404
    with db.transaction(readonly=True) as s:
        row = s.get(Conversation, (workspace.id, conv))
        assert row is not None and row.required_skills == ["lang:en"]
    r = client.put(url, json={"skills": []}, headers=h)  # cleared
    assert r.json()["required_skills"] == []


def test_manual_auto_assign(client, db, workspace) -> None:  # type: ignore[no-untyped-def]
    first = agent(db, workspace, "first", ["lang:en"])
    second = agent(db, workspace, "second", ["lang:en"])
    plain = agent(db, workspace, "plain")
    conv = needing(db, workspace, "fan", ["lang:en"])
    h = auth(workspace.agent_token)
    url = f"/api/v1/conversations/{conv}/auto-assign"
    r = client.post(url, headers=h)
    assert r.status_code == 200 and r.json()["assignee_id"] in (str(first), str(second))
    # passing on someone else's conversation: its agent or a supervisor only
    assert client.post(url, headers=h).status_code == 403
    _sup, token = supervisor_token(db, workspace)
    before = owner(db, workspace, conv)
    r = client.post(url, headers=auth(token))
    assert r.status_code == 200
    after = owner(db, workspace, conv)
    assert after in (first, second) and after != before and after != plain
    with db.transaction() as s:
        row = s.get(Conversation, (workspace.id, conv))
        assert row is not None
        row.status = "resolved"
    assert client.post(url, headers=auth(token)).status_code == 422
    assert client.post("/api/v1/conversations/42/auto-assign", headers=auth(token)).status_code == 404
