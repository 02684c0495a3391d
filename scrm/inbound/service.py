"""Accepting inbound events: store once, enqueue once, acknowledge.

The raw event and its processing job are written in one transaction, committed before the
channel gets its answer. A repeat delivery (WeChat retries three times; webhooks retry on
timeouts) hits the unique key and enqueues nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from scrm import metrics
from scrm.channels.base import (
    JSON_INT_MAX,
    JSON_INT_MIN,
    InboundEvent,
    InboundRejected,
    Sender,
    json_problem,
    text_problem,
)
from scrm.db import CommitBuffer, ReadAhead
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
    """The events of one delivery (a push, a webhook request, a poll page) for one account.

    Building one serialises its events to their stored JSON and checks it (and `raw`) can be
    stored on SQLite and PostgreSQL: anything else raises ``InboundRejected(400)`` here, in the
    request, so a bad push never joins a group-commit batch and never fails other pushes'
    transaction.
    """

    workspace_id: int
    channel_account_id: int
    channel_kind: str
    events: Sequence[InboundEvent]
    raw: str
    documents: tuple[dict[str, Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = text_problem(self.raw)
        if problem:
            raise InboundRejected(400, f"the request body holds {problem}")
        object.__setattr__(self, "documents", tuple(stored_event(e) for e in self.events))


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


class _NotPlain(Exception):
    pass


def _plain(value: Any) -> Any:
    """A copy of JSON-shaped `value` (dicts with str keys, lists, tuples, scalars) that storage
    accepts; _NotPlain for anything else (other types, NaN/Infinity, huge ints, NUL, lone
    surrogates), which :func:`stored_event` then looks at closely."""
    kind = type(value)
    if kind is str:
        if "\x00" in value or (not value.isascii() and text_problem(value)):
            raise _NotPlain
        return value
    if kind is int:
        if not JSON_INT_MIN <= value <= JSON_INT_MAX:
            raise _NotPlain
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _NotPlain
        return value
    if kind is bool or value is None:
        return value
    if kind is dict:
        return {_plain_key(k): _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(_plain(v) for v in value)
    raise _NotPlain


def _plain_key(key: Any) -> str:
    if type(key) is not str or "\x00" in key or (not key.isascii() and text_problem(key)):
        raise _NotPlain
    return key


def _fast_json(event: InboundEvent) -> dict[str, Any]:
    """``codec.to_json(event)`` (same keys, order and values) without ``dataclasses.asdict``'s
    recursion and deep copies, which cost more than the rest of storing a push; _NotPlain when
    the event holds anything but plain, storable JSON values."""
    data = {name: _plain(getattr(event, name)) for name in _PLAIN_FIELDS}
    sender = event.sender
    if type(sender) is not Sender:
        raise _NotPlain
    data["sender"] = {name: _plain(getattr(sender, name)) for name in _SENDER_FIELDS}
    data["sent_at"] = event.sent_at.isoformat()  # as the codec does (an aware datetime)
    return {name: data[name] for name in _EVENT_FIELDS}


def event_json(event: InboundEvent) -> dict[str, Any]:
    """The event as JSON: the fast copy, or the codec's for anything else."""
    try:
        return _fast_json(event)
    except _NotPlain:
        return codec.to_json(event)


def stored_event(event: InboundEvent) -> dict[str, Any]:
    """The event's stored JSON; ``InboundRejected(400)`` when it holds something SQLite or
    PostgreSQL would refuse (NaN or Infinity, a NUL, a lone surrogate, an int past 64 bits, a
    value JSON cannot encode), so that it is refused alone instead of failing a whole batch.

    Channels refuse such input themselves; this is the last line for anything they missed.
    The fast copy checks as it copies, so a plain event is walked once.
    """
    try:
        return _fast_json(event)
    except _NotPlain:
        pass
    try:
        document: dict[str, Any] | None = codec.to_json(event)
    except (TypeError, ValueError, RecursionError):
        document = None
    problem = "a value JSON cannot encode" if document is None else json_problem(document)
    if problem or document is None:
        raise InboundRejected(400, f"the event holds {problem} and cannot be stored")
    return document


def accept_many(session: Session, batches: Sequence[Batch]) -> list[list[Accepted]]:
    """Store the events of many deliveries with one multi-row INSERT and their jobs with one
    more; returns, per delivery, each event's id and whether it was new (not a repeat)."""
    now = utcnow()
    rows: list[dict[str, object]] = []
    for b in batches:
        for event, document in zip(b.events, b.documents, strict=True):
            rows.append(
                {
                    "workspace_id": b.workspace_id,
                    "id": new_id(),
                    "channel_account_id": b.channel_account_id,
                    "external_id": event.external_id[:200],
                    "kind": event.kind,
                    "event": document,
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


# -- taking stored events for the pipeline (the worker side) -----------------------------------
class TakenMeanwhile(RuntimeError):
    """An event read ahead for a group of jobs was processed by another transaction meanwhile:
    the group rolls back and each job runs alone (and finds its event done)."""


def _mark_processed(session: Session, keys: list[tuple[int, int]]) -> None:
    if repository.mark_processed(session, keys) != len(keys):
        raise TakenMeanwhile(f"{len(keys)} events read ahead were not all still unprocessed")


# Events taken from a read-ahead are marked processed in one UPDATE at commit; a count that
# falls short fails the commit (see TakenMeanwhile).
_marks = CommitBuffer("inbound_marks", _mark_processed)
_ahead = ReadAhead("inbound_take")  # (workspace id, event id) -> Taken


def read_ahead(session: Session, workspace_id: int, event_ids: Sequence[int]) -> list[repository.Taken]:
    """Read a group's unprocessed events in one statement, for `take` in the same transaction."""
    taken = repository.unprocessed(session, workspace_id, event_ids)
    _ahead.put(session, {(workspace_id, t.id): t for t in taken})
    return taken


def take(session: Session, workspace_id: int, event_id: int) -> repository.Taken | None:
    """Mark a stored event processed and return what the pipeline needs of it; None if there is
    no such event or it was processed already. A rollback undoes the mark with the job's work.

    An event read ahead (`read_ahead`) costs no statement here: its mark is written with the
    others at commit, and the commit fails if another transaction processed it meanwhile."""
    ahead = _ahead.pop(session, (workspace_id, event_id))
    if ahead is ReadAhead.NOT_READ:
        return repository.take_for_processing(session, workspace_id, event_id)
    _marks.add(session, (workspace_id, event_id))
    return ahead
