"""store

A workspace's stores (code, name, address, opening hours, coordinates) for the nearest-store
reply (`nearest_store` rule action), imported with `scrm import stores`.

Revision ID: f4c1a7e93b56
Revises: e6b2c8d45a17
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import scrm.db

revision: str = "f4c1a7e93b56"
down_revision: str | None = "e6b2c8d45a17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("city", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("hours", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", scrm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", scrm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"]),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.UniqueConstraint("workspace_id", "code"),
    )
    op.create_index("ix_store_active", "store", ["workspace_id", "active"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_store_active", table_name="store")
    op.drop_table("store")
