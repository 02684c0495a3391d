"""Data for the web tests, made through the services and the signed webhook (never raw SQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from fastapi.testclient import TestClient

from scrm.config import Settings
from scrm.contact import service as contact_service
from scrm.contact.schemas import ContactIn
from scrm.db import Database
from scrm.models import Membership, Order
from tests.conftest import Workspace
from tests.helpers import run_jobs, signed_headers, webhook_event

LOST_BAG = "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！"


def deliver(
    client: TestClient | httpx.Client,
    ws: Workspace,
    event_id: str,
    text: str,
    sender: str = "fan-1",
    **extra: Any,
) -> None:
    body = webhook_event(event_id, text, sender=sender, **extra)
    r = client.post(
        f"/hooks/webhook/{ws.channel_id}", content=body, headers=signed_headers(ws.channel_secret, body)
    )
    assert r.status_code in (200, 202), r.text


def conversation_ids(db: Database, ws: Workspace) -> list[int]:
    from scrm.conversation import service

    with db.transaction(readonly=True) as s:
        f = service.InboxFilter(statuses=())
        return [c.id for c in service.inbox_page(s, ws.id, f, limit=500)]


def seed_passenger(db: Database, ws: Workspace, sender: str = "fan-1") -> int:
    """The lost-bag passenger: phone, membership, a booking on MU5137, linked to the webhook id."""
    with db.transaction() as s:
        contact = contact_service.create(
            s,
            ws.id,
            ContactIn(
                name="林晓雯",
                phone="13916042587",
                member_no="YCM20318876",
                city="上海",
                gender="F",
                tags=["常旅客"],
                identities=[{"namespace": f"webhook:{ws.channel_id}", "external_id": sender}],
            ),
        )
        s.add(
            Membership(
                workspace_id=ws.id,
                contact_id=contact.id,
                program="云程里程",
                member_no="YCM20318876",
                tier="银卡",
                points_balance=18620,
            )
        )
        s.add(
            Order(
                workspace_id=ws.id,
                contact_id=contact.id,
                source="ota",
                external_id="YC2026051213701",
                kind="booking",
                status="flown",
                amount_fen=98000,
                placed_at=dt.datetime(2026, 5, 1, 2, 0, tzinfo=dt.UTC),
                details={
                    "flight_no": "MU5137",
                    "origin": "SHA",
                    "destination": "CTU",
                    "depart_at": "2026-05-12T08:00:00+08:00",
                    "seat": "32C",
                },
            )
        )
        return contact.id


def inbound(
    client: TestClient, db: Database, settings: Settings, ws: Workspace, event_id: str, text: str, **kw: Any
) -> int:
    deliver(client, ws, event_id, text, **kw)
    run_jobs(db, settings)
    return conversation_ids(db, ws)[0]
