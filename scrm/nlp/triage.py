"""Triage in the product: the pipeline step that labels every inbound message before rules run,
agents' corrections, and the per-workspace retraining job."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from scrm import events
from scrm.config import get_settings
from scrm.conversation import service as conversation_service
from scrm.db import Database, ReadAhead
from scrm.errors import Invalid, NotFound
from scrm.models import Message, TriageCorrection
from scrm.nlp import repository
from scrm.nlp.service import (
    Correction,
    WorkspaceExamples,
    get_analyzer,
    set_workspace_examples_provider,
    train_workspace,
)
from scrm.pipeline import MESSAGE_KINDS, GroupAhead, PipelineContext, register_read_ahead, register_step
from scrm.worker.registry import job, warmup
from scrm.worker.runner import JobContext, periodic
from scrm.workspace import service as workspace_service
from scrm.workspace.schemas import Principal

log = logging.getLogger(__name__)

TASKS = ("intent", "sentiment", "emotion")
URGENCY_TO_PRIORITY = {"urgent": "urgent", "high": "high"}
PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}


def _catalogue(settings: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for item in settings.get("catalogue", []):
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and item.get("name"):
            names.append(str(item["name"]))
    return names


@warmup
def load_models() -> None:
    """Load (on first ever use: train) the default models before the worker takes jobs."""
    get_analyzer()


# (workspace id, text, followers) -> Triage: what the analysis of a message depends on.
_triaged_ahead = ReadAhead("triaged")


@register_read_ahead("triage")
def read_ahead_triage(session: Session, workspace_id: int, group: GroupAhead) -> None:
    """Triage a group's messages in one batch: the models run on the whole batch at once, at
    about a fifth of the cost per message of one at a time. The step uses a result only if its
    message has the text and its contact the followers guessed here (as `contact.resolve` will
    leave them: the sender's count if the channel sent one); otherwise it triages alone."""
    wanted: dict[tuple[str, int | None], None] = {}
    for event, contact in group.events:
        if event.kind in MESSAGE_KINDS and event.text:
            followers = event.sender.followers
            if followers is None and contact is not None:
                followers = contact.followers
            wanted[(event.text, followers)] = None
    if not wanted:
        return
    ws = workspace_service.get_workspace_by_id(session, workspace_id)
    keys = list(wanted)
    results = get_analyzer(ws.slug).analyze_many(
        [text for text, _ in keys], catalogue=_catalogue(ws.settings), followers=[f for _, f in keys]
    )
    _triaged_ahead.put(session, {(workspace_id, *k): r for k, r in zip(keys, results, strict=True)})


@register_step(100, "triage")
def triage_step(ctx: PipelineContext) -> None:
    """Label the message (intent, sentiment, emotion, entities, spam, urgency) before rules run."""
    if ctx.message is None or ctx.conversation is None or not ctx.message.text:
        return
    triage = _triaged_ahead.get(ctx.session, (ctx.workspace_id, ctx.message.text, ctx.contact.followers))
    if triage is ReadAhead.NOT_READ:
        ws = workspace_service.get_workspace_by_id(ctx.session, ctx.workspace_id)
        triage = get_analyzer(ws.slug).analyze(
            ctx.message.text, catalogue=_catalogue(ws.settings), followers=ctx.contact.followers
        )
    result = triage.to_dict()
    ctx.message.triage = result
    ctx.facts["triage"] = result
    conv = ctx.conversation
    conv.intent = result["intent"]
    conv.sentiment = result["sentiment"]
    wanted = URGENCY_TO_PRIORITY.get(result["urgency"])
    if wanted and PRIORITY_RANK[wanted] > PRIORITY_RANK.get(conv.priority, 1):
        conv.priority = wanted
    labels = set(conv.labels)
    labels.add(result["intent"])
    conv.labels = sorted(labels)
    events.emit(
        ctx.session,
        ctx.workspace_id,
        "conversation.triaged",
        {"conversation_id": str(conv.id), "message_id": str(ctx.message.id), "intent": result["intent"]},
    )


def correct(session: Session, principal: Principal, message_id: int, task: str, label: str) -> Message:
    """Store an agent's correction and apply it to the message and its conversation."""
    if task not in TASKS:
        raise Invalid(f"task must be one of {', '.join(TASKS)}", field="task")
    message = session.get(Message, (principal.workspace_id, message_id))
    if message is None or message.direction != "in":
        raise NotFound("no such inbound message")
    ws = workspace_service.get_workspace_by_id(session, principal.workspace_id)
    allowed = set(get_analyzer(ws.slug).labels(task))
    if task == "intent":
        allowed |= set(ws.settings.get("custom_intents", {}))
    if label not in allowed:
        raise Invalid(f"label must be one of {', '.join(sorted(allowed))}", field="label")
    triage = dict(message.triage)
    previous = triage.get(task)
    triage[task] = label
    triage[f"{task}_score"] = 1.0
    triage.setdefault("corrected", [])
    triage["corrected"] = sorted(set(triage["corrected"]) | {task})
    message.triage = triage
    repository.add(
        session,
        TriageCorrection(
            workspace_id=principal.workspace_id,
            message_id=message.id,
            member_id=principal.member_id,
            task=task,
            label=label,
            previous_label=previous,
            text=message.text,
        ),
    )
    conv = conversation_service.get(session, principal.workspace_id, message.conversation_id)
    if task in ("intent", "sentiment"):
        setattr(conv, task, label)
        if task == "intent":
            conv.labels = sorted((set(conv.labels) - {previous} if previous else set(conv.labels)) | {label})
    conversation_service.record_activity(
        session, conv, "triage_corrected", principal.member_id, task=task, label=label, previous=previous
    )
    events.emit(
        session,
        principal.workspace_id,
        "conversation.triaged",
        {"conversation_id": str(conv.id), "message_id": str(message.id), task: label},
    )
    return message


def workspace_examples(session: Session, workspace_id: int) -> WorkspaceExamples:
    ws = workspace_service.get_workspace_by_id(session, workspace_id)
    custom = {
        str(k): [str(x) for x in v]
        for k, v in dict(ws.settings.get("custom_intents", {})).items()
        if isinstance(v, list)
    }
    return WorkspaceExamples(
        corrections=[
            Correction(c.text, c.task, c.label) for c in repository.corrections(session, workspace_id)
        ],
        custom_intents=custom,
    )


def install_examples_provider(db: Database) -> None:
    """Let `scrm nlp train --workspace SLUG` read the workspace's corrections from the database."""

    def provider(slug: str) -> WorkspaceExamples:
        with db.transaction(readonly=True) as session:
            try:
                ws = workspace_service.get_workspace(session, slug)
            except NotFound as exc:
                raise LookupError(exc.message) from None
            return workspace_examples(session, ws.id)

    set_workspace_examples_provider(provider)


@job("nlp.retrain", max_attempts=2, timeout_seconds=1800)
def retrain(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Nightly: retrain the workspace's models from base data plus its corrections."""
    examples = workspace_examples(ctx.session, ctx.workspace_id)
    if not examples.corrections and not examples.custom_intents:
        return
    ws = workspace_service.get_workspace_by_id(ctx.session, ctx.workspace_id)
    entry = train_workspace(ws.slug, examples)
    log.info("workspace %s model %s activated=%s", ws.slug, entry.version, entry.activated)


periodic("nlp.retrain", get_settings().nlp_retrain_interval_seconds)
