from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKeyConstraint, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import Timestamped, WorkspaceOwned


class SlaPolicy(WorkspaceOwned, Timestamped, Base):
    """Response targets for a workspace, optionally narrowed to a team and/or a priority."""

    __tablename__ = "sla_policy"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        ForeignKeyConstraint(["workspace_id", "team_id"], ["team.workspace_id", "team.id"]),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    team_id: Mapped[int | None] = mapped_column(BigInteger)
    priority: Mapped[str | None] = mapped_column(String(10))
    # Defaults for a new policy are applied by scrm.sla.service.upsert_policy: None here means
    # "no such target" and must be stored as given, which a column default would prevent.
    first_response_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    next_response_minutes: Mapped[int | None] = mapped_column(Integer)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)
    warn_before_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    # What happens on a breach: [{"type": "notify_supervisor"}, {"type": "raise_priority"}, ...]
    escalation: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
