"""Follow-up and department tasks that pass their due time."""

from __future__ import annotations

from typing import Any

from scrm.conversation import service as conversation_service
from scrm.kit.time import utcnow
from scrm.models import CaseTask, Conversation
from scrm.sla import service as sla
from scrm.worker.registry import job
from scrm.worker.runner import JobContext


@job("casework.task_due", max_attempts=5)
def task_due(ctx: JobContext, payload: dict[str, Any]) -> None:
    task = ctx.session.get(CaseTask, (ctx.workspace_id, int(payload["task_id"])))
    if task is None or task.status != "open" or task.due_at is None or task.due_at > utcnow():
        return
    conv = ctx.session.get(Conversation, (ctx.workspace_id, task.conversation_id))
    if conv is None:
        return
    conversation_service.record_activity(
        ctx.session, conv, "task_overdue", None, task_id=str(task.id), task_kind=task.kind
    )
    sla.notify_supervisors(
        ctx.session,
        conv,
        f"{task.kind} task {task.id} overdue",
        key=f"task:{task.id}:overdue:{int(task.due_at.timestamp())}",
    )
