"""SLA: policies, business calendars, timers on conversations, warnings, breaches, escalation.

Timers are rows (SlaTimer) whose checks are due-time jobs (`sla.check`, run_at = warning or
due time, idempotency key per timer and time): nothing lives in memory, a restarted worker
picks them up. A breach or a warning is an SlaEvent with a unique (timer, kind) key, so it is
recorded exactly once whatever the number of workers. A human first response is
`conversation.first_response_at` (send_reply with sender_type="agent"); bot replies do not
count. While the conversation waits on the fan (status pending) its timers are paused.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from scrm import events
from scrm.conversation import service as conversation_service
from scrm.conversation.repository import InboxFilter
from scrm.db import ReadAhead, memo_depends_on, tx_forget, tx_memo
from scrm.errors import Invalid, NotFound
from scrm.kit.ids import new_id
from scrm.kit.time import as_utc, to_local, utcnow
from scrm.models import Conversation, SlaCalendar, SlaEvent, SlaPolicy, SlaTimer, Workspace
from scrm.sla import repository
from scrm.sla.calendar import (
    ALWAYS,
    OFFICIAL_YEARS,
    PACKAGE,
    BusinessCalendar,
    CalendarError,
    DayInfo,
    check_timezone,
    coverage_note,
    has_official_data,
    parse_hours,
    parse_special_days,
)
from scrm.worker.service import cancel as cancel_jobs
from scrm.worker.service import enqueue, schedule

log = logging.getLogger(__name__)

METRICS = ("first_response", "next_response", "resolution")
PRIORITY_UP = {"low": "normal", "normal": "high", "high": "urgent", "urgent": "urgent"}
ESCALATIONS = ("notify_supervisor", "raise_priority", "reassign")
# Warn (log, admin page) when the coming this many days fall in a year without holiday data.
COVERAGE_LOOKAHEAD_DAYS = 60


@dataclass(frozen=True)
class Targets:
    policy_id: int | None
    first_response: int  # seconds
    next_response: int | None
    resolution: int | None
    warn_before: int
    escalation: tuple[dict[str, Any], ...]


DEFAULT_TARGETS = Targets(None, 10 * 60, 30 * 60, 24 * 3600, 2 * 60, ({"type": "notify_supervisor"},))


# -- configuration -------------------------------------------------------------------------------
def _policy_targets(p: SlaPolicy) -> Targets:
    return Targets(
        p.id,
        p.first_response_minutes * 60,
        p.next_response_minutes * 60 if p.next_response_minutes else None,
        p.resolution_minutes * 60 if p.resolution_minutes else None,
        p.warn_before_minutes * 60,
        tuple(p.escalation or ()),
    )


memo_depends_on("sla_policies", SlaPolicy)
memo_depends_on("sla_calendar", SlaCalendar, Workspace)


def _policies(session: Session, workspace_id: int) -> list[tuple[int | None, str | None, Targets]]:
    """The workspace's policies as (team, priority, targets), read once per transaction."""
    memo = tx_memo(session)
    key = ("sla_policies", workspace_id)
    out: list[tuple[int | None, str | None, Targets]] | None = memo.get(key)
    if out is None:
        out = [
            (p.team_id, p.priority, _policy_targets(p)) for p in repository.policies(session, workspace_id)
        ]
        memo[key] = out
    return out


def targets_for(session: Session, workspace_id: int, team_id: int | None, priority: str) -> Targets:
    """Most specific policy: team+priority, team, priority, workspace; else the default."""
    best: tuple[int, Targets] | None = None
    for p_team, p_priority, targets in _policies(session, workspace_id):
        if p_team is not None and p_team != team_id:
            continue
        if p_priority is not None and p_priority != priority:
            continue
        score = (2 if p_team is not None else 0) + (1 if p_priority is not None else 0)
        if best is None or score > best[0]:
            best = (score, targets)
    return best[1] if best else DEFAULT_TARGETS


def validate_policy(data: dict[str, Any]) -> None:
    for key in ("first_response_minutes", "next_response_minutes", "resolution_minutes"):
        v = data.get(key)
        if v is not None and not (isinstance(v, int) and 1 <= v <= 60 * 24 * 90):
            raise Invalid(f"{key} must be between 1 and 129600 minutes", field=key)
    if data.get("first_response_minutes") is None:
        raise Invalid("first_response_minutes is required", field="first_response_minutes")
    warn = data.get("warn_before_minutes", 2)
    if not (isinstance(warn, int) and 0 <= warn < data["first_response_minutes"]):
        raise Invalid("warn_before_minutes must be below first_response_minutes", field="warn_before_minutes")
    if data.get("priority") not in (None, "low", "normal", "high", "urgent"):
        raise Invalid("priority must be low, normal, high or urgent", field="priority")
    for i, action in enumerate(data.get("escalation") or []):
        if not isinstance(action, dict) or action.get("type") not in ESCALATIONS or set(action) - {"type"}:
            raise Invalid(f"escalation[{i}] must be one of {', '.join(ESCALATIONS)}", field="escalation")


# A new policy's targets when not given (None given means "no such target").
POLICY_DEFAULTS: dict[str, int] = {
    "first_response_minutes": 10,
    "next_response_minutes": 30,
    "resolution_minutes": 24 * 60,
    "warn_before_minutes": 2,
}


def upsert_policy(session: Session, workspace_id: int, name: str, data: dict[str, Any]) -> SlaPolicy:
    validate_policy(data)
    row = repository.policy_by_name(session, workspace_id, name)
    if row is None:
        defaults = {k: v for k, v in POLICY_DEFAULTS.items() if k not in data}
        row = SlaPolicy(workspace_id=workspace_id, name=name, **defaults)
        session.add(row)
    for key in (
        "team_id",
        "priority",
        "first_response_minutes",
        "next_response_minutes",
        "resolution_minutes",
        "warn_before_minutes",
        "escalation",
    ):
        if key in data:
            setattr(row, key, data[key])
    if row.escalation is None:
        row.escalation = []
    session.flush()
    tx_forget(session, ("sla_policies", workspace_id))
    return row


def list_policies(session: Session, workspace_id: int) -> list[SlaPolicy]:
    return repository.policies(session, workspace_id)


def delete_policy(session: Session, workspace_id: int, policy_id: int) -> None:
    row = session.get(SlaPolicy, (workspace_id, policy_id))
    if row is None:
        raise NotFound("no such policy")
    session.delete(row)
    tx_forget(session, ("sla_policies", workspace_id))


def set_calendar(
    session: Session,
    workspace_id: int,
    team_id: int | None,
    *,
    timezone: str,
    hours: dict[str, Any],
    cn_holidays: bool = True,
    special_days: list[dict[str, Any]] | None = None,
) -> SlaCalendar:
    """Create or replace a calendar; `special_days` None keeps the ones it has."""
    key = str(team_id) if team_id else ""
    row = repository.calendars(session, workspace_id, [key]).get(key)
    if special_days is None:
        special_days = list(row.special_days or []) if row is not None else []
    try:
        check_timezone(timezone)
        parse_hours(hours)
    except CalendarError as exc:
        raise Invalid(str(exc), field="hours") from None
    try:
        days = parse_special_days(special_days)
    except CalendarError as exc:
        raise Invalid(str(exc), field="special_days") from None
    if row is None:
        row = SlaCalendar(workspace_id=workspace_id, team_id=team_id, team_key=key)
        session.add(row)
    row.timezone, row.hours, row.cn_holidays = timezone, hours, cn_holidays
    row.special_days = [
        {"date": d.isoformat(), "kind": kind, **({"name": name} if name else {})} for d, kind, name in days
    ]
    session.flush()
    _CAL_CACHE.clear()
    _forget_calendars(session)
    return row


def list_calendars(session: Session, workspace_id: int) -> list[SlaCalendar]:
    return list(repository.calendars(session, workspace_id).values())


_CAL_CACHE: dict[tuple[int, str, str], BusinessCalendar] = {}


def _forget_calendars(session: Session) -> None:
    memo = tx_memo(session)
    for key in [k for k in memo if isinstance(k, tuple) and k[0] == "sla_calendar"]:
        del memo[key]


def calendar_for(session: Session, workspace_id: int, team_id: int | None) -> BusinessCalendar:
    """The team's business hours, else the workspace's, else round the clock (read once per
    transaction and team: the pipeline's SLA step and rules both ask)."""
    memo = tx_memo(session)
    key = ("sla_calendar", workspace_id, team_id)
    cal: BusinessCalendar | None = memo.get(key)
    if cal is None:
        cal = memo[key] = _calendar_for(session, workspace_id, team_id)
    return cal


def _calendar_for(session: Session, workspace_id: int, team_id: int | None) -> BusinessCalendar:
    team_key = str(team_id) if team_id else ""
    rows = repository.calendars(session, workspace_id, sorted({"", team_key}))
    row = rows.get(team_key) or rows.get("")
    if row is None:
        ws = session.get(Workspace, workspace_id)
        tz = ws.timezone if ws else "Asia/Shanghai"
        return ALWAYS if tz == "Asia/Shanghai" else BusinessCalendar(check_timezone(tz), ALWAYS.hours, False)
    key = (workspace_id, row.team_key, f"{row.timezone}|{row.hours}|{row.cn_holidays}|{row.special_days}")
    cal = _CAL_CACHE.get(key)
    if cal is None:
        cal = BusinessCalendar.from_config(row.timezone, row.hours, row.cn_holidays, row.special_days)
        _CAL_CACHE[key] = cal
    return cal


def day_info(session: Session, workspace_id: int, team_id: int | None, day: dt.date) -> DayInfo:
    """What the team's (else the workspace's) calendar makes of a date, and why."""
    return calendar_for(session, workspace_id, team_id).day_info(day)


def holiday_coverage(today: dt.date | None = None) -> dict[str, Any]:
    """Which years have official holiday data, and whether the coming months lack it."""
    today = today or to_local(utcnow()).date()
    first, last = OFFICIAL_YEARS
    soon = today + dt.timedelta(days=COVERAGE_LOOKAHEAD_DAYS)
    missing = sorted({y for y in (today.year, soon.year) if not has_official_data(y)})
    return {
        "package": PACKAGE,
        "official_years": [first, last],
        "uncovered_years_soon": missing,
        "note": coverage_note(missing[0]) if missing else coverage_note(),
    }


def in_business_hours(
    session: Session, workspace_id: int, team_id: int | None, at: dt.datetime | None = None
) -> bool:
    return calendar_for(session, workspace_id, team_id).is_open(at or utcnow())


# -- timers --------------------------------------------------------------------------------------
# (workspace id, conversation id) -> its timers (a list that _start appends to)
_timers_ahead = ReadAhead("sla_timers")


def read_ahead_timers(session: Session, workspace_id: int, conversation_ids: Sequence[int]) -> None:
    """Read many conversations' timers in one statement, for the `on_inbound` calls that follow
    in the same transaction (a group of inbound jobs)."""
    found = repository.timers(session, workspace_id, conversation_ids)
    _timers_ahead.put(session, {(workspace_id, conv_id): timers for conv_id, timers in found.items()})


def _timers(session: Session, conv: Conversation) -> list[SlaTimer]:
    ahead = _timers_ahead.get(session, (conv.workspace_id, conv.id))
    if ahead is not ReadAhead.NOT_READ:  # kept up to date by _start
        return list(ahead)
    return repository.timers(session, conv.workspace_id, [conv.id])[conv.id]


def _checks(timer: SlaTimer) -> list[tuple[dt.datetime, str]]:
    """The timer's scheduled checks as (due time, idempotency key)."""
    return [
        (at, f"sla:{timer.id}:{what}:{int(at.timestamp())}")
        for at, what in ((timer.warn_at, "warn"), (timer.due_at, "due"))
        if at is not None
    ]


def _schedule(session: Session, timer: SlaTimer) -> None:
    for at, key in _checks(timer):
        schedule(
            session, timer.workspace_id, "sla.check", {"timer_id": timer.id}, idempotency_key=key, run_at=at
        )


def _start(
    session: Session,
    conv: Conversation,
    metric: str,
    seconds: int,
    warn: int,
    cal: BusinessCalendar,
    targets: Targets,
    now: dt.datetime,
    cycle: int = 0,
    *,
    schedule: bool = True,
) -> SlaTimer:
    due = cal.add(now, seconds)
    timer = SlaTimer(
        workspace_id=conv.workspace_id,
        id=new_id(),  # known now: the timers started together go out in one flush
        conversation_id=conv.id,
        policy_id=targets.policy_id,
        metric=metric,
        cycle=cycle,
        status="running",
        started_at=now,
        due_at=due,
        warn_at=cal.add(now, seconds - warn) if 0 < warn < seconds else None,
        target_seconds=seconds,
        team_id=conv.team_id,
        priority=conv.priority,
    )
    session.add(timer)
    ahead = _timers_ahead.get(session, (conv.workspace_id, conv.id))
    if ahead is not ReadAhead.NOT_READ:
        ahead.append(timer)
    if schedule:
        _schedule(session, timer)
    return timer


def on_inbound(
    session: Session, conv: Conversation, *, created: bool, now: dt.datetime | None = None
) -> None:
    """A fan's message arrived: start, resume or open a next-response clock."""
    now = now or utcnow()
    if conv.status == "resolved":
        return
    # A conversation created by this very message has no clocks yet.
    timers = [] if created else _timers(session, conv)
    targets = targets_for(session, conv.workspace_id, conv.team_id, conv.priority)
    cal = calendar_for(session, conv.workspace_id, conv.team_id)
    if created or not timers:
        # Answered by self-service already (pending): the clocks start paused, nothing scheduled.
        waits = conv.status == "pending"
        started = [
            _start(
                session,
                conv,
                "first_response",
                targets.first_response,
                targets.warn_before,
                cal,
                targets,
                now,
                schedule=not waits,
            )
        ]
        if targets.resolution:
            started.append(
                _start(
                    session, conv, "resolution", targets.resolution, 0, cal, targets, now, schedule=not waits
                )
            )
        if waits:
            _sync(session, conv, started, now, scheduled=False)
        return
    _sync(session, conv, timers, now)
    if conv.first_response_at is None or not targets.next_response:
        return
    waiting = [t for t in timers if t.metric == "next_response" and t.status in ("running", "paused")]
    if waiting:
        return
    last_reply = repository.last_agent_reply_at(session, conv.workspace_id, conv.id)
    if last_reply is None or as_utc(last_reply) > now:
        return
    cycle = max([t.cycle for t in timers if t.metric == "next_response"], default=0) + 1
    _start(
        session, conv, "next_response", targets.next_response, targets.warn_before, cal, targets, now, cycle
    )


def sync(session: Session, conv: Conversation, *, now: dt.datetime | None = None) -> None:
    """Bring the conversation's timers in line with its state (met, paused, resumed)."""
    now = now or utcnow()
    _sync(session, conv, _timers(session, conv), now)


def _sync(
    session: Session, conv: Conversation, timers: list[SlaTimer], now: dt.datetime, *, scheduled: bool = True
) -> None:
    """`scheduled`: the running timers' checks are in the queue (not for clocks started paused)."""
    if not timers:
        return
    cal: BusinessCalendar | None = None
    last_reply: dt.datetime | None = None
    # Checks scheduled for clocks that stop, pause or move here would only find nothing to do:
    # they are dropped from the queue (a paused clock schedules new ones when it resumes).
    pointless: list[str] = []
    moved: list[SlaTimer] = []
    for t in timers:
        if t.status == "met":
            continue
        if t.metric == "first_response" and conv.first_response_at is not None:
            pointless += _met(session, conv, t, as_utc(conv.first_response_at))
            continue
        if t.metric == "next_response":
            last_reply = last_reply or repository.last_agent_reply_at(session, conv.workspace_id, conv.id)
            if last_reply is not None and as_utc(last_reply) >= t.started_at:
                pointless += _met(session, conv, t, as_utc(last_reply))
                continue
        if conv.status == "resolved":
            pointless += _met(session, conv, t, as_utc(conv.resolved_at or now))
            continue
        if t.priority != conv.priority or t.team_id != conv.team_id:
            old_checks = [key for _at, key in _checks(t)] if t.status == "running" else []
            if retarget(session, conv, t, now) and t.status == "running":
                pointless += old_checks
                moved.append(t)
        cal = cal or calendar_for(session, conv.workspace_id, conv.team_id)
        if conv.status == "pending" and t.status == "running":
            pointless += [key for _at, key in _checks(t)]
            t.status = "paused"
            t.remaining_seconds = int(cal.between(now, t.due_at))
            moved = [m for m in moved if m is not t]
        elif conv.status == "open" and t.status == "paused":
            remaining = t.remaining_seconds or 0
            _seconds, warn = metric_target(
                targets_for(session, conv.workspace_id, conv.team_id, conv.priority), t.metric
            )
            t.status = "running"
            t.due_at = cal.add(now, remaining)
            # The policy's warning time before the new due time (if there is room).
            t.warn_at = cal.add(now, remaining - warn) if 0 < warn < remaining else None
            t.remaining_seconds = None
            moved.append(t)
    keep = {key for t in moved for _at, key in _checks(t)}
    pointless = [key for key in pointless if key not in keep]
    if pointless and scheduled:
        cancel_jobs(session, conv.workspace_id, "sla.check", pointless)
    for t in moved:
        _schedule(session, t)  # the idempotency key names the time: an unchanged check is not doubled


def metric_target(targets: Targets, metric: str) -> tuple[int | None, int]:
    """(target seconds or None, warning seconds before the due time) of one metric."""
    if metric == "first_response":
        return targets.first_response, targets.warn_before
    if metric == "next_response":
        return targets.next_response, targets.warn_before
    return targets.resolution, 0  # resolution clocks do not warn


def retarget(session: Session, conv: Conversation, t: SlaTimer, now: dt.datetime) -> bool:
    """Give a running or paused clock the targets of the conversation's current team and
    priority (an agent raised it to urgent, a rule routed it to another team...): the business
    time already spent counts against the new target, so the due time moves, earlier or later.
    A clock already breached keeps its due time (the breach is recorded once). Returns whether
    the due time (or the paused clock's remaining time) changed."""
    ws = conv.workspace_id
    # The calendar the due time was computed in (the clock's team; older rows have no record).
    old_cal = calendar_for(session, ws, t.team_id if t.priority is not None else conv.team_id)
    new_cal = calendar_for(session, ws, conv.team_id)
    targets = targets_for(session, ws, conv.team_id, conv.priority)
    seconds, warn = metric_target(targets, t.metric)
    new_target = seconds or t.target_seconds  # no such target in the new policy: keep the old one
    t.team_id, t.priority = conv.team_id, conv.priority
    if t.breached_at is not None or (new_target == t.target_seconds and new_cal == old_cal):
        return False
    if t.status == "running":
        spent = t.target_seconds - old_cal.between(now, t.due_at)
        remaining = max(0.0, new_target - spent)
        t.due_at = new_cal.add(now, remaining) if remaining > 0 else now
        t.warn_at = new_cal.add(now, remaining - warn) if 0 < warn < remaining else None
    else:
        t.remaining_seconds = max(0, (t.remaining_seconds or 0) + new_target - t.target_seconds)
    t.target_seconds = new_target
    t.policy_id = targets.policy_id
    return True


def _met(session: Session, conv: Conversation, t: SlaTimer, at: dt.datetime) -> list[str]:
    """Stop the clock; returns the keys of its scheduled checks (now pointless)."""
    # Kept on the timer, not the timeline: the timeline shows breaches and warnings only.
    pending = [key for _at, key in _checks(t)] if t.status == "running" else []
    t.status = "met"
    t.met_at = at
    return pending


def _record_event(session: Session, t: SlaTimer, kind: str, now: dt.datetime) -> bool:
    """Insert the warning/breach once; True only for the caller that inserted it."""
    return repository.record_event(
        session,
        {
            "workspace_id": t.workspace_id,
            "id": new_id(),
            "timer_id": t.id,
            "conversation_id": t.conversation_id,
            "kind": kind,
            "metric": t.metric,
            "due_at": t.due_at,
            "occurred_at": now,
            "created_at": now,
        },
    )


def check(session: Session, workspace_id: int, timer_id: int, now: dt.datetime | None = None) -> str | None:
    """Run by the due-time job: record a warning or a breach if it is due; returns which."""
    now = now or utcnow()
    t = session.get(SlaTimer, (workspace_id, timer_id))
    if t is None:
        return None
    conv = session.get(Conversation, (workspace_id, t.conversation_id))
    if conv is None:
        return None
    sync(session, conv, now=now)
    if t.status != "running":
        return None
    if now >= t.due_at:
        if not _record_event(session, t, "breach", now):
            return None
        t.breached_at = t.due_at
        data = {
            "conversation_id": str(conv.id),
            "timer_id": str(t.id),
            "metric": t.metric,
            "key": f"sla:{t.id}:breach",
        }
        conversation_service.record_activity(
            session, conv, "sla_breached", None, metric=t.metric, due_at=t.due_at.isoformat()
        )
        targets = targets_for(session, workspace_id, conv.team_id, conv.priority)
        escalate(
            session, conv, targets.escalation, reason=f"sla {t.metric} breached", key=f"sla:{t.id}:breach"
        )
        # A raised priority (or a reassignment that moved the team) re-targets the other clocks.
        sync(session, conv, now=now)
        events.emit(session, workspace_id, "sla.breached", data)
        return "breach"
    if t.warn_at is not None and now >= t.warn_at:
        if not _record_event(session, t, "warning", now):
            return None
        conversation_service.record_activity(
            session, conv, "sla_warning", None, metric=t.metric, due_at=t.due_at.isoformat()
        )
        events.emit(
            session,
            workspace_id,
            "sla.warning",
            {
                "conversation_id": str(conv.id),
                "timer_id": str(t.id),
                "metric": t.metric,
                "key": f"sla:{t.id}:warning",
            },
        )
        return "warning"
    return None


def escalate(
    session: Session,
    conv: Conversation,
    actions: tuple[dict[str, Any], ...] | list[dict[str, Any]],
    *,
    reason: str,
    key: str,
) -> None:
    """Run escalation actions; `key` names the occurrence (one breach of one timer), so the
    supervisors hear of each breach once, and of every breach."""
    for action in actions:
        kind = action.get("type")
        if kind == "raise_priority":
            new = PRIORITY_UP.get(conv.priority, "high")
            if new != conv.priority:
                conv.priority = new
                conversation_service.record_activity(
                    session, conv, "priority", None, priority=new, reason=reason
                )
        elif kind == "reassign":
            from scrm.conversation import assignment

            assignment.reassign(session, conv, reason="sla_escalation")
        elif kind == "notify_supervisor":
            notify_supervisors(session, conv, reason, key=key)


def notify_supervisors(session: Session, conv: Conversation, reason: str, *, key: str) -> None:
    """Timeline entry plus, when the workspace has an escalation webhook, a notice to it.

    The notice is sent once per `key` (the occurrence: a timer's breach, a rule firing), not
    once per reason: the next-response clock of a later cycle breaching must notify again."""
    conversation_service.record_activity(session, conv, "escalated", None, reason=reason)
    ws = session.get(Workspace, conv.workspace_id)
    url = str((ws.settings or {}).get("escalation_webhook_url") or "") if ws else ""
    if url:
        enqueue(
            session,
            conv.workspace_id,
            "automation.notify",
            {"url": url, "body": {"event": "escalation", "conversation_id": str(conv.id), "reason": reason}},
            idempotency_key=f"escalate:{conv.id}:{key}"[:200],
        )


# -- reports -------------------------------------------------------------------------------------
def timers_of(session: Session, workspace_id: int, conversation_id: int) -> list[SlaTimer]:
    return repository.timers(session, workspace_id, [conversation_id])[conversation_id]


def breaches(session: Session, workspace_id: int, limit: int = 100) -> list[SlaEvent]:
    return repository.breaches(session, workspace_id, limit)


def report(session: Session, workspace_id: int, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    rows = repository.timers_started(session, workspace_id, since, until)
    out: dict[str, Any] = {}
    now = utcnow()
    for metric in METRICS:
        ts = [t for t in rows if t.metric == metric]
        met_in_time = sum(1 for t in ts if t.met_at is not None and t.met_at <= t.due_at)
        breached = sum(
            1
            for t in ts
            if t.breached_at is not None or (t.met_at is None and t.due_at < now and t.status == "running")
        )
        out[metric] = {
            "total": len(ts),
            "met_in_time": met_in_time,
            "breached": breached,
            "open": sum(1 for t in ts if t.status in ("running", "paused")),
            "share_in_time": round(met_in_time / len(ts), 4) if ts else None,
        }
    return out


# -- the inbox's "SLA at risk" view --------------------------------------------------------------
@dataclass(frozen=True)
class Risk:
    metric: str  # first_response, next_response, resolution
    due_at: dt.datetime
    breached: bool
    minutes: int  # minutes left (not breached) or overdue (breached)


def at_risk_page(
    session: Session,
    workspace_id: int,
    f: InboxFilter,
    now: dt.datetime,
    *,
    after: tuple[dt.datetime, int] | None = None,
    limit: int = 50,
) -> list[tuple[Conversation, dt.datetime]]:
    """Conversations with a running clock inside its warning window or past due, soonest first."""
    return repository.at_risk_page(session, workspace_id, f, now, after=after, limit=limit)


def at_risk_count(session: Session, workspace_id: int, f: InboxFilter, now: dt.datetime) -> int:
    return repository.at_risk_count(session, workspace_id, f, now)


def risks(
    session: Session, workspace_id: int, conversation_ids: list[int], now: dt.datetime
) -> dict[int, Risk]:
    """The most urgent at-risk clock of each listed conversation."""
    if not conversation_ids:
        return {}
    out: dict[int, Risk] = {}
    for t in repository.at_risk_timers(session, workspace_id, conversation_ids, now):
        if t.conversation_id in out:
            continue
        seconds = (as_utc(t.due_at) - now).total_seconds()
        # Minutes left round up, minutes overdue round down (at least 1 once past due).
        minutes = max(1, int(-seconds // 60)) if seconds <= 0 else int(-(-seconds // 60))
        out[t.conversation_id] = Risk(t.metric, t.due_at, seconds <= 0, minutes)
    return out
