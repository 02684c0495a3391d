"""Accepting inbound events: store once, enqueue once, acknowledge.

The raw event and its processing job are written in one transaction, committed before the
channel gets its answer. A repeat delivery (WeChat retries three times; webhooks retry on
timeouts) hits the unique key and enqueues nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from scrm import metrics
from scrm.channels.base import InboundEvent, Sender
from scrm.inbound import codec, repository
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow
from scrm.worker.service import enqueue_many


@dataclass(frozen=True)
class Accepted:
    event_id: int
    new: bool


def ordering_key(channel_account_id: int, event: InboundEvent) -> str:
    """A fan's events on one account are processed one at a time, in order."""
    return f"fan:{channel_account_id}:{event.sender.external_id}"


@dataclass(frozen=True)
class Batch:
    """The events of one delivery (a push, a webhook request, a poll page) for one account."""

    workspace_id: int
    channel_account_id: int
    channel_kind: str
    events: Sequence[InboundEvent]
    raw: str


def accept(
    session: Session,
    *,
    workspace_id: int,
    channel_account_id: int,
    channel_kind: str,
    events: Sequence[InboundEvent],
    raw: str,
) -> list[Accepted]:
    (accepted,) = accept_many(session, [Batch(workspace_id, channel_account_id, channel_kind, events, raw)])
    return accepted


# -- the stored form of an event ------------------------------------------------------------

_EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(InboundEvent))
_PLAIN_FIELDS = tuple(name for name in _EVENT_FIELDS if name not in ("sender", "sent_at"))
_SENDER_FIELDS = tuple(f.name for f in dataclasses.fields(Sender))
_SCALARS = (str, int, float, bool, type(None))


class _NotPlain(Exception):
    pass


def _plain(value: Any) -> Any:
    """A copy of JSON-shaped `value` (dicts, lists, tuples, scalars); _NotPlain otherwise."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(_plain(v) for v in value)
    raise _NotPlain


def event_json(event: InboundEvent) -> dict[str, Any]:
    """``codec.to_json(event)`` (same keys, order and values) without ``dataclasses.asdict``'s
    recursion and deep copies, which cost more than the rest of storing a push. Anything but
    plain JSON values inside the event falls back to the codec."""
    try:
        data = {name: _plain(getattr(event, name)) for name in _PLAIN_FIELDS}
        sender = event.sender
        if type(sender) is not Sender:
            raise _NotPlain
        data["sender"] = {name: _plain(getattr(sender, name)) for name in _SENDER_FIELDS}
    except _NotPlain:
        return codec.to_json(event)
    data["sent_at"] = event.sent_at.isoformat()  # as the codec does (an aware datetime)
    return {name: data[name] for name in _EVENT_FIELDS}


def accept_many(session: Session, batches: Sequence[Batch]) -> list[list[Accepted]]:
    """Store the events of many deliveries with one multi-row INSERT and their jobs with one
    more; returns, per delivery, each event's id and whether it was new (not a repeat)."""
    now = utcnow()
    rows: list[dict[str, object]] = []
    for b in batches:
        for event in b.events:
            rows.append(
                {
                    "workspace_id": b.workspace_id,
                    "id": new_id(),
                    "channel_account_id": b.channel_account_id,
                    "external_id": event.external_id[:200],
                    "kind": event.kind,
                    "event": event_json(event),
                    "raw": b.raw,
                    "status": "pending",
                    "received_at": now,
                }
            )
    new_ids = repository.insert_many_if_new(session, rows)
    jobs: list[tuple[int, str, dict[str, Any], str | None]] = []
    out: list[list[Accepted]] = []
    counts: dict[tuple[str, bool], int] = {}
    i = 0
    for b in batches:
        accepted: list[Accepted] = []
        for event in b.events:
            event_id = int(rows[i]["id"])  # type: ignore[call-overload]
            i += 1
            new = event_id in new_ids
            if new:
                key = ordering_key(b.channel_account_id, event)
                jobs.append((b.workspace_id, "inbound.process", {"event_id": event_id}, key))
            counts[b.channel_kind, new] = counts.get((b.channel_kind, new), 0) + 1
            accepted.append(Accepted(event_id, new))
        out.append(accepted)
    enqueue_many(session, jobs)
    for (kind, new), n in counts.items():
        (metrics.INBOUND_ACCEPTED if new else metrics.INBOUND_DUPLICATE).labels(kind).inc(n)
    return out
