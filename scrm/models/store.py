from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.kit.time import utcnow
from scrm.models._base import Timestamped, WorkspaceOwned


class Store(WorkspaceOwned, Timestamped, Base):
    """A brand's shop (coffee house, phone store, service counter): where the nearest-store
    reply sends a fan. Imported from CSV/JSONL, keyed by the brand's own store code."""

    __tablename__ = "store"
    __table_args__ = (
        UniqueConstraint("workspace_id", "code"),
        Index("ix_store_active", "workspace_id", "active"),
    )

    code: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    city: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    address: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    hours: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    phone: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    latitude: Mapped[float] = mapped_column(Float, nullable=False)
    longitude: Mapped[float] = mapped_column(Float, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
