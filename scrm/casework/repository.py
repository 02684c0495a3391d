"""Queries on department and follow-up tasks."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrm.models import CaseTask


def get(session: Session, workspace_id: int, task_id: int) -> CaseTask | None:
    return session.get(CaseTask, (workspace_id, task_id))


def for_conversation(
    session: Session, workspace_id: int, conversation_id: int, kind: str, team_id: int | None
) -> Sequence[CaseTask]:
    return (
        session.execute(
            select(CaseTask).where(
                CaseTask.workspace_id == workspace_id,
                CaseTask.conversation_id == conversation_id,
                CaseTask.kind == kind,
                CaseTask.team_id.is_(None) if team_id is None else CaseTask.team_id == team_id,
            )
        )
        .scalars()
        .all()
    )


def list_page(
    session: Session,
    workspace_id: int,
    *,
    team_id: int | None,
    status: str | None,
    kind: str | None,
    conversation_id: int | None,
    limit: int,
) -> list[CaseTask]:
    stmt = select(CaseTask).where(CaseTask.workspace_id == workspace_id)
    if team_id is not None:
        stmt = stmt.where(CaseTask.team_id == team_id)
    if status:
        stmt = stmt.where(CaseTask.status == status)
    if kind:
        stmt = stmt.where(CaseTask.kind == kind)
    if conversation_id is not None:
        stmt = stmt.where(CaseTask.conversation_id == conversation_id)
    return list(session.execute(stmt.order_by(CaseTask.id.desc()).limit(limit)).scalars())


def count_open(session: Session, workspace_id: int, kind: str) -> int:
    return int(
        session.execute(
            select(func.count()).where(
                CaseTask.workspace_id == workspace_id, CaseTask.kind == kind, CaseTask.status == "open"
            )
        ).scalar_one()
    )
