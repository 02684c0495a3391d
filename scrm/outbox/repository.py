from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from scrm.models import OutboxMessage


def by_key(session: Session, workspace_id: int, key: str) -> OutboxMessage | None:
    return session.execute(
        select(OutboxMessage).where(
            OutboxMessage.workspace_id == workspace_id, OutboxMessage.idempotency_key == key
        )
    ).scalar_one_or_none()


def get(session: Session, workspace_id: int, outbox_id: int) -> OutboxMessage | None:
    return session.get(OutboxMessage, (workspace_id, outbox_id))
