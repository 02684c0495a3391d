from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scrm.models import AuditLog


def add(session: Session, **values: Any) -> AuditLog:
    row = AuditLog(**values)
    session.add(row)
    return row


def list_for_workspace(session: Session, workspace_id: int, *, limit: int = 100) -> Sequence[AuditLog]:
    return (
        session.execute(
            select(AuditLog)
            .where(AuditLog.workspace_id == workspace_id)
            .order_by(AuditLog.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )
