"""Rules in the inbound pipeline (step 200), assignment (250), listeners for later events and
outgoing notices (webhooks out, retried by the worker)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from sqlalchemy.orm import Session

from scrm import events
from scrm.automation import service
from scrm.automation.service import Trigger
from scrm.conversation import assignment
from scrm.conversation import repository as conversation_repository
from scrm.models import ChannelAccount, Contact, Conversation, Message, Team
from scrm.pipeline import SUBSCRIPTION_EVENTS, PipelineContext, register_step
from scrm.worker.registry import PermanentJobError, job
from scrm.worker.runner import JobContext, periodic

log = logging.getLogger(__name__)

# Events that reach the rules through a listener job; the pipeline's own events (message
# received, conversation created, subscribe, menu click...) are evaluated in the step itself.
LISTENED = (
    "conversation.reopened",
    "conversation.labeled",
    "conversation.triaged",
    "sla.warning",
    "sla.breached",
    "outcome.recorded",
)


def _facts(ctx: PipelineContext) -> dict[str, Any]:
    if "triage" not in ctx.facts and ctx.message is not None and ctx.message.triage:
        ctx.facts["triage"] = dict(ctx.message.triage)
    return ctx.facts


@register_step(200, "rules")
def rules_step(ctx: PipelineContext) -> None:
    base: dict[str, Any] = {
        "workspace_id": ctx.workspace_id,
        "contact": ctx.contact,
        "account": ctx.account,
        "facts": _facts(ctx),
        "isolated": ctx.isolated,
    }
    if ctx.message is not None and ctx.conversation is not None:
        extra = {"message_kind": ctx.event.kind, "msg_type": ctx.event.msg_type}
        names = (
            ["conversation.created", "message.received"] if ctx.conversation_created else ["message.received"]
        )
        for name in names:
            service.run(
                ctx.session,
                Trigger(
                    event=name,
                    key=f"msg:{ctx.message.id}:{name}",
                    conversation=ctx.conversation,
                    text=ctx.message.text or "",
                    recipient=ctx.conversation.fan_external_id,
                    extra=extra,
                    message=ctx.message,
                    **base,
                ),
            )
        return
    event_name = SUBSCRIPTION_EVENTS.get(ctx.event.kind)
    if event_name is None:
        return
    conv = conversation_repository.open_thread(
        ctx.session, ctx.workspace_id, ctx.account.id, ctx.contact.id, ""
    )
    service.run(
        ctx.session,
        Trigger(
            event=event_name,
            key=f"inbound:{ctx.account.id}:{ctx.event.external_id}",
            conversation=conv,
            text=ctx.event.text or "",
            recipient=ctx.event.sender.external_id,
            extra={"scene": ctx.event.scene, "menu_key": ctx.event.menu_key},
            sync_sla=True,  # no SLA step runs for subscription events
            **base,
        ),
    )


@register_step(250, "assignment")
def assignment_step(ctx: PipelineContext) -> None:
    conv = ctx.conversation
    if conv is None or ctx.message is None or conv.status != "open" or conv.assignee_id is not None:
        return
    assignment.assign(ctx.session, conv, contact=ctx.contact)


@job("automation.on_event", max_attempts=5, shares_transaction=True)
def on_event(ctx: JobContext, payload: dict[str, Any]) -> None:
    session, ws = ctx.session, ctx.workspace_id
    conv_id = payload.get("conversation_id")
    if not conv_id:
        return
    conv = session.get(Conversation, (ws, int(conv_id)))
    if conv is None:
        return
    contact = session.get(Contact, (ws, conv.contact_id))
    account = session.get(ChannelAccount, (ws, conv.channel_account_id))
    # The message the event is about (a triage correction names it), else the fan's latest.
    last_in = None
    if payload.get("message_id"):
        named = session.get(Message, (ws, int(payload["message_id"])))
        if named is not None and named.conversation_id == conv.id and named.direction == "in":
            last_in = named
    if last_in is None:
        last_in = conversation_repository.last_inbound(session, ws, conv.id)
    extra: dict[str, Any] = {}
    if payload.get("metric"):
        extra["sla.metric"] = payload["metric"]
    if payload.get("team_id"):
        team = session.get(Team, (ws, int(payload["team_id"])))
        extra["outcome.team"] = team.key if team else None
    if payload["event"] == "conversation.labeled":
        extra["labels.added"] = [str(x) for x in payload.get("added") or []]
        extra["labels.removed"] = [str(x) for x in payload.get("removed") or []]
    facts = {"triage": dict(last_in.triage)} if last_in is not None and last_in.triage else {}
    service.run(
        session,
        Trigger(
            workspace_id=ws,
            event=payload["event"],
            key=str(payload.get("key") or f"job:{ctx.job.id}"),
            conversation=conv,
            contact=contact,
            account=account,
            text=last_in.text if last_in else "",
            recipient=conv.fan_external_id,
            facts=facts,
            extra=extra,
            depth=int(payload.get("depth") or 0),
            sync_sla=True,
        ),
    )


@job("automation.notify", max_attempts=8, timeout_seconds=30)
def notify(ctx: JobContext, payload: dict[str, Any]) -> None:
    """POST a JSON notice; 5xx, 429 and network errors are retried with backoff."""
    url = str(payload["url"])
    try:
        response = httpx.post(
            url,
            json=payload.get("body") or {},
            timeout=10.0,
            headers={"user-agent": "scrm-notify/1", "x-scrm-workspace": str(ctx.workspace_id)},
        )
    except httpx.HTTPError as exc:
        raise RuntimeError(f"notify {url} failed: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise RuntimeError(f"notify {url}: HTTP {response.status_code}")
    if response.status_code >= 400:
        raise PermanentJobError(f"notify {url}: HTTP {response.status_code}")


@job("assignment.rebalance", max_attempts=3)
def rebalance(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Fill free agent capacity from the unassigned queue.

    Work is handed on when an agent goes away (``set_availability``), not here: a sweep of
    "offline" assignees would take back conversations a supervisor gave deliberately, or that
    an agent answered through the API without a browser session marking them online.
    """
    assignment.drain_queue(ctx.session, ctx.workspace_id)


def _has_rules_for(session: Session, workspace_id: int, event: str) -> bool:
    return bool(service.ruleset(session, workspace_id).by_event.get(event))


for _name in LISTENED:
    events.subscribe(_name, "automation.on_event", wants=_has_rules_for)
periodic("assignment.rebalance", 30)
