"""identity: drop last_inbound_at

The fan's last message per channel account is kept in `contact_account_state.last_message_at`
(what the outbox's reply windows read) and per conversation in `conversation.last_inbound_at`.
The identity-wide copy was written on every inbound message and read by nothing.

Revision ID: a8d3e5f17c42
Revises: f4c1a7e93b56
Create Date: 2026-12-11 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import scrm.db

revision: str = "a8d3e5f17c42"
down_revision: str | None = "f4c1a7e93b56"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact_identity", schema=None) as batch_op:
        batch_op.drop_column("last_inbound_at")


def downgrade() -> None:
    with op.batch_alter_table("contact_identity", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_inbound_at", scrm.db.UTCDateTime(timezone=True), nullable=True))
