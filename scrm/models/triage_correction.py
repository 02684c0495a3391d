from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import Timestamped, WorkspaceOwned


class TriageCorrection(WorkspaceOwned, Timestamped, Base):
    """An agent's correction of a triage label: training data for the workspace's model."""

    __tablename__ = "triage_correction"
    __table_args__ = (
        ForeignKeyConstraint(["workspace_id", "message_id"], ["message.workspace_id", "message.id"]),
    )

    message_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    task: Mapped[str] = mapped_column(String(20), nullable=False)
    label: Mapped[str] = mapped_column(String(40), nullable=False)
    previous_label: Mapped[str | None] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text, nullable=False)
