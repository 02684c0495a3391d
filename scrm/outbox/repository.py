from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from scrm.models import Conversation, OutboxMessage


def by_key(session: Session, workspace_id: int, key: str) -> OutboxMessage | None:
    return session.execute(
        select(OutboxMessage).where(
            OutboxMessage.workspace_id == workspace_id, OutboxMessage.idempotency_key == key
        )
    ).scalar_one_or_none()


def get(session: Session, workspace_id: int, outbox_id: int) -> OutboxMessage | None:
    return session.get(OutboxMessage, (workspace_id, outbox_id))


def delivered_since(
    session: Session,
    workspace_id: int,
    channel_account_id: int,
    recipient: str,
    since: dt.datetime,
    *,
    exclude_id: int | None = None,
) -> int:
    """Non-template messages sent to `recipient` on this account after `since` (48 h window)."""
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.payload)
        .join(
            Conversation,
            (Conversation.workspace_id == OutboxMessage.workspace_id)
            & (Conversation.id == OutboxMessage.conversation_id),
        )
        .where(
            OutboxMessage.workspace_id == workspace_id,
            OutboxMessage.channel_account_id == channel_account_id,
            OutboxMessage.status == "sent",
            OutboxMessage.sent_at > since,
            Conversation.channel_account_id == channel_account_id,
            Conversation.fan_external_id == recipient,
        )
    ).all()
    return sum(
        1 for outbox_id, payload in rows if outbox_id != exclude_id and payload.get("msg_type") != "template"
    )
