from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from scrm.db import DIALECTS, conflict_insert
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow
from scrm.models import ChannelAccount, ChannelRateLimit, Conversation, Message, OutboxMessage


def by_key(session: Session, workspace_id: int, key: str) -> OutboxMessage | None:
    return session.execute(
        select(OutboxMessage).where(
            OutboxMessage.workspace_id == workspace_id, OutboxMessage.idempotency_key == key
        )
    ).scalar_one_or_none()


_QUEUED_FIELDS = (
    "workspace_id",
    "id",
    "channel_account_id",
    "conversation_id",
    "message_id",
    "idempotency_key",
    "payload",
    "created_at",
)
# Built once: statement construction costs more than running it on SQLite.
_INSERT_IF_ABSENT = {
    dialect: conflict_insert(dialect, OutboxMessage)
    .values({**{name: bindparam(name) for name in _QUEUED_FIELDS}, "status": "pending", "attempts": 0})
    .on_conflict_do_nothing()
    .returning(OutboxMessage.id)
    for dialect in DIALECTS
}


def insert_if_absent(
    session: Session,
    workspace_id: int,
    *,
    channel_account_id: int,
    conversation_id: int | None,
    message_id: int | None,
    idempotency_key: str,
    payload: dict[str, Any],
) -> int | None:
    """One statement: the new pending row's id, or None if the key is taken (unique index)."""
    values = {
        "workspace_id": workspace_id,
        "id": new_id(),
        "channel_account_id": channel_account_id,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "idempotency_key": idempotency_key,
        "payload": payload,
        "created_at": utcnow(),
    }
    stmt = _INSERT_IF_ABSENT[session.get_bind().dialect.name]
    new: int | None = session.connection().execute(stmt, values).scalar_one_or_none()
    return new


def get(session: Session, workspace_id: int, outbox_id: int) -> OutboxMessage | None:
    return session.get(OutboxMessage, (workspace_id, outbox_id))


_FOR_SEND = (
    select(OutboxMessage, ChannelAccount, Message)
    .outerjoin(
        ChannelAccount,
        and_(
            ChannelAccount.workspace_id == OutboxMessage.workspace_id,
            ChannelAccount.id == OutboxMessage.channel_account_id,
        ),
    )
    .outerjoin(
        Message,
        and_(Message.workspace_id == OutboxMessage.workspace_id, Message.id == OutboxMessage.message_id),
    )
    .where(OutboxMessage.workspace_id == bindparam("ws"), OutboxMessage.id == bindparam("id"))
)


def get_for_send(
    session: Session, workspace_id: int, outbox_id: int
) -> tuple[OutboxMessage, ChannelAccount | None, Message | None] | None:
    """The outbox row with its channel account and message (if any), in one read."""
    row = session.execute(_FOR_SEND, {"ws": workspace_id, "id": outbox_id}).one_or_none()
    return None if row is None else (row[0], row[1], row[2])


def delivered_since(
    session: Session,
    workspace_id: int,
    channel_account_id: int,
    recipient: str,
    since: dt.datetime,
    *,
    exclude_id: int | None = None,
) -> int:
    """Customer-service messages sent to `recipient` on this account after `since` (48 h
    window); template and subscription messages do not count."""
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
        1
        for outbox_id, payload in rows
        if outbox_id != exclude_id and payload.get("msg_type") not in ("template", "subscribe")
    )


def rate_bucket_for_update(
    session: Session, workspace_id: int, channel_account_id: int
) -> ChannelRateLimit | None:
    """The account's send-quota bucket, locked until the end of the transaction on PostgreSQL."""
    stmt = select(ChannelRateLimit).where(
        ChannelRateLimit.workspace_id == workspace_id,
        ChannelRateLimit.channel_account_id == channel_account_id,
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def insert_rate_bucket_if_absent(
    session: Session, workspace_id: int, channel_account_id: int, rate: float, burst: float, now: dt.datetime
) -> None:
    """A full bucket for the account, unless another worker just created it."""
    session.execute(
        conflict_insert(session, ChannelRateLimit)
        .values(
            workspace_id=workspace_id,
            id=new_id(),
            channel_account_id=channel_account_id,
            rate_per_second=rate,
            burst=burst,
            tokens=burst,
            updated_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )
