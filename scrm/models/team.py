from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import Timestamped, WorkspaceOwned


class Team(WorkspaceOwned, Timestamped, Base):
    """A service team, a back-office department or a partner (kind)."""

    __tablename__ = "team"
    __table_args__ = (
        UniqueConstraint("workspace_id", "key"),
        ForeignKeyConstraint(["workspace_id", "parent_id"], ["team.workspace_id", "team.id"]),
    )

    key: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="service")
    parent_id: Mapped[int | None] = mapped_column(BigInteger)
