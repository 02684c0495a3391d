"""The rule service's queries (every one scoped to its workspace)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from scrm.db import DIALECTS, conflict_insert
from scrm.models import AutomationRule, ChannelAccount, RuleFiring, Team

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


def list_rules(session: Session, workspace_id: int) -> list[AutomationRule]:
    return list(
        session.execute(
            select(AutomationRule)
            .where(AutomationRule.workspace_id == workspace_id)
            .order_by(AutomationRule.event, AutomationRule.position, AutomationRule.id)
        ).scalars()
    )


def enabled_rules(session: Session, workspace_id: int) -> list[AutomationRule]:
    return list(
        session.execute(
            select(AutomationRule).where(
                AutomationRule.workspace_id == workspace_id, AutomationRule.enabled.is_(True)
            )
        ).scalars()
    )


def ruleset_version(session: Session, workspace_id: int) -> tuple[Any, ...]:
    """What changes whenever an enabled rule is added, removed or saved (the compiled cache's key)."""
    return tuple(
        session.execute(
            select(
                func.count(), func.max(AutomationRule.updated_at), func.sum(AutomationRule.id % 1000003)
            ).where(AutomationRule.workspace_id == workspace_id, AutomationRule.enabled.is_(True))
        ).one()
    )


def count_rules(session: Session, workspace_id: int) -> int:
    return int(
        session.execute(select(func.count()).where(AutomationRule.workspace_id == workspace_id)).scalar_one()
    )


def team_keys(session: Session, workspace_id: int) -> set[str]:
    return set(session.execute(select(Team.key).where(Team.workspace_id == workspace_id)).scalars())


def firings(
    session: Session,
    workspace_id: int,
    *,
    rule_id: int | None,
    conversation_id: int | None,
    status: str | None,
    limit: int,
) -> list[RuleFiring]:
    stmt = select(RuleFiring).where(RuleFiring.workspace_id == workspace_id)
    if rule_id is not None:
        stmt = stmt.where(RuleFiring.rule_id == rule_id)
    if conversation_id is not None:
        stmt = stmt.where(RuleFiring.conversation_id == conversation_id)
    if status:
        stmt = stmt.where(RuleFiring.status == status)
    return list(session.execute(stmt.order_by(RuleFiring.id.desc()).limit(limit)).scalars())


# Built once: statement construction costs more than running these on SQLite.
_FIRING_FIELDS = (
    "workspace_id",
    "id",
    "rule_id",
    "trigger_key",
    "event",
    "conversation_id",
    "created_at",
    "status",
    "actions",
    "error",
)
_RECORD_FIRING = {
    dialect: conflict_insert(dialect, RuleFiring)
    .values({name: bindparam(name) for name in _FIRING_FIELDS})
    .on_conflict_do_nothing()
    .returning(RuleFiring.id)
    for dialect in DIALECTS
}


def record_firing(session: Session, values: dict[str, Any]) -> int | None:
    """Insert the firing row (fields of _FIRING_FIELDS); None when this rule already fired for
    this trigger (the unique (rule, trigger) key)."""
    stmt = _RECORD_FIRING[session.get_bind().dialect.name]
    firing_id: int | None = session.execute(stmt, values).scalar_one_or_none()  # autoflush: FKs
    return firing_id
