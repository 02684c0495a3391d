"""Rules: refused with the reason when invalid, keyword routing without triage, stop, dry run,
auto-replies that never count as a human answer, failures that never lose a message."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from scrm import pipeline
from scrm.automation import actions as rule_actions
from scrm.automation import service as rules
from scrm.errors import Invalid
from scrm.models import (
    AutomationRule,
    CaseTask,
    Conversation,
    ConversationActivity,
    Message,
    OutboxMessage,
    RuleFiring,
)
from tests.automation.helpers import deliver
from tests.helpers import run_jobs

LOST_BAG = "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！"
LOST_RULE: dict[str, Any] = {
    "name": "失物 → 失物招领",
    "event": "message.received",
    "position": 10,
    "stop": True,
    "conditions": {
        "any": [
            {"field": "text", "op": "contains_any", "value": ["落在", "丢了", "遗失", "忘在", "找不到"]},
            {"field": "intent", "op": "eq", "value": "lost_item"},
        ]
    },
    "actions": [{"type": "route", "team": "lost"}, {"type": "label", "labels": ["失物"]}],
}


@pytest.fixture
def no_triage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules must work on keywords alone when the NLP step is absent."""
    monkeypatch.setattr(pipeline, "_STEPS", [s for s in pipeline._STEPS if s[1] != "triage"])


def save(db, ws, rule: dict[str, Any]) -> AutomationRule:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        return rules.save_rule(s, ws.id, rule)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"conditions": {"all": [{"field": "mood", "op": "eq", "value": "x"}]}}, "unknown field 'mood'"),
        (
            {"conditions": {"all": [{"field": "text", "op": "matches", "value": "(unclosed"}]}},
            "bad regular expression",
        ),
        ({"conditions": {"all": [{"field": "text_length", "op": "gt", "value": "ten"}]}}, "needs a number"),
        (
            {"conditions": {"all": [{"field": "intent", "op": "contains_any", "value": ["a"]}]}},
            "does not apply",
        ),
        ({"conditions": {"all": [{"field": "text", "op": "contains_any", "value": []}]}}, "non-empty list"),
        ({"conditions": {"all": [{"field": "text", "op": "contains_any", "value": ["  "]}]}}, "blank"),
        (
            {"conditions": {"all": [{"field": "text", "op": "eq", "value": "x", "oops": 1}]}},
            "unknown key 'oops'",
        ),
        ({"conditions": {"either": []}}, "unknown key 'either'"),
        ({"conditions": "text contains 丢"}, "must be an object"),
        ({"event": "message.deleted"}, "unknown event"),
        ({"actions": []}, "at least one action"),
        ({"actions": [{"type": "teleport"}]}, "unknown action type"),
        ({"actions": [{"type": "route", "team": "nowhere"}]}, "no team 'nowhere'"),
        ({"actions": [{"type": "route"}]}, "needs 'team'"),
        ({"actions": [{"type": "set_priority", "priority": "asap"}]}, "priority must be"),
        ({"actions": [{"type": "notify", "url": "file:///etc/passwd"}]}, "http(s) URL"),
        ({"actions": [{"type": "reply", "canned": "missing"}]}, "no canned reply"),
        ({"actions": [{"type": "reply"}]}, "reply needs text"),
        ({"actions": [{"type": "label", "labels": ["x"], "colour": "red"}]}, "unknown parameter 'colour'"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(db, workspace, change, reason) -> None:  # type: ignore[no-untyped-def]
    rule = {**LOST_RULE, **change}
    with pytest.raises(Invalid) as exc, db.transaction() as s:
        rules.save_rule(s, workspace.id, rule)
    assert exc.value.status_code == 422
    assert reason in exc.value.message
    with db.transaction(readonly=True) as s:
        assert s.execute(select(AutomationRule)).first() is None


def test_a_rule_cycle_is_refused(db, workspace) -> None:  # type: ignore[no-untyped-def]
    save(
        db,
        workspace,
        {
            "name": "A",
            "event": "conversation.labeled",
            "conditions": {"all": [{"field": "labels", "op": "has", "value": "vip"}]},
            "actions": [{"type": "label", "labels": ["跟进"]}],
        }
        | {"enabled": False},
    )
    with pytest.raises(Invalid) as exc, db.transaction() as s:
        rules.save_rule(
            s,
            workspace.id,
            {"name": "B", "event": "conversation.labeled", "actions": [{"type": "label", "labels": ["vip"]}]},
        )
    assert "trigger each other" in exc.value.message and "B → B" in exc.value.message


def test_lost_bag_is_routed_to_lost_and_found_on_keywords_alone(db, settings, workspace, no_triage) -> None:  # type: ignore[no-untyped-def]
    save(
        db,
        workspace,
        {
            "name": "投诉",
            "event": "message.received",
            "position": 50,
            "conditions": {"all": [{"field": "text", "op": "contains_any", "value": ["投诉"]}]},
            "actions": [{"type": "set_priority", "priority": "high"}],
        },
    )
    save(db, workspace, LOST_RULE)
    deliver(db, workspace, "e1", LOST_BAG)
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        conv = s.execute(select(Conversation)).scalar_one()
        assert conv.team_id == workspace.team_ids["lost"]
        assert "失物" in conv.labels and conv.priority == "normal"
        assert conv.intent is None  # no triage ran
        task = s.execute(select(CaseTask)).scalar_one()
        assert task.team_id == workspace.team_ids["lost"] and task.kind == "department"
        found = {(e["type"], e["value"]) for e in task.details["entities"]}
        assert {("flight_no", "MU5137"), ("seat", "32C")} <= found
        assert task.details["what"][0]["text"] == LOST_BAG
        firing = s.execute(select(RuleFiring)).scalar_one()
        assert firing.status == "fired" and [a["type"] for a in firing.actions] == ["route", "label"]


def test_stop_after_a_rule_and_dry_run(db, workspace) -> None:  # type: ignore[no-untyped-def]
    save(db, workspace, LOST_RULE)
    save(
        db,
        workspace,
        {
            "name": "later",
            "event": "message.received",
            "position": 20,
            "conditions": {"all": [{"field": "text_length", "op": "gt", "value": 3}]},
            "actions": [{"type": "label", "labels": ["长"]}],
        },
    )
    with db.transaction(readonly=True) as s:
        hits = rules.dry_run(s, workspace.id, {"text": LOST_BAG})
        assert [h["name"] for h in hits] == ["失物 → 失物招领"]
        hits = rules.dry_run(s, workspace.id, {"text": "请问几点登机"})
        assert [h["name"] for h in hits] == ["later"]
        hits = rules.dry_run(s, workspace.id, {"text": "hi", "triage": {"intent": "lost_item"}})
        assert [h["name"] for h in hits] == ["失物 → 失物招领"]
    with pytest.raises(Invalid), db.transaction(readonly=True) as s:
        rules.dry_run(s, workspace.id, {"text": "x", "event": "nope"})


def test_emoji_in_song_out_is_a_bot_reply_not_a_first_response(db, settings, workspace, no_triage) -> None:  # type: ignore[no-untyped-def]
    save(
        db,
        workspace,
        {
            "name": "sad → song",
            "event": "message.received",
            "conditions": {
                "all": [
                    {"field": "text", "op": "contains_any", "value": ["/::<", "/:,@("]},
                    {"field": "channel", "op": "eq", "value": "webhook"},  # can send music
                ]
            },
            "actions": [
                {
                    "type": "reply",
                    "text": "听首歌吧：《晴天》",
                    "msg_type": "music",
                    "payload": {"title": "晴天", "music_url": "https://music.example/qingtian.mp3"},
                }
            ],
        },
    )
    deliver(db, workspace, "e1", "/::<")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        conv = s.execute(select(Conversation)).scalar_one()
        out = s.execute(select(Message).where(Message.direction == "out")).scalar_one()
        assert out.sender_type == "bot" and out.kind == "music"
        assert conv.first_response_at is None and conv.status == "open"
        box = s.execute(select(OutboxMessage)).scalar_one()
        assert box.payload["payload"]["title"] == "晴天"


def test_a_failing_rule_is_recorded_and_the_message_still_reaches_a_queue(
    db, settings, workspace, monkeypatch, no_triage
) -> None:  # type: ignore[no-untyped-def]
    save(
        db,
        workspace,
        {
            "name": "broken",
            "event": "message.received",
            "position": 1,
            "conditions": {},
            "actions": [{"type": "note", "text": "x"}],
        },
    )
    save(db, workspace, {**LOST_RULE, "position": 5})
    real = rule_actions.run_action

    def flaky(ctx, action):  # type: ignore[no-untyped-def]
        if action["type"] == "note":
            raise RuntimeError("downstream exploded")
        return real(ctx, action)

    monkeypatch.setattr("scrm.automation.service.run_action", flaky)
    deliver(db, workspace, "e1", LOST_BAG)
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        conv = s.execute(select(Conversation)).scalar_one()
        assert conv.team_id == workspace.team_ids["lost"] and conv.status == "open"
        broken = s.execute(select(AutomationRule).where(AutomationRule.name == "broken")).scalar_one()
        assert broken.failure_count == 1 and "downstream exploded" in (broken.last_error or "")
        statuses = {f.status for f in s.execute(select(RuleFiring)).scalars()}
        assert statuses == {"failed", "fired"}
        assert s.execute(select(Message).where(Message.kind == "note")).first() is None  # rolled back


class _Discard(Exception):
    pass


def test_a_rule_that_fired_already_for_its_trigger_leaves_nothing_behind(
    db, settings, workspace, no_triage
) -> None:  # type: ignore[no-untyped-def]
    """The audit row is written after the actions: a second run for the same trigger undoes
    them (isolated), or fails the attempt so that the isolated rerun does (the pipeline's
    first attempt, which has no savepoints)."""
    save(
        db,
        workspace,
        {
            "name": "记录",
            "event": "message.received",
            "conditions": {},
            "actions": [{"type": "note", "text": "已记录"}, {"type": "label", "labels": ["已记录"]}],
        },
    )
    deliver(db, workspace, "e1", "你好")
    run_jobs(db, settings)

    def trigger(s, isolated: bool) -> rules.Trigger:  # type: ignore[no-untyped-def]
        conv = s.execute(select(Conversation)).scalar_one()
        conv.labels = []  # so that a label action that ran would show
        message = s.execute(select(Message).where(Message.direction == "in")).scalar_one()
        return rules.Trigger(
            workspace_id=workspace.id,
            event="message.received",
            key=f"msg:{message.id}:message.received",
            conversation=conv,
            contact=None,
            account=None,
            text=message.text,
            message=message,
            isolated=isolated,
        )

    with pytest.raises(_Discard), db.transaction() as s:
        assert rules.run(s, trigger(s, isolated=True)) == []
        conv = s.execute(select(Conversation)).scalar_one()
        assert conv.labels == []  # the label action ran, and was rolled back with its savepoint
        assert len(s.execute(select(Message).where(Message.kind == "note")).all()) == 1
        raise _Discard  # (the labels cleared above)
    with pytest.raises(rules.AlreadyFired), db.transaction() as s:
        rules.run(s, trigger(s, isolated=False))
    with db.transaction(readonly=True) as s:
        notes = s.execute(select(Message).where(Message.kind == "note")).scalars().all()
        assert [n.text for n in notes] == ["已记录"]
        assert len(s.execute(select(RuleFiring)).scalars().all()) == 1
        assert s.execute(select(Conversation)).scalar_one().labels == ["已记录"]


def test_loop_protection_limits_automatic_replies(db, settings, workspace, no_triage) -> None:  # type: ignore[no-untyped-def]
    save(
        db,
        workspace,
        {
            "name": "echo",
            "event": "message.received",
            "conditions": {},
            "actions": [{"type": "reply", "text": "收到"}],
        },
    )
    for i in range(6):
        deliver(db, workspace, f"e{i}", f"机器人消息 {i}")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        bot = s.execute(select(Message).where(Message.sender_type == "bot")).scalars().all()
        assert len(bot) == rule_actions.BOT_REPLY_LIMIT
        skipped = [
            f for f in s.execute(select(RuleFiring)).scalars() if any("skipped" in a for a in f.actions)
        ]
        assert len(skipped) == 6 - rule_actions.BOT_REPLY_LIMIT


def test_a_rule_failing_at_run_time_is_logged_skipped_shown_to_admins_and_a_human_still_gets_the_message(
    db, settings, workspace, client, monkeypatch, caplog, no_triage
) -> None:  # type: ignore[no-untyped-def]
    complaint = {"all": [{"field": "text", "op": "contains_any", "value": ["投诉"]}]}
    failing = save(
        db,
        workspace,
        {
            "name": "投诉回访",
            "event": "message.received",
            "position": 1,
            "conditions": complaint,
            "actions": [
                {"type": "label", "labels": ["投诉"]},
                {"type": "create_task", "kind": "follow_up", "due_in_minutes": 60},
            ],
        },
    ).id
    save(
        db,
        workspace,
        {
            "name": "投诉优先",
            "event": "message.received",
            "position": 2,
            "conditions": complaint,
            "actions": [{"type": "set_priority", "priority": "high"}],
        },
    )

    def task_service_down(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("task service unavailable")

    monkeypatch.setattr(rule_actions.casework, "create_task", task_service_down)
    caplog.set_level(logging.ERROR, logger="scrm.automation.service")
    deliver(db, workspace, "e1", "航班延误三个小时也没人管，我要投诉")
    run_jobs(db, settings)

    # logged, with the rule's name and the exception
    logged = [
        r for r in caplog.records if r.name == "scrm.automation.service" and "投诉回访" in r.getMessage()
    ]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert "task service unavailable" in str(logged[0].exc_info[1])
    # skipped as a whole (its label rolled back with it); the next rule still ran
    with db.transaction(readonly=True) as s:
        conv = s.execute(select(Conversation)).scalar_one()
        assert conv.labels == [] and conv.priority == "high" and conv.status == "open"
        assert s.execute(select(CaseTask)).first() is None
        statuses = {(f.rule_id, f.status) for f in s.execute(select(RuleFiring)).scalars()}
        assert (failing, "failed") in statuses and len(statuses) == 2
        assert {f[1] for f in statuses} == {"failed", "fired"}
        kinds = [a.kind for a in s.execute(select(ConversationActivity)).scalars()]
        assert "rule_failed" in kinds

    # visible to admins (the rule list and the audit of firings), not to agents
    admin = {"authorization": f"Bearer {workspace.admin_token}"}
    agent = {"authorization": f"Bearer {workspace.agent_token}"}
    listed = {r["id"]: r for r in client.get("/api/v1/automation/rules", headers=admin).json()}
    assert listed[str(failing)]["failure_count"] == 1
    assert "RuntimeError: task service unavailable" in listed[str(failing)]["last_error"]
    failed = client.get("/api/v1/automation/firings?status=failed", headers=admin).json()
    assert [(f["rule_id"], f["conversation_id"]) for f in failed] == [(str(failing), str(conv.id))]
    assert client.get("/api/v1/automation/rules", headers=agent).status_code == 403

    # the message still reaches a human: queued while nobody is online...
    queue = client.get("/api/v1/automation/queue", headers=admin).json()
    assert [q["id"] for q in queue] == [str(conv.id)]
    # ... and handed to the agent as soon as they come online
    got = client.put("/api/v1/automation/availability", headers=agent, json={"availability": "online"})
    assert got.status_code == 200 and got.json()["conversations_moved"] == 1
    assert client.get("/api/v1/automation/queue", headers=admin).json() == []
    with db.transaction(readonly=True) as s:
        conv = s.execute(select(Conversation)).scalar_one()
        assert conv.assignee_id == workspace.agent_member_id
        inbound = s.execute(select(Message).where(Message.direction == "in")).scalar_one()
        assert "投诉" in (inbound.text or "")
