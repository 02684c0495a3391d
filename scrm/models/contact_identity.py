from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base
from scrm.models._base import Timestamped, WorkspaceOwned


class ContactIdentity(WorkspaceOwned, Timestamped, Base):
    """One external id of a contact in a namespace: "weibo" (uid), "wechat:<appid>" (openid),
    "wechat_union" (unionid), "phone", "member", "webhook:<channel id>"."""

    __tablename__ = "contact_identity"
    __table_args__ = (
        UniqueConstraint("workspace_id", "namespace", "external_id"),
        ForeignKeyConstraint(["workspace_id", "contact_id"], ["contact.workspace_id", "contact.id"]),
        Index("ix_contact_identity_contact", "workspace_id", "contact_id"),
    )

    contact_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    namespace: Mapped[str] = mapped_column(String(80), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(200))
    # Per-account state (WeChat follow status); unsubscribing opts the fan out on that account.
    subscribed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
