"""A department's outcome goes back on the fan's own channel and thread: on WeChat outside the
48-hour customer-service window as the account's template message, on Weibo as a public
comment reply under the fan's comment (fake WeChat and Weibo servers on 127.0.0.1)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from scrm.automation import service as rules
from scrm.casework import service as casework
from scrm.models import CaseTask, Message, OutboxMessage
from tests.channels.test_integration_wechat import FAN as WECHAT_FAN
from tests.channels.test_integration_wechat import Wechat, fan_writes
from tests.channels.test_integration_weibo import FAN as WEIBO_FAN
from tests.channels.test_integration_weibo import Weibo, poll
from tests.helpers import run_jobs

FOUND = "已找到您的背包，请到成都双流 T2 到达层 3 号柜台领取"


def route_lost(db, ws) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        rules.save_rule(
            s,
            ws.id,
            {
                "name": "失物",
                "event": "message.received",
                "conditions": {"all": [{"field": "text", "op": "contains_any", "value": ["落在", "丢了"]}]},
                "actions": [{"type": "route", "team": "lost"}],
            },
        )


def record(db, ws) -> int:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        task = s.execute(select(CaseTask).where(CaseTask.kind == "department")).scalar_one()
        done, new = casework.record_outcome(
            s, ws.id, task.id, FOUND, source="webhook", actor_label="失物招领"
        )
        assert new and done.reply_message_id is not None
        return done.reply_message_id


def test_a_wechat_outcome_outside_the_48_hour_window_goes_out_as_the_template(
    db, settings, workspace, wechat: Wechat, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    route_lost(db, workspace)
    fan_writes(wechat, db, settings, "我的背包落在飞机上了")
    # the department answers three days later: the fan's last message is older than 48 hours
    three_days_on = dt.datetime.now(dt.UTC) + dt.timedelta(hours=72)
    monkeypatch.setattr("scrm.outbox.tasks.utcnow", lambda: three_days_on)
    message_id = record(db, workspace)
    run_jobs(db, settings)
    run_jobs(db, settings)
    assert wechat.fake.sent == []  # no customer-service message: WeChat would refuse it (45015)
    (template,) = wechat.fake.templates_sent
    assert template["touser"] == WECHAT_FAN and template["template_id"] == "TPL_REPLY"
    assert FOUND[:100] in str(template["data"])
    with db.transaction(readonly=True) as s:
        reply = s.get(Message, (workspace.id, message_id))
        assert reply is not None and reply.sender_type == "agent" and reply.text == FOUND
        # the customer-service send is recorded as refused, with the reason; the template went out
        assert reply.status == "failed" and "48" in (reply.error or "")
        rows = list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())
    task_id = rows[0].idempotency_key.split(":")[1]
    assert [(r.payload["msg_type"], r.status) for r in rows] == [("text", "failed"), ("template", "sent")]
    assert rows[0].idempotency_key == f"outcome:{task_id}" and rows[1].payload["fallback_for"] == rows[0].id
    # the same outcome again (a retried webhook): nothing more goes out
    with db.transaction() as s:
        _, new = casework.record_outcome(s, workspace.id, int(task_id), FOUND, source="webhook")
    run_jobs(db, settings)
    assert not new and len(wechat.fake.templates_sent) == 1


def test_a_wechat_outcome_inside_the_window_is_a_customer_service_message(
    db, settings, workspace, wechat: Wechat
) -> None:  # type: ignore[no-untyped-def]
    route_lost(db, workspace)
    fan_writes(wechat, db, settings, "我的背包落在飞机上了")
    record(db, workspace)
    run_jobs(db, settings)
    assert wechat.fake.sent == [{"touser": WECHAT_FAN, "msgtype": "text", "text": {"content": FOUND}}]
    assert wechat.fake.templates_sent == []


def test_a_weibo_outcome_to_a_public_comment_is_a_public_comment_reply(
    db, settings, workspace, weibo: Weibo
) -> None:  # type: ignore[no-untyped-def]
    route_lost(db, workspace)
    post = weibo.fake.add_brand_post("国庆出行提醒")
    comment = weibo.fake.add_comment(
        "@云程航空 我的背包落在 MU5137 上了，怎么找回？", status_id=post, user_id=WEIBO_FAN
    )
    poll(db, settings, workspace, weibo, "slot-1")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        task = s.execute(select(CaseTask).where(CaseTask.kind == "department")).scalar_one()
        assert task.details["channel"]["visibility"] == "public"
    message_id = record(db, workspace)
    run_jobs(db, settings)
    (reply,) = weibo.fake.replies
    assert reply["id"] == post and reply["cid"] == comment and reply["comment"] == FOUND
    assert weibo.fake.requests_to("/2/comments/reply.json")
    assert not weibo.fake.requests_to("/2/messages/reply.json")  # not a private message
    with db.transaction(readonly=True) as s:
        sent = s.get(Message, (workspace.id, message_id))
        assert sent is not None and sent.visibility == "public" and sent.status == "sent"
