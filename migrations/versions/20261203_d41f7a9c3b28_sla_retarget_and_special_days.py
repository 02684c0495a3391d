"""sla timer team/priority, calendar special days

A running SLA clock remembers the team and priority its targets came from, so a change of
either re-targets it; a business calendar keeps the workspace's own holidays and working days
(for years the chinese_calendar package does not cover yet).

Revision ID: d41f7a9c3b28
Revises: c5e8a2d4f713
Create Date: 2026-12-03 01:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d41f7a9c3b28"
down_revision: str | None = "c5e8a2d4f713"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sla_timer") as batch:
        batch.add_column(sa.Column("team_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("priority", sa.String(length=10), nullable=True))
    with op.batch_alter_table("sla_calendar") as batch:
        batch.add_column(sa.Column("special_days", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("sla_calendar") as batch:
        batch.drop_column("special_days")
    with op.batch_alter_table("sla_timer") as batch:
        batch.drop_column("priority")
        batch.drop_column("team_id")
