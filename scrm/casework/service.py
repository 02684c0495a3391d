"""Closing the loop (S7): department tasks, their outcomes back to the fan, follow-up tasks.

A case routed to a department (lost-and-found, after-sales, a partner) becomes a task holding
what the department needs: who the fan is, what they said, flight/order/seat, the booking we
found, photos. The department records the outcome (REST, or a signed webhook from its own
system); the outcome goes back to the fan on the conversation's own channel and thread
(public comment reply on a public Weibo post, private otherwise), once: the outbox key is the
task's. The timeline records who did what when.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets as pysecrets
from typing import Any

from sqlalchemy.orm import Session

from scrm import events
from scrm.casework import repository
from scrm.config import get_settings
from scrm.contact import service as contact_service
from scrm.conversation import service as conversation_service
from scrm.errors import Conflict, Invalid, NotFound
from scrm.kit import crypto
from scrm.kit.time import utcnow
from scrm.models import CaseTask, Contact, Conversation, Message, Order, Team
from scrm.worker.service import enqueue

log = logging.getLogger(__name__)

TASK_KINDS = ("department", "follow_up")
# Late replies need no special case here: the outcome is an ordinary reply in the outbox, and
# the channel's own rules apply when it is sent (WeChat outside the 48-hour customer-service
# window: the send is refused before any API call and the account's fallback template message,
# `fallback_template_id`, goes out instead; see scrm/channels/wechat/spec.py precheck).


# -- what the department gets ---------------------------------------------------------------------
def _entities(messages: list[Message], facts: dict[str, Any] | None) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    triage = (facts or {}).get("triage") or {}
    for e in triage.get("entities") or []:
        if isinstance(e, dict) and e.get("type") and e.get("value"):
            found.append({"type": str(e["type"]), "value": str(e["value"])})
    for m in messages:
        for e in (m.triage or {}).get("entities") or []:
            if isinstance(e, dict) and e.get("type") and e.get("value"):
                found.append({"type": str(e["type"]), "value": str(e["value"])})
    if not found:
        try:
            from scrm.nlp.entities import extract_entities
        except ImportError:  # pragma: no cover - the NLP package is optional here
            extract_entities = None  # type: ignore[assignment]
        if extract_entities is not None:
            for m in messages:
                found += [{"type": e.type, "value": e.value} for e in extract_entities(m.text or "")]
    unique: dict[tuple[str, str], dict[str, str]] = {}
    for e in found:
        unique.setdefault((e["type"], e["value"].upper()), e)
    return list(unique.values())


def _matching_booking(orders: list[Order], entities: list[dict[str, str]]) -> dict[str, Any] | None:
    flights = {e["value"].upper() for e in entities if e["type"] == "flight_no"}
    order_nos = {e["value"].upper() for e in entities if e["type"] == "order_no"}
    for o in orders:
        d = o.details or {}
        if str(d.get("flight_no", "")).upper() in flights or o.external_id.upper() in order_nos:
            return {
                "order_id": o.external_id,
                "source": o.source,
                "status": o.status,
                **{k: d[k] for k in ("flight_no", "origin", "destination", "depart_at", "seat") if k in d},
            }
    return None


def case_details(session: Session, conv: Conversation, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    ws = conv.workspace_id
    contact = contact_service.get(session, ws, conv.contact_id)
    inbound = [
        m for m in conversation_service.messages(session, ws, conv.id, limit=200) if m.direction == "in"
    ][-10:]
    entities = _entities(inbound, facts)
    orders = contact_service.orders(session, ws, contact.id, limit=50)
    photos = [
        media
        for m in inbound
        for media in (m.media or [])
        if isinstance(media, dict) and media.get("type") in ("image", "photo", "video")
    ]
    return {
        "who": {
            "contact_id": str(contact.id),
            "name": contact.name,
            "phone": contact_service.mask_phone(contact.phone),
            "member_no": contact.member_no,
            "tier": (contact.attributes or {}).get("tier"),
            "followers": contact.followers,
        },
        "what": [{"at": m.created_at.isoformat(), "text": m.text} for m in inbound],
        "intent": conv.intent,
        "sentiment": conv.sentiment,
        "entities": entities,
        "booking": _matching_booking(orders, entities),
        "photos": photos[:20],
        "channel": {"channel_account_id": str(conv.channel_account_id), "visibility": conv.visibility},
    }


# -- tasks ---------------------------------------------------------------------------------------
def create_task(
    session: Session,
    conv: Conversation,
    *,
    kind: str,
    team: Team | None,
    title: str = "",
    due_at: dt.datetime | None = None,
    created_by: str = "",
    facts: dict[str, Any] | None = None,
) -> CaseTask:
    """A task for a department (outcome goes to the fan) or a follow-up (call-back).
    At most one open task of a kind per conversation and team."""
    if kind not in TASK_KINDS:
        raise Invalid(f"task kind must be one of {', '.join(TASK_KINDS)}", field="kind")
    if kind == "department" and team is None:
        raise Invalid("a department task needs a team", field="team")
    ws = conv.workspace_id
    team_id = team.id if team else None
    prefix = f"{kind}:{conv.id}:{team_id or ''}"
    existing = repository.for_conversation(session, ws, conv.id, kind, team_id)
    for t in existing:
        if t.status == "open":
            return t
    details = case_details(session, conv, facts)
    task = CaseTask(
        workspace_id=ws,
        conversation_id=conv.id,
        team_id=team_id,
        kind=kind,
        dedupe_key=f"{prefix}:{len(existing)}",
        status="open",
        title=(title or (conv.subject if kind == "department" else f"回访：{conv.subject}"))[:200],
        details=details,
        due_at=due_at,
        created_by=created_by[:80],
    )
    session.add(task)
    session.flush()
    conversation_service.record_activity(
        session,
        conv,
        "task_created",
        None,
        task_id=str(task.id),
        task_kind=kind,
        team_id=str(team_id) if team_id else None,
        due_at=due_at.isoformat() if due_at else None,
        by=created_by,
    )
    events.emit(
        session,
        ws,
        "task.created",
        {
            "task_id": str(task.id),
            "conversation_id": str(conv.id),
            "kind": kind,
            "team_id": str(team_id or ""),
        },
    )
    if due_at is not None:
        enqueue(
            session,
            ws,
            "casework.task_due",
            {"task_id": task.id},
            idempotency_key=f"task-due:{task.id}",
            run_at=due_at,
        )
    if team is not None:
        from scrm.conversation import assignment

        desk = assignment.desk(session, ws, team.id)
        if desk is not None and desk.notify_url:
            enqueue(
                session,
                ws,
                "automation.notify",
                {"url": desk.notify_url, "body": {"event": "task.created", "task": task_out(task, team)}},
                idempotency_key=f"task-notify:{task.id}",
            )
    return task


def task_out(task: CaseTask, team: Team | None = None) -> dict[str, Any]:
    return {
        "id": str(task.id),
        "conversation_id": str(task.conversation_id),
        "team_id": str(task.team_id) if task.team_id else None,
        "team": team.key if team else None,
        "kind": task.kind,
        "status": task.status,
        "title": task.title,
        "details": task.details,
        "due_at": task.due_at.isoformat() if task.due_at else None,
        "created_at": task.created_at.isoformat() if task.created_at else None,
        "outcome": task.outcome,
        "outcome_source": task.outcome_source,
        "outcome_at": task.outcome_at.isoformat() if task.outcome_at else None,
    }


def get_task(session: Session, workspace_id: int, task_id: int) -> CaseTask:
    task = repository.get(session, workspace_id, task_id)
    if task is None:
        raise NotFound("no such task")
    return task


def list_tasks(
    session: Session,
    workspace_id: int,
    *,
    team_id: int | None = None,
    status: str | None = None,
    kind: str | None = None,
    conversation_id: int | None = None,
    limit: int = 100,
) -> list[CaseTask]:
    return repository.list_page(
        session,
        workspace_id,
        team_id=team_id,
        status=status,
        kind=kind,
        conversation_id=conversation_id,
        limit=limit,
    )


def open_task_count(session: Session, workspace_id: int, kind: str = "department") -> int:
    return repository.count_open(session, workspace_id, kind)


# -- outcomes ------------------------------------------------------------------------------------
def record_outcome(
    session: Session,
    workspace_id: int,
    task_id: int,
    text: str,
    *,
    source: str,
    actor_id: int | None = None,
    actor_label: str = "",
    external_id: str | None = None,
    notify_fan: bool | None = None,
) -> tuple[CaseTask, bool]:
    """Record what the department did; returns (task, new). A repeat is a no-op (the fan is
    told once); a different outcome for a finished task is a conflict."""
    text = (text or "").strip()
    if not text:
        raise Invalid("outcome text is empty", field="text")
    if len(text) > 2000:
        raise Invalid("outcome text longer than 2000 characters", field="text")
    task = get_task(session, workspace_id, task_id)
    if task.status == "done":
        if task.outcome == text or (external_id and external_id == task.outcome_external_id):
            return task, False
        raise Conflict("this task already has an outcome")
    if task.status == "cancelled":
        raise Conflict("this task was cancelled")
    now = utcnow()
    task.status = "done"
    task.outcome = text
    task.outcome_source = source
    task.outcome_by_id = actor_id
    task.outcome_external_id = external_id
    task.outcome_at = now
    conv = conversation_service.get(session, workspace_id, task.conversation_id)
    conversation_service.record_activity(
        session,
        conv,
        "outcome",
        actor_id,
        task_id=str(task.id),
        text=text,
        source=source,
        by=actor_label,
        team_id=str(task.team_id) if task.team_id else None,
    )
    tell_fan = task.kind == "department" if notify_fan is None else notify_fan
    if tell_fan:
        message = _notify_fan(session, conv, task, text, actor_id)
        task.reply_message_id = message.id
    events.emit(
        session,
        workspace_id,
        "outcome.recorded",
        {
            "task_id": str(task.id),
            "conversation_id": str(conv.id),
            "team_id": str(task.team_id or ""),
            "kind": task.kind,
        },
    )
    return task, True


def _notify_fan(
    session: Session, conv: Conversation, task: CaseTask, text: str, actor_id: int | None
) -> Message:
    # Same channel and thread as the fan wrote on: a public Weibo comment gets a public comment
    # reply (the conversation's visibility), a private chat a private message.
    message = conversation_service.send_reply(
        session,
        conv,
        text,
        sender_type="agent",
        author_id=actor_id,
        idempotency_key=f"outcome:{task.id}",
    )
    conversation_service.record_activity(
        session, conv, "outcome_sent", actor_id, task_id=str(task.id), message_id=str(message.id)
    )
    if conv.status == "pending":
        conv.status = "open"
    return message


def cancel_task(session: Session, workspace_id: int, task_id: int, actor_id: int | None) -> CaseTask:
    task = get_task(session, workspace_id, task_id)
    if task.status != "open":
        raise Conflict(f"task is {task.status}")
    task.status = "cancelled"
    conv = conversation_service.get(session, workspace_id, task.conversation_id)
    conversation_service.record_activity(session, conv, "task_cancelled", actor_id, task_id=str(task.id))
    return task


# -- the department's own system -----------------------------------------------------------------
def _box() -> crypto.SecretBox:
    return crypto.SecretBox(get_settings().secret_key.get_secret_value())


def rotate_hook_secret(session: Session, workspace_id: int, team_id: int) -> str:
    """A new secret for the department's outcome webhook; shown once, stored encrypted."""
    from scrm.conversation import assignment

    desk = assignment.get_or_create_desk(session, workspace_id, team_id)
    secret = pysecrets.token_urlsafe(32)
    desk.hook_secret = _box().encrypt(secret)
    return secret


def hook_secret(session: Session, workspace_id: int, team_id: int) -> str | None:
    from scrm.conversation import assignment

    desk = assignment.desk(session, workspace_id, team_id)
    if desk is None or not desk.hook_secret:
        return None
    return _box().decrypt(desk.hook_secret)


def contact_of(session: Session, conv: Conversation) -> Contact:
    return contact_service.get(session, conv.workspace_id, conv.contact_id)
