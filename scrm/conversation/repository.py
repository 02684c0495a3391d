from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    cast,
    func,
    insert,
    or_,
    select,
    tuple_,
    union,
)
from sqlalchemy.orm import Session, aliased

from scrm.db import CommitBuffer
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow
from scrm.models import Contact, Conversation, ConversationActivity, Message

_OPEN_THREAD = select(Conversation).where(
    Conversation.workspace_id == bindparam("ws"),
    Conversation.channel_account_id == bindparam("account"),
    Conversation.contact_id == bindparam("contact"),
    Conversation.thread_key == bindparam("thread"),
    Conversation.status != "resolved",
)


def open_thread(
    session: Session, workspace_id: int, channel_account_id: int, contact_id: int, thread_key: str
) -> Conversation | None:
    return session.execute(
        _OPEN_THREAD,
        {"ws": workspace_id, "account": channel_account_id, "contact": contact_id, "thread": thread_key},
    ).scalar_one_or_none()


def open_threads(
    session: Session, workspace_id: int, keys: Sequence[tuple[int, int, str]]
) -> dict[tuple[int, int, str], Conversation]:
    """`open_thread` for many (channel account, contact, thread key) triples in one read."""
    if not keys:
        return {}
    rows = session.execute(
        select(Conversation).where(
            Conversation.workspace_id == workspace_id,
            tuple_(Conversation.channel_account_id, Conversation.contact_id, Conversation.thread_key).in_(
                list(keys)
            ),
            Conversation.status != "resolved",
        )
    ).scalars()
    return {(c.channel_account_id, c.contact_id, c.thread_key): c for c in rows}


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


_INSERT_ACTIVITY = insert(ConversationActivity)


def _write_timeline(session: Session, rows: list[dict[str, Any]]) -> None:
    session.connection().execute(_INSERT_ACTIVITY, rows)


# Timeline rows go out in one executemany when the transaction commits (a message's pipeline
# records several; jobs sharing a transaction, many): each row's id and time are given when it
# is recorded, so the timeline keeps its order.
_timeline = CommitBuffer("timeline", _write_timeline)


def queue_activity(
    session: Session,
    workspace_id: int,
    conversation_id: int,
    kind: str,
    actor_id: int | None,
    data: dict[str, Any],
) -> None:
    _timeline.add(
        session,
        {
            "workspace_id": workspace_id,
            "id": new_id(),
            "conversation_id": conversation_id,
            "kind": kind,
            "actor_id": actor_id,
            "data": data,
            "created_at": utcnow(),
        },
    )


def insert_activity(
    session: Session, workspace_id: int, conversation_id: int, kind: str, data: dict[str, Any]
) -> None:
    """A system timeline row, written at once as one Core INSERT (no ORM object to flush).

    For hot paths (assignment): the caller must have flushed earlier timeline rows first, so
    that ids (time-ordered) keep the timeline in order."""
    session.connection().execute(
        _INSERT_ACTIVITY,
        {"workspace_id": workspace_id, "conversation_id": conversation_id, "kind": kind, "data": data},
    )


def activities(session: Session, workspace_id: int, conversation_id: int) -> Sequence[ConversationActivity]:
    _timeline.flush(session)
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


# -- agent workspace (web UI): inbox filters, search, counts, dashboard aggregates -------------
@dataclass(frozen=True)
class InboxFilter:
    """What the inbox shows. Empty values mean "any"; `statuses` empty means every status."""

    statuses: tuple[str, ...] = ("open", "pending")
    assignee_id: int | None = None
    unassigned: bool = False
    team_ids: tuple[int, ...] | None = None
    channel_account_id: int | None = None
    visibility: str | None = None
    intent: str | None = None
    sentiment: str | None = None
    label: str | None = None
    priority: str | None = None
    query: str | None = None


def _trigram_indexed(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _search_each(conv: Any, q: str, like_contact: ColumnElement[bool]) -> ColumnElement[bool]:
    """The search as a check on each conversation row (`conv`: Conversation or an alias of it)."""
    in_messages = (
        select(Message.id)
        .where(
            Message.workspace_id == conv.workspace_id,
            Message.conversation_id == conv.id,
            Message.text.contains(q, autoescape=True),
        )
        .exists()
    )
    in_contact = (
        select(Contact.id)
        .where(Contact.workspace_id == conv.workspace_id, Contact.id == conv.contact_id, like_contact)
        .exists()
    )
    return or_(conv.subject.contains(q, autoescape=True), in_messages, in_contact)


def _like_contact(q: str) -> ColumnElement[bool]:
    return or_(
        Contact.name.contains(q, autoescape=True),
        Contact.phone.contains(q, autoescape=True),
        Contact.member_no.contains(q, autoescape=True),
    )


def _search(workspace_id: int, q: str, *, indexed: bool) -> ColumnElement[bool]:
    """Substring search over the subject, the messages and the contact (Chinese needs no tokenizer).

    `indexed` (PostgreSQL with pg_trgm GIN indexes, see the trigram migration): matching
    messages and contacts are found once through the indexes (hashed sub-plans), so a rare or
    absent term costs milliseconds. Without such indexes (SQLite) each conversation is checked
    in inbox order, which stops as soon as a page is full when the term is common.
    """
    like_contact = _like_contact(q)
    if indexed:
        # One id list from three index-served parts: the planner can semi-join it.
        other = aliased(Conversation)
        contacts = select(Contact.id).where(Contact.workspace_id == workspace_id, like_contact)
        ids = union(
            select(Message.conversation_id).where(
                Message.workspace_id == workspace_id, Message.text.contains(q, autoescape=True)
            ),
            select(other.id).where(
                other.workspace_id == workspace_id, other.subject.contains(q, autoescape=True)
            ),
            select(other.id).where(other.workspace_id == workspace_id, other.contact_id.in_(contacts)),
        )
        return Conversation.id.in_(ids)
    return _search_each(Conversation, q, like_contact)


def inbox_where(
    stmt: Select[Any], workspace_id: int, f: InboxFilter, *, indexed: bool = False
) -> Select[Any]:
    stmt = stmt.where(Conversation.workspace_id == workspace_id)
    if f.statuses:
        stmt = stmt.where(Conversation.status.in_(f.statuses))
    if f.assignee_id is not None:
        stmt = stmt.where(Conversation.assignee_id == f.assignee_id)
    if f.unassigned:
        stmt = stmt.where(Conversation.assignee_id.is_(None))
    if f.team_ids is not None:
        stmt = stmt.where(Conversation.team_id.in_(f.team_ids or (-1,)))
    if f.channel_account_id is not None:
        stmt = stmt.where(Conversation.channel_account_id == f.channel_account_id)
    if f.visibility:
        stmt = stmt.where(Conversation.visibility == f.visibility)
    if f.intent:
        stmt = stmt.where(Conversation.intent == f.intent)
    if f.sentiment:
        stmt = stmt.where(Conversation.sentiment == f.sentiment)
    if f.priority:
        stmt = stmt.where(Conversation.priority == f.priority)
    if f.label:
        # labels is a JSON list; match the label's JSON text so "VIP" does not match "VIP2".
        stmt = stmt.where(cast(Conversation.labels, String).contains(json.dumps(f.label), autoescape=True))
    if f.query:
        stmt = stmt.where(_search(workspace_id, f.query, indexed=indexed))
    return stmt


# A common search term fills the first page from the newest conversations: looking at this
# many of them in inbox order (limit x factor) before using the indexes is cheaper then.
RECENT_SEARCH_FACTOR = 40


def _after(stmt: Select[Any], conv: Any, after: tuple[dt.datetime, int] | None) -> Select[Any]:
    if after is None:
        return stmt
    at, cid = after
    return stmt.where(or_(conv.last_message_at < at, and_(conv.last_message_at == at, conv.id < cid)))


def inbox_page(
    session: Session,
    workspace_id: int,
    f: InboxFilter,
    *,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> Sequence[Conversation]:
    indexed = _trigram_indexed(session)
    if f.query and indexed:
        # Check the newest conversations one by one first; if they fill the page, that page is
        # exact (nothing newer was skipped). A rare term falls through to the indexed search.
        window = _after(
            inbox_where(select(Conversation), workspace_id, replace(f, query=None)), Conversation, after
        )
        recent = (
            window.order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
            .limit(limit * RECENT_SEARCH_FACTOR)
            .subquery()
        )
        conv = aliased(Conversation, recent)
        rows = (
            session.execute(
                select(conv)
                .where(_search_each(conv, f.query, _like_contact(f.query)))
                .order_by(conv.last_message_at.desc(), conv.id.desc())
                .limit(limit)
            )
            .scalars()
            .all()
        )
        if len(rows) == limit:
            return rows
    stmt = _after(inbox_where(select(Conversation), workspace_id, f, indexed=indexed), Conversation, after)
    stmt = stmt.order_by(Conversation.last_message_at.desc(), Conversation.id.desc()).limit(limit)
    return session.execute(stmt).scalars().all()


def inbox_count(session: Session, workspace_id: int, f: InboxFilter) -> int:
    stmt = inbox_where(
        select(func.count()).select_from(Conversation), workspace_id, f, indexed=_trigram_indexed(session)
    )
    return int(session.execute(stmt).scalar_one())


def distinct_labels(session: Session, workspace_id: int, limit: int = 500) -> list[str]:
    """Labels in use on recent conversations (a JSON list column, so gathered in Python)."""
    rows = session.execute(
        select(Conversation.labels)
        .where(Conversation.workspace_id == workspace_id)
        .order_by(Conversation.last_message_at.desc())
        .limit(limit)
    ).scalars()
    return sorted({label for labels in rows for label in (labels or [])})


def open_by_team(session: Session, workspace_id: int) -> list[tuple[int | None, str, int]]:
    rows = session.execute(
        select(Conversation.team_id, Conversation.status, func.count())
        .where(Conversation.workspace_id == workspace_id, Conversation.status != "resolved")
        .group_by(Conversation.team_id, Conversation.status)
    ).all()
    return [(r[0], r[1], int(r[2])) for r in rows]


def open_by_assignee(session: Session, workspace_id: int) -> list[tuple[int | None, int]]:
    rows = session.execute(
        select(Conversation.assignee_id, func.count())
        .where(Conversation.workspace_id == workspace_id, Conversation.status != "resolved")
        .group_by(Conversation.assignee_id)
    ).all()
    return [(r[0], int(r[1])) for r in rows]


def count_by(
    session: Session, workspace_id: int, column: str, since: dt.datetime
) -> list[tuple[str | None, int]]:
    col = {"intent": Conversation.intent, "sentiment": Conversation.sentiment}[column]
    rows = session.execute(
        select(col, func.count())
        .where(Conversation.workspace_id == workspace_id, Conversation.created_at >= since)
        .group_by(col)
    ).all()
    return [(r[0], int(r[1])) for r in rows]


def first_responses(
    session: Session, workspace_id: int, since: dt.datetime, limit: int = 50_000
) -> list[tuple[dt.datetime, dt.datetime | None]]:
    rows = session.execute(
        select(Conversation.created_at, Conversation.first_response_at)
        .where(Conversation.workspace_id == workspace_id, Conversation.created_at >= since)
        .limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows]
