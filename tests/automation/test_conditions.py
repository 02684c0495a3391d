"""Conditions through the real pipeline: sentiment, emotion (an emoji in, a matching song out),
entities, the contact's tier/VIP/followers/tags, business hours, language, channel and account;
and the close_spam action. Triage is replaced by a step that reads the labels the test gives
the message, so each condition is tested on its own."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from scrm import pipeline
from scrm.automation import service as rules
from scrm.conversation import assignment
from scrm.models import Contact, Conversation, ConversationActivity, Message, RuleFiring, SlaTimer
from scrm.pipeline import PipelineContext
from scrm.sla import service as sla
from scrm.workspace import service as ws_service
from tests.automation.helpers import deliver
from tests.helpers import Recorder, run_jobs


@pytest.fixture(autouse=True)
def given_triage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Triage = what the message's metadata says (the model itself is tested in tests/nlp)."""

    def triage(ctx: PipelineContext) -> None:
        given = (ctx.event.metadata or {}).get("triage")
        if given and ctx.message is not None:
            ctx.message.triage = dict(given)
            ctx.facts["triage"] = dict(given)

    steps = [(o, n, triage if n == "triage" else f) for o, n, f in pipeline._STEPS]
    monkeypatch.setattr(pipeline, "_STEPS", steps)


def save(db, ws, name: str, conditions: dict[str, Any], actions: list[dict[str, Any]], **kw: Any) -> int:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        return rules.save_rule(
            s,
            ws.id,
            {"name": name, "event": "message.received", "conditions": conditions, "actions": actions, **kw},
        ).id


def conv_of(db, fan: str) -> Conversation:  # type: ignore[no-untyped-def]
    with db.transaction(readonly=True) as s:
        return (
            s.execute(
                select(Conversation)
                .where(Conversation.fan_external_id == fan)
                .order_by(Conversation.id.desc())
            )
            .scalars()
            .first()
        )


def fired_for(db, rule_id: int) -> set[str]:  # type: ignore[no-untyped-def]
    """The fans the rule fired for."""
    with db.transaction(readonly=True) as s:
        out = set()
        for f in s.execute(select(RuleFiring).where(RuleFiring.rule_id == rule_id)).scalars():
            conv = s.get(Conversation, (f.workspace_id, f.conversation_id))
            out.add(conv.fan_external_id if conv else "")
        return out


def one(field: str, op: str, value: Any = None) -> dict[str, Any]:
    cond: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        cond["value"] = value
    return {"all": [cond]}


def test_sentiment_and_entities(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    angry = save(
        db,
        workspace,
        "负面 → 高",
        one("sentiment", "eq", "neg"),
        [{"type": "set_priority", "priority": "high"}],
    )
    flight = save(
        db,
        workspace,
        "有航班号",
        one("entities", "has", "flight_no"),
        [{"type": "label", "labels": ["航班"]}],
    )
    both = save(
        db,
        workspace,
        "订单或座位",
        one("entities", "has_any", ["order_no", "seat"]),
        [{"type": "note", "text": "订单/座位：{{entity.order_no}}{{entity.seat}}"}],
    )
    deliver(
        db, workspace, "a", "太差了", sender="neg", metadata={"triage": {"sentiment": "neg", "entities": []}}
    )
    deliver(
        db,
        workspace,
        "b",
        "MU5137 的 32C",
        sender="pos",
        metadata={
            "triage": {
                "sentiment": "pos",
                "entities": [{"type": "flight_no", "value": "MU5137"}, {"type": "seat", "value": "32C"}],
            }
        },
    )
    deliver(db, workspace, "c", "没有分类", sender="none")
    run_jobs(db, settings)
    assert fired_for(db, angry) == {"neg"} and conv_of(db, "neg").priority == "high"
    assert conv_of(db, "pos").priority == "normal" and conv_of(db, "none").priority == "normal"
    assert fired_for(db, flight) == {"pos"} and "航班" in conv_of(db, "pos").labels
    assert fired_for(db, both) == {"pos"}
    with db.transaction(readonly=True) as s:
        notes = [m.text for m in s.execute(select(Message).where(Message.kind == "note")).scalars()]
    assert notes == ["订单/座位：32C"]


def test_emoji_in_matching_song_out_by_emotion(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    """The Starbucks idea: the fan sends an emoji, the bot answers with a song that fits the mood."""
    songs = {
        "sad": ("晴天", "https://music.example/qingtian.mp3"),
        "happy": ("小幸运", "https://music.example/xiaoxingyun.mp3"),
    }
    on_webhook = {"field": "channel", "op": "eq", "value": "webhook"}  # the channel that sends music here
    ids = {
        emotion: save(
            db,
            workspace,
            f"{emotion} → {title}",
            {
                "all": [
                    on_webhook,
                    {"field": "emotion", "op": "eq", "value": emotion},
                    {"field": "text_length", "op": "lte", "value": 8},
                ]
            },
            [
                {
                    "type": "reply",
                    "text": f"送你一首《{title}》",
                    "msg_type": "music",
                    "payload": {"title": title, "music_url": url},
                }
            ],
        )
        for emotion, (title, url) in songs.items()
    }
    angry = save(
        db,
        workspace,
        "angry → 道歉",
        {"all": [{"field": "emotion", "op": "in", "value": ["angry", "disgust"]}]},
        [{"type": "reply", "text": "非常抱歉，客服马上联系您"}],
    )
    with Recorder().running() as rec:
        with db.transaction() as s:
            ws_service.get_channel_account(s, workspace.id, workspace.channel_id).config = {
                "callback_url": rec.url
            }
        deliver(db, workspace, "e1", "/::<", sender="sad-fan", metadata={"triage": {"emotion": "sad"}})
        deliver(
            db, workspace, "e2", "[太开心]", sender="happy-fan", metadata={"triage": {"emotion": "happy"}}
        )
        deliver(db, workspace, "e3", "/::@", sender="angry-fan", metadata={"triage": {"emotion": "angry"}})
        deliver(db, workspace, "e4", "/::<", sender="no-mood-fan")
        run_jobs(db, settings)
        run_jobs(db, settings)
    sent = {json.loads(r["body"])["recipient"]["id"]: json.loads(r["body"]) for r in rec.requests}
    assert set(sent) == {"sad-fan", "happy-fan", "angry-fan"}
    assert sent["sad-fan"]["payload"] == {"title": "晴天", "music_url": songs["sad"][1]}
    assert sent["sad-fan"]["msg_type"] == "music" and sent["angry-fan"]["msg_type"] == "text"
    assert (
        sent["happy-fan"]["payload"]["title"] == "小幸运"
        and sent["happy-fan"]["text"] == "送你一首《小幸运》"
    )
    assert sent["angry-fan"]["payload"] == {} and "抱歉" in sent["angry-fan"]["text"]
    assert fired_for(db, ids["sad"]) == {"sad-fan"} and fired_for(db, angry) == {"angry-fan"}
    with db.transaction(readonly=True) as s:
        music = s.execute(select(Message).where(Message.kind == "music")).scalars().all()
        assert {m.sender_type for m in music} == {"bot"} and len(music) == 2
        assert all(c.first_response_at is None for c in s.execute(select(Conversation)).scalars())


def test_the_contacts_tier_vip_followers_and_tags(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    tier = save(
        db,
        workspace,
        "金卡",
        one("contact.tier", "in", ["gold", "platinum"]),
        [{"type": "label", "labels": ["金卡"]}],
    )
    vip = save(
        db, workspace, "VIP", one("contact.vip", "is", True), [{"type": "set_priority", "priority": "high"}]
    )
    big = save(
        db, workspace, "大V", one("contact.followers", "gte", 100000), [{"type": "label", "labels": ["大V"]}]
    )
    media = save(
        db, workspace, "媒体", one("contact.tags", "has", "媒体"), [{"type": "label", "labels": ["媒体"]}]
    )
    for fan in ("gold", "vip", "kol", "press", "plain"):
        deliver(db, workspace, f"first-{fan}", "你好", sender=fan)
    run_jobs(db, settings)
    assert all(fired_for(db, r) == set() for r in (tier, vip, big, media))
    with db.transaction() as s:
        contacts = {c.name: c for c in s.execute(select(Contact)).scalars()}
        by_fan = {conv.fan_external_id: conv.contact_id for conv in s.execute(select(Conversation)).scalars()}
        people = {fan: s.get(Contact, (workspace.id, cid)) for fan, cid in by_fan.items()}
        people["gold"].attributes = {"tier": "Gold"}  # type: ignore[union-attr]
        people["vip"].attributes = {"vip": True}  # type: ignore[union-attr]
        people["kol"].followers = 250_000  # type: ignore[union-attr]
        people["press"].tags = ["媒体", "北京"]  # type: ignore[union-attr]
        people["plain"].followers = 99_999  # type: ignore[union-attr]
        assert contacts
    for fan in ("gold", "vip", "kol", "press", "plain"):
        deliver(db, workspace, f"second-{fan}", "在吗", sender=fan)
    run_jobs(db, settings)
    assert fired_for(db, tier) == {"gold"} and "金卡" in conv_of(db, "gold").labels
    # VIP: the vip attribute, or a gold/platinum tier (scrm.conversation.assignment.is_vip)
    assert fired_for(db, vip) == {"vip", "gold"} and conv_of(db, "vip").priority == "high"
    assert fired_for(db, big) == {"kol"} and fired_for(db, media) == {"press"}
    assert conv_of(db, "plain").labels == [] and conv_of(db, "plain").priority == "normal"


def test_business_hours(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    after_hours = save(
        db,
        workspace,
        "下班时间",
        one("business_hours", "is", False),
        [{"type": "reply", "text": "现在是非工作时间，我们上班后第一时间回复您"}],
    )
    with db.transaction() as s:  # closed every day
        sla.set_calendar(s, workspace.id, None, timezone="Asia/Shanghai", hours={}, cn_holidays=False)
    deliver(db, workspace, "e1", "有人吗", sender="night")
    run_jobs(db, settings)
    with db.transaction() as s:  # open round the clock
        all_day = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        sla.set_calendar(s, workspace.id, None, timezone="Asia/Shanghai", hours=all_day, cn_holidays=False)
    deliver(db, workspace, "e2", "有人吗", sender="day")
    run_jobs(db, settings)
    assert fired_for(db, after_hours) == {"night"}
    with db.transaction(readonly=True) as s:
        bot = [m.text for m in s.execute(select(Message).where(Message.sender_type == "bot")).scalars()]
    assert bot == ["现在是非工作时间，我们上班后第一时间回复您"]


def test_language_channel_and_account(db, settings, workspace, other_workspace) -> None:  # type: ignore[no-untyped-def]
    english = save(
        db, workspace, "英文", one("language", "eq", "en"), [{"type": "label", "labels": ["English"]}]
    )
    weibo = save(
        db, workspace, "微博", one("channel", "eq", "weibo"), [{"type": "label", "labels": ["微博"]}]
    )
    webhook = save(
        db,
        workspace,
        "网站",
        one("channel", "in", ["webhook", "wecom"]),
        [{"type": "label", "labels": ["网站"]}],
    )
    account = save(
        db,
        workspace,
        "这个账号",
        one("channel_account", "eq", str(workspace.channel_id)),
        [{"type": "label", "labels": ["App"]}],
    )
    with db.transaction() as s:
        second = ws_service.create_channel_account(
            s, workspace.id, "webhook", "官网", secrets={"secret": "whsec-second-0123456789"}
        )
    deliver(db, workspace, "e1", "Where is my bag? I left it on MU5137", sender="en")
    deliver(db, workspace, "e2", "我的包在哪里", sender="zh")
    deliver(db, workspace, "e3", "12345 !!!", sender="und")
    run_jobs(db, settings)
    assert fired_for(db, english) == {"en"} and conv_of(db, "zh").labels == ["App", "网站"]
    assert "English" in conv_of(db, "en").labels and "English" not in conv_of(db, "und").labels
    assert fired_for(db, weibo) == set()
    assert fired_for(db, webhook) == {"en", "zh", "und"} and fired_for(db, account) == {"en", "zh", "und"}
    # a message on the workspace's other webhook account: the channel rule fires, the account rule not
    from scrm.channels.webhook.handler import parse
    from scrm.inbound import service as inbound_service
    from tests.helpers import webhook_event

    event = parse(webhook_event("o1", "来自官网", sender="site"), second.id)
    with db.transaction() as s:
        inbound_service.accept(
            s,
            workspace_id=workspace.id,
            channel_account_id=second.id,
            channel_kind="webhook",
            events=[event],
            raw="{}",
        )
    run_jobs(db, settings)
    assert "site" in fired_for(db, webhook) and "site" not in fired_for(db, account)


def test_close_spam_closes_labels_and_keeps_it_out_of_the_human_queue(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    spam = save(
        db,
        workspace,
        "广告",
        {
            "any": [
                {"field": "text", "op": "contains_any", "value": ["加V", "代购"]},
                {"field": "is_spam", "op": "is", "value": True},
            ]
        },
        [{"type": "close_spam"}],
        position=1,
        stop=True,
    )
    noted = save(
        db,
        workspace,
        "垃圾 → 记录",
        one("labels.added", "has", "spam"),
        [{"type": "note", "text": "自动判为垃圾信息"}],
        event="conversation.labeled",
    )
    later = save(db, workspace, "之后的规则", {}, [{"type": "label", "labels": ["人工"]}], position=50)
    with db.transaction() as s:
        assignment.set_availability(s, workspace.id, workspace.agent_member_id, "online")
    deliver(db, workspace, "e1", "加V领取优惠券 wx123", sender="spammer")
    deliver(db, workspace, "e2", "可疑消息", sender="model-says-spam", metadata={"triage": {"is_spam": True}})
    deliver(db, workspace, "e3", "行李额度是多少", sender="fan")
    run_jobs(db, settings)
    for fan in ("spammer", "model-says-spam"):
        conv = conv_of(db, fan)
        assert conv.status == "resolved" and conv.labels == ["spam"] and conv.assignee_id is None
    assert fired_for(db, spam) == {"spammer", "model-says-spam"}
    assert fired_for(db, noted) == {"spammer", "model-says-spam"}  # the label event reached the rules
    assert fired_for(db, later) == {"fan"}  # stop after close_spam
    fan = conv_of(db, "fan")
    assert fan.status == "open" and fan.assignee_id == workspace.agent_member_id
    with db.transaction(readonly=True) as s:
        spam_conv = conv_of(db, "spammer")
        running = s.execute(
            select(SlaTimer).where(SlaTimer.conversation_id == spam_conv.id, SlaTimer.status == "running")
        ).all()
        assert running == []  # no clock runs on a closed spam case
        kinds = [
            a.kind
            for a in s.execute(
                select(ConversationActivity).where(ConversationActivity.conversation_id == spam_conv.id)
            ).scalars()
        ]
        assert "status" in kinds and "labeled" in kinds
    # the spammer writes again: a new conversation, closed the same way, never in the queue
    deliver(db, workspace, "e4", "代购正品", sender="spammer")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        convs = (
            s.execute(select(Conversation).where(Conversation.fan_external_id == "spammer")).scalars().all()
        )
        assert [c.status for c in convs] == ["resolved", "resolved"]
        assert assignment.unassigned_queue(s, workspace.id) == []
