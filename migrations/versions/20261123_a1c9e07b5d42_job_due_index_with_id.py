"""job due index with id

The claim reads due jobs in (run_at, id) order; with id in the index the database walks it
in order and stops at the batch size instead of sorting the whole backlog on every claim.

Revision ID: a1c9e07b5d42
Revises: 8f82c7872e0d
Create Date: 2026-11-23 17:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "a1c9e07b5d42"
down_revision: str | None = "8f82c7872e0d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_job_due", table_name="job")
    op.create_index("ix_job_due", "job", ["status", "run_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_job_due", table_name="job")
    op.create_index("ix_job_due", "job", ["status", "run_at"])
