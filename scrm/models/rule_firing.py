from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKeyConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import Timestamped, WorkspaceOwned


class RuleFiring(WorkspaceOwned, Timestamped, Base):
    """Audit of one rule firing (or failing) on one trigger; the unique key makes a retried job
    fire a rule at most once per trigger."""

    __tablename__ = "rule_firing"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "rule_id"],
            ["automation_rule.workspace_id", "automation_rule.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("workspace_id", "rule_id", "trigger_key"),
        Index("ix_rule_firing_conversation", "workspace_id", "conversation_id"),
        Index("ix_rule_firing_rule", "workspace_id", "rule_id", "id"),
    )

    rule_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    trigger_key: Mapped[str] = mapped_column(String(200), nullable=False)
    event: Mapped[str] = mapped_column(String(40), nullable=False)
    conversation_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="fired")  # fired, failed
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    error: Mapped[str | None] = mapped_column(Text)
