"""Holiday data: which years chinese_calendar covers is visible (API, admin page, start-up log);
a date in an uncovered year says so instead of silently using weekly hours; a calendar's own
holidays and working days apply (and are validated)."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from scrm.errors import Invalid
from scrm.sla import service as sla
from scrm.sla import tasks as sla_tasks
from scrm.sla.calendar import OFFICIAL_YEARS, BusinessCalendar
from tests.web.conftest import Browser

SH = ZoneInfo("Asia/Shanghai")
WEEKDAYS = {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
OWN_2027 = [
    {"date": "2027-01-01", "kind": "holiday", "name": "元旦"},
    {"date": "2027-01-02", "kind": "workday", "name": "调休"},
]


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH)


def test_the_package_covers_up_to_2026_and_2027_has_no_official_data() -> None:
    assert OFFICIAL_YEARS == (2004, 2026)  # chinese-calendar 1.11.0 (pinned)
    cal = BusinessCalendar.from_config("Asia/Shanghai", WEEKDAYS, True)
    new_year = cal.day_info(dt.date(2027, 1, 1))
    assert (new_year.kind, new_year.source, new_year.official_data) == ("ordinary", "weekly", False)
    assert new_year.note.startswith("no official holiday data for 2027")
    assert cal.is_open(at(2027, 1, 1, 10, 0))  # a Friday: weekly hours, nothing else is known
    covered = cal.day_info(dt.date(2026, 10, 1))
    assert (covered.kind, covered.source, covered.official_data) == ("holiday", "official", True)
    assert covered.name == "National Day"


def test_a_calendars_own_days_apply_and_override_the_official_ones() -> None:
    plain = BusinessCalendar.from_config("Asia/Shanghai", WEEKDAYS, True)
    own = BusinessCalendar.from_config(
        "Asia/Shanghai",
        WEEKDAYS,
        True,
        [*OWN_2027, {"date": "2026-10-05", "kind": "workday"}, {"date": "2026-09-30", "kind": "holiday"}],
    )
    ten = 600
    # Thursday evening before 2027's New Year: Friday is the workspace's holiday, Saturday its workday
    assert plain.add(at(2026, 12, 31, 17, 55), ten) == at(2027, 1, 1, 9, 5)
    assert own.add(at(2026, 12, 31, 17, 55), ten) == at(2027, 1, 2, 9, 5)
    info = own.day_info(dt.date(2027, 1, 1))
    assert (info.kind, info.source, info.name) == ("holiday", "custom", "元旦")
    assert not own.is_open(at(2027, 1, 1, 10, 0)) and own.is_open(at(2027, 1, 2, 10, 0))
    # the calendar's list wins over the official one, both ways
    assert own.is_open(at(2026, 10, 5, 10, 0)) and not plain.is_open(at(2026, 10, 5, 10, 0))
    assert not own.is_open(at(2026, 9, 30, 10, 0)) and plain.is_open(at(2026, 9, 30, 10, 0))
    # and applies even with the Chinese calendar switched off
    off = BusinessCalendar.from_config("Asia/Shanghai", WEEKDAYS, False, OWN_2027)
    assert not off.is_open(at(2027, 1, 1, 10, 0))


@pytest.mark.parametrize(
    ("days", "reason"),
    [
        ([{"date": "2027-02-30", "kind": "holiday"}], "'2027-02-30' is not a date"),
        ([{"date": "27-1-1", "kind": "holiday"}], "is not a date"),
        ([{"date": "2027-01-01", "kind": "day off"}], "kind must be holiday or workday"),
        ([{"date": "2027-01-01", "kind": "holiday", "colour": "red"}], "unknown key 'colour'"),
        ([{"date": "1999-01-01", "kind": "holiday"}], "outside 2000-2100"),
        ([{"date": "2027-01-01", "kind": "holiday", "name": "x" * 41}], "at most 40 characters"),
        ([OWN_2027[0], {**OWN_2027[0], "kind": "workday"}], "listed twice"),
        (["2027-01-01"], "an object"),
        ([{"date": "2027-01-01", "kind": "holiday"}] * 401, "at most 400"),
    ],
)
def test_bad_special_days_are_refused(db, workspace, days, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Invalid) as exc, db.transaction() as s:
        sla.set_calendar(s, workspace.id, None, timezone="Asia/Shanghai", hours=WEEKDAYS, special_days=days)
    assert exc.value.field == "special_days" and reason in exc.value.message
    with db.transaction(readonly=True) as s:
        assert sla.list_calendars(s, workspace.id) == []


def test_the_api_reports_coverage_and_the_days_of_a_calendar(
    db, settings, workspace, client: TestClient
) -> None:  # type: ignore[no-untyped-def]
    admin = {"authorization": f"Bearer {workspace.admin_token}"}
    agent = {"authorization": f"Bearer {workspace.agent_token}"}
    coverage = client.get("/api/v1/sla/calendar/coverage", headers=admin).json()
    assert coverage["official_years"] == [2004, 2026] and "chinese-calendar" in coverage["package"]

    body = {"team": "lost", "timezone": "Asia/Shanghai", "hours": WEEKDAYS, "special_days": OWN_2027}
    r = client.put("/api/v1/sla/calendar", json=body, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["special_days"] == OWN_2027 and r.json()["holiday_data"]["official_years"] == [2004, 2026]

    def day(date: str, team: str | None = "lost") -> dict[str, object]:
        q = f"?date={date}" + (f"&team={team}" if team else "")
        got = client.get(f"/api/v1/sla/calendar/day{q}", headers=admin)
        assert got.status_code == 200, got.text
        return got.json()

    assert day("2027-01-01") | {"hours": None} == {
        "date": "2027-01-01",
        "kind": "holiday",
        "source": "custom",
        "name": "元旦",
        "official_data": False,
        "note": "listed in this calendar's special days",
        "hours": None,
    }
    assert day("2027-01-02")["hours"] == [["09:00", "18:00"]]  # a Saturday, the workspace's workday
    may_day = day("2027-05-03")
    assert may_day["source"] == "weekly" and may_day["official_data"] is False
    assert "no official holiday data for 2027" in str(may_day["note"])
    assert may_day["hours"] == [["09:00", "18:00"]]
    assert day("2026-10-01")["source"] == "official"
    # the workspace has no calendar of its own: round the clock, no holidays
    assert day("2027-01-01", None)["hours"] == [["00:00", "24:00"]]

    # PUT without special_days keeps them; refused input stores nothing
    assert (
        client.put("/api/v1/sla/calendar", json={**body, "special_days": None}, headers=admin).status_code
        == 200
    )
    bad = client.put(
        "/api/v1/sla/calendar",
        json={**body, "special_days": [{"date": "2027-13-01", "kind": "holiday"}]},
        headers=admin,
    )
    assert bad.status_code == 422 and "not a date" in bad.text
    listed = client.get("/api/v1/sla/calendar", headers=admin).json()
    assert [c["special_days"] for c in listed] == [OWN_2027]
    assert client.get("/api/v1/sla/calendar/day?date=2027-01-01", headers=agent).status_code == 403
    assert client.get("/api/v1/sla/calendar/day?date=tomorrow", headers=admin).status_code == 422
    assert client.get("/api/v1/sla/calendar/day?date=2027-01-01&team=nope", headers=admin).status_code == 404


def test_start_up_says_which_years_have_holiday_data(monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="scrm.sla.tasks")
    monkeypatch.setattr(sla, "utcnow", lambda: dt.datetime(2026, 12, 1, 4, tzinfo=dt.UTC))
    sla_tasks.holiday_data_notice()
    (warning,) = [r for r in caplog.records if r.name == "scrm.sla.tasks"]
    assert warning.levelno == logging.WARNING
    assert "no official holiday data for 2027" in warning.getMessage() and "2004-2026" in warning.getMessage()
    caplog.clear()
    monkeypatch.setattr(sla, "utcnow", lambda: dt.datetime(2026, 3, 1, 4, tzinfo=dt.UTC))
    sla_tasks.holiday_data_notice()
    (info,) = [r for r in caplog.records if r.name == "scrm.sla.tasks"]
    assert info.levelno == logging.INFO and "covers 2004-2026" in info.getMessage()


def test_the_admin_page_shows_the_coverage_and_the_calendars_own_days(
    db, settings, workspace, client: TestClient
) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        calendar_id = sla.set_calendar(
            s, workspace.id, None, timezone="Asia/Shanghai", hours=WEEKDAYS, special_days=OWN_2027
        ).id
    admin = Browser(TestClient(client.app))
    admin.login(f"admin@{workspace.slug}.test")
    html = admin.get("/admin/sla").text
    assert 'id="holiday-coverage"' in html and "覆盖 2004–2026 年" in html
    html = admin.get(f"/admin/sla?calendar={calendar_id}").text
    assert "2027-01-01 holiday 元旦\n2027-01-02 workday 调休</textarea>" in html  # shown for editing
    # saved back through the form, with one day more; a bad line is refused with the reason
    form = {
        "team_id": "",
        "timezone": "Asia/Shanghai",
        "cn_holidays": "1",
        "mon": "09:00-18:00",
        "special_days": "2027-01-01 holiday 元旦\n2027-02-08 holiday 春节",
    }
    r = admin.post("/admin/sla/calendars", form, htmx=False)
    assert r.status_code == 303, r.text
    with db.transaction(readonly=True) as s:
        (cal,) = sla.list_calendars(s, workspace.id)
        assert cal.special_days == [
            {"date": "2027-01-01", "kind": "holiday", "name": "元旦"},
            {"date": "2027-02-08", "kind": "holiday", "name": "春节"},
        ]
    r = admin.post("/admin/sla/calendars", {**form, "special_days": "2027-02-08 放假"}, htmx=False)
    assert (
        r.status_code == 422
        and 'id="calendar-error"' in r.text
        and "kind must be holiday or workday" in r.text
    )
    r = admin.post("/admin/sla/calendars", {**form, "special_days": "2027-02-08"}, htmx=False)
    assert r.status_code == 422 and "line 1: date and kind" in r.text
    with db.transaction(readonly=True) as s:
        assert len(sla.list_calendars(s, workspace.id)[0].special_days) == 2
