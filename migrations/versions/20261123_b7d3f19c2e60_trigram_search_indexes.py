"""trigram search indexes (PostgreSQL)

Inbox search is a substring match (Chinese has no spaces to split words on), which a B-tree
cannot serve. On PostgreSQL, pg_trgm GIN indexes let `LIKE '%双肩包%'` use an index. If the
role may not create the extension, the indexes are skipped with a notice: search still works,
by scanning. SQLite has no equivalent; it scans.

Revision ID: b7d3f19c2e60
Revises: a1c9e07b5d42
Create Date: 2026-11-23 17:35:00
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7d3f19c2e60"
down_revision: str | None = "a1c9e07b5d42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

INDEXES = (
    ("ix_message_text_trgm", "message", "text"),
    ("ix_conversation_subject_trgm", "conversation", "subject"),
    ("ix_contact_name_trgm", "contact", "name"),
    ("ix_contact_phone_trgm", "contact", "phone"),
    ("ix_contact_member_no_trgm", "contact", "member_no"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm not available (%s); search will scan instead of using an index", exc.orig)
        return
    for name, table, column in INDEXES:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({column} gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _table, _column in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
