"""Admin → Members: capacity, skills and seniority edited in the UI (hostile input refused
with the reason, nothing stored); the header's availability switch (members start offline, so
this is how a browser-only agent starts getting work; going away hands work on)."""

from __future__ import annotations

import re

import pytest

from scrm.conversation import assignment
from scrm.db import Database
from scrm.models import Member
from tests.conftest import Workspace
from tests.conversation import test_assignment as base
from tests.web.conftest import Browser


def member(db: Database, ws: Workspace, member_id: int) -> Member:
    with db.transaction(readonly=True) as s:
        row = s.get(Member, (ws.id, member_id))
        assert row is not None
        s.expunge(row)
        return row


def test_admin_edits_capacity_skills_and_seniority(admin: Browser, db, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    target = workspace.agent_member_id
    page = admin.get("/admin/members").text
    assert f'action="/admin/members/{target}/settings"' in page
    r = admin.post(
        f"/admin/members/{target}/settings",
        {"capacity": "7", "skills": "Lang:EN，channel:weibo, product:行李", "is_senior": "1"},
        htmx=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/members?saved=1"
    m = member(db, workspace, target)
    assert (m.capacity, m.skills, m.is_senior) == (7, ["lang:en", "channel:weibo", "product:行李"], True)
    page = admin.get("/admin/members?saved=1").text
    assert 'value="lang:en, channel:weibo, product:行李"' in page and 'id="flash-saved"' in page
    # unticking the box and clearing the skills
    admin.post(f"/admin/members/{target}/settings", {"capacity": "7", "skills": ""}, htmx=False)
    m = member(db, workspace, target)
    assert (m.skills, m.is_senior) == ([], False)


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"capacity": "abc", "skills": ""}, "capacity must be a whole number"),
        ({"capacity": "-1", "skills": ""}, "0 to 200"),
        ({"capacity": "201", "skills": ""}, "0 to 200"),
        ({"capacity": "", "skills": ""}, "capacity must be a whole number"),
        ({"capacity": "5", "skills": "x" * 41}, "at most 40"),
        ({"capacity": "5", "skills": ",".join(f"s{i}" for i in range(21))}, "at most 20"),
        ({"capacity": "5", "skills": "ok; drop table"}, "semicolons"),
        ({"capacity": "5", "skills": "<script>alert(1)</script>\x01"}, "control characters"),
    ],
)
def test_hostile_member_settings_are_refused_with_the_reason(
    admin: Browser, db, workspace: Workspace, form: dict[str, str], reason: str
) -> None:  # type: ignore[no-untyped-def]
    r = admin.post(f"/admin/members/{workspace.agent_member_id}/settings", form, htmx=False)
    assert r.status_code == 422
    assert 'id="member-error"' in r.text and reason in r.text
    assert "<script>alert" not in r.text  # what was typed is shown back escaped
    m = member(db, workspace, workspace.agent_member_id)
    assert (m.capacity, m.skills, m.is_senior) == (20, [], False)


def test_member_settings_need_an_admin_and_the_csrf_token(
    agent: Browser, admin: Browser, db, workspace: Workspace, other_workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    url = f"/admin/members/{workspace.agent_member_id}/settings"
    assert agent.post(url, {"capacity": "100", "skills": ""}, htmx=False).status_code == 403
    r = admin.client.post(url, data={"capacity": "100", "skills": ""}, follow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    r = admin.post(
        f"/admin/members/{other_workspace.agent_member_id}/settings", {"capacity": "1"}, htmx=False
    )
    assert r.status_code == 404
    assert admin.post("/admin/members/abc/settings", {"capacity": "1"}, htmx=False).status_code == 422
    assert member(db, workspace, workspace.agent_member_id).capacity == 20
    assert member(db, other_workspace, other_workspace.agent_member_id).capacity == 20


def pressed(html: str) -> list[str]:
    return re.findall(r'id="avail-(\w+)" class="avail-\w+ on" aria-pressed="true"', html)


def test_the_header_switch_sets_my_availability_and_hands_work_on(
    agent: Browser, db, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    me = workspace.agent_member_id
    assert pressed(agent.get("/inbox").text) == ["offline"]  # members start offline
    r = agent.client.post(
        "/ui/availability",
        data={"availability": "online", "csrf_token": agent.csrf},
        headers={"referer": "http://testserver/inbox?view=mine"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/inbox?view=mine"
    assert member(db, workspace, me).availability == "online"
    assert pressed(agent.get("/inbox").text) == ["online"]
    conv = base.open_conversation(db, workspace, "fan")
    assert base.assign(db, workspace, conv) == me
    # away: my conversation goes back to the queue (nobody else is online)
    r = agent.post("/ui/availability", {"availability": "away"})  # HTMX: refresh the page
    assert r.status_code == 204 and r.headers["hx-refresh"] == "true"
    assert member(db, workspace, me).availability == "away"
    assert base.owner(db, workspace, conv) is None
    # online again: it comes straight back from the queue
    agent.post("/ui/availability", {"availability": "online"}, htmx=False)
    assert base.owner(db, workspace, conv) == me
    # an open redirect through the referer is not followed
    r = agent.client.post(
        "/ui/availability",
        data={"availability": "online", "csrf_token": agent.csrf},
        headers={"referer": "https://evil.example//evil.example/x"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/inbox"


@pytest.mark.parametrize("value", ["busy", "", "ONLINE", "online\x00", "x" * 11])
def test_the_header_switch_refuses_hostile_values(
    agent: Browser, db, workspace: Workspace, value: str
) -> None:  # type: ignore[no-untyped-def]
    r = agent.post("/ui/availability", {"availability": value}, htmx=False)
    assert r.status_code == 422
    assert member(db, workspace, workspace.agent_member_id).availability == "offline"


def test_the_header_switch_needs_the_csrf_token(agent: Browser, db, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    r = agent.client.post("/ui/availability", data={"availability": "online"}, follow_redirects=False)
    assert r.status_code == 403
    assert member(db, workspace, workspace.agent_member_id).availability == "offline"
    with db.transaction() as s:  # the service is the one the API uses
        assignment.set_availability(s, workspace.id, workspace.agent_member_id, "away")
    assert pressed(agent.get("/inbox").text) == ["away"]
