from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.kit.time import utcnow
from scrm.models._base import Timestamped, WorkspaceOwned


class AutomationRule(WorkspaceOwned, Timestamped, Base):
    """A routing/automation rule: on `event`, if `conditions` hold, run `actions` (in `position` order)."""

    __tablename__ = "automation_rule"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        Index("ix_automation_rule_order", "workspace_id", "event", "position"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    event: Mapped[str] = mapped_column(String(40), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=100)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    stop: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    # Run-time failures, shown to admins (the rule keeps running for other messages).
    failure_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
