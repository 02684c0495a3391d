from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from scrm.models import InboundEvent


def insert_if_new(session: Session, values: dict[str, Any]) -> bool:
    """Insert the raw event unless (workspace, account, external id) is already stored."""
    ins = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = ins(InboundEvent).values(**values).on_conflict_do_nothing()
    # RETURNING, not rowcount: an ORM-enabled INSERT reports rowcount -1 on psycopg 3, which
    # made every repeat look new on PostgreSQL.
    return session.execute(stmt.returning(InboundEvent.id)).scalar_one_or_none() is not None


def get(session: Session, workspace_id: int, event_id: int) -> InboundEvent | None:
    return session.get(InboundEvent, (workspace_id, event_id))
