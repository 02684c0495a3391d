from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import Timestamped, WorkspaceOwned


class AuditLog(WorkspaceOwned, Timestamped, Base):
    """Who changed what, and every message sent on the brand's behalf."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_ws_time", "workspace_id", "created_at"),)

    actor_id: Mapped[int | None] = mapped_column(BigInteger)  # member id; None = system / CLI
    actor_label: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    target_id: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
