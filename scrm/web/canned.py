"""Canned replies (话术): fill their variables for one conversation, and check a reply against the
workspace's publishing rules before it is sent."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scrm.models import Contact, Message

VAR_RE = re.compile(r"\{\{\s*([a-z_]+)\.([a-z_]+)\s*\}\}")
ENTITY_KEYS = ("flight_no", "seat", "order_no", "phone", "date", "place", "product")


def entities_of(message: Message | None) -> dict[str, str]:
    """The first value of each entity type in a message's triage (list or mapping form)."""
    if message is None:
        return {}
    raw = (message.triage or {}).get("entities") or []
    out: dict[str, str] = {}
    if isinstance(raw, dict):
        for k, v in raw.items():
            value = v[0] if isinstance(v, list) and v else v
            if isinstance(value, dict):
                value = value.get("value")
            if value:
                out.setdefault(str(k), str(value))
    elif isinstance(raw, list):
        for e in raw:
            if isinstance(e, dict) and e.get("type") and e.get("value"):
                out.setdefault(str(e["type"]), str(e["value"]))
    return out


def variables(contact: Contact | None, agent_name: str, entities: dict[str, str]) -> dict[str, str]:
    values = {"agent.name": agent_name}
    if contact is not None:
        values["contact.name"] = contact.name or ""
    for key, value in entities.items():
        values[f"entities.{key}"] = value
    return values


def fill(body: str, values: dict[str, str]) -> str:
    """Replace known variables; unknown ones stay visible so the agent fills them in."""

    def sub(m: re.Match[str]) -> str:
        value = values.get(f"{m.group(1)}.{m.group(2)}")
        return value if value else m.group(0)

    return VAR_RE.sub(sub, body)


@dataclass
class PolicyCheck:
    forbidden: list[str] = field(default_factory=list)
    unfilled: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.forbidden and not self.unfilled

    def as_dict(self) -> dict[str, Any]:
        return {"forbidden": self.forbidden, "unfilled": self.unfilled}


def check(text: str, forbidden_words: Iterable[str]) -> PolicyCheck:
    lower = text.lower()
    return PolicyCheck(
        forbidden=[w for w in forbidden_words if w and w.lower() in lower],
        unfilled=sorted({m.group(0) for m in VAR_RE.finditer(text)}),
    )
