from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from scrm.models import InboundEvent

_INSERT: dict[str, Any] = {}


def _insert_statement(dialect: str) -> Any:
    """One compiled-once statement with bound parameters: building `.values(**row)` per event
    cost more than the INSERT itself on the ingest hot path."""
    stmt = _INSERT.get(dialect)
    if stmt is None:
        ins = pg_insert if dialect == "postgresql" else sqlite_insert
        table = cast(Table, InboundEvent.__table__)
        stmt = ins(table).on_conflict_do_nothing().returning(table.c.id)
        _INSERT[dialect] = stmt
    return stmt


def insert_many_if_new(session: Session, rows: Sequence[dict[str, Any]]) -> set[int]:
    """Insert the raw events (multi-row statements); returns the ids of those that were new."""
    if not rows:
        return set()
    stmt = _insert_statement(session.get_bind().dialect.name)
    return {int(r[0]) for r in session.connection().execute(stmt, list(rows))}


def get(session: Session, workspace_id: int, event_id: int) -> InboundEvent | None:
    return session.get(InboundEvent, (workspace_id, event_id))
