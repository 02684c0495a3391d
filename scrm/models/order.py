from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.models._base import Timestamped, WorkspaceOwned


class Order(WorkspaceOwned, Timestamped, Base):
    """An order or booking imported from e-commerce, POS, a booking system or a call centre."""

    __tablename__ = "customer_order"
    __table_args__ = (
        UniqueConstraint("workspace_id", "source", "external_id"),
        ForeignKeyConstraint(["workspace_id", "contact_id"], ["contact.workspace_id", "contact.id"]),
        Index("ix_order_contact", "workspace_id", "contact_id", "placed_at"),
    )

    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="order")
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="CNY")
    placed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
