"""Rules: saving (validated, never broken at run time), evaluating, firing with an audit trail."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scrm.automation import engine, repository
from scrm.automation.actions import ActionContext, ActionSkipped, run_action
from scrm.conversation import service as conversation_service
from scrm.db import memo_depends_on, tx_forget, tx_memo
from scrm.errors import Conflict, Invalid, NotFound
from scrm.governance.service import audit
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow
from scrm.models import (
    AutomationRule,
    ChannelAccount,
    Contact,
    Conversation,
    Member,
    Message,
    RuleFiring,
    Team,
)
from scrm.sla import service as sla
from scrm.workspace import service as workspace

log = logging.getLogger(__name__)

MAX_RULES = 1000
# Run-time cap on chains of rule events (rule → label → conversation.labeled → rule ...): a
# rule fires at depth d after d rule-caused events. Saving refuses cycles and chains of more
# than engine.MAX_CHAIN rules, so this cap only stops what the save-time check could not see:
# a rule set changed while a chain's events were queued, or rules written to the table without
# the service (a restored backup, a manual fix).
MAX_DEPTH = engine.MAX_CHAIN - 1


# -- saving --------------------------------------------------------------------------------------
def _spec(row: AutomationRule) -> engine.RuleSpec:
    return engine.RuleSpec(row.id, row.name, row.event, row.position, row.stop, row.conditions, row.actions)


def list_rules(session: Session, workspace_id: int) -> list[AutomationRule]:
    return repository.list_rules(session, workspace_id)


def get_rule(session: Session, workspace_id: int, rule_id: int) -> AutomationRule:
    row = session.get(AutomationRule, (workspace_id, rule_id))
    if row is None:
        raise NotFound("no such rule")
    return row


def _check_references(
    session: Session, workspace_id: int, conditions: dict[str, Any], actions: list[dict[str, Any]]
) -> None:
    accounts = repository.account_kinds(session, workspace_id)
    for group, items in conditions.items():
        for i, cond in enumerate(items):
            if cond.get("field") != "channel_account" or cond.get("op") not in ("eq", "ne", "in", "not_in"):
                continue
            values = cond["value"] if isinstance(cond["value"], list) else [cond["value"]]
            for v in values:
                if str(v) not in accounts:
                    where = f"conditions.{group}[{i}]"
                    raise Invalid(f"{where}: no channel account {v!r} in this workspace", field=where)
    teams = repository.team_keys(session, workspace_id)
    canned = {c.key for c in workspace.list_canned_replies(session, workspace_id)}
    for i, a in enumerate(actions):
        where = f"actions[{i}]"
        if a.get("team") and a["team"] not in teams:
            raise Invalid(f"{where}: no team {a['team']!r} in this workspace", field=where)
        if a.get("canned") and a["canned"] not in canned:
            raise Invalid(f"{where}: no canned reply {a['canned']!r}", field=where)
        if a["type"] == "assign" and a.get("skills"):
            # Stored as members' skills are (trimmed, lower case), so "Lang:EN" finds "lang:en".
            a["skills"] = workspace.clean_skills(a["skills"], field=f"{where}.skills")
        if a["type"] == "assign" and a.get("member"):
            try:
                member_id = int(a["member"])
            except ValueError:
                raise Invalid(f"{where}: member must be a member id", field=where) from None
            if session.get(Member, (workspace_id, member_id)) is None:
                raise Invalid(f"{where}: no such member", field=where)


def validate(
    session: Session,
    workspace_id: int,
    *,
    rule_id: int | None,
    name: str,
    event: str,
    conditions: Any,
    actions: Any,
    position: int = 100,
    stop: bool = False,
    enabled: bool = True,
) -> None:
    """Raise Invalid (422) with the reason: unknown field, bad regex, bad action or parameter,
    a reply type a channel the rule can fire on cannot send, a cycle, a chain too long..."""
    try:
        engine.validate_rule(event, conditions, actions, repository.account_kinds(session, workspace_id))
    except engine.RuleError as exc:
        raise Invalid(str(exc), field=exc.where or None) from None
    _check_references(session, workspace_id, conditions, actions)
    if enabled:
        # Concurrent saves wait here, so each is checked against the rules the other saved.
        repository.lock_rule_saves(session, workspace_id)
        others = [_spec(r) for r in list_rules(session, workspace_id) if r.enabled and r.id != rule_id]
        candidate = engine.RuleSpec(rule_id or -1, name, event, position, stop, conditions, actions)
        cycle = engine.find_cycle([*others, candidate])
        if cycle:
            raise Invalid("rules would trigger each other forever: " + " → ".join(cycle), field="actions")
        chain = engine.longest_chain([*others, candidate], through=candidate.id)
        if len(chain) > engine.MAX_CHAIN:
            raise Invalid(
                f"a chain of more than {engine.MAX_CHAIN} rules triggering one another: " + " → ".join(chain),
                field="actions",
            )


def save_rule(
    session: Session,
    workspace_id: int,
    data: dict[str, Any],
    *,
    rule_id: int | None = None,
    actor_id: int | None = None,
) -> AutomationRule:
    name = str(data.get("name") or "").strip()
    if not name:
        raise Invalid("name is required", field="name")
    row = get_rule(session, workspace_id, rule_id) if rule_id else None
    merged = {
        "event": data.get("event", row.event if row else None),
        "conditions": data.get("conditions", row.conditions if row else {}),
        "actions": data.get("actions", row.actions if row else []),
        "position": data.get("position", row.position if row else 100),
        "stop": data.get("stop", row.stop if row else False),
        "enabled": data.get("enabled", row.enabled if row else True),
    }
    validate(session, workspace_id, rule_id=rule_id, name=name, **merged)
    if row is None:
        if repository.count_rules(session, workspace_id) >= MAX_RULES:
            raise Invalid(f"at most {MAX_RULES} rules per workspace")
        row = AutomationRule(workspace_id=workspace_id, name=name)
        session.add(row)
    row.name = name
    row.description = str(data.get("description", row.description or ""))[:2000]
    for key, value in merged.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"a rule named {name!r} exists") from None
    tx_forget(session, ("ruleset", workspace_id))
    audit(
        session,
        workspace_id,
        "rule.saved",
        actor_id=actor_id,
        target_type="automation_rule",
        target_id=row.id,
        data={"name": name},
    )
    return row


def delete_rule(session: Session, workspace_id: int, rule_id: int, actor_id: int | None = None) -> None:
    row = get_rule(session, workspace_id, rule_id)
    session.delete(row)
    tx_forget(session, ("ruleset", workspace_id))
    audit(
        session,
        workspace_id,
        "rule.deleted",
        actor_id=actor_id,
        target_type="automation_rule",
        target_id=rule_id,
        data={"name": row.name},
    )


def firings(
    session: Session,
    workspace_id: int,
    *,
    rule_id: int | None = None,
    conversation_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[RuleFiring]:
    return repository.firings(
        session, workspace_id, rule_id=rule_id, conversation_id=conversation_id, status=status, limit=limit
    )


# -- the compiled rule set, cached per workspace and version ---------------------------------------
_CACHE: dict[int, tuple[tuple[Any, ...], engine.RuleSet]] = {}
_CACHE_LOCK = threading.Lock()


memo_depends_on("ruleset", AutomationRule)


def ruleset(session: Session, workspace_id: int) -> engine.RuleSet:
    """The enabled rules, compiled; read once per transaction (a pipeline job asks 2-3 times)."""
    memo = tx_memo(session)
    key = ("ruleset", workspace_id)
    compiled: engine.RuleSet | None = memo.get(key)
    if compiled is not None:
        return compiled
    compiled = _ruleset(session, workspace_id)
    memo[key] = compiled
    return compiled


def _ruleset(session: Session, workspace_id: int) -> engine.RuleSet:
    version = repository.ruleset_version(session, workspace_id)
    with _CACHE_LOCK:
        hit = _CACHE.get(workspace_id)
        if hit is not None and hit[0] == version:
            return hit[1]
    rules = [_spec(r) for r in repository.enabled_rules(session, workspace_id)]
    compiled = engine.RuleSet(rules)
    with _CACHE_LOCK:
        _CACHE[workspace_id] = (version, compiled)
    return compiled


# -- subjects ------------------------------------------------------------------------------------
@dataclass
class Trigger:
    """Everything one evaluation needs, from the pipeline or from a domain event."""

    workspace_id: int
    event: str
    key: str  # unique per trigger: a rule fires at most once per key
    conversation: Conversation | None
    contact: Contact | None
    account: ChannelAccount | None
    text: str = ""
    recipient: str | None = None
    facts: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None
    depth: int = 0
    # The fan's message the trigger is about when it is their latest (the pipeline's): replies
    # thread to it without looking it up again.
    message: Message | None = None
    # Bring the SLA clocks in line when the rules change the conversation's priority or team
    # (the pipeline's own SLA step does that for messages; listener events need it here).
    sync_sla: bool = False
    # Each fired rule in its own savepoint; the pipeline's first attempt runs without (a failure
    # fails the attempt, and the job reruns at once, isolated): two statements less per firing.
    isolated: bool = True


def subject_for(session: Session, trig: Trigger) -> engine.Subject:
    conv, contact, account = trig.conversation, trig.contact, trig.account
    facts = trig.facts or {}
    triage = dict(facts.get("triage") or {})
    values: dict[str, Any] = {**(trig.extra or {})}
    if account is not None:
        values["channel"] = account.kind
        values["channel_account"] = str(account.id)
    if conv is not None:
        values.update(
            visibility=conv.visibility,
            labels=list(conv.labels or []),
            priority=conv.priority,
            status=conv.status,
            assigned=conv.assignee_id is not None,
        )
        triage.setdefault("intent", conv.intent)
        triage.setdefault("sentiment", conv.sentiment)
        if conv.team_id:
            team = session.get(Team, (conv.workspace_id, conv.team_id))
            values["team"] = team.key if team else None
    values.update(
        intent=triage.get("intent"),
        sentiment=triage.get("sentiment"),
        emotion=triage.get("emotion"),
        urgency=triage.get("urgency"),
        is_spam=bool(triage.get("is_spam")),
        triaged=bool(facts.get("triage")),
        entities=[str(e.get("type")) for e in triage.get("entities") or [] if isinstance(e, dict)],
    )
    if contact is not None:
        attrs = contact.attributes or {}
        values.update(
            {
                "contact.tier": attrs.get("tier"),
                "contact.vip": _vip(contact),
                "contact.followers": contact.followers,
                "contact.tags": list(contact.tags or []),
                "contact.city": contact.city,
            }
        )
        for k, v in attrs.items():
            values[engine.ATTR_PREFIX + str(k)] = v
    team_id = conv.team_id if conv is not None else None
    return engine.Subject(
        event=trig.event,
        text=trig.text,
        values=values,
        business_hours=lambda: sla.in_business_hours(session, trig.workspace_id, team_id),
    )


def _vip(contact: Contact) -> bool:
    from scrm.conversation.assignment import is_vip

    return is_vip(contact)


# -- firing --------------------------------------------------------------------------------------
class AlreadyFired(Exception):
    """The rule fired for this trigger before (its audit row exists); raised by a firing that is
    not isolated, whose actions only the isolated rerun can undo."""


def _record_firing(
    session: Session,
    trig: Trigger,
    rule: engine.RuleSpec,
    status: str,
    actions: list[dict[str, Any]],
    error: str | None,
) -> int | None:
    """Insert the audit row with its outcome; None when this rule already fired for this
    trigger (the unique (rule, trigger) key): a retried job never fires a rule twice."""
    return repository.record_firing(
        session,
        {
            "workspace_id": trig.workspace_id,
            "id": new_id(),
            "rule_id": rule.id,
            "trigger_key": trig.key[:200],
            "event": trig.event,
            "conversation_id": trig.conversation.id if trig.conversation else None,
            "created_at": utcnow(),
            "status": status,
            "actions": actions,
            "error": error,
        },
    )


def run(session: Session, trig: Trigger) -> list[int]:
    """Evaluate the workspace's rules for a trigger and apply the actions of those that fire;
    returns the firings' ids. A failing rule is logged, recorded for admins and skipped; the
    others still run."""
    if trig.depth > MAX_DEPTH:
        log.warning("rule chain deeper than %s stopped (%s)", MAX_DEPTH, trig.key)
        if trig.conversation is not None:
            conversation_service.record_activity(
                session, trig.conversation, "rule_loop_stopped", None, event=trig.event
            )
        return []
    rs = ruleset(session, trig.workspace_id)
    if not rs.by_event.get(trig.event):
        return []
    fired = rs.evaluate(subject_for(session, trig))
    conv = trig.conversation
    before = (conv.priority, conv.team_id) if conv is not None else None
    out = _fire(session, trig, fired)
    if trig.sync_sla and conv is not None and (conv.priority, conv.team_id) != before:
        sla.sync(session, conv)  # new targets for the running clocks (scrm.sla.service.retarget)
    return out


def _fire(session: Session, trig: Trigger, fired: list[engine.RuleSpec]) -> list[int]:
    """Apply each fired rule's actions, then write its audit row (one INSERT with the outcome).

    Isolated (the default): each rule in a savepoint, so that a failing rule, or one that had
    fired for this trigger already, leaves nothing behind while the others still run. Not
    isolated (the pipeline's first attempt, see scrm.pipeline.isolate_steps): no savepoints;
    a failing rule, or a firing row that already exists, fails the attempt and the job reruns
    at once, isolated.
    """
    out: list[int] = []
    for spec in fired:
        actx = ActionContext(
            session=session,
            workspace_id=trig.workspace_id,
            event=trig.event,
            trigger_key=trig.key,
            rule_id=spec.id,
            rule_name=spec.name,
            conversation=trig.conversation,
            contact=trig.contact,
            account=trig.account,
            recipient=trig.recipient,
            facts=trig.facts if trig.facts is not None else {},
            depth=trig.depth,
            message=trig.message,
        )
        if not trig.isolated:
            results = _apply(actx, spec)
            firing_id = _record_firing(session, trig, spec, "fired", results, None)
            if firing_id is None:
                raise AlreadyFired(f"rule {spec.id} already fired for {trig.key}")
        else:
            try:
                with session.begin_nested():
                    results = _apply(actx, spec)
                    firing_id = _record_firing(session, trig, spec, "fired", results, None)
                    if firing_id is None:
                        raise AlreadyFired  # undo this run's actions
            except AlreadyFired:
                continue
            except Exception as exc:
                log.exception("rule %s failed", spec.name)
                error = f"{type(exc).__name__}: {exc}"[:2000]
                failed_id = _record_firing(session, trig, spec, "failed", [], error)
                if failed_id is not None:
                    _note_failure(session, trig, spec, error)
                    out.append(failed_id)
                continue
        if trig.conversation is not None:
            conversation_service.record_activity(
                session,
                trig.conversation,
                "rule_fired",
                None,
                rule=spec.name,
                rule_id=str(spec.id),
                actions=[r["type"] for r in results],
            )
        out.append(firing_id)
    return out


def _apply(actx: ActionContext, spec: engine.RuleSpec) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for action in spec.actions:
        try:
            results.append({"type": action["type"], **run_action(actx, action)})
        except ActionSkipped as skip:
            results.append({"type": action["type"], "skipped": str(skip)})
    return results


def _note_failure(session: Session, trig: Trigger, spec: engine.RuleSpec, error: str) -> None:
    rule = session.get(AutomationRule, (trig.workspace_id, spec.id))
    if rule is not None:
        rule.failure_count += 1
        rule.last_error = error
        rule.last_error_at = utcnow()
    if trig.conversation is not None:
        conversation_service.record_activity(
            session, trig.conversation, "rule_failed", None, rule=spec.name, error=error[:300]
        )


def dry_run(session: Session, workspace_id: int, sample: dict[str, Any]) -> list[dict[str, Any]]:
    """Which rules would fire for a sample message, with their actions; changes nothing."""
    event = sample.get("event") or "message.received"
    if event not in engine.RULE_EVENTS:
        raise Invalid(f"unknown event {event!r}", field="event")
    triage = sample.get("triage")
    values: dict[str, Any] = {
        k: sample[k]
        for k in ("channel", "visibility", "scene", "menu_key", "priority", "status", "labels", "team")
        if sample.get(k) is not None
    }
    for k, v in (sample.get("contact") or {}).items():
        values[k if k.startswith("contact.") else f"contact.{k}"] = v
    triage = triage or {}
    values.update(
        intent=triage.get("intent"),
        sentiment=triage.get("sentiment"),
        emotion=triage.get("emotion"),
        urgency=triage.get("urgency"),
        is_spam=bool(triage.get("is_spam")),
        triaged=bool(triage),
        entities=[str(e.get("type")) for e in triage.get("entities") or [] if isinstance(e, dict)],
    )
    bh = sample.get("business_hours")
    subject = engine.Subject(
        event=event,
        text=str(sample.get("text") or ""),
        values=values,
        business_hours=(lambda: bool(bh))
        if bh is not None
        else (lambda: sla.in_business_hours(session, workspace_id, None)),
    )
    fired = ruleset(session, workspace_id).evaluate(subject)
    return [
        {"rule_id": str(r.id), "name": r.name, "position": r.position, "stop": r.stop, "actions": r.actions}
        for r in fired
    ]
