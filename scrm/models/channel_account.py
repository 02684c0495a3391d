from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKeyConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import Timestamped, WorkspaceOwned


class ChannelAccount(WorkspaceOwned, Timestamped, Base):
    """A connected account on a channel (an Official Account, a Weibo account, a webhook source).

    `config` holds what may be shown; `secrets` holds an encrypted JSON blob that is never
    returned by the API (only masked). `state` holds what the channel keeps between runs
    (e.g. the Weibo polling cursor).
    """

    __tablename__ = "channel_account"
    __table_args__ = (
        ForeignKeyConstraint(["workspace_id", "brand_id"], ["brand.workspace_id", "brand.id"]),
        Index("ix_channel_account_id", "id"),  # ids are unique across workspaces by construction
    )

    brand_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    secrets: Mapped[str] = mapped_column(Text, nullable=False, default="")
    state: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
