"""SLA next-response clock: it starts when the fan writes again after an agent's reply, warns
and breaches exactly once whatever the number of workers, pauses while the conversation waits
on the fan, and every cycle's breach escalates on its own."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from scrm.conversation import service as conversation_service
from scrm.db import Database
from scrm.models import Conversation, ConversationActivity, Job, SlaEvent, SlaTimer, Workspace
from scrm.sla import service as sla
from tests.automation.helpers import deliver
from tests.conftest import Workspace as WS
from tests.helpers import Recorder, run_concurrently, run_jobs


def the_conversation(db: Database) -> Conversation:
    with db.transaction(readonly=True) as s:
        return s.execute(select(Conversation)).scalar_one()


def timers(db: Database, metric: str) -> list[SlaTimer]:
    with db.transaction(readonly=True) as s:
        return list(
            s.execute(select(SlaTimer).where(SlaTimer.metric == metric).order_by(SlaTimer.cycle)).scalars()
        )


def agent_replies(db: Database, ws: WS, text: str, *, then: str | None = None) -> None:
    """An agent answers (a human response) and optionally sets the status, as the UI does."""
    with db.transaction() as s:
        conv = s.execute(select(Conversation)).scalar_one()
        conversation_service.send_reply(s, conv, text, sender_type="agent", author_id=ws.agent_member_id)
        if then:
            conversation_service.set_status(s, conv, then, ws.agent_member_id)
        sla.sync(s, conv)


def check_concurrently(
    db: Database, ws: WS, timer_id: int, now: dt.datetime, workers: int = 4
) -> list[str | None]:
    def work(_i: int) -> str | None:
        with db.transaction() as s:
            return sla.check(s, ws.id, timer_id, now=now)

    return run_concurrently(work, workers)


def test_next_response_clock_warns_and_breaches_once_per_cycle(db, settings, workspace, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with Recorder().running() as supervisor_hook:
        _next_response_cycles(db, settings, workspace, monkeypatch, supervisor_hook)


def _next_response_cycles(db, settings, workspace, monkeypatch, supervisor_hook: Recorder) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        ws_row = s.get(Workspace, workspace.id)
        assert ws_row is not None
        ws_row.settings = {**(ws_row.settings or {}), "escalation_webhook_url": supervisor_hook.url}
    deliver(db, workspace, "e1", "我的行李还没到，怎么办")
    run_jobs(db, settings)
    agent_replies(db, workspace, "正在帮您查询，请稍等", then="pending")
    # answered, waiting on the fan: no next-response clock yet
    assert timers(db, "next_response") == []
    assert [t.status for t in timers(db, "first_response")] == ["met"]

    deliver(db, workspace, "e2", "还是没有消息吗？")  # the fan writes again: the clock starts
    run_jobs(db, settings)
    conv = the_conversation(db)
    assert conv.status == "open"
    (t1,) = timers(db, "next_response")
    assert t1.status == "running" and t1.cycle == 1
    assert t1.due_at - t1.started_at == dt.timedelta(minutes=30)  # default policy, round the clock
    assert t1.warn_at is not None and t1.due_at - t1.warn_at == dt.timedelta(minutes=2)
    assert conv.first_response_at is not None and t1.started_at > conv.first_response_at
    # the fan writing once more does not open a second clock for the same wait
    deliver(db, workspace, "e3", "在吗")
    run_jobs(db, settings)
    assert len(timers(db, "next_response")) == 1

    # four workers check before the warning time, at it, and past the due time
    early = check_concurrently(db, workspace, t1.id, t1.warn_at - dt.timedelta(seconds=5))
    assert early == [None] * 4
    warned = check_concurrently(db, workspace, t1.id, t1.warn_at + dt.timedelta(seconds=1))
    assert warned.count("warning") == 1 and warned.count(None) == 3
    breached = check_concurrently(db, workspace, t1.id, t1.due_at + dt.timedelta(seconds=1))
    assert breached.count("breach") == 1 and breached.count(None) == 3
    with db.transaction(readonly=True) as s:
        events = s.execute(select(SlaEvent).order_by(SlaEvent.occurred_at)).scalars().all()
        assert [(e.kind, e.metric, e.timer_id) for e in events] == [
            ("warning", "next_response", t1.id),
            ("breach", "next_response", t1.id),
        ]
        kinds = list(
            s.execute(
                select(ConversationActivity.kind).where(
                    ConversationActivity.kind.in_(("sla_warning", "sla_breached"))
                )
            ).scalars()
        )
        assert sorted(kinds) == ["sla_breached", "sla_warning"]

    # the agent answers late: the clock is met (and stays breached); the next wait is cycle 2
    agent_replies(db, workspace, "找到了，明天送到您家")
    (t1,) = timers(db, "next_response")
    assert t1.status == "met" and t1.breached_at is not None and t1.met_at is not None
    deliver(db, workspace, "e4", "几点送到？")
    run_jobs(db, settings)
    t1, t2 = timers(db, "next_response")
    assert (t2.cycle, t2.status) == (2, "running") and t2.started_at > t1.met_at  # type: ignore[operator]
    assert check_concurrently(db, workspace, t2.id, t2.due_at + dt.timedelta(seconds=1)).count("breach") == 1

    # each cycle's breach escalated on its own (the second is not swallowed as a duplicate)
    with db.transaction(readonly=True) as s:
        notices = [
            j.payload["body"]
            for j in s.execute(select(Job).where(Job.kind == "automation.notify")).scalars()
            if j.payload["body"].get("event") == "escalation"
        ]
    assert len(notices) == 2 and {n["conversation_id"] for n in notices} == {str(conv.id)}
    run_jobs(db, settings)
    assert len(supervisor_hook.requests) == 2

    # the due-time jobs run later too (real worker, clock moved on): nothing is recorded twice
    later = t2.due_at + dt.timedelta(days=2)
    monkeypatch.setattr("scrm.worker.repository.utcnow", lambda: later)
    monkeypatch.setattr("scrm.sla.service.utcnow", lambda: later)
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        counts = dict(
            s.execute(
                select(SlaEvent.kind, func.count())
                .where(SlaEvent.metric == "next_response")
                .group_by(SlaEvent.kind)
            ).all()
        )
    # cycle 2 only breached (its warning time had passed unchecked before the breach check)
    assert counts == {"warning": 1, "breach": 2}


def test_waiting_on_the_fan_pauses_the_next_response_clock(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    deliver(db, workspace, "e1", "改签要多少钱")
    run_jobs(db, settings)
    agent_replies(db, workspace, "请问是哪个航班？", then="pending")
    deliver(db, workspace, "e2", "MU5137")
    run_jobs(db, settings)
    (t,) = timers(db, "next_response")
    assert t.status == "running"

    # ten minutes into the wait a supervisor marks it waiting on the fan (no reply yet)
    paused_at = t.started_at + dt.timedelta(minutes=10)
    with db.transaction() as s:
        conv = s.execute(select(Conversation)).scalar_one()
        conversation_service.set_status(s, conv, "pending", None)
        sla.sync(s, conv, now=paused_at)
    (t,) = timers(db, "next_response")
    assert t.status == "paused" and t.remaining_seconds == 20 * 60
    # a paused clock neither warns nor breaches, however late it is checked
    with db.transaction() as s:
        assert sla.check(s, workspace.id, t.id, now=t.due_at + dt.timedelta(hours=3)) is None
    # the resolution clock waits too
    assert [r.status for r in timers(db, "resolution")] == ["paused"]

    # the fan writes back: the same clock resumes with the time it had left; no new cycle
    before = dt.datetime.now(dt.UTC)
    deliver(db, workspace, "e3", "还在吗")
    run_jobs(db, settings)
    (t,) = timers(db, "next_response")
    assert t.status == "running" and t.remaining_seconds is None and t.cycle == 1
    assert before + dt.timedelta(minutes=20) <= t.due_at <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
    assert t.warn_at is not None and t.due_at - t.warn_at == dt.timedelta(minutes=2)
    assert [r.status for r in timers(db, "resolution")] == ["running"]
    with db.transaction(readonly=True) as s:
        assert s.execute(select(SlaEvent)).first() is None
    # answered in time now: met, never breached
    agent_replies(db, workspace, "改签费 200 元")
    (t,) = timers(db, "next_response")
    assert t.status == "met" and t.breached_at is None and t.met_at is not None and t.met_at <= t.due_at
