"""Which rules the push alone decides (scrm.automation.passive.answer_for): pure, no database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from scrm.automation import engine
from scrm.automation.passive import answer_for
from scrm.channels.base import InboundEvent, Sender
from scrm.channels.registry import AccountView

ACCOUNT = AccountView(
    id=7, workspace_id=1, kind="wechat", name="公众号", external_id="wx", config={}, secrets={}
)


def rules(*specs: dict[str, Any]) -> engine.RuleSet:
    return engine.RuleSet(
        [
            engine.RuleSpec(
                id=i + 1,
                name=s.get("name", f"r{i}"),
                event=s.get("event", "message.received"),
                position=i,
                stop=s.get("stop", False),
                conditions=s.get("conditions", {}),
                actions=s["actions"],
            )
            for i, s in enumerate(specs)
        ]
    )


def event(text: str = "", kind: str = "message", visibility: str = "private", **kw: Any) -> InboundEvent:
    return InboundEvent(
        external_id="1",
        kind=kind,  # type: ignore[arg-type]
        sender=Sender("fan"),
        sent_at=dt.datetime.now(dt.UTC),
        text=text,
        visibility=visibility,  # type: ignore[arg-type]
        **kw,
    )


KEYWORD = {"all": [{"field": "text", "op": "contains_any", "value": ["营业时间"]}]}
REPLY = [{"type": "reply", "text": "9:00-21:00"}]


def test_a_keyword_reply_is_passive_and_names_its_rule() -> None:
    got = answer_for(rules({"conditions": KEYWORD, "actions": REPLY}), ACCOUNT, event("营业时间？"))
    assert got is not None and got.reply == "9:00-21:00" and got.source["rule_id"] == "1"
    assert answer_for(rules({"conditions": KEYWORD, "actions": REPLY}), ACCOUNT, event("你好")) is None


def test_menu_click_and_scene_are_decided_by_the_push() -> None:
    rs = rules(
        {
            "event": "contact.menu_clicked",
            "conditions": {"all": [{"field": "menu_key", "op": "eq", "value": "HOURS"}]},
            "actions": REPLY,
        }
    )
    assert answer_for(rs, ACCOUNT, event(kind="click", menu_key="HOURS")) is not None
    assert answer_for(rs, ACCOUNT, event(kind="click", menu_key="OTHER")) is None


def test_what_the_push_cannot_decide_is_left_to_the_pipeline() -> None:
    needs_triage = {"conditions": {"all": [{"field": "intent", "op": "eq", "value": "spam"}]}, "actions": []}
    # an earlier rule reads triage: it might fire and stop first
    assert (
        answer_for(rules(needs_triage, {"conditions": KEYWORD, "actions": REPLY}), ACCOUNT, event("营业时间"))
        is None
    )
    # a reply with variables, a canned reply, a public reply, or a public mention
    for action in (
        {"type": "reply", "text": "{{contact.name}} 您好"},
        {"type": "reply", "canned": "hours"},
        {"type": "reply", "text": "hi", "visibility": "public"},
        {"type": "lookup_booking"},
    ):
        assert (
            answer_for(rules({"conditions": KEYWORD, "actions": [action]}), ACCOUNT, event("营业时间"))
            is None
        )
    assert (
        answer_for(
            rules({"conditions": KEYWORD, "actions": REPLY}), ACCOUNT, event("营业时间", "mention", "public")
        )
        is None
    )
    # conversation.created rules run first on a new conversation, which only the database knows
    created = {"event": "conversation.created", "actions": [{"type": "label", "labels": ["x"]}]}
    assert (
        answer_for(rules(created, {"conditions": KEYWORD, "actions": REPLY}), ACCOUNT, event("营业时间"))
        is None
    )


def test_a_matching_rule_without_a_reply_lets_a_later_one_answer_unless_it_stops() -> None:
    label = {"conditions": KEYWORD, "actions": [{"type": "label", "labels": ["hours"]}]}
    later = {"conditions": KEYWORD, "actions": REPLY}
    assert answer_for(rules(label, later), ACCOUNT, event("营业时间")) is not None
    assert answer_for(rules({**label, "stop": True}, later), ACCOUNT, event("营业时间")) is None
