"""Running SLA clocks follow the conversation: a new priority or team re-targets them (the due
time and the queued checks move, the breach is still recorded once); a resumed clock warns at
the policy's warning time; the escalations raise the priority and reassign."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from scrm.automation import service as rules
from scrm.conversation import assignment
from scrm.conversation import service as conversation_service
from scrm.models import Conversation, ConversationActivity, Job, SlaEvent, SlaTimer
from scrm.sla import service as sla
from scrm.workspace import service as ws_service
from tests.automation.helpers import deliver
from tests.helpers import run_concurrently, run_jobs

MIN = dt.timedelta(minutes=1)


def timer(db, metric: str = "first_response") -> SlaTimer:  # type: ignore[no-untyped-def]
    with db.transaction(readonly=True) as s:
        return s.execute(select(SlaTimer).where(SlaTimer.metric == metric)).scalar_one()


def checks_queued(db, timer_id: int) -> list[dt.datetime]:  # type: ignore[no-untyped-def]
    with db.transaction(readonly=True) as s:
        jobs = s.execute(select(Job).where(Job.kind == "sla.check", Job.status == "queued")).scalars()
        return sorted(j.run_at for j in jobs if int(j.payload["timer_id"]) == timer_id)


def patch(client: TestClient, ws, conv_id: int, **body: object) -> None:  # type: ignore[no-untyped-def]
    r = client.patch(
        f"/api/v1/conversations/{conv_id}", json=body, headers={"authorization": f"Bearer {ws.agent_token}"}
    )
    assert r.status_code == 200, r.text


def close(a: dt.datetime, b: dt.datetime, seconds: float = 5) -> bool:
    return abs((a - b).total_seconds()) <= seconds


def test_raising_the_priority_shortens_the_clock_and_moves_its_checks(
    db, settings, workspace, client
) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        sla.upsert_policy(
            s,
            workspace.id,
            "urgent",
            {"priority": "urgent", "first_response_minutes": 3, "warn_before_minutes": 1},
        )
    deliver(db, workspace, "e1", "航班取消了，怎么改签")
    run_jobs(db, settings)
    before = timer(db)
    resolution = timer(db, "resolution")
    assert close(before.due_at, before.started_at + 10 * MIN) and before.priority == "normal"
    assert checks_queued(db, before.id) == [before.warn_at, before.due_at]
    resolution_checks = checks_queued(db, resolution.id)

    patch(client, workspace, before.conversation_id, priority="urgent")
    run_jobs(db, settings)  # the sla.sync listener
    after = timer(db)
    assert after.priority == "urgent" and after.target_seconds == 180
    assert close(after.due_at, before.started_at + 3 * MIN)  # what was spent counts
    assert after.warn_at is not None and close(after.warn_at, after.due_at - MIN, 0.01)
    assert checks_queued(db, after.id) == [after.warn_at, after.due_at]  # old checks left the queue
    # the urgent policy's resolution target is the default one: that clock did not move
    assert timer(db, "resolution").due_at == resolution.due_at
    assert checks_queued(db, resolution.id) == resolution_checks

    # four workers check at the new due time: one breach, and the policy's escalation once
    results = run_concurrently(
        lambda _i: _check(db, workspace, after.id, after.due_at + dt.timedelta(seconds=1)), 4
    )
    assert results.count("breach") == 1
    with db.transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(SlaEvent)).scalar_one() == 1

    # lowering it again after the breach does not move a breached clock or breach it again
    patch(client, workspace, before.conversation_id, priority="low")
    run_jobs(db, settings)
    assert timer(db).due_at == after.due_at
    assert _check(db, workspace, after.id, after.due_at + 20 * MIN) is None
    with db.transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(SlaEvent)).scalar_one() == 1


def _check(db, ws, timer_id: int, now: dt.datetime) -> str | None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        return sla.check(s, ws.id, timer_id, now=now)


def test_lowering_the_priority_or_moving_team_lengthens_the_clock(db, settings, workspace, client) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        sla.upsert_policy(
            s,
            workspace.id,
            "lost and found",
            {"team_id": workspace.team_ids["lost"], "first_response_minutes": 45, "warn_before_minutes": 5},
        )
        sla.upsert_policy(s, workspace.id, "low", {"priority": "low", "first_response_minutes": 20})
    deliver(db, workspace, "e1", "我的包丢了")
    run_jobs(db, settings)
    start = timer(db)
    patch(client, workspace, start.conversation_id, priority="low")
    run_jobs(db, settings)
    low = timer(db)
    assert close(low.due_at, start.started_at + 20 * MIN) and low.target_seconds == 1200
    patch(client, workspace, start.conversation_id, team_id=str(workspace.team_ids["lost"]))
    run_jobs(db, settings)
    moved = timer(db)
    assert moved.team_id == workspace.team_ids["lost"] and moved.target_seconds == 45 * 60
    assert close(moved.due_at, start.started_at + 45 * MIN)
    assert moved.warn_at is not None and close(moved.warn_at, moved.due_at - 5 * MIN, 0.01)
    assert checks_queued(db, moved.id) == [moved.warn_at, moved.due_at]
    # nothing is recorded at the old due time any more
    assert _check(db, workspace, moved.id, start.due_at + MIN) is None


def test_a_rule_that_raises_the_priority_on_a_later_event_retargets_the_clock(
    db, settings, workspace, client
) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        sla.upsert_policy(s, workspace.id, "urgent", {"priority": "urgent", "first_response_minutes": 4})
        rules.save_rule(
            s,
            workspace.id,
            {
                "name": "VIP → 紧急",
                "event": "conversation.labeled",
                "conditions": {"all": [{"field": "labels.added", "op": "has", "value": "VIP"}]},
                "actions": [{"type": "set_priority", "priority": "urgent"}],
            },
        )
    deliver(db, workspace, "e1", "你好")
    run_jobs(db, settings)
    start = timer(db)
    patch(client, workspace, start.conversation_id, labels=["VIP"])
    run_jobs(db, settings)
    t = timer(db)
    assert t.priority == "urgent" and close(t.due_at, start.started_at + 4 * MIN)
    assert checks_queued(db, t.id) == [t.warn_at, t.due_at]


def test_a_paused_clock_keeps_its_share_and_warns_at_the_policys_time_when_it_resumes(
    db, settings, workspace, client
) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        sla.upsert_policy(
            s, workspace.id, "default", {"first_response_minutes": 10, "warn_before_minutes": 5}
        )
        sla.upsert_policy(
            s,
            workspace.id,
            "high",
            {"priority": "high", "first_response_minutes": 8, "warn_before_minutes": 3},
        )
    deliver(db, workspace, "e1", "行李额度是多少")
    run_jobs(db, settings)
    with db.transaction() as s:
        conv = s.execute(select(Conversation)).scalar_one()
        conversation_service.set_status(s, conv, "pending", None)
        sla.sync(s, conv)
    paused = timer(db)
    assert paused.status == "paused" and 590 <= (paused.remaining_seconds or 0) <= 600
    patch(client, workspace, paused.conversation_id, priority="high")  # while waiting on the fan
    run_jobs(db, settings)
    shorter = timer(db)
    assert shorter.status == "paused" and shorter.remaining_seconds == (paused.remaining_seconds or 0) - 120
    assert checks_queued(db, shorter.id) == []
    deliver(db, workspace, "e2", "在吗？")  # the fan writes back: the clock resumes
    run_jobs(db, settings)
    resumed = timer(db)
    assert resumed.status == "running" and resumed.warn_at is not None
    # the high policy's warning: 3 minutes before the new due time (not a fixed two minutes)
    assert close(resumed.warn_at, resumed.due_at - 3 * MIN, 0.01)
    now = dt.datetime.now(dt.UTC)
    assert close(resumed.due_at, now + dt.timedelta(seconds=shorter.remaining_seconds or 0), 10)
    assert checks_queued(db, resumed.id) == [resumed.warn_at, resumed.due_at]


def test_breach_escalations_raise_the_priority_and_reassign(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        sla.upsert_policy(
            s,
            workspace.id,
            "default",
            {"first_response_minutes": 10, "escalation": [{"type": "raise_priority"}, {"type": "reassign"}]},
        )
        sla.upsert_policy(
            s,
            workspace.id,
            "high",
            {"priority": "high", "first_response_minutes": 5, "resolution_minutes": 60},
        )
        second = ws_service.add_member(
            s,
            workspace.id,
            ws_service.create_user(s, "agent2@yuncheng.test", "password123", "客服小张"),
            "agent",
        )
        ws_service.add_to_team(s, workspace.id, workspace.team_ids["service"], second.id)
        assignment.set_availability(s, workspace.id, workspace.agent_member_id, "online")
    deliver(db, workspace, "e1", "航班延误了怎么办")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        conv = s.execute(select(Conversation)).scalar_one()
    assert conv.assignee_id == workspace.agent_member_id and conv.priority == "normal"
    with db.transaction() as s:
        assignment.set_availability(s, workspace.id, second.id, "online")
    first = timer(db)
    resolution = timer(db, "resolution")
    assert _check(db, workspace, first.id, first.due_at + dt.timedelta(seconds=1)) == "breach"
    with db.transaction(readonly=True) as s:
        conv = s.execute(select(Conversation)).scalar_one()
        kinds = [
            a.kind
            for a in s.execute(select(ConversationActivity).order_by(ConversationActivity.id)).scalars()
        ]
    assert conv.priority == "high"  # normal → high
    assert conv.assignee_id == second.id  # away from the agent who let it breach
    assert "sla_breached" in kinds and "priority" in kinds
    # the raised priority re-targets the other clock: resolution within the high policy's hour
    moved = timer(db, "resolution")
    assert moved.priority == "high" and close(moved.due_at, resolution.started_at + 60 * MIN)
    assert checks_queued(db, moved.id) == [moved.due_at]
    # the breached clock kept its due time; a second check records nothing more
    assert timer(db).due_at == first.due_at
    assert _check(db, workspace, first.id, first.due_at + 2 * MIN) is None
    with db.transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(SlaEvent)).scalar_one() == 1
        assert s.execute(select(Conversation)).scalar_one().priority == "high"  # raised once
