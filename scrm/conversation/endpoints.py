from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scrm.conversation import assignment, service
from scrm.conversation.schemas import (
    ActivityOut,
    AssignmentOut,
    ContactBrief,
    ConversationOut,
    ConversationPage,
    ConversationPatch,
    MessageOut,
    MessagePage,
    ReplyIn,
    RequiredSkillsIn,
    Status,
)
from scrm.errors import Forbidden, Invalid
from scrm.kit.pagination import decode_cursor, encode_cursor
from scrm.kit.time import UTC
from scrm.models import Contact, Conversation, ConversationActivity, Message
from scrm.workspace.auth import CurrentPrincipal, get_db

router = APIRouter(prefix="/conversations", tags=["conversations"])


def conversation_out(conv: Conversation, contact: Contact | None) -> ConversationOut:
    return ConversationOut(
        id=str(conv.id),
        status=conv.status,
        priority=conv.priority,
        channel_id=str(conv.channel_account_id),
        visibility=conv.visibility,
        thread_key=conv.thread_key,
        labels=list(conv.labels),
        team_id=str(conv.team_id) if conv.team_id else None,
        assignee_id=str(conv.assignee_id) if conv.assignee_id else None,
        required_skills=list(conv.required_skills or []),
        intent=conv.intent,
        sentiment=conv.sentiment,
        subject=conv.subject,
        contact=ContactBrief(
            id=str(conv.contact_id),
            name=contact.name if contact else "",
            followers=contact.followers if contact else None,
        ),
        message_count=conv.message_count,
        last_message_at=conv.last_message_at,
        first_response_at=conv.first_response_at,
        created_at=conv.created_at,
    )


def message_out(m: Message) -> MessageOut:
    return MessageOut(
        id=str(m.id),
        conversation_id=str(m.conversation_id),
        direction=m.direction,
        sender_type=m.sender_type,
        author_id=str(m.author_id) if m.author_id else None,
        kind=m.kind,
        text=m.text,
        media=list(m.media),
        visibility=m.visibility,
        status=m.status,
        error=m.error,
        triage=dict(m.triage),
        created_at=m.created_at,
        sent_at=m.sent_at,
    )


def _opt_id(value: str | None, field: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise Invalid(f"{field} must be an id", field=field) from None


@router.get("", response_model=ConversationPage, summary="List conversations, newest activity first")
def list_conversations(
    request: Request,
    principal: CurrentPrincipal,
    status: Status | None = None,
    team: Annotated[str | None, Query(description="team id")] = None,
    assignee: Annotated[str | None, Query(description="member id, or 'none' for unassigned")] = None,
    channel_id: str | None = None,
    intent: str | None = None,
    priority: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> ConversationPage:
    import datetime as dt

    after = None
    if cursor:
        ms, cid = decode_cursor(cursor)
        after = (dt.datetime.fromtimestamp(ms / 1_000_000, tz=UTC), cid)
    with get_db(request).transaction(readonly=True) as session:
        rows = service.list_page(
            session,
            principal.workspace_id,
            status=status,
            team_id=_opt_id(team, "team"),
            assignee_id=None if assignee == "none" else _opt_id(assignee, "assignee"),
            unassigned=assignee == "none",
            channel_account_id=_opt_id(channel_id, "channel_id"),
            intent=intent,
            priority=priority,
            after=after,
            limit=limit + 1,
        )
        page, more = rows[:limit], len(rows) > limit
        contacts = service.contacts_for(session, principal.workspace_id, page)
        items = [conversation_out(c, contacts.get(c.contact_id)) for c in page]
    next_cursor = None
    if more and page:
        last = page[-1]
        micros = int(last.last_message_at.timestamp() * 1_000_000)
        next_cursor = encode_cursor(micros, last.id)
    return ConversationPage(items=items, next_cursor=next_cursor)


@router.get("/{conversation_id}", response_model=ConversationOut)
def get_conversation(request: Request, principal: CurrentPrincipal, conversation_id: int) -> ConversationOut:
    with get_db(request).transaction(readonly=True) as session:
        conv = service.get(session, principal.workspace_id, conversation_id)
        contacts = service.contacts_for(session, principal.workspace_id, [conv])
        return conversation_out(conv, contacts.get(conv.contact_id))


@router.patch(
    "/{conversation_id}", response_model=ConversationOut, summary="Change status, assignee, team, ..."
)
def patch_conversation(
    request: Request, principal: CurrentPrincipal, conversation_id: int, body: ConversationPatch
) -> ConversationOut:
    with get_db(request).transaction() as session:
        conv = service.update(session, principal, conversation_id, **body.model_dump(exclude_unset=True))
        contacts = service.contacts_for(session, principal.workspace_id, [conv])
        return conversation_out(conv, contacts.get(conv.contact_id))


def _assignment_out(session: Session, conv: Conversation) -> AssignmentOut:
    reason = None
    if conv.assignee_id is None and conv.status == "open":
        reason = assignment.queue_reasons(session, conv.workspace_id, [conv])[conv.id]
    return AssignmentOut(
        conversation_id=str(conv.id),
        assignee_id=str(conv.assignee_id) if conv.assignee_id else None,
        required_skills=list(conv.required_skills or []),
        queued_reason=reason,
    )


@router.put(
    "/{conversation_id}/required-skills",
    response_model=AssignmentOut,
    summary="Set the skills its agent must have (an unassigned conversation is assigned if someone fits)",
)
def put_required_skills(
    request: Request, principal: CurrentPrincipal, conversation_id: int, body: RequiredSkillsIn
) -> AssignmentOut:
    with get_db(request).transaction() as session:
        conv = service.get(session, principal.workspace_id, conversation_id)
        assignment.require_skills(session, conv, body.skills, replace=True, actor_id=principal.member_id)
        if conv.assignee_id is None and conv.status == "open":
            assignment.assign(session, conv)
        return _assignment_out(session, conv)


@router.post(
    "/{conversation_id}/auto-assign",
    response_model=AssignmentOut,
    summary="Assign by the team's rules now (to another agent if assigned: its agent or supervisors)",
)
def auto_assign(request: Request, principal: CurrentPrincipal, conversation_id: int) -> AssignmentOut:
    with get_db(request).transaction() as session:
        conv = service.get(session, principal.workspace_id, conversation_id)
        if conv.assignee_id not in (None, principal.member_id) and not principal.is_supervisor:
            raise Forbidden("only its agent or a supervisor can pass on an assigned conversation")
        assignment.auto_assign(session, conv)
        return _assignment_out(session, conv)


@router.get("/{conversation_id}/messages", response_model=MessagePage)
def list_messages(
    request: Request,
    principal: CurrentPrincipal,
    conversation_id: int,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> MessagePage:
    after_id = decode_cursor(cursor)[1] if cursor else None
    with get_db(request).transaction(readonly=True) as session:
        rows = service.messages(
            session, principal.workspace_id, conversation_id, after_id=after_id, limit=limit + 1
        )
        page, more = rows[:limit], len(rows) > limit
        items = [message_out(m) for m in page]
    return MessagePage(items=items, next_cursor=encode_cursor(0, page[-1].id) if more and page else None)


@router.post(
    "/{conversation_id}/messages",
    response_model=MessageOut,
    status_code=201,
    summary="Reply to the fan (queued in the outbox) or add an internal note",
)
def post_message(
    request: Request,
    principal: CurrentPrincipal,
    conversation_id: int,
    body: ReplyIn,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=100,
            pattern=r"^[\x21-\x7e]+$",
            description="Retrying with the same key returns the first reply instead of sending another",
        ),
    ] = None,
) -> MessageOut:
    def once() -> MessageOut:
        with get_db(request).transaction() as session:
            if body.internal:
                message = service.add_note(session, principal, conversation_id, body.text)
            else:
                message = service.reply(
                    session,
                    principal,
                    conversation_id,
                    body.text,
                    visibility=body.visibility,
                    idempotency_key=idempotency_key,
                )
            return message_out(message)

    try:
        return once()
    except IntegrityError:
        if not idempotency_key:
            raise
        return once()  # a concurrent retry with the same key committed first: return its reply


@router.get("/{conversation_id}/activities", response_model=list[ActivityOut], summary="The case timeline")
def list_activities(request: Request, principal: CurrentPrincipal, conversation_id: int) -> list[ActivityOut]:
    with get_db(request).transaction(readonly=True) as session:
        service.get(session, principal.workspace_id, conversation_id)
        rows: list[ConversationActivity] = service.activities(
            session, principal.workspace_id, conversation_id
        )
        return [
            ActivityOut(
                id=str(a.id),
                kind=a.kind,
                actor_id=str(a.actor_id) if a.actor_id else None,
                data=dict(a.data),
                created_at=a.created_at,
            )
            for a in rows
        ]
