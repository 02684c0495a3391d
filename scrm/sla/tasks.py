"""SLA in the pipeline (step 300), its due-time checks and its listener."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from scrm import events
from scrm.models import Conversation
from scrm.pipeline import GroupAhead, PipelineContext, register_read_ahead, register_step
from scrm.sla import service
from scrm.worker.registry import job, warmup
from scrm.worker.runner import JobContext

log = logging.getLogger(__name__)


@warmup
def holiday_data_notice() -> None:
    """Say at start-up which years have official holiday data; warn when the coming months
    have none (their days follow the weekly hours unless a calendar lists special days)."""
    coverage = service.holiday_coverage()
    if coverage["uncovered_years_soon"]:
        log.warning("SLA calendars: %s", coverage["note"])
    else:
        log.info("SLA calendars: %s", coverage["note"])


@register_step(300, "sla")
def sla_step(ctx: PipelineContext) -> None:
    if ctx.conversation is None or ctx.message is None:
        return
    service.on_inbound(ctx.session, ctx.conversation, created=ctx.conversation_created)


@register_read_ahead("sla")
def read_ahead_timers(session: Session, workspace_id: int, group: GroupAhead) -> None:
    service.read_ahead_timers(session, workspace_id, [c.id for c in group.conversations])


@job("sla.check", max_attempts=10, shares_transaction=True)
def check(ctx: JobContext, payload: dict[str, Any]) -> None:
    service.check(ctx.session, ctx.workspace_id, int(payload["timer_id"]))


@job("sla.sync", max_attempts=5, shares_transaction=True)
def sync(ctx: JobContext, payload: dict[str, Any]) -> None:
    conv_id = payload.get("conversation_id")
    if not conv_id:
        return
    conv = ctx.session.get(Conversation, (ctx.workspace_id, int(conv_id)))
    if conv is not None:
        service.sync(ctx.session, conv)


# Events that can change what the clocks depend on (status, replies, outcomes). Assignment
# changes none of them: listening to it would add a job to every new conversation for nothing.
for _event in ("conversation.updated", "conversation.resolved", "outcome.recorded"):
    events.subscribe(_event, "sla.sync")
