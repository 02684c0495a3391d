"""SLA: due times over business hours, holidays and 调休; a breach recorded exactly once."""

from __future__ import annotations

import collections
import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from scrm.conversation import service as conversation_service
from scrm.errors import Invalid
from scrm.models import Conversation, Job, SlaEvent, SlaTimer
from scrm.sla import service as sla
from scrm.sla.calendar import BusinessCalendar
from tests.automation.helpers import deliver
from tests.helpers import run_jobs

SH = ZoneInfo("Asia/Shanghai")
NINE_TO_SIX = {d: [["09:00", "12:00"], ["13:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH)


@pytest.fixture
def cal() -> BusinessCalendar:
    return BusinessCalendar.from_config("Asia/Shanghai", NINE_TO_SIX, cn_holidays=True)


def test_due_times_over_hours_lunch_holidays_and_swapped_workdays(cal: BusinessCalendar) -> None:
    ten = 600
    # inside hours
    assert cal.add(at(2025, 9, 24, 10, 0), ten) == at(2025, 9, 24, 10, 10)
    # across lunch: 11:55 + 10 min = 13:05
    assert cal.add(at(2025, 9, 24, 11, 55), ten) == at(2025, 9, 24, 13, 5)
    # after hours → next morning
    assert cal.add(at(2025, 9, 24, 17, 55), ten) == at(2025, 9, 25, 9, 5)
    # Friday evening → Monday
    assert cal.add(at(2025, 9, 19, 18, 30), ten) == at(2025, 9, 22, 9, 10)
    # ... unless Sunday is a swapped working day (调休): Sun 2025-09-28 is open
    assert cal.add(at(2025, 9, 26, 18, 30), ten) == at(2025, 9, 28, 9, 10)
    # National Day: 2025-09-30 (Tue) evening → holiday 10/1-10/8 → 10/9 (Thu)
    assert cal.add(at(2025, 9, 30, 17, 55), ten) == at(2025, 10, 9, 9, 5)
    # Saturday 2025-10-11 is a swapped working day (调休), an ordinary Saturday is not
    assert cal.is_open(at(2025, 10, 11, 10, 0)) and not cal.is_open(at(2025, 9, 27, 10, 0))
    assert cal.add(at(2025, 10, 11, 8, 0), ten) == at(2025, 10, 11, 9, 10)
    # Spring Festival 2026: Sat 2026-02-14 is a working day, 2026-02-16 (Mon) a holiday
    assert cal.add(at(2026, 2, 13, 17, 55), ten) == at(2026, 2, 14, 9, 5)
    assert not cal.is_open(at(2026, 2, 16, 10, 0))
    assert cal.between(at(2025, 9, 24, 11, 0), at(2025, 9, 24, 14, 0)) == 2 * 3600
    # without the Chinese calendar, a holiday Wednesday is an ordinary day
    plain = BusinessCalendar.from_config("Asia/Shanghai", NINE_TO_SIX, cn_holidays=False)
    assert plain.add(at(2025, 9, 30, 17, 55), ten) == at(2025, 10, 1, 9, 5)


@pytest.mark.parametrize(
    "hours",
    [
        {"mon": [["18:00", "09:00"]]},
        {"funday": []},
        {"mon": [["9:00", "18:00"]]},
        {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]},
        {"mon": "all day"},
    ],
)
def test_bad_business_hours_are_refused(db, workspace, hours) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Invalid), db.transaction() as s:
        sla.set_calendar(s, workspace.id, None, timezone="Asia/Shanghai", hours=hours)
    with pytest.raises(Invalid), db.transaction() as s:
        sla.set_calendar(s, workspace.id, None, timezone="Mars/Olympus", hours={})


def test_first_response_met_by_a_human_and_breach_recorded_once(db, settings, workspace, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    deliver(db, workspace, "e1", "航班延误了怎么办")
    deliver(db, workspace, "e2", "我要投诉", sender="fan-2")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        timers = s.execute(select(SlaTimer).where(SlaTimer.metric == "first_response")).scalars().all()
        assert len(timers) == 2
        assert all(
            dt.timedelta(minutes=9) < t.due_at - t.started_at <= dt.timedelta(minutes=10) for t in timers
        )
        convs = {c.fan_external_id: c for c in s.execute(select(Conversation)).scalars()}
    # fan-1 gets a bot reply (does not count) and then a human one (counts)
    with db.transaction() as s:
        conv = s.get(Conversation, (workspace.id, convs["fan-1"].id))
        conversation_service.send_reply(s, conv, "自动回复", sender_type="bot")
        assert conv.first_response_at is None
        conversation_service.send_reply(s, conv, "您好，我来帮您查", sender_type="agent")
        sla.sync(s, conv)
    # the met clock's warning and due checks left the queue; fan-2's, and fan-1's resolution
    # clock's, are still there
    with db.transaction(readonly=True) as s:
        jobs = s.execute(select(Job).where(Job.kind == "sla.check", Job.status == "queued")).scalars().all()
        queued = collections.Counter(
            (t.conversation_id, t.metric)
            for job in jobs
            if (t := s.get(SlaTimer, (workspace.id, int(job.payload["timer_id"])))) is not None
        )
    fan1, fan2 = convs["fan-1"].id, convs["fan-2"].id
    assert queued[(fan1, "first_response")] == 0
    assert queued[(fan2, "first_response")] == 2  # warning and due
    assert queued[(fan1, "resolution")] == 1
    # eleven minutes later, five workers check every timer at once
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11)
    timer_ids = [t.id for t in timers]
    results: list[str | None] = []
    lock = threading.Lock()

    def check(tid: int) -> None:
        with db.transaction() as s:
            r = sla.check(s, workspace.id, tid, now=later)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=check, args=(tid,)) for tid in timer_ids for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("breach") == 1
    with db.transaction(readonly=True) as s:
        events = s.execute(select(SlaEvent)).scalars().all()
        assert [(e.kind, e.conversation_id) for e in events] == [("breach", convs["fan-2"].id)]
        met = s.execute(
            select(SlaTimer).where(
                SlaTimer.conversation_id == convs["fan-1"].id, SlaTimer.metric == "first_response"
            )
        ).scalar_one()
        assert met.status == "met" and met.met_at is not None and met.met_at <= met.due_at
    # the due-time jobs themselves also fire later without recording anything twice
    monkeypatch.setattr("scrm.worker.repository.utcnow", lambda: later + dt.timedelta(days=2))
    monkeypatch.setattr("scrm.sla.service.utcnow", lambda: later + dt.timedelta(days=2))
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        n = s.execute(
            select(func.count())
            .select_from(SlaEvent)
            .where(SlaEvent.kind == "breach", SlaEvent.metric == "first_response")
        ).scalar_one()
        assert n == 1


def test_waiting_on_the_fan_pauses_the_clock(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    deliver(db, workspace, "e1", "行李额度是多少")
    run_jobs(db, settings)
    with db.transaction() as s:
        conv = s.execute(select(Conversation)).scalar_one()
        conversation_service.set_status(s, conv, "pending", None)
        sla.sync(s, conv)
        t = s.execute(select(SlaTimer).where(SlaTimer.metric == "first_response")).scalar_one()
        assert t.status == "paused" and 0 < (t.remaining_seconds or 0) <= 600
        assert sla.check(s, workspace.id, t.id, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)) is None
        assert checks_queued(s, t.id) == []  # a paused clock's checks leave the queue
    deliver(db, workspace, "e2", "在吗？")  # the fan writes back: pending → open, clock resumes
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        t = s.execute(select(SlaTimer).where(SlaTimer.metric == "first_response")).scalar_one()
        assert t.status == "running" and t.due_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        assert s.execute(select(SlaEvent)).first() is None
        assert checks_queued(s, t.id) == sorted([t.warn_at, t.due_at])  # rescheduled for the new times


def checks_queued(s, timer_id: int) -> list[dt.datetime]:  # type: ignore[no-untyped-def]
    jobs = s.execute(select(Job).where(Job.kind == "sla.check", Job.status == "queued")).scalars()
    return sorted(j.run_at for j in jobs if int(j.payload["timer_id"]) == timer_id)


def test_policy_per_team_and_priority(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        sla.upsert_policy(s, workspace.id, "vip", {"priority": "urgent", "first_response_minutes": 5})
        sla.upsert_policy(
            s, workspace.id, "lost", {"team_id": workspace.team_ids["lost"], "first_response_minutes": 30}
        )
        assert sla.targets_for(s, workspace.id, None, "urgent").first_response == 300
        assert sla.targets_for(s, workspace.id, workspace.team_ids["lost"], "normal").first_response == 1800
        assert sla.targets_for(s, workspace.id, None, "normal").first_response == 600
        with pytest.raises(Invalid):
            sla.upsert_policy(s, workspace.id, "bad", {"first_response_minutes": 0})
        with pytest.raises(Invalid):
            sla.upsert_policy(
                s, workspace.id, "bad", {"first_response_minutes": 10, "escalation": [{"type": "panic"}]}
            )


def test_a_new_policy_without_next_response_or_resolution_has_none(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        given = sla.upsert_policy(
            s,
            workspace.id,
            "first only",
            {"first_response_minutes": 15, "next_response_minutes": None, "resolution_minutes": None},
        )
        defaulted = sla.upsert_policy(s, workspace.id, "defaults", {"first_response_minutes": 5})
        got = [
            (p.next_response_minutes, p.resolution_minutes, p.warn_before_minutes) for p in (given, defaulted)
        ]
    assert got == [(None, None, 2), (30, 24 * 60, 2)]
