from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKeyConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.models._base import Timestamped, WorkspaceOwned


class Message(WorkspaceOwned, Timestamped, Base):
    """A message in a conversation: a fan's (in), ours (out) or an internal note."""

    __tablename__ = "message"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "conversation_id"], ["conversation.workspace_id", "conversation.id"]
        ),
        # One message per inbound event, however often the job that makes it runs.
        UniqueConstraint("workspace_id", "inbound_event_id"),
        Index("ix_message_conversation", "workspace_id", "conversation_id", "id"),
    )

    conversation_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    direction: Mapped[str] = mapped_column(String(10), nullable=False)  # in, out, internal
    sender_type: Mapped[str] = mapped_column(String(10), nullable=False)  # contact, agent, bot, system
    author_id: Mapped[int | None] = mapped_column(BigInteger)  # member id for agents
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="text")
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    visibility: Mapped[str] = mapped_column(String(10), nullable=False, default="private")
    channel_message_id: Mapped[str | None] = mapped_column(String(128))
    inbound_event_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="received")
    error: Mapped[str | None] = mapped_column(Text)
    triage: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
