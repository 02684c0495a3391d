"""Deliver fan events through the real inbound path (parse → store → job) without HTTP."""

from __future__ import annotations

from typing import Any

from scrm.channels.webhook.handler import parse
from scrm.db import Database
from scrm.inbound import service as inbound_service
from tests.conftest import Workspace
from tests.helpers import webhook_event


def deliver(
    db: Database, ws: Workspace, event_id: str, text: str, sender: str = "fan-1", **extra: Any
) -> None:
    body = webhook_event(event_id, text, sender=sender, **extra)
    event = parse(body, ws.channel_id)
    with db.transaction() as s:
        inbound_service.accept(
            s,
            workspace_id=ws.id,
            channel_account_id=ws.channel_id,
            channel_kind="webhook",
            events=[event],
            raw=body.decode(),
        )
