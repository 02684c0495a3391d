from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import Timestamped, WorkspaceOwned


class SlaCalendar(WorkspaceOwned, Timestamped, Base):
    """Business hours of a team (team_id NULL: the workspace default) in its own time zone.

    `hours`: {"mon": [["09:00", "18:00"]], ..., "sun": [], "holiday": [], "workday": [...]}.
    With `cn_holidays`, Chinese public holidays use "holiday" and swapped working days (调休)
    use "workday" (default: Monday's hours).
    """

    __tablename__ = "sla_calendar"
    __table_args__ = (
        UniqueConstraint("workspace_id", "team_key"),
        ForeignKeyConstraint(["workspace_id", "team_id"], ["team.workspace_id", "team.id"]),
    )

    team_id: Mapped[int | None] = mapped_column(BigInteger)
    # "" for the workspace default, else the team id as text: a unique key that needs no NULL.
    team_key: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="Asia/Shanghai")
    hours: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    cn_holidays: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # The workspace's own holidays and working days (e.g. for years chinese_calendar does not
    # cover yet): [{"date": "2027-02-08", "kind": "holiday" | "workday", "name": "春节"}].
    special_days: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
