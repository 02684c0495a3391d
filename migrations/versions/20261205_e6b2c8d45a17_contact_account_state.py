"""contact account state

A fan's follow state and reply-window times per channel account (`contact_account_state`),
instead of per identity: every Weibo account of a workspace shares the identity namespace
"weibo", so an unfollow on one brand account must not opt the fan out on the others.

Backfill: one row per (account, fan) that has a private conversation, with the fan's last
private message taken from the conversation. The old per-identity `subscribed = false` is
copied to each of those rows (for WeChat it was per account already; for Weibo it is not known
which account the fan left, so they stay opted out everywhere until they follow again).

Revision ID: e6b2c8d45a17
Revises: d3a7f0c41b92
Create Date: 2026-12-05 10:00:00
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import scrm.db
from scrm.kit.ids import new_id

revision: str = "e6b2c8d45a17"
down_revision: str | None = "d3a7f0c41b92"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Namespaces that join people across channels rather than name a channel's fan.
_CROSS_CHANNEL = ("phone", "member", "wechat_union")


def upgrade() -> None:
    state = op.create_table(
        "contact_account_state",
        sa.Column("channel_account_id", sa.BigInteger(), nullable=False),
        sa.Column("namespace", sa.String(length=80), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=True),
        sa.Column("subscription_changed_at", scrm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_message_at", scrm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_interaction_at", scrm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", scrm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", scrm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id", "channel_account_id"],
            ["channel_account.workspace_id", "channel_account.id"],
        ),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"]),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.UniqueConstraint("workspace_id", "channel_account_id", "external_id"),
    )
    op.create_index(
        "ix_contact_account_state_identity",
        "contact_account_state",
        ["workspace_id", "namespace", "external_id"],
        unique=False,
    )
    _backfill(state)


def _backfill(state: sa.Table) -> None:
    conn = op.get_bind()
    meta = sa.MetaData()
    conv = sa.Table("conversation", meta, autoload_with=conn)
    ident = sa.Table("contact_identity", meta, autoload_with=conn)
    rows = conn.execute(
        sa.select(
            conv.c.workspace_id,
            conv.c.channel_account_id,
            conv.c.fan_external_id,
            sa.func.max(conv.c.last_inbound_at, type_=scrm.db.UTCDateTime(timezone=True)),
            ident.c.namespace,
            ident.c.subscribed,
        )
        .join(
            ident,
            sa.and_(
                ident.c.workspace_id == conv.c.workspace_id,
                ident.c.contact_id == conv.c.contact_id,
                ident.c.external_id == conv.c.fan_external_id,
                ident.c.namespace.not_in(_CROSS_CHANNEL),
            ),
        )
        .where(conv.c.visibility == "private", conv.c.thread_key == "", conv.c.fan_external_id != "")
        .group_by(
            conv.c.workspace_id,
            conv.c.channel_account_id,
            conv.c.fan_external_id,
            ident.c.namespace,
            ident.c.subscribed,
        )
    ).all()
    now = dt.datetime.now(dt.UTC)
    seen: set[tuple[int, int, str]] = set()
    batch: list[dict[str, object]] = []
    for workspace_id, account_id, external_id, last_inbound, namespace, subscribed in rows:
        key = (workspace_id, account_id, external_id)
        if key in seen:
            continue
        seen.add(key)
        batch.append(
            {
                "workspace_id": workspace_id,
                "id": new_id(),
                "channel_account_id": account_id,
                "namespace": namespace,
                "external_id": external_id,
                "subscribed": False if subscribed is False else None,
                "subscription_changed_at": None,
                "last_message_at": last_inbound,
                "last_interaction_at": last_inbound,
                "updated_at": now,
                "created_at": now,
            }
        )
        if len(batch) >= 1000:
            conn.execute(state.insert(), batch)
            batch = []
    if batch:
        conn.execute(state.insert(), batch)


def downgrade() -> None:
    op.drop_index("ix_contact_account_state_identity", table_name="contact_account_state")
    op.drop_table("contact_account_state")
