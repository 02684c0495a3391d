from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKeyConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import Timestamped, WorkspaceOwned


class ConversationActivity(WorkspaceOwned, Timestamped, Base):
    """The case timeline: who did what when (created, routed, assigned, status, outcome, ...)."""

    __tablename__ = "conversation_activity"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "conversation_id"], ["conversation.workspace_id", "conversation.id"]
        ),
        Index("ix_activity_conversation", "workspace_id", "conversation_id", "id"),
    )

    conversation_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)  # member id; None for the system
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
