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
