from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKeyConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.kit.time import utcnow
from scrm.models._base import Timestamped, WorkspaceOwned


class Contact(WorkspaceOwned, Timestamped, Base):
    """A person (fan, customer), joined across channels by identities."""

    __tablename__ = "contact"
    __table_args__ = (
        Index("ix_contact_ws_phone", "workspace_id", "phone"),
        Index("ix_contact_ws_member_no", "workspace_id", "member_no"),
        ForeignKeyConstraint(["workspace_id", "merged_into_id"], ["contact.workspace_id", "contact.id"]),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    member_no: Mapped[str | None] = mapped_column(String(64))
    gender: Mapped[str | None] = mapped_column(String(10))
    city: Mapped[str | None] = mapped_column(String(64))
    followers: Mapped[int | None] = mapped_column(Integer)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    opted_out: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    merged_into_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
