"""SLA queries: which running clocks are at risk (inside their warning window or past due)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Subquery, and_, func, or_, select
from sqlalchemy.orm import Session

from scrm.conversation.repository import InboxFilter, inbox_where
from scrm.models import Conversation, SlaTimer


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
