from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKeyConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.models._base import Timestamped, WorkspaceOwned


class SlaTimer(WorkspaceOwned, Timestamped, Base):
    """One SLA clock on a conversation (first_response, next_response #cycle, resolution).

    Due times are in wall-clock UTC, computed over business hours; while the conversation waits
    on the fan the timer is paused and keeps `remaining_seconds` of business time.
    """

    __tablename__ = "sla_timer"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "conversation_id"], ["conversation.workspace_id", "conversation.id"]
        ),
        UniqueConstraint("workspace_id", "conversation_id", "metric", "cycle"),
        Index("ix_sla_timer_status", "workspace_id", "status", "due_at"),
    )

    conversation_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    policy_id: Mapped[int | None] = mapped_column(BigInteger)
    metric: Mapped[str] = mapped_column(String(20), nullable=False)
    cycle: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="running")  # running, paused, met
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    warn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    target_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    remaining_seconds: Mapped[int | None] = mapped_column(Integer)
    met_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    breached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The conversation's team and priority the targets were taken from: when either changes,
    # the clock is re-targeted (scrm.sla.service.retarget). NULL priority: a clock from before.
    team_id: Mapped[int | None] = mapped_column(BigInteger)
    priority: Mapped[str | None] = mapped_column(String(10))
