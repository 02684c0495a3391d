from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.kit.time import utcnow
from scrm.models._base import Timestamped, WorkspaceOwned

_OPEN = text("status <> 'resolved'")


class Conversation(WorkspaceOwned, Timestamped, Base):
    """One thread with a fan on one channel account (a private chat, or a public Weibo post)."""

    __tablename__ = "conversation"
    __table_args__ = (
        ForeignKeyConstraint(["workspace_id", "contact_id"], ["contact.workspace_id", "contact.id"]),
        ForeignKeyConstraint(
            ["workspace_id", "channel_account_id"], ["channel_account.workspace_id", "channel_account.id"]
        ),
        ForeignKeyConstraint(["workspace_id", "team_id"], ["team.workspace_id", "team.id"]),
        ForeignKeyConstraint(["workspace_id", "assignee_id"], ["member.workspace_id", "member.id"]),
        # At most one unresolved conversation per fan, account and thread.
        Index(
            "ux_conversation_open_thread",
            "workspace_id",
            "channel_account_id",
            "contact_id",
            "thread_key",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
        Index("ix_conversation_inbox", "workspace_id", "status", "last_message_at"),
        # Every status at once (search, "all"), newest first.
        Index("ix_conversation_recent", "workspace_id", "last_message_at", "id"),
        Index("ix_conversation_assignee", "workspace_id", "assignee_id", "status"),
        Index("ix_conversation_team", "workspace_id", "team_id", "status"),
        Index("ix_conversation_contact", "workspace_id", "contact_id"),
    )

    contact_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    channel_account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    thread_key: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    # The fan's id on this channel account (openid, uid, webhook sender id): where replies go.
    fan_external_id: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    visibility: Mapped[str] = mapped_column(String(10), nullable=False, default="private")
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="open")
    priority: Mapped[str] = mapped_column(String(10), nullable=False, default="normal")
    labels: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    # Skills an agent needs to be given this conversation (every one a subset of Member.skills);
    # set by the rule action `assign {skills}` or the API; honoured by every assignment path.
    required_skills: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    assignee_id: Mapped[int | None] = mapped_column(BigInteger)
    team_id: Mapped[int | None] = mapped_column(BigInteger)
    subject: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    intent: Mapped[str | None] = mapped_column(String(40))
    sentiment: Mapped[str | None] = mapped_column(String(10))
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_message_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_inbound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
