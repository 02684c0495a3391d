from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.models._base import Timestamped, WorkspaceOwned


class SlaEvent(WorkspaceOwned, Timestamped, Base):
    """A warning or a breach of one timer. The unique key records each exactly once, however
    many workers see the timer fall due."""

    __tablename__ = "sla_event"
    __table_args__ = (
        ForeignKeyConstraint(["workspace_id", "timer_id"], ["sla_timer.workspace_id", "sla_timer.id"]),
        UniqueConstraint("workspace_id", "timer_id", "kind"),
        Index("ix_sla_event_time", "workspace_id", "kind", "occurred_at"),
    )

    timer_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    conversation_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)  # warning, breach
    metric: Mapped[str] = mapped_column(String(20), nullable=False)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
