"""SLA warnings and breaches reach the rules: a rule on `sla.warning` / `sla.breached` fires
once per occurrence (however many workers check the timer, however often the event is
delivered), its firing is in the audit, and its escalation and notice go out once each."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select

from scrm import events
from scrm.automation import service as rules
from scrm.models import AutomationRule, Conversation, Message, RuleFiring, SlaTimer, Workspace
from scrm.sla import service as sla
from tests.automation.helpers import deliver
from tests.helpers import Recorder, run_concurrently, run_jobs


def check_concurrently(db, ws, timer_id: int, now: dt.datetime, workers: int = 4) -> list[str | None]:  # type: ignore[no-untyped-def]
    def work(_i: int) -> str | None:
        with db.transaction() as s:
            return sla.check(s, ws.id, timer_id, now=now)

    return run_concurrently(work, workers)


def rule(name: str, event: str, metric: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "event": event,
        "conditions": {"all": [{"field": "sla.metric", "op": "eq", "value": metric}]},
        "actions": actions,
    }


def test_sla_warning_and_breach_fire_their_rules_once(db, settings, workspace, client) -> None:  # type: ignore[no-untyped-def]
    with Recorder().running() as hook:
        with db.transaction() as s:
            ws_row = s.get(Workspace, workspace.id)
            assert ws_row is not None
            ws_row.settings = {**(ws_row.settings or {}), "escalation_webhook_url": hook.url}
            warn_rule = rules.save_rule(
                s,
                workspace.id,
                rule(
                    "快超时",
                    "sla.warning",
                    "first_response",
                    [
                        {"type": "set_priority", "priority": "high"},
                        {"type": "note", "text": "首次响应快超时了"},
                    ],
                ),
            ).id
            breach_rule = rules.save_rule(
                s,
                workspace.id,
                rule(
                    "已超时",
                    "sla.breached",
                    "first_response",
                    [
                        {"type": "escalate", "priority": "urgent", "notify_supervisors": True},
                        {"type": "notify", "url": hook.url},
                    ],
                ),
            ).id
            # another metric: must not fire on a first-response breach
            other_rule = rules.save_rule(
                s,
                workspace.id,
                rule("解决超时", "sla.breached", "resolution", [{"type": "label", "labels": ["超时未解决"]}]),
            ).id
        deliver(db, workspace, "e1", "行李托运超重怎么收费")
        run_jobs(db, settings)
        with db.transaction(readonly=True) as s:
            conv = s.execute(select(Conversation)).scalar_one()
            timer = s.execute(select(SlaTimer).where(SlaTimer.metric == "first_response")).scalar_one()
        assert conv.priority == "normal" and timer.warn_at is not None

        # the warning, checked by four workers at once, fires the warning rule once
        assert (
            check_concurrently(db, workspace, timer.id, timer.warn_at + dt.timedelta(seconds=1)).count(
                "warning"
            )
            == 1
        )
        run_jobs(db, settings)
        with db.transaction(readonly=True) as s:
            conv = s.execute(select(Conversation)).scalar_one()
            assert conv.priority == "high"
            notes = s.execute(select(Message).where(Message.kind == "note")).scalars().all()
            assert [n.text for n in notes] == ["首次响应快超时了"]
        assert hook.requests == []

        # the breach fires the breach rule once: escalation and notice, besides the policy's own
        assert (
            check_concurrently(db, workspace, timer.id, timer.due_at + dt.timedelta(seconds=1)).count(
                "breach"
            )
            == 1
        )
        run_jobs(db, settings)

        def state() -> tuple[str, list[tuple[int, str, str, str]]]:
            with db.transaction(readonly=True) as s:
                c = s.execute(select(Conversation)).scalar_one()
                f = s.execute(select(RuleFiring).order_by(RuleFiring.created_at)).scalars().all()
                return c.priority, [(r.rule_id, r.event, r.trigger_key, r.status) for r in f]

        priority, firings = state()
        assert priority == "urgent"
        assert firings == [
            (warn_rule, "sla.warning", f"sla:{timer.id}:warning", "fired"),
            (breach_rule, "sla.breached", f"sla:{timer.id}:breach", "fired"),
        ]
        assert other_rule not in {f[0] for f in firings}
        bodies = sorted(
            (json.loads(r["body"]) for r in hook.requests), key=lambda b: str(b.get("reason", ""))
        )
        assert [(b["event"], b.get("reason") or b.get("rule")) for b in bodies] == [
            ("sla.breached", "已超时"),  # the rule's notify action
            ("escalation", "rule:已超时 on sla.breached"),  # the rule's escalate action
            ("escalation", "sla first_response breached"),  # the policy's escalation
        ]

        # the same events delivered again (a retried listener job): nothing fires twice
        with db.transaction() as s:
            for kind in ("warning", "breach"):
                events.emit(
                    s,
                    workspace.id,
                    "sla.warning" if kind == "warning" else "sla.breached",
                    {
                        "conversation_id": str(conv.id),
                        "timer_id": str(timer.id),
                        "metric": "first_response",
                        "key": f"sla:{timer.id}:{kind}",
                    },
                )
        run_jobs(db, settings)
        assert state() == (priority, firings)
        assert len(hook.requests) == 3
        with db.transaction(readonly=True) as s:
            assert len(s.execute(select(Message).where(Message.kind == "note")).scalars().all()) == 1

    # the audit of firings is there for supervisors and admins
    admin = {"authorization": f"Bearer {workspace.admin_token}"}
    got = client.get(f"/api/v1/automation/firings?rule_id={breach_rule}", headers=admin)
    assert got.status_code == 200
    assert [(f["event"], f["status"], f["conversation_id"]) for f in got.json()] == [
        ("sla.breached", "fired", str(conv.id))
    ]
    assert [a["type"] for a in got.json()[0]["actions"]] == ["escalate", "notify"]
    with db.transaction(readonly=True) as s:
        assert s.get(AutomationRule, (workspace.id, breach_rule)).failure_count == 0  # type: ignore[union-attr]
