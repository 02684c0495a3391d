"""The inbound pipeline: contact.resolve → conversation.append → registered steps.

Steps (triage, rules, SLA, ...) register themselves with an order number. A step that fails
is logged, recorded on the conversation for admins and skipped; the message still reaches a
human queue. Isolating steps costs a savepoint each (a flush and two statements), so a job's
first attempt runs them without: if a step fails, the attempt fails and rolls back whole, and
the retry (a second or two later) runs every step in its own savepoint. After a step failure
the process isolates every job's steps for a minute, so a step that keeps failing (a missing
model, say) does not make every message go round twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from scrm import events
from scrm.channels.base import InboundEvent
from scrm.config import Settings
from scrm.contact import service as contact_service
from scrm.conversation import service as conversation_service
from scrm.db import ReadAhead
from scrm.inbound import codec
from scrm.inbound import service as inbound_service
from scrm.models import ChannelAccount, Contact, ContactIdentity, Conversation, Message, Workspace
from scrm.worker.registry import RerunAtOnce, RetryLater, job
from scrm.worker.runner import JobContext
from scrm.workspace import repository as workspace_repository
from scrm.workspace import service as workspace

log = logging.getLogger(__name__)

MESSAGE_KINDS = frozenset({"message", "mention", "comment"})


@dataclass
class PipelineContext:
    session: Session
    settings: Settings
    workspace_id: int
    account: ChannelAccount
    event: InboundEvent
    contact: Contact
    identity: ContactIdentity
    conversation: Conversation | None = None
    message: Message | None = None
    conversation_created: bool = False
    # Steps share what they learn here (e.g. triage results for the rules that follow).
    facts: dict[str, Any] = field(default_factory=dict)
    # Held for the whole job: the session's identity map is weak, and the steps (triage, the
    # SLA calendar) look the workspace up again; while it is held they do so without SQL.
    workspace: Workspace | None = None
    # Each step in its own savepoint (a retry); without, a failing step fails the attempt.
    isolated: bool = True


# When a step last failed in this process (monotonic seconds): for ISOLATE_SECONDS after that,
# first attempts run their steps isolated too.
_last_failure = float("-inf")
ISOLATE_SECONDS = 60.0


def _failed() -> None:
    global _last_failure
    _last_failure = time.monotonic()


def isolate_steps(attempt: int, rerun: bool = False) -> bool:
    return rerun or attempt > 1 or time.monotonic() - _last_failure < ISOLATE_SECONDS


class StepFailed(RerunAtOnce):
    """A step failed on a job's first attempt: the job runs again at once, its steps isolated."""


Step = Callable[[PipelineContext], None]
_STEPS: list[tuple[int, str, Step]] = []


def register_step(order: int, name: str) -> Callable[[Step], Step]:
    def deco(fn: Step) -> Step:
        _STEPS[:] = [s for s in _STEPS if s[1] != name]
        _STEPS.append((order, name, fn))
        _STEPS.sort(key=lambda s: s[0])
        return fn

    return deco


def steps() -> list[tuple[int, str, Step]]:
    return list(_STEPS)


@dataclass
class GroupAhead:
    """What `read_ahead` found for a group of inbound jobs of one workspace: its decoded
    events with the sender's contact (None: a new fan), and the open conversations its
    messages continue."""

    events: list[tuple[InboundEvent, Contact | None]]
    conversations: list[Conversation]


# A step's reads (or batched work) for a group of inbound jobs: see `read_ahead`.
StepReadAhead = Callable[[Session, int, GroupAhead], None]
_READ_AHEADS: list[tuple[str, StepReadAhead]] = []


def register_read_ahead(name: str) -> Callable[[StepReadAhead], StepReadAhead]:
    def deco(fn: StepReadAhead) -> StepReadAhead:
        _READ_AHEADS[:] = [r for r in _READ_AHEADS if r[0] != name]
        _READ_AHEADS.append((name, fn))
        return fn

    return deco


# Steps ordered before this see the new message and conversation before they are written
# (triage's labels go out in the same INSERT / UPDATE); the pipeline flushes them before the
# later steps, some of which write with statements that bypass the ORM (assignment).
WRITE_AT = 150


def run_steps(ctx: PipelineContext) -> None:
    written = False
    for order, name, step in list(_STEPS):
        if not written and order >= WRITE_AT:
            ctx.session.flush()
            written = True
        if not ctx.isolated:
            try:
                step(ctx)
            except (OperationalError, RetryLater):
                raise  # the database or a quota, not the step: retried as they are
            except Exception as exc:
                _failed()
                raise StepFailed(f"pipeline step {name} failed: {exc}"[:500]) from exc
            continue
        try:
            with ctx.session.begin_nested():
                step(ctx)
        except Exception as exc:
            _failed()
            log.exception("pipeline step %s failed", name)
            if ctx.conversation is not None:
                conversation_service.record_activity(
                    ctx.session, ctx.conversation, "step_failed", None, step=name, error=str(exc)[:500]
                )


SUBSCRIPTION_EVENTS = {
    "subscribe": "contact.subscribed",
    "unsubscribe": "contact.unsubscribed",
    "scan": "contact.scanned",
    "click": "contact.menu_clicked",
}


_decoded_ahead = ReadAhead("inbound_decoded")  # (workspace id, event id) -> InboundEvent


def read_ahead(session: Session, jobs: list[tuple[int, dict[str, Any]]]) -> None:
    """Before a group of inbound jobs shares a transaction: their events, their senders'
    identities and contacts, the threads they continue and what the steps read of those
    (`register_read_ahead`: SLA timers), one read each per workspace instead of one each per
    event (the jobs then find them in the transaction's memo)."""
    by_workspace: dict[int, list[int]] = {}
    for workspace_id, payload in jobs:
        by_workspace.setdefault(workspace_id, []).append(int(payload["event_id"]))
    for workspace_id, event_ids in by_workspace.items():
        decoded = []
        for taken in inbound_service.read_ahead(session, workspace_id, event_ids):
            event = codec.from_json(taken.event)
            _decoded_ahead.put(session, {(workspace_id, taken.id): event})
            if event.kind != "unknown":
                decoded.append((taken.channel_account_id, event))
        found = contact_service.read_ahead(session, workspace_id, [e.sender for _, e in decoded])
        threads = []
        senders: list[tuple[InboundEvent, Contact | None]] = []
        for account_id, event in decoded:
            _ident, contact = found.get((event.sender.namespace, event.sender.external_id), (None, None))
            senders.append((event, contact))
            if event.kind in MESSAGE_KINDS and contact is not None and contact.merged_into_id is None:
                threads.append((account_id, contact.id, event.thread_key))
        continued = conversation_service.read_ahead_threads(session, workspace_id, threads)
        group = GroupAhead(senders, continued)
        for _name, step_read_ahead in _READ_AHEADS:
            step_read_ahead(session, workspace_id, group)


@job("inbound.process", max_attempts=10, shares_transaction=True, read_ahead=read_ahead)
def process_inbound(ctx: JobContext, payload: dict[str, Any]) -> None:
    session = ctx.session
    row = inbound_service.take(session, ctx.workspace_id, int(payload["event_id"]))
    if row is None:
        return
    event = _decoded_ahead.pop(session, (ctx.workspace_id, row.id))
    if event is ReadAhead.NOT_READ:
        event = codec.from_json(row.event)
    account = workspace.get_channel_account(session, ctx.workspace_id, row.channel_account_id)
    if event.kind == "unknown":
        log.info("unknown %s event %s stored and acknowledged", account.kind, row.external_id)
        return
    resolved = contact_service.resolve(session, ctx.workspace_id, event.sender)
    pctx = PipelineContext(
        workspace=(
            workspace_repository.workspace_by_id(session, ctx.workspace_id)
            if event.kind in MESSAGE_KINDS
            else None
        ),
        session=session,
        settings=ctx.settings,
        workspace_id=ctx.workspace_id,
        account=account,
        event=event,
        contact=resolved.contact,
        identity=resolved.identity,
        isolated=isolate_steps(ctx.job.attempts, ctx.rerun),
    )
    if event.metadata.get("passive_reply"):
        pctx.facts["passive_reply"] = event.metadata["passive_reply"]
    contact_service.record_account_event(session, ctx.workspace_id, resolved.identity, account.id, event)
    if event.location:  # a location message or report: the nearest-store reply reads it
        contact_service.record_location(resolved.contact, event)
    if event.kind in MESSAGE_KINDS:
        appended = conversation_service.append_inbound(
            session,
            ctx.workspace_id,
            channel_account_id=account.id,
            contact=resolved.contact,
            event=event,
            inbound_event_id=row.id,
            new_contact=resolved.created,
        )
        pctx.conversation = appended.conversation
        pctx.message = appended.message
        pctx.conversation_created = appended.created
    else:
        name = SUBSCRIPTION_EVENTS.get(event.kind)
        if name:
            events.emit(
                session,
                ctx.workspace_id,
                name,
                {
                    "contact_id": str(resolved.contact.id),
                    "channel_account_id": str(account.id),
                    "scene": event.scene,
                    "menu_key": event.menu_key,
                },
            )
    run_steps(pctx)
