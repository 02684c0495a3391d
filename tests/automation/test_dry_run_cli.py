"""The dry run over REST and `scrm routing dry-run|import|list|queue|sla-report`: what they show,
who may use them, and clear errors (never a traceback) for bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from scrm.automation import service as rules
from scrm.cli import app as cli
from scrm.models import AutomationRule, Conversation, RuleFiring
from tests.automation.helpers import deliver
from tests.helpers import run_jobs

RULES: list[dict[str, Any]] = [
    {
        "name": "失物",
        "event": "message.received",
        "position": 10,
        "stop": True,
        "conditions": {
            "any": [
                {"field": "text", "op": "contains_any", "value": ["落在", "丢了"]},
                {"field": "intent", "op": "eq", "value": "lost_item"},
            ]
        },
        "actions": [{"type": "route", "team": "lost"}],
    },
    {
        "name": "金卡夜间",
        "event": "message.received",
        "position": 20,
        "conditions": {
            "all": [
                {"field": "contact.tier", "op": "eq", "value": "gold"},
                {"field": "business_hours", "op": "is", "value": False},
            ]
        },
        "actions": [{"type": "set_priority", "priority": "high"}],
    },
    {
        "name": "微博负面",
        "event": "message.received",
        "position": 30,
        "conditions": {
            "all": [
                {"field": "channel", "op": "eq", "value": "weibo"},
                {"field": "sentiment", "op": "eq", "value": "neg"},
            ]
        },
        "actions": [{"type": "label", "labels": ["舆情"]}],
    },
    {
        "name": "菜单：航班",
        "event": "contact.menu_clicked",
        "conditions": {"all": [{"field": "menu_key", "op": "eq", "value": "FLIGHT"}]},
        "actions": [{"type": "lookup_booking"}],
    },
]
runner = CliRunner()


def flat(text: str) -> str:
    """The console wraps long lines at its width."""
    return " ".join(text.split())


def routing(*args: str) -> Any:
    result = runner.invoke(cli, ["routing", *args])
    assert "Traceback" not in result.output
    return result


def test_dry_run_over_rest(db, workspace, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        for r in RULES:
            rules.save_rule(s, workspace.id, r)
    admin = {"authorization": f"Bearer {workspace.admin_token}"}
    url = "/api/v1/automation/rules/dry-run"

    def names(body: dict[str, Any]) -> list[str]:
        r = client.post(url, json=body, headers=admin)
        assert r.status_code == 200, r.text
        return [h["name"] for h in r.json()]

    hit = client.post(url, json={"text": "我的包落在飞机上了"}, headers=admin).json()
    assert hit == [
        {
            "rule_id": hit[0]["rule_id"],
            "name": "失物",
            "position": 10,
            "stop": True,
            "actions": RULES[0]["actions"],
        }
    ]
    assert names({"text": "请问", "triage": {"intent": "lost_item"}}) == ["失物"]
    assert names({"text": "请问", "contact": {"tier": "gold"}, "business_hours": False}) == ["金卡夜间"]
    assert names({"text": "请问", "contact": {"tier": "gold"}, "business_hours": True}) == []
    assert names({"text": "太差", "channel": "weibo", "triage": {"sentiment": "neg"}}) == ["微博负面"]
    assert names({"text": "太差", "channel": "wechat", "triage": {"sentiment": "neg"}}) == []
    # stop after the first: a lost item from a gold fan at night fires only the first rule
    assert names({"text": "丢了", "contact": {"tier": "gold"}, "business_hours": False}) == ["失物"]
    assert names({"event": "contact.menu_clicked", "menu_key": "FLIGHT"}) == ["菜单：航班"]
    # hostile or wrong input: a clear 4xx, nothing changes
    for body, status in [
        ({"text": "x", "event": "message.deleted"}, 422),
        ({"text": "x", "mood": "sad"}, 422),
        ({"text": "x" * 20001}, 422),
        ({"text": "x", "visibility": "secret"}, 422),
        ({"text": ["not", "text"]}, 422),
    ]:
        assert client.post(url, json=body, headers=admin).status_code == status, body
    assert (
        client.post(
            url, json={"text": "x"}, headers={"authorization": f"Bearer {workspace.agent_token}"}
        ).status_code
        == 403
    )
    assert client.post(url, json={"text": "x"}).status_code == 401
    with db.transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(RuleFiring)).scalar_one() == 0


def test_routing_cli(db, settings, workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RULES, ensure_ascii=False), encoding="utf-8")
    r = routing("import", str(path), "--workspace", workspace.slug)
    assert r.exit_code == 0 and "4 rules saved" in r.output
    # importing again updates by name instead of adding
    changed = [{**RULES[0], "position": 5}, *RULES[1:]]
    path.write_text(json.dumps(changed, ensure_ascii=False), encoding="utf-8")
    assert routing("import", str(path), "--workspace", workspace.slug).exit_code == 0
    with db.transaction(readonly=True) as s:
        rows = s.execute(select(AutomationRule)).scalars().all()
        assert len(rows) == 4 and {r.name: r.position for r in rows}["失物"] == 5

    listed = routing("list", "--workspace", workspace.slug)
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert any("失物 [stop]" in line and "→ route" in line for line in lines)
    assert any("contact.menu_clicked" in line and "菜单：航班" in line for line in lines)

    r = routing("dry-run", "--workspace", workspace.slug, "--text", "我的包丢了")
    assert r.exit_code == 0 and "失物 [stop]" in r.output and '"team": "lost"' in r.output
    r = routing(
        "dry-run", "--workspace", workspace.slug, "--text", "请问", "--triage", '{"intent": "lost_item"}'
    )
    assert "失物" in r.output
    assert "no rule fires" in routing("dry-run", "--workspace", workspace.slug, "--text", "你好").output
    r = routing(
        "dry-run", "--workspace", workspace.slug, "--event", "contact.menu_clicked", "--menu-key", "FLIGHT"
    )
    assert "菜单：航班" in r.output and "lookup_booking" in r.output

    deliver(db, workspace, "e1", "我的包落在飞机上了")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        conv_id = s.execute(select(Conversation.id)).scalar_one()
    queue = routing("queue", "--workspace", workspace.slug)
    assert queue.exit_code == 0 and str(conv_id) in queue.output and "1 waiting" in queue.output
    report = routing("sla-report", "--workspace", workspace.slug, "--hours", "1")
    assert report.exit_code == 0
    data = json.loads(report.output)
    assert data["first_response"]["total"] == 1 and data["first_response"]["open"] == 1

    # clear errors
    bad = tmp_path / "bad.json"
    for content, message in [
        ("{not json", "not JSON"),
        ('{"name": "x"}', "expected a JSON list of rules"),
        ('["x"]', "rule #1: expected an object"),
        (
            json.dumps([{**RULES[0], "name": "坏", "actions": [{"type": "teleport"}]}]),
            "rule #1 (坏): actions[0]: unknown action type",
        ),
    ]:
        bad.write_text(content, encoding="utf-8")
        r = routing("import", str(bad), "--workspace", workspace.slug)
        assert r.exit_code != 0 and message in flat(r.output), (content, r.output)
    assert routing("import", str(tmp_path / "missing.json"), "--workspace", workspace.slug).exit_code != 0
    for args, message in [
        (("list", "--workspace", "nope"), "no workspace 'nope'"),
        (("dry-run", "--workspace", workspace.slug, "--triage", "{bad"), "--triage is not JSON"),
        (("dry-run", "--workspace", workspace.slug, "--event", "message.deleted"), "unknown event"),
        (("sla-report", "--workspace", workspace.slug, "--hours", "0"), "Invalid value"),
        (("queue", "--workspace", "nope"), "no workspace 'nope'"),
    ]:
        r = routing(*args)
        assert r.exit_code != 0 and message in flat(r.output), (args, r.output)
    with db.transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(AutomationRule)).scalar_one() == 4
