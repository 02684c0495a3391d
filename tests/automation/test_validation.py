"""Rules are refused on save with the reason (service, API, CLI, admin form), never at run time:
every action's parameters, reply message types and payloads, placeholders, reply types the
channel cannot send, cycles across several rules and chains too long. The run-time depth cap
stops what the save-time check cannot see."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from scrm.automation import engine
from scrm.automation import service as rules
from scrm.cli import app as cli
from scrm.errors import Invalid
from scrm.kit.time import utcnow
from scrm.models import AutomationRule, Conversation, ConversationActivity, RuleFiring
from tests.automation.helpers import deliver
from tests.helpers import run_concurrently, run_jobs

ADMIN = "authorization"


def rule(
    actions: list[dict[str, Any]], conditions: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    return {
        "name": kw.pop("name", "r"),
        "event": kw.pop("event", "message.received"),
        "conditions": conditions or {},
        "actions": actions,
        **kw,
    }


def refused(db, ws, data: dict[str, Any]) -> Invalid:  # type: ignore[no-untyped-def]
    with pytest.raises(Invalid) as exc, db.transaction() as s:
        rules.save_rule(s, ws.id, data)
    with db.transaction(readonly=True) as s:
        assert s.execute(select(AutomationRule).where(AutomationRule.name == data["name"])).first() is None
    return exc.value


WEBHOOK_ONLY = {"all": [{"field": "channel", "op": "eq", "value": "webhook"}]}
WECHAT_ONLY = {"all": [{"field": "channel", "op": "in", "value": ["wechat"]}]}


@pytest.mark.parametrize(
    ("actions", "conditions", "reason"),
    [
        # reply message types and payloads
        (
            [{"type": "reply", "text": "x", "msg_type": "sticker"}],
            None,
            "msg_type 'sticker' is not a reply type",
        ),
        ([{"type": "reply", "msg_type": "image"}], WECHAT_ONLY, "an image reply needs payload.media_id"),
        (
            [{"type": "reply", "msg_type": "image", "payload": {"media_id": "  "}}],
            WECHAT_ONLY,
            "payload.media_id must be a string, not blank",
        ),
        (
            [{"type": "reply", "msg_type": "image", "payload": {"media_id": "m1", "url": "x"}}],
            WECHAT_ONLY,
            "payload of an image reply has no 'url' (use media_id, kf_account)",
        ),
        (
            [{"type": "reply", "msg_type": "music", "payload": {"title": "晴天"}}],
            WEBHOOK_ONLY,
            "a music reply needs payload.music_url",
        ),
        (
            [{"type": "reply", "msg_type": "music", "payload": {"title": "晴天", "music_url": "ftp://x/y"}}],
            WEBHOOK_ONLY,
            "payload.music_url must be an http(s) URL",
        ),
        (
            [{"type": "reply", "msg_type": "news", "payload": {"articles": []}}],
            WECHAT_ONLY,
            "a news reply holds 1 to 8 articles",
        ),
        (
            [{"type": "reply", "msg_type": "news", "payload": {"articles": [{"description": "无标题"}]}}],
            WECHAT_ONLY,
            "payload.articles[0] needs a title",
        ),
        (
            [
                {
                    "type": "reply",
                    "msg_type": "news",
                    "payload": {"articles": [{"title": "t", "url": "javascript:alert(1)"}]},
                }
            ],
            WECHAT_ONLY,
            "payload.articles[0].url must be an http(s) URL",
        ),
        ([{"type": "reply", "text": "hi", "payload": {"media_id": "m"}}], None, "payload of a text reply"),
        ([{"type": "reply", "msg_type": "text", "payload": "x"}], None, "'payload' has the wrong type"),
        ([{"type": "reply", "text": "   "}], None, "a text reply needs text or canned"),
        # a type the channel the rule can fire on cannot send
        (
            [{"type": "reply", "msg_type": "image", "payload": {"media_id": "m1"}}],
            None,
            "an image reply cannot be sent on wecom, weibo: add the condition channel in [webchat",
        ),
        (
            [{"type": "reply", "msg_type": "news", "payload": {"articles": [{"title": "t"}]}}],
            {"all": [{"field": "channel", "op": "in", "value": ["wechat", "weibo"]}]},
            "cannot be sent on weibo",
        ),
        (
            [
                {
                    "type": "reply",
                    "msg_type": "music",
                    "payload": {"title": "t", "music_url": "https://m/x.mp3"},
                }
            ],
            {"all": [{"field": "channel", "op": "in", "value": ["wechat", "weibo"]}]},
            "a music reply cannot be sent on weibo: add the condition channel in [webhook, wechat]",
        ),
        (
            [{"type": "reply", "msg_type": "music", "payload": {"music_url": "https://m.example.com/1.mp3"}}],
            WECHAT_ONLY,
            "a music reply needs payload.title",
        ),
        (
            [
                {
                    "type": "reply",
                    "msg_type": "music",
                    "payload": {
                        "title": "晴天",
                        "music_url": "https://m.example.com/1.mp3",
                        "hq_music_url": "x",
                    },
                }
            ],
            WECHAT_ONLY,
            "payload.hq_music_url must be an http(s) URL",
        ),
        (
            [
                {
                    "type": "reply",
                    "msg_type": "music",
                    "payload": {"title": "晴天", "musicurl": "https://m.example.com/1.mp3"},
                }
            ],
            WECHAT_ONLY,
            "payload of a music reply has no 'musicurl'",
        ),
        (
            [
                {
                    "type": "reply",
                    "msg_type": "image",
                    "payload": {"media_id": "m1"},
                    "visibility": "public",
                }
            ],
            WECHAT_ONLY,
            "public replies (comment replies) are text only",
        ),
        # placeholders
        ([{"type": "reply", "text": "您好 {{contact.nmae}}"}], None, "unknown placeholder {{contact.nmae}}"),
        ([{"type": "note", "text": "航班 {{ Flight }}"}], None, "unknown placeholder {{Flight}}"),
        # every other action's parameters
        ([{"type": "note", "text": "  "}], None, "'text' must not be blank"),
        ([{"type": "note", "text": "x" * 2001}], None, "'text' longer than 2000"),
        ([{"type": "create_task", "title": "x" * 201}], None, "'title' longer than 200"),
        ([{"type": "create_task", "due_in_minutes": "60"}], None, "'due_in_minutes' has the wrong type"),
        ([{"type": "create_task", "due_in_minutes": True}], None, "'due_in_minutes' has the wrong type"),
        ([{"type": "create_task", "kind": "department"}], None, "a department task needs a team"),
        ([{"type": "escalate", "reassign": "yes"}], None, "'reassign' has the wrong type"),
        ([{"type": "notify", "url": "https://x.test/" + "a" * 2000}], None, "at most 2000 characters"),
        ([{"type": "notify", "url": "https://x.test/h", "note": "n" * 501}], None, "'note' longer than 500"),
        ([{"type": "assign", "member": "agent-7"}], None, "member must be a member id"),
        ([{"type": "assign", "skills": ["英语", " "]}], None, "skills must be"),
        ([{"type": "assign", "skills": ["lang:en", "a,b"]}], None, "actions[0].skills[1]"),
        ([{"type": "label", "labels": [f"l{i}" for i in range(21)]}], None, "at most 20 labels"),
        ([{"type": "lookup_booking", "not_found_text": " "}], None, "'not_found_text' must not be blank"),
        ([{"type": "lookup_booking", "visibility": "secret"}], None, "visibility must be public or private"),
        ([{"type": "close_spam", "reason": "ads"}], None, "unknown parameter 'reason' for close_spam"),
        # the nearest-store reply
        (
            [{"type": "nearest_store", "text": "最近的店：{{store.nmae}}"}],
            None,
            "unknown placeholder {{store.nmae}} in 'text' (use {{contact.name}} or {{store.name}}",
        ),
        (
            [{"type": "nearest_store", "no_location_text": "离您 {{store.distance_km}} 公里"}],
            None,
            "unknown placeholder {{store.distance_km}} in 'no_location_text'",
        ),
        ([{"type": "reply", "text": "门店：{{store.name}}"}], None, "unknown placeholder {{store.name}}"),
        ([{"type": "nearest_store", "no_store_text": "  "}], None, "'no_store_text' must not be blank"),
        ([{"type": "nearest_store", "text": "x" * 2001}], None, "'text' longer than 2000"),
        (
            [{"type": "nearest_store", "max_distance_km": 0}],
            None,
            "max_distance_km must be between 1 and 20000",
        ),
        ([{"type": "nearest_store", "max_distance_km": 5.5}], None, "'max_distance_km' has the wrong type"),
        ([{"type": "nearest_store", "max_distance_km": True}], None, "'max_distance_km' has the wrong type"),
        ([{"type": "nearest_store", "visibility": "secret"}], None, "visibility must be public or private"),
        ([{"type": "nearest_store", "radius": 3}], None, "unknown parameter 'radius' for nearest_store"),
        ([{"type": "route", "team": " "}], None, "'team' must not be blank"),
        # condition values that can never match
        (
            [{"type": "note", "text": "x"}],
            {"all": [{"field": "channel", "op": "eq", "value": "wexin"}]},
            "channel 'wexin' does not exist",
        ),
        (
            [{"type": "note", "text": "x"}],
            {"any": [{"field": "priority", "op": "in", "value": ["asap"]}]},
            "priority 'asap' does not exist",
        ),
    ],
)
def test_bad_action_parameters_are_refused_with_the_reason(
    db, workspace, actions, conditions, reason
) -> None:  # type: ignore[no-untyped-def]
    if "webchat" in reason:  # the message names the channels that can send it
        reason = reason.replace("[webchat", "[webhook, wechat]")
    exc = refused(db, workspace, rule(actions, conditions, name="bad"))
    assert exc.status_code == 422
    assert reason in exc.message, exc.message
    assert exc.message.startswith(("actions[0]", "conditions."))


@pytest.mark.parametrize(
    ("actions", "conditions"),
    [
        ([{"type": "reply", "msg_type": "image", "payload": {"media_id": "MEDIA_1"}}], WECHAT_ONLY),
        (
            [
                {
                    "type": "reply",
                    "text": "新品",
                    "msg_type": "news",
                    "payload": {
                        "articles": [
                            {"title": "新品", "url": "https://x.test/a", "picurl": "https://x.test/p.jpg"}
                        ]
                    },
                }
            ],
            WECHAT_ONLY,
        ),
        (
            [
                {
                    "type": "reply",
                    "msg_type": "music",
                    "payload": {"title": "晴天", "music_url": "https://m.test/1.mp3"},
                }
            ],
            WEBHOOK_ONLY,
        ),
        (
            [
                {
                    "type": "reply",
                    "msg_type": "music",
                    "payload": {
                        "title": "雨天的拿铁",
                        "music_url": "https://music.example.com/sad/1.mp3",
                        "hq_music_url": "https://music.example.com/sad/1-hq.mp3",
                        "description": "给难过的你",
                        "thumb_media_id": "THUMB_1",
                    },
                }
            ],
            WECHAT_ONLY,
        ),
        ([{"type": "reply", "text": "您好 {{ contact.name }}，航班 {{entity.flight_no}}"}], None),
        ([{"type": "reply", "text": "hi", "payload": {"kf_account": "kf01@yuncheng"}}], None),
    ],
)
def test_valid_reply_types_save(db, workspace, actions, conditions) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        row = rules.save_rule(s, workspace.id, rule(actions, conditions, name="ok"))
        assert row.actions == actions


def test_a_nearest_store_reply_saves_through_the_api(db, workspace, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    action = {
        "type": "nearest_store",
        "text": "{{contact.name}}，离您最近的是 {{ store.name }}（{{store.distance_km}} 公里）：{{store.address}}，"
        "{{store.hours}}，电话 {{store.phone}}（{{store.city}} {{store.code}}）",
        "no_location_text": "{{contact.name}}，请发送您的位置",
        "no_store_text": "附近没有门店",
        "max_distance_km": 50,
        "await_fan": True,
    }
    data = rule([action], {"any": [{"field": "text", "op": "contains_any", "value": ["门店"]}]}, name="门店")
    r = client.post("/api/v1/automation/rules", json=data, headers={ADMIN: f"Bearer {workspace.admin_token}"})
    assert r.status_code in (200, 201), r.text
    bad = rule([{**action, "max_distance_km": 99999}], name="太远")
    r = client.post("/api/v1/automation/rules", json=bad, headers={ADMIN: f"Bearer {workspace.admin_token}"})
    assert r.status_code == 422 and "actions[0]: max_distance_km must be between 1 and 20000" in r.text


def test_a_channel_account_condition_narrows_the_channels(db, workspace) -> None:  # type: ignore[no-untyped-def]
    """The workspace's webhook account can send music; the same rule without it cannot."""
    music = [
        {
            "type": "reply",
            "msg_type": "music",
            "payload": {"title": "晴天", "music_url": "https://m.test/1.mp3"},
        }
    ]
    on_account = {"all": [{"field": "channel_account", "op": "eq", "value": str(workspace.channel_id)}]}
    with db.transaction() as s:
        rules.save_rule(s, workspace.id, rule(music, on_account, name="webhook account"))
    other = {"all": [{"field": "channel_account", "op": "ne", "value": str(workspace.channel_id)}]}
    assert "cannot be sent on" in refused(db, workspace, rule(music, other, name="not it")).message


def test_the_api_the_cli_and_the_admin_form_refuse_a_wrong_message_type(
    db, settings, workspace, client: TestClient, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    bad = rule([{"type": "reply", "text": "x", "msg_type": "image"}], WECHAT_ONLY, name="bad type")
    admin = {ADMIN: f"Bearer {workspace.admin_token}"}
    r = client.post("/api/v1/automation/rules", json=bad, headers=admin)
    assert r.status_code == 422 and "an image reply needs payload.media_id" in r.text
    path = tmp_path / "rules.json"
    good = rule([{"type": "label", "labels": ["ok"]}], name="good")
    path.write_text(json.dumps([good, bad], ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(cli, ["routing", "import", str(path), "--workspace", workspace.slug])
    assert result.exit_code == 2 and "Traceback" not in result.output
    output = " ".join(result.output.split())  # the console wraps long lines
    assert "rule #2 (bad type): actions[0]: an image reply needs payload.media_id" in output
    # the web form: the kept parameters (msg_type, payload) are checked like any other
    from tests.web.conftest import Browser
    from tests.web.forms import encode

    browser = Browser(TestClient(client.app))
    browser.login(f"admin@{workspace.slug}.test")
    form = [
        ("csrf_token", browser.csrf),
        ("name", "表单规则"),
        ("event", "message.received"),
        ("position", "10"),
        ("enabled", "1"),
        ("act_type", "reply"),
        ("act_reply.text", "您好"),
        ("act_keep", json.dumps({"msg_type": "sticker"})),
    ]
    r = browser.client.post(
        "/admin/rules",
        content=encode(form),
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 422 and 'id="rule-error"' in r.text
    assert "msg_type &#39;sticker&#39; is not a reply type" in r.text
    with db.transaction(readonly=True) as s:
        assert [x.name for x in rules.list_rules(s, workspace.id)] == []  # the CLI file was refused whole


# -- cycles and chains ---------------------------------------------------------------------------
def on_label(name: str, needs: str, adds: str, **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "event": "conversation.labeled",
        "conditions": {"all": [{"field": "labels.added", "op": "has", "value": needs}]},
        "actions": [{"type": "label", "labels": [adds]}],
        **kw,
    }


def test_a_label_rule_that_cannot_trigger_itself_saves(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        rules.save_rule(s, workspace.id, on_label("vip → 跟进", "vip", "跟进"))
    # without a labels.added condition it could: refused as a cycle of itself
    exc = refused(db, workspace, {**on_label("any → x", "x", "x"), "name": "self"})
    assert "rules would trigger each other forever: self → self" in exc.message


def test_a_cycle_across_two_rules_is_refused_with_the_chain(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        rules.save_rule(s, workspace.id, on_label("A", "vip", "跟进"))
    exc = refused(db, workspace, on_label("B", "跟进", "VIP"))  # labels compare case-insensitively
    assert exc.status_code == 422 and exc.field == "actions"
    assert "rules would trigger each other forever" in exc.message
    assert "A → B → A" in exc.message or "B → A → B" in exc.message


def test_a_cycle_across_three_rules_through_close_spam_is_refused(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        rules.save_rule(s, workspace.id, on_label("A", "spam", "可疑"))
        rules.save_rule(s, workspace.id, on_label("B", "可疑", "复核"))
    third = {
        "name": "C",
        "event": "conversation.labeled",
        "conditions": {"all": [{"field": "labels.added", "op": "has_any", "value": ["复核"]}]},
        "actions": [{"type": "close_spam"}],
    }
    exc = refused(db, workspace, third)
    chain = exc.message.split(": ", 1)[1].split(" → ")
    assert sorted(set(chain)) == ["A", "B", "C"] and chain[0] == chain[-1] and len(chain) == 4
    # disabled, it is no cycle; enabling it later is refused the same way
    with db.transaction() as s:
        row = rules.save_rule(s, workspace.id, {**third, "enabled": False})
    with pytest.raises(Invalid) as again, db.transaction() as s:
        rules.save_rule(s, workspace.id, {"name": "C", "enabled": True}, rule_id=row.id)
    assert "trigger each other forever" in again.value.message


def test_a_chain_longer_than_the_cap_is_refused(db, workspace) -> None:  # type: ignore[no-untyped-def]
    labels = [f"l{i}" for i in range(engine.MAX_CHAIN + 2)]
    with db.transaction() as s:
        for i in range(engine.MAX_CHAIN - 1):
            rules.save_rule(s, workspace.id, on_label(f"R{i}", labels[i], labels[i + 1]))
    # a chain of exactly MAX_CHAIN rules is fine...
    with db.transaction() as s:
        last = rules.save_rule(s, workspace.id, on_label("last", labels[-3], labels[-2]))
        assert last.id
    # ... one more is refused, with the chain
    exc = refused(db, workspace, on_label("one too many", labels[-2], labels[-1]))
    assert f"a chain of more than {engine.MAX_CHAIN} rules" in exc.message
    assert exc.message.endswith("R0 → R1 → R2 → last → one too many")


def test_two_rules_saved_at_the_same_moment_cannot_close_a_cycle(db, workspace, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each save checks against the other's rule: the saves are serialised per workspace."""
    real = rules.list_rules

    def slow_list_rules(session, workspace_id):  # type: ignore[no-untyped-def]
        found = real(session, workspace_id)
        time.sleep(0.3)  # both saves are between reading the rules and committing
        return found

    monkeypatch.setattr(rules, "list_rules", slow_list_rules)

    def save(i: int) -> str:
        data = on_label("A", "vip", "跟进") if i == 0 else on_label("B", "跟进", "vip")
        try:
            with db.transaction() as s:
                rules.save_rule(s, workspace.id, data)
            return "saved"
        except Invalid as exc:
            return exc.message

    results = run_concurrently(save, 2)
    assert sorted(r == "saved" for r in results) == [False, True], results
    assert "trigger each other forever" in next(r for r in results if r != "saved")
    with db.transaction(readonly=True) as s:
        assert len(rules.list_rules(s, workspace.id)) == 1


def test_the_run_time_depth_cap_stops_a_chain_the_save_time_check_did_not_see(
    db, settings, workspace, client: TestClient, caplog
) -> None:  # type: ignore[no-untyped-def]
    """Rules written to the table without the service (a restored backup, a hand fix): a chain
    of six label rules. Agents' label edits start it; it stops at the cap, visibly."""
    deliver(db, workspace, "e1", "你好")
    run_jobs(db, settings)
    names = [f"step{i}" for i in range(6)]
    with db.transaction() as s:
        for i, name in enumerate(names):
            spec = on_label(name, f"l{i}", f"l{i + 1}")
            s.add(
                AutomationRule(
                    workspace_id=workspace.id,
                    name=name,
                    description="",
                    event=spec["event"],
                    position=i,
                    enabled=True,
                    stop=False,
                    conditions=spec["conditions"],
                    actions=spec["actions"],
                    updated_at=utcnow(),
                )
            )
        conv_id = s.execute(select(Conversation.id)).scalar_one()
    caplog.set_level(logging.WARNING, logger="scrm.automation.service")
    agent = {ADMIN: f"Bearer {workspace.agent_token}"}
    r = client.patch(f"/api/v1/conversations/{conv_id}", json={"labels": ["l0"]}, headers=agent)
    assert r.status_code == 200
    run_jobs(db, settings)
    fired_depths = rules.MAX_DEPTH + 1  # depths 0..MAX_DEPTH
    with db.transaction(readonly=True) as s:
        conv = s.get(Conversation, (workspace.id, conv_id))
        assert conv is not None
        assert conv.labels == sorted(f"l{i}" for i in range(fired_depths + 1))
        fired = {f.rule_id for f in s.execute(select(RuleFiring)).scalars()}
        by_name = {r.name: r.id for r in rules.list_rules(s, workspace.id)}
        assert fired == {by_name[n] for n in names[:fired_depths]}
        kinds = [a.kind for a in s.execute(select(ConversationActivity)).scalars()]
        assert kinds.count("rule_loop_stopped") == 1
    assert any("rule chain deeper than" in r.getMessage() for r in caplog.records)


def test_every_action_that_causes_a_rule_event_is_in_the_cycle_table() -> None:
    """The cycle check knows which actions cause rule events; an action added later that does
    must be listed, or cycles through it would pass the check."""
    assert set(engine.ACTION_EMITS) == {"label", "close_spam"}
    assert all(set(evs) <= set(engine.RULE_EVENTS) for evs in engine.ACTION_EMITS.values())
    assert set(engine.ACTION_FIELDS) == {
        "route", "assign", "set_priority", "label", "reply", "note", "create_task",
        "escalate", "notify", "close_spam", "lookup_booking", "nearest_store",
    }  # fmt: skip


def test_a_condition_on_another_workspaces_account_is_refused(db, workspace, other_workspace) -> None:  # type: ignore[no-untyped-def]
    theirs = {"all": [{"field": "channel_account", "op": "eq", "value": str(other_workspace.channel_id)}]}
    exc = refused(db, workspace, rule([{"type": "note", "text": "x"}], theirs, name="theirs"))
    assert (
        exc.message
        == f"conditions.all[0]: no channel account '{other_workspace.channel_id}' in this workspace"
    )
