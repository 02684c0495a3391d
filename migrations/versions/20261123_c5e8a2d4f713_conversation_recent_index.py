"""conversation recent index

The inbox across every status (search, the "all" filter) reads conversations newest first;
without an index on (workspace_id, last_message_at, id) that is a sort of the whole workspace.

Revision ID: c5e8a2d4f713
Revises: b7d3f19c2e60
Create Date: 2026-11-23 17:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "c5e8a2d4f713"
down_revision: str | None = "b7d3f19c2e60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_conversation_recent", "conversation", ["workspace_id", "last_message_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_conversation_recent", table_name="conversation")
