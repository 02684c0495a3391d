"""InboundEvent <-> JSON, for storing the parsed event next to the raw body."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from scrm.channels.base import InboundEvent, Sender


def to_json(event: InboundEvent) -> dict[str, Any]:
    data = dataclasses.asdict(event)
    data["sent_at"] = event.sent_at.isoformat()
    return data


def from_json(data: dict[str, Any]) -> InboundEvent:
    values = dict(data)
    values["sender"] = Sender(**values["sender"])
    values["sent_at"] = dt.datetime.fromisoformat(values["sent_at"])
    return InboundEvent(**values)
