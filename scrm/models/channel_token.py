from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKeyConstraint, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.models._base import Timestamped, WorkspaceOwned


class ChannelToken(WorkspaceOwned, Timestamped, Base):
    """A channel's API access token (WeChat `stable_token`), shared by every process.

    One row per account and token key; refreshed under a row lock (single-flight), so one
    fetch serves every worker. `access_token` is encrypted at rest like the account secrets.
    """

    __tablename__ = "channel_token"
    __table_args__ = (
        UniqueConstraint("workspace_id", "channel_account_id", "account_key"),
        ForeignKeyConstraint(
            ["workspace_id", "channel_account_id"], ["channel_account.workspace_id", "channel_account.id"]
        ),
    )

    channel_account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    account_key: Mapped[str] = mapped_column(String(120), nullable=False)
    access_token: Mapped[str] = mapped_column(Text, nullable=False, default="")
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
