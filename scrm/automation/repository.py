"""Queries of the rule service that are not plain reads of one rule."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrm.models import ChannelAccount

# Namespace of the advisory lock that serialises rule saves of one workspace (an arbitrary
# constant: "Ru" in ASCII).
_RULES_LOCK = 0x5275


def lock_rule_saves(session: Session, workspace_id: int) -> None:
    """Serialise saves of one workspace's rules until the transaction ends, so two rules saved
    at the same moment are checked against each other (a cycle of two concurrent saves would
    otherwise pass both checks). On SQLite a write transaction already holds the one write lock."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = workspace_id % 2_147_483_647
    session.execute(select(func.pg_advisory_xact_lock(_RULES_LOCK, key)))


def account_kinds(session: Session, workspace_id: int) -> dict[str, str]:
    """Channel account id (as text) → channel kind, for the workspace's accounts."""
    rows = session.execute(
        select(ChannelAccount.id, ChannelAccount.kind).where(ChannelAccount.workspace_id == workspace_id)
    ).all()
    return {str(account_id): kind for account_id, kind in rows}
