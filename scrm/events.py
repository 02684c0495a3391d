"""Domain events. `emit` writes one durable job per subscribed listener in the caller's
transaction (so a listener never misses an event and never sees one that rolled back), and
publishes to live subscribers (SSE) after the commit."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy.orm import Session

from scrm import live, metrics
from scrm.db import after_commit

_LISTENERS: dict[str, list[str]] = defaultdict(list)

# The events that exist, so a typo in a listener is caught at import time.
EVENTS = frozenset(
    {
        "message.received",
        "message.sent",
        "message.failed",
        "conversation.created",
        "conversation.reopened",
        "conversation.updated",
        "conversation.assigned",
        "conversation.routed",
        "conversation.resolved",
        "conversation.triaged",
        "outcome.recorded",
        "contact.subscribed",
        "contact.unsubscribed",
        "contact.scanned",
        "contact.menu_clicked",
        # routing, SLA and casework (scrm.automation, scrm.sla, scrm.casework)
        "conversation.labeled",
        "sla.warning",
        "sla.breached",
        "task.created",
    }
)


def subscribe(event: str, job_kind: str) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    if job_kind not in _LISTENERS[event]:
        _LISTENERS[event].append(job_kind)


def emit(session: Session, workspace_id: int, event: str, data: dict[str, Any]) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    from scrm.worker.service import enqueue

    for job_kind in _LISTENERS.get(event, ()):
        enqueue(session, workspace_id, job_kind, {"event": event, **data})
    after_commit(session, lambda: live.publish(workspace_id, event, data))
    after_commit(session, lambda: metrics.count_event(event))
