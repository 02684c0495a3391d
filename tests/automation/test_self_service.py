"""Self-service (S8): welcome on subscribe, a menu click that looks up the fan's flight."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from scrm.automation import service as rules
from scrm.channels.base import InboundEvent, Sender
from scrm.contact import service as contact_service
from scrm.inbound import service as inbound_service
from scrm.models import Conversation, Order, OutboxMessage
from tests.helpers import run_jobs


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


def sender(ws) -> Sender:  # type: ignore[no-untyped-def]
    return Sender(external_id="openid-1", name="小周", namespace=f"webhook:{ws.channel_id}")


def test_welcome_on_subscribe_and_flight_status_on_menu_click(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        rules.save_rule(
            s,
            workspace.id,
            {
                "name": "welcome",
                "event": "contact.subscribed",
                "actions": [{"type": "reply", "text": "欢迎关注云程航空！"}],
            },
        )
        rules.save_rule(
            s,
            workspace.id,
            {
                "name": "flight status",
                "event": "contact.menu_clicked",
                "conditions": {"all": [{"field": "menu_key", "op": "eq", "value": "FLIGHT_STATUS"}]},
                "actions": [{"type": "lookup_booking"}],
            },
        )
    now = dt.datetime.now(dt.UTC)
    accept(
        db,
        workspace,
        InboundEvent("sub-1", "subscribe", sender(workspace), now, msg_type="event", scene="gate12"),
    )
    run_jobs(db, settings)
    with db.transaction() as s:
        ident = contact_service.identity(s, workspace.id, f"webhook:{workspace.channel_id}", "openid-1")
        assert ident is not None
        s.add(
            Order(
                workspace_id=workspace.id,
                contact_id=ident.contact_id,
                source="booking",
                external_id="B1",
                kind="booking",
                status="已值机",
                details={
                    "flight_no": "MU5137",
                    "origin": "上海",
                    "destination": "成都",
                    "depart_at": (now + dt.timedelta(days=1)).isoformat(),
                },
            )
        )
    accept(
        db,
        workspace,
        InboundEvent("click-1", "click", sender(workspace), now, msg_type="event", menu_key="FLIGHT_STATUS"),
    )
    accept(
        db,
        workspace,
        InboundEvent("click-1", "click", sender(workspace), now, msg_type="event", menu_key="FLIGHT_STATUS"),
    )
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        texts = [
            o.payload["text"] for o in s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()
        ]
        assert texts[0] == "欢迎关注云程航空！"
        assert len(texts) == 2 and "MU5137" in texts[1] and "上海 → 成都" in texts[1]
        assert s.execute(select(Conversation)).first() is None  # self-service opens no case


FAQ = {
    "name": "行李额度 FAQ",
    "event": "message.received",
    "position": 5,
    "stop": True,
    "conditions": {"any": [{"field": "text", "op": "contains_any", "value": ["行李额度"]}]},
    "actions": [{"type": "reply", "text": "经济舱免费托运 20 公斤。", "await_fan": True}],
}
HUMAN = {
    "name": "front desk",
    "event": "message.received",
    "position": 100,
    "conditions": {"none": [{"field": "team", "op": "present"}]},
    "actions": [{"type": "route", "team": "service"}],
}


def _conv_and_timer(s, ws):  # type: ignore[no-untyped-def]
    from scrm.models import SlaTimer

    conv = s.execute(select(Conversation).where(Conversation.workspace_id == ws.id)).scalar_one()
    timer = s.execute(
        select(SlaTimer).where(SlaTimer.conversation_id == conv.id, SlaTimer.metric == "first_response")
    ).scalar_one()
    return conv, timer


def test_self_service_waits_on_the_fan_and_a_follow_up_reaches_a_human(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    from scrm.conversation import assignment
    from tests.automation.helpers import deliver

    with db.transaction() as s:
        assignment.set_availability(s, workspace.id, workspace.agent_member_id, "online")
        rules.save_rule(s, workspace.id, FAQ)
        rules.save_rule(s, workspace.id, HUMAN)
    deliver(db, workspace, "m1", "请问托运行李额度是多少")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        conv, timer = _conv_and_timer(s, workspace)
        # answered by the bot: waiting on the fan, in nobody's queue, its clock paused
        assert (conv.status, conv.assignee_id, conv.first_response_at) == ("pending", None, None)
        assert timer.status == "paused" and timer.remaining_seconds and timer.remaining_seconds > 500
        bot = [o.payload["text"] for o in s.execute(select(OutboxMessage)).scalars()]
        assert bot == ["经济舱免费托运 20 公斤。"]
    # the answer was not enough: the fan writes again and a human gets the conversation
    deliver(db, workspace, "m2", "还是不清楚，转人工")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        conv, timer = _conv_and_timer(s, workspace)
        assert conv.status == "open" and conv.assignee_id == workspace.agent_member_id
        assert timer.status == "running" and timer.due_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=8)


def test_self_service_never_parks_a_conversation_a_human_answered(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    from scrm.conversation import service as conversation_service
    from scrm.workspace.schemas import Principal
    from tests.automation.helpers import deliver

    with db.transaction() as s:
        rules.save_rule(s, workspace.id, FAQ)
    deliver(db, workspace, "m1", "你好，我的航班取消了")
    run_jobs(db, settings)
    with db.transaction() as s:
        conv, _ = _conv_and_timer(s, workspace)
        agent = Principal(workspace.id, workspace.agent_member_id, 0, "agent", "客服小王")
        conversation_service.reply(s, agent, conv.id, "您好，正在为您查询。")
    deliver(db, workspace, "m2", "顺便问下行李额度")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        conv, _ = _conv_and_timer(s, workspace)
        assert conv.status == "open"  # the FAQ answered, but the agent's conversation stays theirs


def test_flight_lookup_finding_nothing_stays_in_the_human_queue(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    from tests.automation.helpers import deliver

    with db.transaction() as s:
        rules.save_rule(
            s,
            workspace.id,
            {
                "name": "航班动态",
                "event": "message.received",
                "conditions": {"any": [{"field": "text", "op": "contains_any", "value": ["登机"]}]},
                "actions": [{"type": "lookup_booking", "await_fan": True}],
            },
        )
    deliver(db, workspace, "m1", "几点登机？")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        conv, timer = _conv_and_timer(s, workspace)
        assert conv.status == "open" and timer.status == "running"


def test_await_fan_must_be_a_boolean(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from scrm.errors import Invalid

    bad = {**FAQ, "actions": [{"type": "reply", "text": "x", "await_fan": "yes"}]}
    with db.transaction() as s, pytest.raises(Invalid, match="await_fan"):
        rules.save_rule(s, workspace.id, bad)
