from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.models._base import Timestamped, WorkspaceOwned


class Membership(WorkspaceOwned, Timestamped, Base):
    """Loyalty membership imported from outside: tier and points balance."""

    __tablename__ = "membership"
    __table_args__ = (
        UniqueConstraint("workspace_id", "program", "member_no"),
        ForeignKeyConstraint(["workspace_id", "contact_id"], ["contact.workspace_id", "contact.id"]),
    )

    contact_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    program: Mapped[str] = mapped_column(String(64), nullable=False, default="default")
    member_no: Mapped[str] = mapped_column(String(64), nullable=False)
    tier: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    points_balance: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    joined_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
