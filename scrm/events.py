"""Domain events. `emit` writes one durable job per subscribed listener in the caller's
transaction (so a listener never misses an event and never sees one that rolled back), and
publishes to live subscribers (SSE) after the commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from scrm import live, metrics
from scrm.db import after_commit

# A listener may say, per workspace, whether it wants an event at all (e.g. the rules listener
# only when some enabled rule is on that event): no job is written for an event nobody needs.
Wants = Callable[[Session, int, str], bool]
_LISTENERS: dict[str, list[tuple[str, Wants | None]]] = defaultdict(list)

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


def subscribe(event: str, job_kind: str, *, wants: Wants | None = None) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    _LISTENERS[event][:] = [(k, w) for k, w in _LISTENERS[event] if k != job_kind]
    _LISTENERS[event].append((job_kind, wants))


def emit(session: Session, workspace_id: int, event: str, data: dict[str, Any]) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    from scrm.worker.service import enqueue

    for job_kind, wants in _LISTENERS.get(event, ()):
        if wants is None or wants(session, workspace_id, event):
            enqueue(session, workspace_id, job_kind, {"event": event, **data})
    if session.get_bind().dialect.name == "postgresql":
        live.notify(session, workspace_id, event, data)  # every process's listener, on COMMIT
    else:
        after_commit(session, lambda: live.publish(workspace_id, event, live.slim(data)))
    after_commit(session, lambda: metrics.count_event(event))
