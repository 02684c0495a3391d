"""The outbox: everything sent through a channel goes through here, once per idempotency key."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from scrm.models import OutboxMessage
from scrm.outbox import repository
from scrm.worker.service import enqueue


def queue(
    session: Session,
    workspace_id: int,
    *,
    channel_account_id: int,
    idempotency_key: str,
    payload: dict[str, Any],
    conversation_id: int | None = None,
    message_id: int | None = None,
) -> int:
    """Queue a send; returns the outbox row's id. The same key queued twice returns the first
    row's id and sends nothing more."""
    outbox_id = repository.insert_if_absent(
        session,
        workspace_id,
        channel_account_id=channel_account_id,
        conversation_id=conversation_id,
        message_id=message_id,
        idempotency_key=idempotency_key,
        payload=payload,
    )
    if outbox_id is None:
        existing = repository.by_key(session, workspace_id, idempotency_key)
        assert existing is not None  # the unique key that refused the insert
        return existing.id
    enqueue(
        session,
        workspace_id,
        "outbox.send",
        {"outbox_id": outbox_id},  # (a new row: no key needed to keep its job single)
        ordering_key=f"conv:{conversation_id}" if conversation_id else None,
    )
    return outbox_id


def by_key(session: Session, workspace_id: int, idempotency_key: str) -> OutboxMessage | None:
    return repository.by_key(session, workspace_id, idempotency_key)


def get(session: Session, workspace_id: int, outbox_id: int) -> OutboxMessage | None:
    return repository.get(session, workspace_id, outbox_id)
