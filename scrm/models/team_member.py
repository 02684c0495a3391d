from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKeyConstraint, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import WorkspaceOwned


class TeamMember(WorkspaceOwned, Base):
    __tablename__ = "team_member"
    __table_args__ = (
        UniqueConstraint("workspace_id", "team_id", "member_id"),
        ForeignKeyConstraint(["workspace_id", "team_id"], ["team.workspace_id", "team.id"]),
        ForeignKeyConstraint(["workspace_id", "member_id"], ["member.workspace_id", "member.id"]),
    )

    team_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    member_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
