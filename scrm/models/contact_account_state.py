from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.models._base import Timestamped, WorkspaceOwned


class ContactAccountState(WorkspaceOwned, Timestamped, Base):
    """A fan's standing with ONE channel account: follow state and the times that open the
    platform's reply windows. Kept apart from the identity because one identity can span many
    accounts (every Weibo brand account of a workspace shares the namespace "weibo": the uid is
    the same person everywhere, but unfollowing brand A says nothing about brand B).

    `subscribed` is None until a follow/unfollow event was seen on the account;
    `subscription_changed_at` is that event's time, so an older event processed late (a
    poll after a push, a retried job) never undoes a newer one.
    """

    __tablename__ = "contact_account_state"
    __table_args__ = (
        UniqueConstraint("workspace_id", "channel_account_id", "external_id"),
        ForeignKeyConstraint(
            ["workspace_id", "channel_account_id"], ["channel_account.workspace_id", "channel_account.id"]
        ),
        Index("ix_contact_account_state_identity", "workspace_id", "namespace", "external_id"),
    )

    channel_account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    namespace: Mapped[str] = mapped_column(String(80), nullable=False)  # the identity's namespace
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)  # openid / uid
    subscribed: Mapped[bool | None] = mapped_column(Boolean)
    subscription_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The fan's last private message to this account (WeChat 48 h / Weibo 48 h windows).
    last_message_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The last private message, follow, menu click or QR scan on this account (Weibo's window).
    last_interaction_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
