"""Conversations and messages: the service desk's core use cases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from scrm import events
from scrm.channels.base import InboundEvent
from scrm.conversation import repository
from scrm.db import ReadAhead
from scrm.errors import Conflict, Invalid, NotFound
from scrm.governance.service import audit
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow
from scrm.models import Contact, Conversation, ConversationActivity, Message
from scrm.outbox import service as outbox
from scrm.workspace import service as workspace
from scrm.workspace.schemas import Principal

SUBJECT_LEN = 80


@dataclass
class Appended:
    conversation: Conversation
    message: Message
    created: bool
    reopened: bool


def record_activity(
    session: Session, conversation: Conversation, kind: str, actor_id: int | None = None, **data: Any
) -> None:
    """Add a row to the conversation's timeline; written when the transaction commits."""
    repository.queue_activity(session, conversation.workspace_id, conversation.id, kind, actor_id, data)


# (workspace id, channel account, contact, thread key) -> the open conversation or None
_threads_ahead = ReadAhead("open_thread")


def read_ahead_threads(
    session: Session, workspace_id: int, keys: Sequence[tuple[int, int, str]]
) -> list[Conversation]:
    """Look up the open conversations of many (channel account, contact, thread key) in one
    statement, for the `append_inbound` calls that follow in the same transaction. Returns
    those found."""
    keys = list(dict.fromkeys(keys))
    found = repository.open_threads(session, workspace_id, keys)
    _threads_ahead.put(
        session, {(workspace_id, *k): v for k, v in found.items()}, [(workspace_id, *k) for k in keys]
    )
    return list(found.values())


def _open_thread(
    session: Session, workspace_id: int, channel_account_id: int, contact_id: int, thread_key: str
) -> Conversation | None:
    conv = _threads_ahead.get(session, (workspace_id, channel_account_id, contact_id, thread_key))
    if conv is ReadAhead.NOT_READ:
        return repository.open_thread(session, workspace_id, channel_account_id, contact_id, thread_key)
    if conv is None:
        return None  # none was open when read ahead, and append_inbound records the one it opens
    if conv.status == "resolved" or conv.contact_id != contact_id:  # changed since: ask again
        return repository.open_thread(session, workspace_id, channel_account_id, contact_id, thread_key)
    return conv


def append_inbound(
    session: Session,
    workspace_id: int,
    *,
    channel_account_id: int,
    contact: Contact,
    event: InboundEvent,
    inbound_event_id: int,
    new_contact: bool = False,
) -> Appended:
    """Add a fan's message to their open conversation on this account and thread, or open one
    (`new_contact`: the contact was created in this transaction, so it has none to look up).

    The new rows are left to the session's next flush (the caller flushes before it runs
    statements that bypass the ORM, such as assignment's)."""
    conv = (
        None
        if new_contact
        else _open_thread(session, workspace_id, channel_account_id, contact.id, event.thread_key)
    )
    created = conv is None
    reopened = False
    now = utcnow()
    if conv is None:
        # The id is given here so that the conversation, its "created" activity and the message
        # go out in one flush (one INSERT of the finished row, no INSERT-then-UPDATE).
        conv = Conversation(
            workspace_id=workspace_id,
            id=new_id(),
            contact_id=contact.id,
            channel_account_id=channel_account_id,
            thread_key=event.thread_key,
            fan_external_id=event.sender.external_id,
            visibility=event.visibility,
            status="open",
            priority="normal",
            labels=[],
            subject=(event.text or event.msg_type)[:SUBJECT_LEN],
            message_count=0,
            last_message_at=now,
        )
        session.add(conv)
        # for a later message on this thread in the group
        _threads_ahead.record(session, (workspace_id, channel_account_id, contact.id, event.thread_key), conv)
        record_activity(session, conv, "created", channel_account_id=str(channel_account_id))
    elif conv.status == "pending":
        conv.status = "open"
        reopened = True
        record_activity(session, conv, "reopened")
    message = Message(
        workspace_id=workspace_id,
        id=new_id(),
        conversation_id=conv.id,
        direction="in",
        sender_type="contact",
        kind=event.msg_type,
        text=event.text,
        media=list(event.media),
        visibility=event.visibility,
        channel_message_id=event.external_id,
        inbound_event_id=inbound_event_id,
        status="received",
        triage={},
        extra={k: v for k, v in event.metadata.items() if isinstance(k, str)},
        sent_at=event.sent_at,
    )
    session.add(message)
    conv.message_count += 1
    conv.last_message_at = now
    conv.last_inbound_at = now
    # Not flushed here: the pipeline's first steps (triage) label the message and conversation
    # before they are written (scrm.pipeline.WRITE_AT), in the same INSERT / UPDATE.
    data = {"conversation_id": str(conv.id), "message_id": str(message.id), "contact_id": str(contact.id)}
    if created:
        events.emit(session, workspace_id, "conversation.created", data)
    elif reopened:
        events.emit(session, workspace_id, "conversation.reopened", data)
    events.emit(session, workspace_id, "message.received", data)
    return Appended(conv, message, created, reopened)


def get(session: Session, workspace_id: int, conversation_id: int) -> Conversation:
    conv = repository.get(session, workspace_id, conversation_id)
    if conv is None:
        raise NotFound("no such conversation")
    return conv


def list_page(session: Session, workspace_id: int, **filters: Any) -> list[Conversation]:
    return list(repository.list_page(session, workspace_id, **filters))


def contacts_for(
    session: Session, workspace_id: int, conversations: list[Conversation]
) -> dict[int, Contact]:
    return repository.contacts_by_ids(session, workspace_id, {c.contact_id for c in conversations})


def messages(
    session: Session,
    workspace_id: int,
    conversation_id: int,
    *,
    after_id: int | None = None,
    limit: int = 100,
) -> list[Message]:
    get(session, workspace_id, conversation_id)
    return list(repository.messages(session, workspace_id, conversation_id, after_id=after_id, limit=limit))


def activities(session: Session, workspace_id: int, conversation_id: int) -> list[ConversationActivity]:
    return list(repository.activities(session, workspace_id, conversation_id))


def send_reply(
    session: Session,
    conv: Conversation,
    text: str,
    *,
    sender_type: str = "agent",
    author_id: int | None = None,
    visibility: str | None = None,
    kind: str = "text",
    payload: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    delivered: bool = False,
    reply_to: Message | None = None,
) -> Message:
    """Store an outgoing message and queue it for delivery on the conversation's channel.

    Public threads (a Weibo post) get a public reply unless the agent chooses private.
    A human reply is the conversation's first response; an automatic one is not.
    `delivered`: the platform already has it (a passive reply in the push's response), so it
    is recorded as sent and not queued. `reply_to`: the fan's latest message, when the caller
    has it (else it is looked up); a reply threads to it (a Weibo comment, a WeChat message).
    """
    text = text.strip()
    if not text and kind == "text":
        raise Invalid("reply text is empty", field="text")
    visibility = visibility or conv.visibility
    if visibility not in ("public", "private"):
        raise Invalid("visibility must be public or private", field="visibility")
    now = utcnow()
    message = Message(
        workspace_id=conv.workspace_id,
        conversation_id=conv.id,
        direction="out",
        sender_type=sender_type,
        author_id=author_id,
        kind=kind,
        text=text,
        media=[],
        visibility=visibility,
        status="sent" if delivered else "pending",
        triage={},
        extra={"passive": True} if delivered else {},
        sent_at=now if delivered else None,
    )
    session.add(message)
    session.flush()
    if delivered:
        conv.message_count += 1
        conv.last_message_at = now
        return message
    last_in = reply_to or repository.last_inbound(session, conv.workspace_id, conv.id)
    reply_to_external = None
    if last_in is not None:
        reply_to_external = last_in.extra.get("comment_id") or last_in.channel_message_id
    outbox.queue(
        session,
        conv.workspace_id,
        channel_account_id=conv.channel_account_id,
        idempotency_key=idempotency_key or f"msg:{message.id}",
        payload={
            "recipient": conv.fan_external_id,
            "text": text,
            "msg_type": kind,
            "visibility": visibility,
            "thread_key": conv.thread_key,
            "reply_to_external_id": reply_to_external,
            "payload": payload or {},
        },
        conversation_id=conv.id,
        message_id=message.id,
    )
    conv.message_count += 1
    conv.last_message_at = now
    if sender_type == "agent" and conv.first_response_at is None:
        conv.first_response_at = now
    if sender_type == "agent":
        audit(
            session,
            conv.workspace_id,
            "message.sent",
            actor_id=author_id,
            target_type="conversation",
            target_id=conv.id,
            data={"message_id": str(message.id), "visibility": visibility},
        )
    return message


def reply(
    session: Session,
    principal: Principal,
    conversation_id: int,
    text: str,
    *,
    visibility: str | None = None,
    idempotency_key: str | None = None,
) -> Message:
    """An agent's reply. With an `idempotency_key` (the API's Idempotency-Key header) a retried
    request returns the reply it already made instead of sending a second one."""
    conv = get(session, principal.workspace_id, conversation_id)
    key = f"api:{principal.member_id}:{idempotency_key}" if idempotency_key else None
    if key is not None:
        earlier = outbox.by_key(session, principal.workspace_id, key)
        if earlier is not None:
            message = session.get(Message, (principal.workspace_id, earlier.message_id or 0))
            if message is None or message.conversation_id != conv.id:
                raise Conflict("this Idempotency-Key was already used for another reply")
            return message
    message = send_reply(
        session, conv, text, author_id=principal.member_id, visibility=visibility, idempotency_key=key
    )
    if conv.assignee_id is None:
        conv.assignee_id = principal.member_id
        record_activity(session, conv, "assigned", principal.member_id, assignee_id=str(principal.member_id))
    if conv.status == "pending":
        conv.status = "open"
    events.emit(
        session,
        principal.workspace_id,
        "conversation.updated",
        {"conversation_id": str(conv.id), "message_id": str(message.id)},
    )
    return message


def add_note(session: Session, principal: Principal, conversation_id: int, text: str) -> Message:
    conv = get(session, principal.workspace_id, conversation_id)
    text = text.strip()
    if not text:
        raise Invalid("note is empty", field="text")
    note = Message(
        workspace_id=conv.workspace_id,
        conversation_id=conv.id,
        direction="internal",
        sender_type="agent",
        author_id=principal.member_id,
        kind="note",
        text=text,
        media=[],
        visibility="private",
        status="note",
        triage={},
        extra={},
    )
    session.add(note)
    session.flush()
    record_activity(session, conv, "note", principal.member_id, message_id=str(note.id))
    return note


def _parse_id(value: str, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise Invalid(f"{field} must be an id", field=field) from None


def update(
    session: Session,
    principal: Principal,
    conversation_id: int,
    *,
    status: str | None = None,
    priority: str | None = None,
    assignee_id: str | None = None,
    team_id: str | None = None,
    labels: list[str] | None = None,
) -> Conversation:
    conv = get(session, principal.workspace_id, conversation_id)
    ws = principal.workspace_id
    changes: dict[str, Any] = {}
    if assignee_id is not None:
        new_assignee = None if assignee_id == "" else _parse_id(assignee_id, "assignee_id")
        if new_assignee is not None:
            workspace.get_member(session, ws, new_assignee)  # 404 for another workspace's member
        if new_assignee != conv.assignee_id:
            conv.assignee_id = new_assignee
            changes["assignee_id"] = str(new_assignee) if new_assignee else None
            record_activity(
                session, conv, "assigned", principal.member_id, assignee_id=changes["assignee_id"]
            )
    if team_id is not None:
        new_team = None if team_id == "" else _parse_id(team_id, "team_id")
        if new_team is not None:
            workspace.get_team(session, ws, new_team)
        if new_team != conv.team_id:
            conv.team_id = new_team
            changes["team_id"] = str(new_team) if new_team else None
            record_activity(session, conv, "transferred", principal.member_id, team_id=changes["team_id"])
    if priority is not None and priority != conv.priority:
        conv.priority = priority
        changes["priority"] = priority
        record_activity(session, conv, "priority", principal.member_id, priority=priority)
    labeled: dict[str, Any] | None = None
    if labels is not None:
        clean = sorted({label.strip()[:40] for label in labels if label.strip()})
        if clean != conv.labels:
            before = set(conv.labels or [])
            added, removed = sorted(set(clean) - before), sorted(before - set(clean))
            conv.labels = clean
            changes["labels"] = clean
            if added or removed:
                record_activity(session, conv, "labeled", principal.member_id, added=added, removed=removed)
                labeled = {"conversation_id": str(conv.id), "added": added, "removed": removed, "depth": 0}
    if status is not None and status != conv.status:
        set_status(session, conv, status, principal.member_id)
        changes["status"] = status
    if changes:
        audit(
            session,
            ws,
            "conversation.updated",
            actor_id=principal.member_id,
            target_type="conversation",
            target_id=conv.id,
            data=changes,
        )
        events.emit(session, ws, "conversation.updated", {"conversation_id": str(conv.id), **changes})
    if labeled is not None:
        # An agent's edit reaches the label rules like a rule's own label action does.
        events.emit(session, ws, "conversation.labeled", labeled)
    return conv


def set_status(session: Session, conv: Conversation, status: str, actor_id: int | None) -> None:
    if status not in ("open", "pending", "resolved"):
        raise Invalid("status must be open, pending or resolved", field="status")
    if status == "open" and conv.status == "resolved":
        other = repository.open_thread(
            session, conv.workspace_id, conv.channel_account_id, conv.contact_id, conv.thread_key
        )
        if other is not None and other.id != conv.id:
            raise Invalid("the fan already has a newer open conversation on this thread", field="status")
    conv.status = status
    conv.resolved_at = utcnow() if status == "resolved" else None
    record_activity(session, conv, "status", actor_id, status=status)
    if status == "resolved":
        events.emit(session, conv.workspace_id, "conversation.resolved", {"conversation_id": str(conv.id)})


# -- agent workspace (web UI) ----------------------------------------------------------------
InboxFilter = repository.InboxFilter


def inbox_page(
    session: Session,
    workspace_id: int,
    f: repository.InboxFilter,
    *,
    after: tuple[dt.datetime, int] | None = None,
    limit: int = 50,
) -> list[Conversation]:
    return list(repository.inbox_page(session, workspace_id, f, after=after, limit=limit))


def inbox_count(session: Session, workspace_id: int, f: repository.InboxFilter) -> int:
    return repository.inbox_count(session, workspace_id, f)


def labels_in_use(session: Session, workspace_id: int) -> list[str]:
    return repository.distinct_labels(session, workspace_id)


def last_inbound_message(session: Session, workspace_id: int, conversation_id: int) -> Message | None:
    return repository.last_inbound(session, workspace_id, conversation_id)


@dataclass
class QueueStats:
    """What the supervisor dashboard shows: live queue, agents' load, response times, volume."""

    open_by_team: list[tuple[int | None, str, int]]
    open_by_assignee: list[tuple[int | None, int]]
    by_intent: list[tuple[str | None, int]]
    by_sentiment: list[tuple[str | None, int]]
    first_response_seconds: list[float]
    unanswered: int


def queue_stats(session: Session, workspace_id: int, since: dt.datetime) -> QueueStats:
    pairs = repository.first_responses(session, workspace_id, since)
    seconds = [max(0.0, (fr - created).total_seconds()) for created, fr in pairs if fr is not None]
    return QueueStats(
        open_by_team=repository.open_by_team(session, workspace_id),
        open_by_assignee=repository.open_by_assignee(session, workspace_id),
        by_intent=repository.count_by(session, workspace_id, "intent", since),
        by_sentiment=repository.count_by(session, workspace_id, "sentiment", since),
        first_response_seconds=seconds,
        unanswered=sum(1 for _c, fr in pairs if fr is None),
    )
