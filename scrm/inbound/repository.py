from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from scrm.db import conflict_insert, keys_in
from scrm.kit.time import utcnow
from scrm.models import InboundEvent

_INSERT: dict[str, Any] = {}
_TABLE = cast(Table, InboundEvent.__table__)


def _insert_statement(dialect: str) -> Any:
    """One compiled-once statement with bound parameters: building `.values(**row)` per event
    cost more than the INSERT itself on the ingest hot path."""
    stmt = _INSERT.get(dialect)
    if stmt is None:
        stmt = conflict_insert(dialect, _TABLE).on_conflict_do_nothing().returning(_TABLE.c.id)
        _INSERT[dialect] = stmt
    return stmt


def insert_many_if_new(session: Session, rows: Sequence[dict[str, Any]]) -> set[int]:
    """Insert the raw events (multi-row statements); returns the ids of those that were new."""
    if not rows:
        return set()
    stmt = _insert_statement(session.get_bind().dialect.name)
    return {int(r[0]) for r in session.connection().execute(stmt, list(rows))}


@dataclass(frozen=True)
class Taken:
    id: int
    channel_account_id: int
    external_id: str
    event: dict[str, Any]


def unprocessed(session: Session, workspace_id: int, event_ids: Sequence[int]) -> list[Taken]:
    """What the pipeline needs of these events, for those not processed yet, in one read
    (nothing is marked: see `mark_processed`)."""
    if not event_ids:
        return []
    rows = session.execute(
        select(InboundEvent.id, InboundEvent.channel_account_id, InboundEvent.external_id, InboundEvent.event)
        .where(
            InboundEvent.workspace_id == workspace_id,
            InboundEvent.id.in_(list(event_ids)),
            InboundEvent.status != "processed",
        )
        .execution_options(autoflush=False)  # nothing pending can change these rows
    ).all()
    return [Taken(int(r[0]), int(r[1]), str(r[2]), dict(r[3])) for r in rows]


def mark_processed(session: Session, keys: Sequence[tuple[int, int]]) -> int:
    """Mark (workspace id, event id) processed unless they are already; returns how many were
    marked (fewer than given: another transaction processed one meanwhile)."""
    if not keys:
        return 0
    result = session.connection().execute(
        _TABLE.update()
        .where(keys_in((_TABLE.c.workspace_id, _TABLE.c.id), keys), _TABLE.c.status != "processed")
        .values(status="processed", processed_at=utcnow())
    )
    return int(result.rowcount or 0)


def take_for_processing(session: Session, workspace_id: int, event_id: int) -> Taken | None:
    """Mark a stored event processed and return what the pipeline needs of it, in one
    ``UPDATE … RETURNING``; None if there is no such event or it was processed already (its
    job ran before and committed). A rollback undoes the mark with the rest of the job."""
    row = session.execute(
        update(InboundEvent)
        .where(
            InboundEvent.workspace_id == workspace_id,
            InboundEvent.id == event_id,
            InboundEvent.status != "processed",
        )
        .values(status="processed", processed_at=utcnow())
        .returning(
            InboundEvent.id, InboundEvent.channel_account_id, InboundEvent.external_id, InboundEvent.event
        )
        .execution_options(synchronize_session=False)
    ).one_or_none()
    return None if row is None else Taken(int(row[0]), int(row[1]), str(row[2]), dict(row[3]))
