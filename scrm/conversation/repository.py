from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from scrm.models import Contact, Conversation, ConversationActivity, Message


def open_thread(
    session: Session, workspace_id: int, channel_account_id: int, contact_id: int, thread_key: str
) -> Conversation | None:
    return session.execute(
        select(Conversation).where(
            Conversation.workspace_id == workspace_id,
            Conversation.channel_account_id == channel_account_id,
            Conversation.contact_id == contact_id,
            Conversation.thread_key == thread_key,
            Conversation.status != "resolved",
        )
    ).scalar_one_or_none()


def get(session: Session, workspace_id: int, conversation_id: int) -> Conversation | None:
    return session.get(Conversation, (workspace_id, conversation_id))


def get_for_update(session: Session, workspace_id: int, conversation_id: int) -> Conversation | None:
    stmt = select(Conversation).where(
        Conversation.workspace_id == workspace_id, Conversation.id == conversation_id
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def list_page(
    session: Session,
    workspace_id: int,
    *,
    status: str | None,
    team_id: int | None,
    assignee_id: int | None,
    unassigned: bool,
    channel_account_id: int | None,
    intent: str | None,
    priority: str | None,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> Sequence[Conversation]:
    stmt: Select[Conversation] = select(Conversation).where(Conversation.workspace_id == workspace_id)
    if status:
        stmt = stmt.where(Conversation.status == status)
    if team_id is not None:
        stmt = stmt.where(Conversation.team_id == team_id)
    if assignee_id is not None:
        stmt = stmt.where(Conversation.assignee_id == assignee_id)
    if unassigned:
        stmt = stmt.where(Conversation.assignee_id.is_(None))
    if channel_account_id is not None:
        stmt = stmt.where(Conversation.channel_account_id == channel_account_id)
    if intent:
        stmt = stmt.where(Conversation.intent == intent)
    if priority:
        stmt = stmt.where(Conversation.priority == priority)
    if after is not None:
        at, cid = after
        stmt = stmt.where(
            or_(
                Conversation.last_message_at < at,
                and_(Conversation.last_message_at == at, Conversation.id < cid),
            )
        )
    stmt = stmt.order_by(Conversation.last_message_at.desc(), Conversation.id.desc()).limit(limit)
    return session.execute(stmt).scalars().all()


def contacts_by_ids(session: Session, workspace_id: int, ids: set[int]) -> dict[int, Contact]:
    if not ids:
        return {}
    rows = session.execute(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.id.in_(ids))
    ).scalars()
    return {c.id: c for c in rows}


def messages(
    session: Session, workspace_id: int, conversation_id: int, *, after_id: int | None, limit: int
) -> Sequence[Message]:
    stmt = select(Message).where(
        Message.workspace_id == workspace_id, Message.conversation_id == conversation_id
    )
    if after_id is not None:
        stmt = stmt.where(Message.id > after_id)
    return session.execute(stmt.order_by(Message.id).limit(limit)).scalars().all()


def message(session: Session, workspace_id: int, message_id: int) -> Message | None:
    return session.get(Message, (workspace_id, message_id))


def last_inbound(session: Session, workspace_id: int, conversation_id: int) -> Message | None:
    return session.execute(
        select(Message)
        .where(
            Message.workspace_id == workspace_id,
            Message.conversation_id == conversation_id,
            Message.direction == "in",
        )
        .order_by(Message.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def activities(session: Session, workspace_id: int, conversation_id: int) -> Sequence[ConversationActivity]:
    return (
        session.execute(
            select(ConversationActivity)
            .where(
                ConversationActivity.workspace_id == workspace_id,
                ConversationActivity.conversation_id == conversation_id,
            )
            .order_by(ConversationActivity.id)
        )
        .scalars()
        .all()
    )
