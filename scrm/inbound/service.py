"""Accepting inbound events: store once, enqueue once, acknowledge.

The raw event and its processing job are written in one transaction, committed before the
channel gets its answer. A repeat delivery (WeChat retries three times; webhooks retry on
timeouts) hits the unique key and enqueues nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from scrm import metrics
from scrm.channels.base import InboundEvent
from scrm.inbound import codec, repository
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow
from scrm.worker.service import enqueue


@dataclass(frozen=True)
class Accepted:
    event_id: int
    new: bool


def ordering_key(channel_account_id: int, event: InboundEvent) -> str:
    """A fan's events on one account are processed one at a time, in order."""
    return f"fan:{channel_account_id}:{event.sender.external_id}"


def accept(
    session: Session,
    *,
    workspace_id: int,
    channel_account_id: int,
    channel_kind: str,
    events: Sequence[InboundEvent],
    raw: str,
) -> list[Accepted]:
    results: list[Accepted] = []
    now = utcnow()
    for event in events:
        event_id = new_id()
        new = repository.insert_if_new(
            session,
            {
                "workspace_id": workspace_id,
                "id": event_id,
                "channel_account_id": channel_account_id,
                "external_id": event.external_id[:200],
                "kind": event.kind,
                "event": codec.to_json(event),
                "raw": raw,
                "status": "pending",
                "received_at": now,
            },
        )
        if new:
            enqueue(
                session,
                workspace_id,
                "inbound.process",
                {"event_id": event_id},
                ordering_key=ordering_key(channel_account_id, event),
            )
            metrics.INBOUND_ACCEPTED.labels(channel_kind).inc()
        else:
            metrics.INBOUND_DUPLICATE.labels(channel_kind).inc()
        results.append(Accepted(event_id, new))
    return results
