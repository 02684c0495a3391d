from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKeyConstraint, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.kit.time import utcnow
from scrm.models._base import WorkspaceOwned


class InboundEvent(WorkspaceOwned, Base):
    """A raw event as accepted from a channel, stored once before it is acknowledged."""

    __tablename__ = "inbound_event"
    __table_args__ = (
        UniqueConstraint("workspace_id", "channel_account_id", "external_id"),
        ForeignKeyConstraint(
            ["workspace_id", "channel_account_id"], ["channel_account.workspace_id", "channel_account.id"]
        ),
    )

    channel_account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    external_id: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    event: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)  # the parsed InboundEvent
    raw: Mapped[str] = mapped_column(Text, nullable=False, default="")  # the body as received
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="pending")
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
