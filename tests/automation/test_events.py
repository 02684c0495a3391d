"""Rule events beyond the incoming message: labels an agent changes, intents an agent corrects,
a conversation reopened by the fan, a department's outcome, a fan unfollowing, a QR scan."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from scrm.automation import service as rules
from scrm.casework import service as casework
from scrm.channels.base import InboundEvent, Sender
from scrm.conversation import service as conversation_service
from scrm.inbound import service as inbound_service
from scrm.models import Conversation, ConversationActivity, Message, OutboxMessage, RuleFiring
from scrm.workspace import service as ws_service
from tests.automation.helpers import deliver
from tests.helpers import run_jobs


def save(db, ws, data: dict[str, Any]) -> int:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        return rules.save_rule(s, ws.id, data).id


def conversation(db) -> Conversation:  # type: ignore[no-untyped-def]
    with db.transaction(readonly=True) as s:
        return s.execute(select(Conversation)).scalar_one()


def fired(db, rule_id: int) -> list[RuleFiring]:  # type: ignore[no-untyped-def]
    with db.transaction(readonly=True) as s:
        return list(s.execute(select(RuleFiring).where(RuleFiring.rule_id == rule_id)).scalars())


def headers(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def accept(db, ws, event: InboundEvent) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        inbound_service.accept(
            s,
            workspace_id=ws.id,
            channel_account_id=ws.channel_id,
            channel_kind="webhook",
            events=[event],
            raw="{}",
        )


def test_an_agents_label_edit_fires_the_label_rules(db, settings, workspace, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    added = save(
        db,
        workspace,
        {
            "name": "VIP 标签 → 高优先级",
            "event": "conversation.labeled",
            "conditions": {"all": [{"field": "labels.added", "op": "has", "value": "VIP"}]},
            "actions": [{"type": "set_priority", "priority": "high"}, {"type": "note", "text": "VIP 已标记"}],
        },
    )
    removed = save(
        db,
        workspace,
        {
            "name": "去掉投诉 → 普通",
            "event": "conversation.labeled",
            "conditions": {"all": [{"field": "labels.removed", "op": "has", "value": "投诉"}]},
            "actions": [{"type": "set_priority", "priority": "normal"}],
        },
    )
    deliver(db, workspace, "e1", "你好，想问问行李额度")
    run_jobs(db, settings)
    conv = conversation(db)
    url = f"/api/v1/conversations/{conv.id}"
    agent = headers(workspace.agent_token)

    # an unrelated label: the event is raised, neither rule matches
    assert client.patch(url, json={"labels": ["行李"]}, headers=agent).status_code == 200
    run_jobs(db, settings)
    assert fired(db, added) == [] and fired(db, removed) == []

    r = client.patch(url, json={"labels": ["行李", "vip", "投诉"]}, headers=agent)
    assert r.status_code == 200
    run_jobs(db, settings)
    assert conversation(db).priority == "high"
    (firing,) = fired(db, added)
    assert firing.event == "conversation.labeled" and firing.status == "fired"
    with db.transaction(readonly=True) as s:
        labeled = [a for a in s.execute(select(ConversationActivity)).scalars() if a.kind == "labeled"]
        assert [(a.actor_id, a.data["added"], a.data["removed"]) for a in labeled][-1] == (
            workspace.agent_member_id,
            ["vip", "投诉"],
            [],
        )

    # the same labels again: no change, no event
    assert client.patch(url, json={"labels": ["投诉", "vip", "行李"]}, headers=agent).status_code == 200
    run_jobs(db, settings)
    assert len(fired(db, added)) == 1

    assert client.patch(url, json={"labels": ["行李", "vip"]}, headers=agent).status_code == 200
    run_jobs(db, settings)
    assert conversation(db).priority == "normal" and len(fired(db, removed)) == 1
    assert len(fired(db, added)) == 1


def test_an_agents_intent_correction_fires_the_triaged_rules(
    db, settings, workspace, client: TestClient
) -> None:  # type: ignore[no-untyped-def]
    rule_id = save(
        db,
        workspace,
        {
            "name": "改判投诉 → 升级",
            "event": "conversation.triaged",
            "conditions": {"all": [{"field": "intent", "op": "eq", "value": "complaint"}]},
            "actions": [
                {"type": "label", "labels": ["投诉复核"]},
                {"type": "set_priority", "priority": "urgent"},
            ],
        },
    )
    deliver(db, workspace, "e1", "请问明天早上的航班几点开始值机？")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        message = s.execute(select(Message).where(Message.direction == "in")).scalar_one()
    assert message.triage["intent"] != "complaint"  # the model's guess: the rule did not fire
    assert fired(db, rule_id) == [] and conversation(db).priority != "urgent"

    r = client.patch(
        f"/api/v1/messages/{message.id}/triage",
        json={"task": "intent", "label": "complaint"},
        headers=headers(workspace.agent_token),
    )
    assert r.status_code == 200, r.text
    run_jobs(db, settings)
    conv = conversation(db)
    assert conv.intent == "complaint" and conv.priority == "urgent" and "投诉复核" in conv.labels
    (firing,) = fired(db, rule_id)
    assert firing.event == "conversation.triaged"
    # a correction to another intent does not fire it again
    client.patch(
        f"/api/v1/messages/{message.id}/triage",
        json={"task": "intent", "label": "inquiry"},
        headers=headers(workspace.agent_token),
    )
    run_jobs(db, settings)
    assert len(fired(db, rule_id)) == 1


def test_a_fan_writing_to_a_waiting_conversation_fires_the_reopened_rules(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    rule_id = save(
        db,
        workspace,
        {
            "name": "重新打开 → 备注",
            "event": "conversation.reopened",
            "actions": [{"type": "note", "text": "粉丝又来消息了"}, {"type": "label", "labels": ["回头客"]}],
        },
    )
    deliver(db, workspace, "e1", "行李额度是多少")
    run_jobs(db, settings)
    assert fired(db, rule_id) == []  # a new conversation is not a reopened one
    with db.transaction() as s:
        conv = s.execute(select(Conversation)).scalar_one()
        conversation_service.set_status(s, conv, "pending", None)
    deliver(db, workspace, "e2", "还有一个问题")
    run_jobs(db, settings)
    conv = conversation(db)
    assert conv.status == "open" and "回头客" in conv.labels
    (firing,) = fired(db, rule_id)
    assert firing.event == "conversation.reopened" and firing.conversation_id == conv.id
    deliver(db, workspace, "e3", "在吗")  # open already: not reopened again
    run_jobs(db, settings)
    assert len(fired(db, rule_id)) == 1


def test_a_departments_outcome_fires_the_outcome_rules_of_that_team(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    lost = save(
        db,
        workspace,
        {
            "name": "失物结果 → 回访",
            "event": "outcome.recorded",
            "conditions": {"all": [{"field": "outcome.team", "op": "eq", "value": "lost"}]},
            "actions": [
                {"type": "label", "labels": ["已找到"]},
                {"type": "create_task", "kind": "follow_up", "due_in_minutes": 1440, "title": "确认领取"},
            ],
        },
    )
    other = save(
        db,
        workspace,
        {
            "name": "客服结果",
            "event": "outcome.recorded",
            "conditions": {"all": [{"field": "outcome.team", "op": "eq", "value": "service"}]},
            "actions": [{"type": "label", "labels": ["不该出现"]}],
        },
    )
    deliver(db, workspace, "e1", "我的包落在飞机上了")
    run_jobs(db, settings)
    with db.transaction() as s:
        conv = s.execute(select(Conversation)).scalar_one()
        team = ws_service.get_team(s, workspace.id, workspace.team_ids["lost"])
        task = casework.create_task(s, conv, kind="department", team=team, created_by="test")
        task_id = task.id
    assert fired(db, lost) == []
    with db.transaction() as s:
        casework.record_outcome(s, workspace.id, task_id, "已找到，请到 T2 柜台领取", source="api")
    run_jobs(db, settings)
    conv = conversation(db)
    assert "已找到" in conv.labels and "不该出现" not in conv.labels
    (firing,) = fired(db, lost)
    assert firing.event == "outcome.recorded" and [a["type"] for a in firing.actions] == [
        "label",
        "create_task",
    ]
    assert fired(db, other) == []


def test_unsubscribe_and_qr_scan_fire_their_rules(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    bye = save(
        db,
        workspace,
        {
            "name": "取关 → 标记",
            "event": "contact.unsubscribed",
            "actions": [{"type": "label", "labels": ["已取关"]}, {"type": "note", "text": "粉丝取消了关注"}],
        },
    )
    store = save(
        db,
        workspace,
        {
            "name": "扫 42 号店的码",
            "event": "contact.scanned",
            "conditions": {"all": [{"field": "scene", "op": "eq", "value": "store_42"}]},
            "actions": [{"type": "reply", "text": "欢迎光临 42 号店，出示本消息享 9 折"}],
        },
    )
    now = dt.datetime.now(dt.UTC)
    scanner = Sender(external_id="openid-scan", name="小陈", namespace=f"webhook:{workspace.channel_id}")
    accept(db, workspace, InboundEvent("scan-1", "scan", scanner, now, msg_type="event", scene="store_7"))
    run_jobs(db, settings)
    assert fired(db, store) == []  # another scene
    accept(db, workspace, InboundEvent("scan-2", "scan", scanner, now, msg_type="event", scene="store_42"))
    accept(db, workspace, InboundEvent("scan-2", "scan", scanner, now, msg_type="event", scene="store_42"))
    run_jobs(db, settings)
    (scan,) = fired(db, store)  # once, though the platform pushed it twice
    assert scan.event == "contact.scanned" and scan.conversation_id is None
    with db.transaction(readonly=True) as s:
        (box,) = s.execute(select(OutboxMessage)).scalars()
        assert box.payload["recipient"] == "openid-scan" and "42 号店" in box.payload["text"]
        assert s.execute(select(Conversation)).first() is None  # a scan opens no case

    # the fan who has an open conversation unfollows: the rule labels that conversation
    deliver(db, workspace, "e1", "行李额度是多少")
    run_jobs(db, settings)
    fan = Sender(external_id="fan-1", name="小李", namespace=f"webhook:{workspace.channel_id}")
    accept(db, workspace, InboundEvent("unsub-1", "unsubscribe", fan, now, msg_type="event"))
    run_jobs(db, settings)
    conv = conversation(db)
    assert "已取关" in conv.labels
    (firing,) = fired(db, bye)
    assert firing.event == "contact.unsubscribed" and firing.conversation_id == conv.id
    with db.transaction(readonly=True) as s:
        notes = [m.text for m in s.execute(select(Message).where(Message.kind == "note")).scalars()]
    assert notes == ["粉丝取消了关注"]
