"""Audit log: every change and every message sent on the brand's behalf."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from scrm.governance import repository
from scrm.models import AuditLog


def audit(
    session: Session,
    workspace_id: int,
    action: str,
    *,
    actor_id: int | None = None,
    actor_label: str = "",
    target_type: str = "",
    target_id: int | str = "",
    data: dict[str, Any] | None = None,
) -> AuditLog:
    return repository.add(
        session,
        workspace_id=workspace_id,
        actor_id=actor_id,
        actor_label=actor_label,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        data=data or {},
    )


def recent(session: Session, workspace_id: int, limit: int = 100) -> Sequence[AuditLog]:
    return repository.list_for_workspace(session, workspace_id, limit=limit)
