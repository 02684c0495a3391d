"""Lookups memoized per transaction (rule set, SLA policies and calendars) never go stale."""

from __future__ import annotations

from scrm.automation import service as rules
from scrm.db import tx_memo
from scrm.models import AutomationRule
from scrm.sla import service as sla
from scrm.sla.calendar import ALWAYS

WELCOME = {
    "name": "welcome",
    "event": "contact.subscribed",
    "actions": [{"type": "reply", "text": "欢迎关注！"}],
}


def test_rule_set_is_read_once_per_transaction_and_follows_saves(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        first = rules.ruleset(s, workspace.id)
        assert not first.by_event.get("contact.subscribed")
        assert rules.ruleset(s, workspace.id) is first  # memoized
        rule = rules.save_rule(s, workspace.id, WELCOME)
        assert rules.ruleset(s, workspace.id).by_event.get("contact.subscribed")
        # Changed through the ORM and flushed, not through save_rule: still seen.
        s.get(AutomationRule, (workspace.id, rule.id)).enabled = False  # type: ignore[union-attr]
        s.flush()
        assert not rules.ruleset(s, workspace.id).by_event.get("contact.subscribed")
    with db.transaction() as s:
        assert not tx_memo(s)  # a new transaction starts empty
        rules.delete_rule(s, workspace.id, rule.id)
        assert not rules.ruleset(s, workspace.id).by_event.get("contact.subscribed")


def test_savepoint_rollback_drops_the_memo(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        assert not rules.ruleset(s, workspace.id).by_event.get("contact.subscribed")
        try:
            with s.begin_nested():
                rules.save_rule(s, workspace.id, WELCOME)
                assert rules.ruleset(s, workspace.id).by_event.get("contact.subscribed")
                raise RuntimeError("undo")
        except RuntimeError:
            pass
        assert not rules.ruleset(s, workspace.id).by_event.get("contact.subscribed")


def test_sla_policies_and_calendars_follow_changes_in_the_transaction(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        assert sla.targets_for(s, workspace.id, None, "normal") == sla.DEFAULT_TARGETS
        assert sla.calendar_for(s, workspace.id, None) is ALWAYS
        policy = sla.upsert_policy(s, workspace.id, "默认", {"first_response_minutes": 5})
        assert sla.targets_for(s, workspace.id, None, "normal").first_response == 5 * 60
        week = {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
        sla.set_calendar(
            s, workspace.id, None, timezone="Asia/Shanghai", hours={**week, "sat": [], "sun": []}
        )
        assert sla.calendar_for(s, workspace.id, None) is not ALWAYS
        sla.delete_policy(s, workspace.id, policy.id)
        assert sla.targets_for(s, workspace.id, None, "normal") == sla.DEFAULT_TARGETS
