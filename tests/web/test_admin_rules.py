"""Admin → Rules: the form builder saves real rules (that route real messages), refuses bad ones
with the reason in the form, keeps order, and the dry run shows what would fire."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from scrm.automation import service as automation
from scrm.conversation import service as conversation_service
from scrm.db import Database
from scrm.workspace import service as workspace_service
from tests.conftest import Workspace
from tests.web.conftest import Browser
from tests.web.forms import encode, form_fields
from tests.web.helpers import LOST_BAG, inbound

FORM = {"content-type": "application/x-www-form-urlencoded"}

LOST_RULE_FORM = [
    ("name", "失物 → 失物招领"),
    ("description", "关键词或意图"),
    ("event", "message.received"),
    ("position", "10"),
    ("enabled", "1"),
    ("stop", "1"),
    # A browser sends every row's inputs, hidden ones too; only the row's type counts.
    ("cond_group", "any"),
    ("cond_field", "text"),
    ("cond_attr", ""),
    ("cond_op", "contains_any"),
    ("cond_value", "落在, 丢了，遗失、忘在"),
    ("cond_flag", "true"),
    ("cond_group", "any"),
    ("cond_field", "intent"),
    ("cond_attr", ""),
    ("cond_op", "eq"),
    ("cond_value", "lost_item"),
    ("cond_flag", "true"),
    ("cond_group", "none"),
    ("cond_field", "is_spam"),
    ("cond_attr", ""),
    ("cond_op", "is"),
    ("cond_value", "ignored"),
    ("cond_flag", "true"),
    ("act_type", "route"),
    ("act_route.team", "lost"),
    ("act_create_task.team", "service"),
    ("act_reply.text", "not this one"),
    ("act_keep", ""),
    ("act_type", "label"),
    ("act_label.labels", "失物, 紧急"),
    ("act_keep", ""),
    ("act_type", "set_priority"),
    ("act_set_priority.priority", "high"),
    ("act_keep", ""),
]
LOST_RULE_CONDITIONS = {
    "any": [
        {"field": "text", "op": "contains_any", "value": ["落在", "丢了", "遗失", "忘在"]},
        {"field": "intent", "op": "eq", "value": "lost_item"},
    ],
    "none": [{"field": "is_spam", "op": "is", "value": True}],
}
LOST_RULE_ACTIONS = [
    {"type": "route", "team": "lost"},
    {"type": "label", "labels": ["失物", "紧急"]},
    {"type": "set_priority", "priority": "high"},
]


def post_form(b: Browser, url: str, pairs: list[tuple[str, str]], *, csrf: bool = True) -> Any:
    body = [("csrf_token", b.csrf), *pairs] if csrf else pairs
    return b.client.post(url, content=encode(body), headers=FORM, follow_redirects=False)


def rules_of(db: Database, ws: Workspace) -> list[Any]:
    with db.transaction(readonly=True) as s:
        return automation.list_rules(s, ws.id)


def test_form_builder_saves_a_rule_that_routes_messages_and_the_dry_run_shows_it(
    admin: Browser, client: TestClient, db: Database, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    r = post_form(admin, "/admin/rules", LOST_RULE_FORM)
    assert r.status_code == 303, r.text
    [rule] = rules_of(db, workspace)
    assert (rule.name, rule.description, rule.position, rule.enabled, rule.stop) == (
        "失物 → 失物招领",
        "关键词或意图",
        10,
        True,
        True,
    )
    assert rule.conditions == LOST_RULE_CONDITIONS
    assert rule.actions == LOST_RULE_ACTIONS

    page = admin.get("/admin/rules").text
    assert (
        "失物 → 失物招领" in page
        and "转给团队 · 团队: 失物招领" in page
        and "消息文本 包含任一 落在、丢了" in page
    )

    # The dry run (HTMX fragment) shows the rule and what it would do; nothing changes.
    hit = admin.post("/admin/rules/dry-run", {"text": LOST_BAG})
    assert hit.status_code == 200
    assert 'class="dry-hit"' in hit.text and "失物 → 失物招领" in hit.text
    assert "加标签 · 标签: 失物, 紧急" in hit.text and "设置优先级 · 优先级: 高" in hit.text
    miss = admin.post("/admin/rules/dry-run", {"text": "请问几点登机"})
    assert 'id="dry-none"' in miss.text and "dry-hit" not in miss.text
    by_intent = admin.post("/admin/rules/dry-run", {"text": "hi", "intent": "lost_item"})
    assert "失物 → 失物招领" in by_intent.text
    assert admin.post("/admin/rules/dry-run", {"text": "hi", "event": "nope"}).status_code == 422
    # Without HTMX the whole page comes back with the result under the form.
    full = admin.post("/admin/rules/dry-run", {"text": LOST_BAG}, htmx=False)
    assert full.status_code == 200 and 'id="rules-table"' in full.text and 'class="dry-hit"' in full.text

    # The rule is the real thing: a lost-bag message is routed to lost-and-found.
    cid = inbound(client, db, settings, workspace, "e1", LOST_BAG)
    with db.transaction(readonly=True) as s:
        conv = conversation_service.get(s, workspace.id, cid)
    assert conv.team_id == workspace.team_ids["lost"] and "失物" in conv.labels


def test_edit_form_shows_the_rule_and_resubmits_it_unchanged(
    admin: Browser, db: Database, workspace: Workspace
) -> None:
    with db.transaction() as s:
        workspace_service.upsert_canned_reply(s, workspace.id, "hello", "问候", "您好")
        rule = automation.save_rule(
            s,
            workspace.id,
            {
                "name": "VIP 投诉",
                "event": "message.received",
                "position": 5,
                "conditions": {
                    "all": [
                        {"field": "contact.attributes.vip_level", "op": "gte", "value": 3},
                        {"field": "contact.followers", "op": "gt", "value": 10000},
                        {"field": "text", "op": "matches", "value": "投诉|差评"},
                    ],
                    "any": [{"field": "entities", "op": "has_any", "value": ["flight_no", "order_no"]}],
                    "none": [{"field": "business_hours", "op": "is", "value": False}],
                },
                "actions": [
                    {
                        "type": "reply",
                        "canned": "hello",
                        "msg_type": "text",
                        "payload": {"kf_account": "kf01@yuncheng"},
                    },
                    {"type": "escalate", "priority": "urgent", "notify_supervisors": True, "reassign": False},
                    {"type": "create_task", "kind": "department", "team": "lost", "due_in_minutes": 30},
                    {"type": "notify", "url": "https://example.com/hook"},
                ],
            },
        )
        rule_id, before = rule.id, (rule.conditions, rule.actions)
    html = admin.get(f"/admin/rules/{rule_id}").text
    assert 'value="VIP 投诉"' in html and 'value="vip_level"' in html
    fields = form_fields(html, "rule-form")
    r = admin.client.post(
        f"/admin/rules/{rule_id}", content=encode(fields), headers=FORM, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    with db.transaction(readonly=True) as s:
        after = automation.get_rule(s, workspace.id, rule_id)
        assert (after.conditions, after.actions) == before
        assert after.name == "VIP 投诉" and after.position == 5 and after.enabled and not after.stop


def test_a_bad_rule_is_shown_again_with_the_reason_and_nothing_is_stored(
    admin: Browser, db: Database, workspace: Workspace
) -> None:
    def refused(pairs: list[tuple[str, str]], status: int, reason: str) -> str:
        r = post_form(admin, "/admin/rules", pairs)
        assert r.status_code == status, r.text
        assert 'id="rule-error"' in r.text and "规则未保存" in r.text
        assert reason in r.text, re.findall(r'class="reason">([^<]*)<', r.text)
        assert rules_of(db, workspace) == []
        return r.text

    base = [("name", "坏规则"), ("event", "message.received"), ("position", "10"), ("enabled", "1")]
    bad_regex = [("cond_group", "all"), ("cond_field", "text"), ("cond_op", "matches"), ("cond_value", "([")]
    route = [("act_type", "route"), ("act_route.team", "lost")]
    html = refused(base + bad_regex + route, 422, "bad regular expression")
    # The admin's input is still there and the offending row is marked.
    assert 'value="坏规则"' in html and 'value="(["' in html
    assert re.search(r'class="rule-row cond-row has-error"', html)

    refused([*base, ("act_type", "route"), ("act_route.team", "nope")], 422, "no team &#39;nope&#39;")
    refused(base, 422, "a rule needs at least one action")
    refused([*base[:2], ("position", "ten"), *route], 422, "position must be a whole number")
    refused(
        [
            *base,
            ("cond_group", "all"),
            ("cond_field", "text_length"),
            ("cond_op", "gt"),
            ("cond_value", "很长"),
            *route,
        ],
        422,
        "needs a number",
    )
    refused(
        [
            *base,
            ("cond_group", "all"),
            ("cond_field", "mood"),
            ("cond_op", "eq"),
            ("cond_value", "x"),
            *route,
        ],
        422,
        "unknown field &#39;mood&#39;",
    )
    refused(
        [*base, ("act_type", "set_priority"), ("act_set_priority.priority", "asap")], 422, "priority must be"
    )
    refused(
        [*base, ("act_type", "route"), ("act_route.team", "lost"), ("act_keep", "[1,")], 422, "not valid JSON"
    )
    # A rule that would trigger itself forever (label → labelled → label ...).
    loop = [
        ("name", "loop"),
        ("event", "conversation.labeled"),
        ("position", "1"),
        ("enabled", "1"),
        ("act_type", "label"),
        ("act_label.labels", "again"),
    ]
    refused(loop, 422, "rules would trigger each other forever")
    # A name that is already taken.
    assert post_form(admin, "/admin/rules", LOST_RULE_FORM).status_code == 303
    r = post_form(admin, "/admin/rules", LOST_RULE_FORM)
    assert r.status_code == 409 and "exists" in r.text and len(rules_of(db, workspace)) == 1


def test_rule_text_is_escaped(admin: Browser, db: Database, workspace: Workspace) -> None:
    pairs = [
        ("name", "<script>alert(1)</script>"),
        ("event", "message.received"),
        ("position", "1"),
        ("enabled", "1"),
        ("cond_group", "all"),
        ("cond_field", "text"),
        ("cond_op", "contains_any"),
        ("cond_value", "<img src=x onerror=alert(2)>"),
        ("act_type", "note"),
        ("act_note.text", "<b>bold</b>"),
    ]
    assert post_form(admin, "/admin/rules", pairs).status_code == 303
    [rule] = rules_of(db, workspace)
    for url in ("/admin/rules", f"/admin/rules/{rule.id}"):
        html = admin.get(url).text
        assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<img src=x" not in html and "<b>bold</b>" not in html


def test_reorder_toggle_and_delete(admin: Browser, db: Database, workspace: Workspace) -> None:
    with db.transaction() as s:
        for name in ("a", "b", "c"):
            automation.save_rule(
                s,
                workspace.id,
                {"name": name, "event": "message.received", "actions": [{"type": "note", "text": name}]},
            )
        ids = {r.name: r.id for r in automation.list_rules(s, workspace.id)}

    def order() -> list[str]:
        return [r.name for r in rules_of(db, workspace) if r.event == "message.received"]

    assert order() == ["a", "b", "c"]  # same position: by id
    assert admin.post(f"/admin/rules/{ids['c']}/move", {"direction": "up"}, htmx=False).status_code == 303
    assert order() == ["a", "c", "b"]
    assert [r.position for r in rules_of(db, workspace)] == [10, 20, 30]
    admin.post(f"/admin/rules/{ids['a']}/move", {"direction": "down"}, htmx=False)
    assert order() == ["c", "a", "b"]
    admin.post(f"/admin/rules/{ids['c']}/move", {"direction": "up"}, htmx=False)  # already first
    assert order() == ["c", "a", "b"]
    assert (
        admin.post(f"/admin/rules/{ids['a']}/move", {"direction": "sideways"}, htmx=False).status_code == 422
    )

    assert admin.post(f"/admin/rules/{ids['b']}/toggle", htmx=False).status_code == 303
    with db.transaction(readonly=True) as s:
        assert not automation.get_rule(s, workspace.id, ids["b"]).enabled
        assert [h["name"] for h in automation.dry_run(s, workspace.id, {"text": "x"})] == ["c", "a"]
    assert "已停用" in admin.get("/admin/rules").text

    assert admin.post(f"/admin/rules/{ids['a']}/delete", htmx=False).status_code == 303
    assert order() == ["c", "b"]


def test_rules_pages_are_for_admins_with_a_csrf_token(
    admin: Browser, agent: Browser, db: Database, workspace: Workspace
) -> None:
    for url in ("/admin/rules", "/admin/rules/new"):
        assert agent.get(url).status_code == 403
    assert post_form(agent, "/admin/rules", LOST_RULE_FORM).status_code == 403
    assert agent.post("/admin/rules/dry-run", {"text": LOST_BAG}).status_code == 403
    # An admin without (or with a wrong) CSRF token is refused too.
    assert post_form(admin, "/admin/rules", LOST_RULE_FORM, csrf=False).status_code == 403
    body = encode([("csrf_token", "forged"), *LOST_RULE_FORM])
    assert admin.client.post("/admin/rules", content=body, headers=FORM).status_code == 403
    assert admin.client.post("/admin/rules/dry-run", data={"text": "x"}).status_code == 403
    assert rules_of(db, workspace) == []
    assert "/admin/rules" not in agent.get("/inbox").text


def test_another_workspaces_rules_are_not_found(
    admin: Browser, db: Database, workspace: Workspace, other_workspace: Workspace
) -> None:
    with db.transaction() as s:
        theirs = automation.save_rule(
            s,
            other_workspace.id,
            {"name": "theirs", "event": "message.received", "actions": [{"type": "note", "text": "x"}]},
        ).id
    assert admin.get(f"/admin/rules/{theirs}").status_code == 404
    assert post_form(admin, f"/admin/rules/{theirs}", LOST_RULE_FORM).status_code == 404
    for action, data in (("delete", {}), ("toggle", {}), ("move", {"direction": "up"})):
        assert admin.post(f"/admin/rules/{theirs}/{action}", data, htmx=False).status_code == 404, action
    assert admin.get("/admin/rules/not-a-number").status_code == 422
    assert "theirs" not in admin.get("/admin/rules").text
    assert [r.name for r in rules_of(db, other_workspace)] == ["theirs"]
    assert rules_of(db, workspace) == []


def test_new_admin_pages_and_the_sla_view_have_no_chinese_ui_text_in_english(
    admin: Browser, db: Database, workspace: Workspace
) -> None:
    with db.transaction() as s:
        automation.save_rule(
            s,
            workspace.id,
            {
                "name": "r1",
                "event": "message.received",
                "conditions": {"all": [{"field": "text", "op": "contains_any", "value": ["a"]}]},
                "actions": [
                    {"type": "route", "team": "service"},
                    {"type": "escalate", "notify_supervisors": True},
                ],
            },
        )
    admin.post("/ui/locale", {"locale": "en"}, htmx=False)
    for url in ("/admin/rules", "/admin/rules/new", "/admin/sla", "/admin/channels", "/inbox?view=sla"):
        html = admin.get(url).text
        # Workspace, team and people names are data; the UI chrome itself must be English.
        chrome = re.sub(r"(yuncheng 演示|客服小王|管理员|客服|失物招领)", "", html).replace("中文", "")
        assert not re.search(r"[\u4e00-\u9fff]", chrome), (
            url,
            re.findall(r".{20}[\u4e00-\u9fff]+.{10}", chrome)[:5],
        )
    dry = admin.post("/admin/rules/dry-run", {"text": "a"}).text
    assert "Route to team · Team: 客服" in dry and "Escalate · Notify supervisors: Yes" in dry


def test_every_term_the_new_admin_pages_show_has_a_label_in_both_languages() -> None:
    import chinese_calendar

    from scrm.automation import engine
    from scrm.sla import service as sla_service
    from scrm.sla.calendar import KEYS
    from scrm.web import i18n, rules_form

    keys = [f"rf.{f}" for _g, fields in rules_form.FIELD_GROUPS for f in fields]
    keys += [f"rules.fg.{g}" for g, _f in rules_form.FIELD_GROUPS]
    keys += [f"op.{op}" for op in rules_form.ALL_OPS]
    keys += [f"ra.{a}" for a in rules_form.ACTION_TYPES]
    keys += [f"rp.{p}" for params in rules_form.ACTION_PARAMS.values() for p, _w in params]
    keys += [f"ev.{e}" for e in engine.RULE_EVENTS]
    keys += [f"rules.group.{g}" for g in rules_form.GROUPS]
    keys += [
        f"{prefix}{v}"
        for name, prefix in rules_form.VALUE_LABELS.items()
        for v in rules_form.SUGGESTIONS[name]
    ]
    keys += [f"day.{d}" for d in KEYS] + [f"holiday.{h.name}" for h in chinese_calendar.Holiday]
    keys += [f"sla.esc.{e}" for e in sla_service.ESCALATIONS] + [
        f"sla.metric.{m}" for m in sla_service.METRICS
    ]
    missing = [(loc, k) for loc in ("zh-CN", "en") for k in keys if k not in i18n.CATALOGUE[loc]]
    assert not missing, missing
