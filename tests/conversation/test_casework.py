"""Closing the loop (S7): the department's outcome reaches the fan once, on the same thread."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from scrm.automation import service as rules
from scrm.casework import service as casework
from scrm.channels.webhook.handler import sign
from scrm.errors import Conflict
from scrm.models import CaseTask, Conversation, ConversationActivity, OutboxMessage
from scrm.workspace import service as ws_service
from tests.automation.helpers import deliver
from tests.helpers import Recorder, run_jobs

LOST_BAG = "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！"
FOUND = "已找到，在成都双流 T2 到达层 3 号柜台"


def setup(db, ws, url: str) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        ws_service.get_channel_account(s, ws.id, ws.channel_id).config = {"callback_url": url}
        rules.save_rule(
            s,
            ws.id,
            {
                "name": "lost",
                "event": "message.received",
                "conditions": {"all": [{"field": "text", "op": "contains_any", "value": ["落在"]}]},
                "actions": [
                    {"type": "route", "team": "lost"},
                    {"type": "create_task", "kind": "follow_up", "due_in_minutes": 120, "title": "回访失主"},
                ],
            },
        )


def test_outcome_goes_back_to_the_fan_once(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    with Recorder().running() as rec:
        setup(db, workspace, rec.url)
        deliver(db, workspace, "e1", LOST_BAG, conversation_key="weibo-status-1")
        run_jobs(db, settings)
        with db.transaction() as s:
            task = s.execute(select(CaseTask).where(CaseTask.kind == "department")).scalar_one()
            follow = s.execute(select(CaseTask).where(CaseTask.kind == "follow_up")).scalar_one()
            assert follow.due_at is not None and follow.status == "open"
            _, new = casework.record_outcome(
                s,
                workspace.id,
                task.id,
                FOUND,
                source="api",
                actor_id=workspace.admin_member_id,
                actor_label="失物招领",
            )
            assert new
        with db.transaction() as s:  # a repeat (double click, retried webhook) changes nothing
            _, new = casework.record_outcome(s, workspace.id, task.id, FOUND, source="api")
            assert not new
        try:
            with db.transaction() as s:
                casework.record_outcome(s, workspace.id, task.id, "另一个结果", source="api")
            raise AssertionError("a second, different outcome must be refused")
        except Conflict:
            pass
        run_jobs(db, settings)
        run_jobs(db, settings)
    sent = [json.loads(r["body"]) for r in rec.requests]
    assert [b["text"] for b in sent] == [FOUND]
    assert "weibo-status-1" in json.dumps(sent[0])  # the same thread the fan wrote on
    with db.transaction(readonly=True) as s:
        conv = s.execute(select(Conversation)).scalar_one()
        assert conv.first_response_at is not None  # a department's answer is a human answer
        kinds = [
            a.kind
            for a in s.execute(select(ConversationActivity).order_by(ConversationActivity.id)).scalars()
        ]
        assert (
            kinds.index("routed")
            < kinds.index("task_created")
            < kinds.index("outcome")
            < kinds.index("outcome_sent")
        )
        outcome = next(a for a in s.execute(select(ConversationActivity)).scalars() if a.kind == "outcome")
        assert outcome.actor_id == workspace.admin_member_id and outcome.data["by"] == "失物招领"
        assert s.execute(select(OutboxMessage)).scalars().one().status == "sent"


def test_signed_outcome_webhook_from_the_department(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from scrm.app import create_app

    client = TestClient(create_app(settings, db))
    with Recorder().running() as rec:
        setup(db, workspace, rec.url)
        deliver(db, workspace, "e1", LOST_BAG)
        run_jobs(db, settings)
        with db.transaction() as s:
            task_id = s.execute(select(CaseTask.id).where(CaseTask.kind == "department")).scalar_one()
            secret = casework.rotate_hook_secret(s, workspace.id, workspace.team_ids["lost"])
        url = f"/api/v1/casework/hooks/{workspace.slug}/lost"
        body = json.dumps(
            {"task_id": str(task_id), "text": FOUND, "external_id": "LF-88"}, ensure_ascii=False
        ).encode()
        ts = str(int(time.time()))
        bad = client.post(
            url, content=body, headers={"x-scrm-timestamp": ts, "x-scrm-signature": "sha256=00"}
        )
        assert bad.status_code == 401
        headers = {"x-scrm-timestamp": ts, "x-scrm-signature": sign(secret, ts, body)}
        assert client.post(url, content=body, headers=headers).status_code == 202
        assert client.post(url, content=body, headers=headers).json()["status"] == "duplicate"
        junk = b'{"task_id": "x"}'
        r = client.post(
            url, content=junk, headers={"x-scrm-timestamp": ts, "x-scrm-signature": sign(secret, ts, junk)}
        )
        assert r.status_code == 422
        run_jobs(db, settings)
    assert [json.loads(r["body"])["text"] for r in rec.requests] == [FOUND]
