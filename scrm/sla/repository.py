"""SLA queries: policies, calendars, events, and which running clocks are at risk (inside their
warning window or past due). Every query is scoped to its workspace."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Subquery, and_, func, or_, select
from sqlalchemy.orm import Session

from scrm.conversation.repository import InboxFilter, inbox_where
from scrm.db import conflict_insert
from scrm.models import Conversation, Message, SlaCalendar, SlaEvent, SlaPolicy, SlaTimer


def policies(session: Session, workspace_id: int) -> list[SlaPolicy]:
    return list(session.execute(select(SlaPolicy).where(SlaPolicy.workspace_id == workspace_id)).scalars())


def policy_by_name(session: Session, workspace_id: int, name: str) -> SlaPolicy | None:
    return session.execute(
        select(SlaPolicy).where(SlaPolicy.workspace_id == workspace_id, SlaPolicy.name == name)
    ).scalar_one_or_none()


def calendars(
    session: Session, workspace_id: int, team_keys: Sequence[str] | None = None
) -> dict[str, SlaCalendar]:
    """The workspace's calendars by team key ("" is the workspace's own), all or those listed."""
    stmt = select(SlaCalendar).where(SlaCalendar.workspace_id == workspace_id)
    if team_keys is not None:
        stmt = stmt.where(SlaCalendar.team_key.in_(list(team_keys)))
    return {r.team_key: r for r in session.execute(stmt).scalars()}


def last_agent_reply_at(session: Session, workspace_id: int, conversation_id: int) -> dt.datetime | None:
    """When an agent (not a bot) last replied in the conversation."""
    return session.execute(
        select(func.max(Message.created_at)).where(
            Message.workspace_id == workspace_id,
            Message.conversation_id == conversation_id,
            Message.direction == "out",
            Message.sender_type == "agent",
        )
    ).scalar_one_or_none()


def record_event(session: Session, values: dict[str, Any]) -> bool:
    """Insert the warning/breach unless its (timer, kind) exists; True only for the caller
    that inserted it."""
    stmt = conflict_insert(session, SlaEvent).values(**values).on_conflict_do_nothing().returning(SlaEvent.id)
    return session.execute(stmt).scalar_one_or_none() is not None


def breaches(session: Session, workspace_id: int, limit: int) -> list[SlaEvent]:
    """The latest breaches, newest first."""
    return list(
        session.execute(
            select(SlaEvent)
            .where(SlaEvent.workspace_id == workspace_id, SlaEvent.kind == "breach")
            .order_by(SlaEvent.id.desc())
            .limit(limit)
        ).scalars()
    )


def timers_started(
    session: Session, workspace_id: int, since: dt.datetime, until: dt.datetime
) -> list[SlaTimer]:
    """The clocks started in [since, until)."""
    return list(
        session.execute(
            select(SlaTimer).where(
                SlaTimer.workspace_id == workspace_id,
                SlaTimer.started_at >= since,
                SlaTimer.started_at < until,
            )
        ).scalars()
    )


def _at_risk(workspace_id: int, now: dt.datetime) -> ColumnElement[bool]:
    # Paused clocks wait on the fan: never at risk.
    return and_(
        SlaTimer.workspace_id == workspace_id,
        SlaTimer.status == "running",
        or_(SlaTimer.due_at <= now, and_(SlaTimer.warn_at.is_not(None), SlaTimer.warn_at <= now)),
    )


def _risk_subquery(workspace_id: int, now: dt.datetime) -> Subquery:
    return (
        select(SlaTimer.conversation_id.label("cid"), func.min(SlaTimer.due_at).label("due"))
        .where(_at_risk(workspace_id, now))
        .group_by(SlaTimer.conversation_id)
        .subquery()
    )


def at_risk_page(
    session: Session,
    workspace_id: int,
    f: InboxFilter,
    now: dt.datetime,
    *,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> list[tuple[Conversation, dt.datetime]]:
    """(conversation, earliest at-risk due time), soonest first, narrowed by the inbox filters;
    `after` is the last row's (due time, id) of the previous page."""
    risk = _risk_subquery(workspace_id, now)
    stmt = select(Conversation, risk.c.due).join(
        risk, and_(Conversation.workspace_id == workspace_id, Conversation.id == risk.c.cid)
    )
    stmt = inbox_where(stmt, workspace_id, f)
    if after is not None:
        at, cid = after
        stmt = stmt.where(or_(risk.c.due > at, and_(risk.c.due == at, Conversation.id > cid)))
    rows = session.execute(stmt.order_by(risk.c.due, Conversation.id).limit(limit)).all()
    return [(r[0], r[1]) for r in rows]


def at_risk_count(session: Session, workspace_id: int, f: InboxFilter, now: dt.datetime) -> int:
    risk = _risk_subquery(workspace_id, now)
    stmt = (
        select(func.count())
        .select_from(Conversation)
        .join(risk, and_(Conversation.workspace_id == workspace_id, Conversation.id == risk.c.cid))
    )
    return int(session.execute(inbox_where(stmt, workspace_id, f)).scalar_one())


def at_risk_timers(
    session: Session, workspace_id: int, conversation_ids: list[int], now: dt.datetime
) -> Sequence[SlaTimer]:
    """The at-risk clocks of the listed conversations, soonest due first."""
    return (
        session.execute(
            select(SlaTimer)
            .where(_at_risk(workspace_id, now), SlaTimer.conversation_id.in_(conversation_ids))
            .order_by(SlaTimer.due_at, SlaTimer.id)
        )
        .scalars()
        .all()
    )


def timers(session: Session, workspace_id: int, conversation_ids: Sequence[int]) -> dict[int, list[SlaTimer]]:
    """The SLA timers of these conversations, oldest first (every id given has a list)."""
    out: dict[int, list[SlaTimer]] = {int(c): [] for c in conversation_ids}
    if not out:
        return out
    rows = session.execute(
        select(SlaTimer)
        .where(SlaTimer.workspace_id == workspace_id, SlaTimer.conversation_id.in_(list(out)))
        .order_by(SlaTimer.id)
    ).scalars()
    for t in rows:
        out[t.conversation_id].append(t)
    return out
