"""Rules that answer in the platform's own response (a passive reply).

WeChat, WeCom and Weibo fan service accept a reply in the body of the response to their push:
no API call, no token, no customer-service quota, and the fan sees it at once. A rule can be
answered that way only when the push alone decides it: the rule's conditions read nothing but
the push (text, keywords, channel, message kind, QR scene, menu key, ...), every rule before it
on that event is decidable too, and its reply is a fixed text. The welcome on subscribe and
keyword auto-replies are such rules; anything that needs triage, the contact or the
conversation goes through the pipeline and the outbox as usual.

The answer must be the same for every retry of one push and must not write to the database;
the compiled rules are read through a short per-process cache (one small query per workspace
every few seconds at most).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from scrm.automation import engine, service
from scrm.channels.base import InboundEvent
from scrm.channels.registry import AccountView
from scrm.db import Database
from scrm.inbound.passive import PassiveAnswer

# Rule fields that the push alone decides.
PUSH_FIELDS = frozenset(
    {
        "text",
        "text_length",
        "language",
        "channel",
        "channel_account",
        "visibility",
        "message_kind",
        "msg_type",
        "scene",
        "menu_key",
    }
)
EVENT_FOR_KIND = {
    "message": "message.received",
    "subscribe": "contact.subscribed",
    "scan": "contact.scanned",
    "click": "contact.menu_clicked",
}
CACHE_SECONDS = 5.0


def _decidable(spec: engine.RuleSpec) -> bool:
    conditions = [c for group in spec.conditions.values() for c in group if isinstance(c, dict)]
    return all(c.get("field") in PUSH_FIELDS for c in conditions)


def _fixed_reply(spec: engine.RuleSpec) -> str | None:
    """The rule's reply if it is one fixed private text, else None."""
    replies = [a for a in spec.actions if a.get("type") in engine.REPLY_ACTIONS]
    if len(replies) != 1:
        return None
    action = replies[0]
    if action["type"] != "reply" or action.get("canned") or action.get("msg_type", "text") != "text":
        return None
    if action.get("visibility") == "public":
        return None
    text = str(action.get("text") or "").strip()
    if not text or "{{" in text:  # variables need the contact or triage
        return None
    return text


def answer_for(rules: engine.RuleSet, account: AccountView, event: InboundEvent) -> PassiveAnswer | None:
    """The reply the rules give this push, if the push alone decides it; else None."""
    name = EVENT_FOR_KIND.get(event.kind)
    if name is None or event.visibility != "private":
        return None
    if name == "message.received" and rules.by_event.get("conversation.created"):
        return None  # those run first when the conversation is new, which only the database knows
    compiled = rules.by_event.get(name)
    if not compiled:
        return None
    subject = engine.Subject(
        event=name,
        text=event.text or "",
        values={
            "channel": account.kind,
            "channel_account": str(account.id),
            "visibility": event.visibility,
            "message_kind": event.kind,
            "msg_type": event.msg_type,
            "scene": event.scene,
            "menu_key": event.menu_key,
        },
    )
    hits = rules.keyword_hits(subject.text)
    for rule in compiled:
        if not _decidable(rule.spec):
            return None  # it might fire (and stop) first: only the pipeline can tell
        if not rule.matches(subject, hits):
            continue
        text = _fixed_reply(rule.spec)
        if text is not None:
            return PassiveAnswer(text, {"rule_id": str(rule.spec.id), "rule": rule.spec.name})
        if rule.spec.stop or any(a.get("type") in engine.REPLY_ACTIONS for a in rule.spec.actions):
            return None
    return None


def replier(db: Database) -> Callable[[AccountView, InboundEvent], Any | None]:
    cache: dict[int, tuple[float, engine.RuleSet]] = {}
    lock = threading.Lock()

    def rules_of(workspace_id: int) -> engine.RuleSet:
        now = time.monotonic()
        with lock:
            hit = cache.get(workspace_id)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        with db.transaction(readonly=True) as session:
            rules = service.ruleset(session, workspace_id)
        with lock:
            cache[workspace_id] = (now, rules)
        return rules

    def reply(account: AccountView, event: InboundEvent) -> PassiveAnswer | None:
        if EVENT_FOR_KIND.get(event.kind) is None or event.visibility != "private":
            return None
        return answer_for(rules_of(account.workspace_id), account, event)

    return reply
