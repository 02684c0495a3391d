"""conversation required skills

The skills an agent needs to take a conversation (set by the `assign {skills}` rule action or
the API) are kept on the conversation, so that every assignment path (the pipeline, queue
drains, reassignment when an agent goes away) honours them.

Revision ID: d3a7f0c41b92
Revises: d41f7a9c3b28
Create Date: 2026-12-04 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d3a7f0c41b92"
down_revision: str | None = "d41f7a9c3b28"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("required_skills", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_column("required_skills")
