"""Admin → SLA: policies per workspace/team/priority and business hours per team (time zone,
Chinese holidays and swapped working days), saved through the SLA service; bad input is shown
again with the reason and nothing is stored."""

from __future__ import annotations

import datetime as dt
import re

from scrm.db import Database
from scrm.sla import service as sla_service
from scrm.web.pages.sla import special_days
from tests.conftest import Workspace
from tests.web.conftest import Browser

POLICY = {
    "name": "失物加急",
    "team_id": "",
    "priority": "urgent",
    "first_response_minutes": "5",
    "next_response_minutes": "",
    "resolution_minutes": "240",
    "warn_before_minutes": "1",
}
WEEK = {
    "mon": "09:00-12:00, 13:00-18:00",
    "tue": "9:00-18:00",
    "wed": "09:00-18:00",
    "thu": "09:00-18:00",
    "fri": "09:00-18:00",
    "sat": "10:00-16:00",
    "sun": "",
    "holiday": "",
    "workday": "",
}


def policies(db: Database, ws: Workspace) -> list:  # type: ignore[type-arg]
    with db.transaction(readonly=True) as s:
        return sla_service.list_policies(s, ws.id)


def calendars(db: Database, ws: Workspace) -> list:  # type: ignore[type-arg]
    with db.transaction(readonly=True) as s:
        return sla_service.list_calendars(s, ws.id)


def test_policy_create_edit_and_delete(admin: Browser, db: Database, workspace: Workspace) -> None:
    lost = workspace.team_ids["lost"]
    data = {**POLICY, "team_id": str(lost), "escalation": ["notify_supervisor", "raise_priority"]}
    r = admin.post("/admin/sla/policies", data, htmx=False)
    assert r.status_code == 303, r.text
    [p] = policies(db, workspace)
    assert (p.name, p.team_id, p.priority) == ("失物加急", lost, "urgent")
    assert (
        p.first_response_minutes,
        p.next_response_minutes,
        p.resolution_minutes,
        p.warn_before_minutes,
    ) == (
        5,
        None,
        240,
        1,
    )
    assert p.escalation == [{"type": "notify_supervisor"}, {"type": "raise_priority"}]
    with db.transaction(readonly=True) as s:  # the most specific policy now applies to the team
        assert sla_service.targets_for(s, workspace.id, lost, "urgent").first_response == 300
        assert sla_service.targets_for(s, workspace.id, None, "urgent").first_response == 600

    page = admin.get("/admin/sla").text
    row = re.search(rf'<tr id="policy-{p.id}">(.*?)</tr>', page, re.S)
    assert row and "失物招领" in row.group(1) and "紧急" in row.group(1) and "4 小时" in row.group(1)
    # Edit: the form is filled in; the name is the key and cannot change.
    edit = admin.get(f"/admin/sla?policy={p.id}").text
    assert 'value="失物加急"' in edit and "readonly" in edit and 'value="240"' in edit
    admin.post("/admin/sla/policies", {**data, "first_response_minutes": "8", "editing": "1"}, htmx=False)
    [p] = policies(db, workspace)
    assert p.first_response_minutes == 8

    assert admin.post(f"/admin/sla/policies/{p.id}/delete", htmx=False).status_code == 303
    assert policies(db, workspace) == []


def test_bad_policies_are_refused_with_the_reason(admin: Browser, db: Database, workspace: Workspace) -> None:
    cases = [
        ({"warn_before_minutes": "5"}, "warn_before_minutes must be below first_response_minutes"),
        ({"first_response_minutes": "十"}, "first_response_minutes must be a whole number"),
        ({"first_response_minutes": ""}, "first_response_minutes is required"),
        ({"resolution_minutes": "0"}, "resolution_minutes must be between"),
        ({"priority": "asap"}, "priority must be low, normal, high or urgent"),
        ({"name": "  "}, "a policy needs a name"),
        ({"team_id": "abc"}, "team must be a team id"),
    ]
    for change, reason in cases:
        r = admin.post("/admin/sla/policies", {**POLICY, **change}, htmx=False)
        assert r.status_code == 422, (change, r.text[:500])
        assert 'id="policy-error"' in r.text and reason in r.text, change
        assert policies(db, workspace) == []
    r = admin.post("/admin/sla/policies", {**POLICY, "escalation": ["explode"]}, htmx=False)
    assert r.status_code == 422 and "escalation[0]" in r.text
    assert 'value="失物加急"' in r.text  # the admin's input is kept
    assert policies(db, workspace) == []


def test_business_hours_per_team_with_holidays(admin: Browser, db: Database, workspace: Workspace) -> None:
    lost = workspace.team_ids["lost"]
    form = {"team_id": str(lost), "timezone": "Asia/Shanghai", "cn_holidays": "1", **WEEK}
    assert admin.post("/admin/sla/calendars", form, htmx=False).status_code == 303
    [cal] = calendars(db, workspace)
    assert cal.team_id == lost and cal.cn_holidays and cal.timezone == "Asia/Shanghai"
    assert cal.hours == {
        "mon": [["09:00", "12:00"], ["13:00", "18:00"]],
        "tue": [["09:00", "18:00"]],
        "wed": [["09:00", "18:00"]],
        "thu": [["09:00", "18:00"]],
        "fri": [["09:00", "18:00"]],
        "sat": [["10:00", "16:00"]],
        "sun": [],
        "holiday": [],
    }  # no "workday": swapped working days follow Monday
    with db.transaction(readonly=True) as s:
        # National Day 2026 (Thursday) is closed; an ordinary Thursday is open at 10:00 Beijing.
        assert not sla_service.in_business_hours(
            s, workspace.id, lost, dt.datetime(2026, 10, 1, 2, tzinfo=dt.UTC)
        )
        assert sla_service.in_business_hours(
            s, workspace.id, lost, dt.datetime(2026, 10, 15, 2, tzinfo=dt.UTC)
        )
        assert sla_service.in_business_hours(
            s, workspace.id, None, dt.datetime(2026, 10, 1, 2, tzinfo=dt.UTC)
        )

    page = admin.get("/admin/sla").text
    row = re.search(rf'<tr id="calendar-{cal.id}">(.*?)</tr>', page, re.S)
    assert row and "失物招领" in row.group(1) and "09:00-12:00, 13:00-18:00" in row.group(1)
    assert "同周一" in row.group(1) and "UTC+08:00" in row.group(1)
    edit = admin.get(f"/admin/sla?calendar={cal.id}").text
    assert 'value="10:00-16:00"' in edit

    # Saving the same scope again replaces it (one calendar per scope); a time zone elsewhere.
    admin.post(
        "/admin/sla/calendars", {**form, "timezone": "Europe/London", "workday": "10:00-15:00"}, htmx=False
    )
    [cal] = calendars(db, workspace)
    assert cal.timezone == "Europe/London" and cal.hours["workday"] == [["10:00", "15:00"]]


def test_bad_business_hours_are_refused_with_the_reason(
    admin: Browser, db: Database, workspace: Workspace
) -> None:
    cases = [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"timezone": "../../etc/passwd"}, "unknown time zone"),
        ({"mon": "9点-18点"}, "is not a time range like 09:00-18:00"),
        ({"tue": "18:00-09:00"}, "ends before it starts"),
        ({"wed": "09:00-12:00, 11:00-13:00"}, "spans overlap"),
        ({"thu": "09:00-25:00"}, "is not a time HH:MM"),
        ({"team_id": "x"}, "team must be a team id"),
    ]
    for change, reason in cases:
        r = admin.post("/admin/sla/calendars", {"timezone": "Asia/Shanghai", **WEEK, **change}, htmx=False)
        assert r.status_code == 422, change
        assert 'id="calendar-error"' in r.text and reason in r.text, (change, r.text[-3000:])
        assert calendars(db, workspace) == []


def test_special_days_lists_holidays_and_swapped_working_days() -> None:
    days = {d: (kind, name) for d, kind, name in special_days(dt.date(2026, 9, 20), 30)}
    assert days[dt.date(2026, 10, 1)] == ("holiday", "national_day")
    assert all(days[d][0] == "holiday" for d in days if dt.date(2026, 10, 1) <= d <= dt.date(2026, 10, 7))
    swapped = [d for d, (kind, _n) in days.items() if kind == "workday"]
    assert swapped and all(d.weekday() >= 5 for d in swapped)
    assert dt.date(2026, 10, 15) not in days


def test_sla_admin_is_for_admins_with_csrf_and_scoped_to_the_workspace(
    admin: Browser, agent: Browser, db: Database, workspace: Workspace, other_workspace: Workspace
) -> None:
    assert agent.get("/admin/sla").status_code == 403
    assert agent.post("/admin/sla/policies", POLICY, htmx=False).status_code == 403
    assert agent.post("/admin/sla/calendars", {"timezone": "UTC", **WEEK}, htmx=False).status_code == 403
    assert admin.client.post("/admin/sla/policies", data=POLICY).status_code == 403  # no CSRF token
    assert admin.client.post("/admin/sla/calendars", data={"csrf_token": "x", **WEEK}).status_code == 403
    assert policies(db, workspace) == [] and calendars(db, workspace) == []

    other_team = other_workspace.team_ids["lost"]
    with db.transaction() as s:
        theirs = sla_service.upsert_policy(s, other_workspace.id, "theirs", {"first_response_minutes": 3}).id
        their_cal = sla_service.set_calendar(
            s, other_workspace.id, None, timezone="UTC", hours={"mon": []}
        ).id
    assert (
        admin.post("/admin/sla/policies", {**POLICY, "team_id": str(other_team)}, htmx=False).status_code
        == 404
    )
    assert (
        admin.post("/admin/sla/calendars", {**WEEK, "team_id": str(other_team)}, htmx=False).status_code
        == 404
    )
    assert admin.post(f"/admin/sla/policies/{theirs}/delete", htmx=False).status_code == 404
    assert admin.get(f"/admin/sla?policy={theirs}").status_code == 404
    assert admin.get(f"/admin/sla?calendar={their_cal}").status_code == 404
    page = admin.get("/admin/sla").text
    assert "theirs" not in page and f"calendar-{their_cal}" not in page
    assert policies(db, workspace) == [] and calendars(db, workspace) == []
    assert [p.name for p in policies(db, other_workspace)] == ["theirs"]
