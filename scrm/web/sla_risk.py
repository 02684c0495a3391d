"""The inbox's "SLA at risk" view: conversations with a running SLA clock that is inside its
warning window or already past its due time, soonest due first.

A clock is at risk when it is running (paused clocks wait on the fan) and its warning time or
its due time has passed. The query reads the ``sla_timer`` rows (indexed on workspace, status,
due time) and narrows them with the inbox's filters from the conversation repository.

Note: this belongs in ``scrm.sla.service`` (an ``at_risk`` use case) with the filtering in the
conversation repository; it lives here until those packages grow the function.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Subquery, and_, func, or_, select
from sqlalchemy.orm import Session

from scrm.conversation import repository as conversation_repository
from scrm.conversation.service import InboxFilter
from scrm.models import Conversation, SlaTimer


@dataclass(frozen=True)
class Risk:
    metric: str  # first_response, next_response, resolution
    due_at: dt.datetime
    breached: bool
    minutes: int  # minutes left (not breached) or overdue (breached)


def _at_risk(workspace_id: int, now: dt.datetime) -> ColumnElement[bool]:
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


def page(
    session: Session,
    workspace_id: int,
    f: InboxFilter,
    now: dt.datetime,
    *,
    after: tuple[dt.datetime, int] | None = None,
    limit: int = 50,
) -> list[tuple[Conversation, dt.datetime]]:
    """(conversation, earliest at-risk due time), soonest first; `after` is the last row's
    (due time, id) of the previous page."""
    risk = _risk_subquery(workspace_id, now)
    stmt = select(Conversation, risk.c.due).join(
        risk, and_(Conversation.workspace_id == workspace_id, Conversation.id == risk.c.cid)
    )
    stmt = conversation_repository._inbox_where(stmt, workspace_id, f)
    if after is not None:
        at, cid = after
        stmt = stmt.where(or_(risk.c.due > at, and_(risk.c.due == at, Conversation.id > cid)))
    rows = session.execute(stmt.order_by(risk.c.due, Conversation.id).limit(limit)).all()
    return [(r[0], r[1]) for r in rows]


def count(session: Session, workspace_id: int, f: InboxFilter, now: dt.datetime) -> int:
    risk = _risk_subquery(workspace_id, now)
    stmt = (
        select(func.count())
        .select_from(Conversation)
        .join(risk, and_(Conversation.workspace_id == workspace_id, Conversation.id == risk.c.cid))
    )
    stmt = conversation_repository._inbox_where(stmt, workspace_id, f)
    return int(session.execute(stmt).scalar_one())


def risks(
    session: Session, workspace_id: int, conversation_ids: list[int], now: dt.datetime
) -> dict[int, Risk]:
    """The most urgent at-risk clock of each listed conversation."""
    if not conversation_ids:
        return {}
    timers = session.execute(
        select(SlaTimer)
        .where(_at_risk(workspace_id, now), SlaTimer.conversation_id.in_(conversation_ids))
        .order_by(SlaTimer.due_at, SlaTimer.id)
    ).scalars()
    out: dict[int, Risk] = {}
    for t in timers:
        if t.conversation_id in out:
            continue
        seconds = (t.due_at - now).total_seconds()
        # Minutes left round up, minutes overdue round down (at least 1 once past due).
        minutes = max(1, int(-seconds // 60)) if seconds <= 0 else int(-(-seconds // 60))
        out[t.conversation_id] = Risk(t.metric, t.due_at, seconds <= 0, minutes)
    return out
