from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.models._base import Timestamped, WorkspaceOwned


class ApiToken(WorkspaceOwned, Timestamped, Base):
    """An API token. The token text names its workspace, so the look-up stays on one shard;
    only a SHA-256 of the token is stored."""

    __tablename__ = "api_token"
    __table_args__ = (
        UniqueConstraint("workspace_id", "token_hash"),
        ForeignKeyConstraint(["workspace_id", "member_id"], ["member.workspace_id", "member.id"]),
    )

    member_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    prefix: Mapped[str] = mapped_column(String(40), nullable=False)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
