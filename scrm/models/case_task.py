from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKeyConstraint, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.models._base import Timestamped, WorkspaceOwned


class CaseTask(WorkspaceOwned, Timestamped, Base):
    """Work a case needs off the inbox: a department task (lost-and-found, after-sales, a
    partner) whose outcome goes back to the fan, or an offline follow-up (call-back)."""

    __tablename__ = "case_task"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "conversation_id"], ["conversation.workspace_id", "conversation.id"]
        ),
        ForeignKeyConstraint(["workspace_id", "team_id"], ["team.workspace_id", "team.id"]),
        # One open task of a kind per conversation and team, however often a rule fires.
        UniqueConstraint("workspace_id", "dedupe_key"),
        Index("ix_case_task_team", "workspace_id", "team_id", "status", "due_at"),
        Index("ix_case_task_conversation", "workspace_id", "conversation_id"),
    )

    conversation_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    team_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # department, follow_up
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="open")  # open, done, cancelled
    title: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(80), nullable=False, default="")
    outcome: Mapped[str | None] = mapped_column(Text)
    outcome_source: Mapped[str | None] = mapped_column(String(20))  # api, webhook
    outcome_by_id: Mapped[int | None] = mapped_column(BigInteger)
    outcome_external_id: Mapped[str | None] = mapped_column(String(200))
    outcome_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reply_message_id: Mapped[int | None] = mapped_column(BigInteger)
