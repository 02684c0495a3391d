from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import Timestamped, WorkspaceOwned


class Member(WorkspaceOwned, Timestamped, Base):
    """A user's membership of a workspace, with a role."""

    __tablename__ = "member"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"),)

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("user_account.id"), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False, default="agent")
    display_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    availability: Mapped[str] = mapped_column(String(20), nullable=False, default="offline")
    capacity: Mapped[int] = mapped_column(Integer, nullable=False, default=20)
    skills: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    is_senior: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
