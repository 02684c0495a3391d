from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKeyConstraint, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.kit.time import utcnow
from scrm.models._base import WorkspaceOwned


class TeamDesk(WorkspaceOwned, Base):
    """How a team takes work: assignment strategy and, for departments, how their own system
    hears of tasks (notify_url) and reports outcomes (signed with hook_secret)."""

    __tablename__ = "team_desk"
    __table_args__ = (
        UniqueConstraint("workspace_id", "team_id"),
        ForeignKeyConstraint(["workspace_id", "team_id"], ["team.workspace_id", "team.id"]),
    )

    team_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    strategy: Mapped[str] = mapped_column(String(20), nullable=False, default="round_robin")
    auto_assign: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    sticky: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    vip_to_senior: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Round-robin cursor: the member who got the last conversation.
    last_member_id: Mapped[int | None] = mapped_column(BigInteger)
    notify_url: Mapped[str] = mapped_column(String(2000), nullable=False, default="")
    hook_secret: Mapped[str] = mapped_column(Text, nullable=False, default="")  # encrypted
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
