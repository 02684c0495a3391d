from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Float, ForeignKeyConstraint, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.models._base import Timestamped, WorkspaceOwned


class ChannelRateLimit(WorkspaceOwned, Timestamped, Base):
    """A token bucket per channel account, shared by every worker process (WeChat and Weibo
    enforce API quotas per account, not per process).

    `tokens` is the balance at `updated_at`; it refills at `rate_per_second` up to `burst`.
    A send takes one token in a short transaction of its own (row lock held for milliseconds);
    with no token left the outbox job is postponed, not failed.
    """

    __tablename__ = "channel_rate_limit"
    __table_args__ = (
        UniqueConstraint("workspace_id", "channel_account_id"),
        ForeignKeyConstraint(
            ["workspace_id", "channel_account_id"], ["channel_account.workspace_id", "channel_account.id"]
        ),
    )

    channel_account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rate_per_second: Mapped[float] = mapped_column(Float, nullable=False)
    burst: Mapped[float] = mapped_column(Float, nullable=False)
    tokens: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
