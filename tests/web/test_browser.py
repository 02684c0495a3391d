"""The agent workspace in a real Chromium (Playwright) against a real uvicorn server.

Plays the lost-bag story (SCENARIOS.md, story 1): the post arrives through the signed webhook
channel, appears live in the inbox without a reload, the agent answers with a canned reply
naming the flight, the thread shows it, and lost-and-found records the outcome, which goes
back to the passenger on the same thread. Also: filters and
search, keyboard shortcuts, the language switch, an XSS payload shown as text, and an agent
refused the admin pages. Saves screenshots of the main pages to docs/screenshots/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scrm.conversation import service as conversation_service
from scrm.models import Message
from scrm.workspace import service as workspace_service
from tests.conftest import Workspace
from tests.web.conftest import LiveServer
from tests.web.helpers import LOST_BAG, conversation_ids, deliver, seed_passenger

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
CHROMIUM = os.environ.get("SCRM_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


@pytest.fixture
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def new_page(browser, server: LiveServer, locale: str = "zh-CN"):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale=locale)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def login(page, server: LiveServer, email: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server.url + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "password123")
    page.click("#login-submit")
    page.wait_for_load_state("networkidle")


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def simulate_triage(server: LiveServer, ws: Workspace, cid: int) -> None:
    """What the NLP step writes; only filled in when that step is not installed in this tree."""
    with server.db.transaction() as s:
        conv = conversation_service.get(s, ws.id, cid)
        if conv.intent is None:
            conv.intent, conv.sentiment, conv.priority = "lost_item", "neg", "high"
        for msg in s.query(Message).filter_by(workspace_id=ws.id, conversation_id=cid, direction="in"):
            if not msg.triage.get("entities"):
                msg.triage = {
                    **msg.triage,
                    "intent": "lost_item",
                    "sentiment": "neg",
                    "entities": [{"type": "flight_no", "value": "MU5137"}, {"type": "seat", "value": "32C"}],
                }


def wait_for_conversation(server: LiveServer, ws: Workspace, n: int = 1) -> list[int]:
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ids = conversation_ids(server.db, ws)
        if len(ids) >= n:
            return ids
        time.sleep(0.1)
    raise AssertionError("the pipeline did not make the conversation")


def test_lost_bag_story_live_inbox_canned_reply_and_keyboard(
    browser, live_server: LiveServer, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    server = live_server
    seed_passenger(server.db, workspace, "fan-lost-bag")
    with server.db.transaction() as s:
        workspace_service.upsert_canned_reply(
            s,
            workspace.id,
            "lost_item",
            "失物登记",
            "{{contact.name}}您好，很抱歉给您添麻烦了！已为您登记 {{entities.flight_no}} 航班 {{entities.seat}} 座位的遗失物品，失物招领同事会尽快联系您。——{{agent.name}}",
        )
        workspace_service.upsert_canned_reply(
            s, workspace.id, "thanks", "感谢反馈", "感谢您的反馈，{{contact.name}}！"
        )
    with httpx.Client(base_url=server.url) as http:
        deliver(http, workspace, "warmup", "请问值机柜台几点开？", sender="fan-2", name="王先生")
        wait_for_conversation(server, workspace, 1)

    page = new_page(browser, server)
    shot_login = page
    shot_login.goto(server.url + "/login")
    shot(shot_login, "login")
    login(page, server, "agent@yuncheng.test")
    page.goto(server.url + "/inbox?view=all")
    page.wait_for_selector("#live-dot.on")  # the SSE stream is connected
    assert page.locator(".conv-row").count() == 1

    # The passenger's post arrives through the signed webhook and appears without a reload.
    with httpx.Client(base_url=server.url) as http:
        deliver(http, workspace, "weibo-5137", LOST_BAG, sender="fan-lost-bag", name="林晓雯")
    expect(page.locator(".conv-row")).to_have_count(2, timeout=15_000)
    assert "黑色双肩包" in page.locator(".conv-row").first.inner_text()
    cid = conversation_ids(server.db, workspace)[0]
    simulate_triage(server, workspace, cid)

    # Open it: thread, triage and the fan panel with the booking.
    page.click(f"#row-{cid}")
    page.wait_for_selector("#pane-inner")
    assert page.url.endswith(f"/c/{cid}?view=all")
    pane = page.locator("#pane-inner").inner_text()
    assert "MU5137" in pane and "32C" in pane and "林晓雯" in pane and "银卡" in pane and "SHA→CTU" in pane
    assert "139****2587" in pane
    shot(page, "conversation")

    # Canned reply naming the flight, sent with the keyboard.
    page.select_option("#canned-select", "lost_item")
    text = page.input_value("#reply-text")
    assert "林晓雯您好" in text and "MU5137 航班 32C 座位" in text and "客服小王" in text
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#flash")
    page.wait_for_selector(".msg.dir-out")
    assert "MU5137 航班 32C 座位" in page.locator(".msg.dir-out").inner_text()
    assert page.locator(".msg.dir-out .delivery").count() == 1

    # Keyboard: ? help, / search, j/k move, e resolve.
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    shot(page, "help")
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    page.keyboard.press("j")
    expect(page.locator("#pane-inner")).not_to_have_attribute("data-conversation", str(cid))
    page.keyboard.press("k")
    expect(page.locator("#pane-inner")).to_have_attribute("data-conversation", str(cid))
    page.keyboard.press("a")
    expect(page.locator("#assign-select")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    expect(page.locator("#reply-text")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("e")
    page.wait_for_selector("#btn-reopen")
    with server.db.transaction(readonly=True) as s:
        assert conversation_service.get(s, workspace.id, cid).status == "resolved"

    # Search (a Chinese substring) and a filter.
    page.goto(server.url + "/inbox?view=all&status=all")
    page.keyboard.press("/")
    page.keyboard.type("双肩包")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=*")
    assert page.locator(".conv-row").count() == 1
    page.goto(server.url + "/inbox?view=all")
    page.select_option("#f-intent", "lost_item")
    page.wait_for_url("**intent=lost_item*")
    assert page.locator(".conv-row").count() == 0  # resolved ones are hidden by default
    page.select_option("#f-status", "all")
    page.wait_for_url("**status=all*")
    assert page.locator(".conv-row").count() == 1
    page.goto(server.url + "/inbox?view=all&status=all")
    page.click(f"#row-{cid}")
    page.wait_for_selector("#pane-inner")
    shot(page, "inbox")
    assert not [e for e in page.errors if "Content Security Policy" in e or "Refused" in e], page.errors


def test_language_switch_xss_and_admin_refused(
    browser, live_server: LiveServer, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    server = live_server
    with httpx.Client(base_url=server.url) as http:
        deliver(
            http,
            workspace,
            "xss",
            '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">',
            name="<b>坏人</b>",
        )
    cid = wait_for_conversation(server, workspace)[0]
    page = new_page(browser, server)
    login(page, server, "agent@yuncheng.test")
    page.goto(server.url + f"/c/{cid}?view=all")
    assert "<script>window.__pwned=1</script>" in page.locator(".msg-body").first.inner_text()
    assert page.evaluate("window.__pwned") is None
    assert "<b>坏人</b>" in page.locator("#fan-name").inner_text()

    # Language switch in the user menu.
    page.click("#user-menu")
    page.click("#lang-en")
    page.wait_for_load_state("networkidle")
    assert page.locator(".mainnav").inner_text().startswith("Inbox")
    assert page.locator("#btn-resolve").inner_text().startswith("Resolve")
    page.click("#user-menu")
    page.click("#lang-zh")
    page.wait_for_load_state("networkidle")
    assert page.locator(".mainnav").inner_text().startswith("收件箱")

    # An agent cannot open an admin page.
    resp = page.goto(server.url + "/admin/channels")
    assert resp is not None and resp.status == 403
    assert "您没有权限访问此页面" in page.content()
    shot(page, "forbidden")


def test_admin_department_and_dashboard_pages(browser, live_server: LiveServer, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    server = live_server
    seed_passenger(server.db, workspace, "fan-lost-bag")
    with httpx.Client(base_url=server.url) as http:
        deliver(http, workspace, "w1", LOST_BAG, sender="fan-lost-bag", name="林晓雯")
        deliver(
            http, workspace, "w2", "航班延误了三个小时也没人解释，太差了", sender="fan-3", name="成都的大熊"
        )
        deliver(http, workspace, "w3", "请问 MU5402 明天几点起飞？", sender="fan-4", name="小可乐")
    ids = wait_for_conversation(server, workspace, 3)
    with server.db.transaction() as s:
        admin = workspace_service.get_user_by_email(s, "admin@yuncheng.test")
        member = next(m for m in workspace_service.list_members(s, workspace.id) if m.user_id == admin.id)
        workspace_service.add_to_team(s, workspace.id, workspace.team_ids["lost"], member.id)
        for cid, (intent, senti) in zip(
            ids, [("inquiry", "neutral"), ("complaint", "neg"), ("lost_item", "neg")], strict=True
        ):
            conv = conversation_service.get(s, workspace.id, cid)
            conv.intent, conv.sentiment = conv.intent or intent, conv.sentiment or senti
        lost_case = conversation_service.get(s, workspace.id, ids[2])
        lost_case.team_id = workspace.team_ids["lost"]
    simulate_triage(server, workspace, ids[2])
    page = new_page(browser, server)
    login(page, server, "admin@yuncheng.test")
    page.goto(server.url + "/admin/channels")
    assert "whsec-yuncheng-0123456789" not in page.content()
    shot(page, "admin")
    page.goto(server.url + "/department")
    assert page.locator(".conv-row").count() == 1
    page.click(".conv-row")
    page.wait_for_selector("#outcome-box")
    shot(page, "department")
    # Lost-and-found records the outcome; it goes back to the passenger on the same thread.
    page.fill("#outcome-box textarea", "已找到，在成都双流 T2 到达层 3 号柜台")
    page.click("#outcome-box button")
    expect(page.locator(".msg.dir-out")).to_contain_text("3 号柜台", timeout=15_000)
    with server.db.transaction(readonly=True) as s:
        texts = [
            m.text
            for m in s.query(Message).filter(Message.conversation_id == ids[2], Message.direction == "out")
        ]
    assert texts == ["已找到，在成都双流 T2 到达层 3 号柜台"]
    page.goto(server.url + "/dashboard")
    page.wait_for_selector("#chart-queue svg")
    page.wait_for_selector("#chart-intent svg")
    with page.expect_download() as dl:
        page.click("#csv-intent")
    assert dl.value.suggested_filename == "intent.csv"
    shot(page, "dashboard")
    assert not [e for e in page.errors if "Content Security Policy" in e or "Refused" in e], page.errors


def test_admin_builds_a_rule_with_the_form_builder_and_dry_runs_it(
    browser, live_server: LiveServer, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    server = live_server
    page = new_page(browser, server)
    login(page, server, "admin@yuncheng.test")
    page.goto(server.url + "/admin/rules")
    page.click("#new-rule")
    page.wait_for_selector("#rule-form")
    page.fill("#rule-name", "失物 → 失物招领")
    page.fill("#rule-position", "10")

    # Conditions: keywords OR the intent, and never spam.
    conds = page.locator("#cond-rows .cond-row")
    expect(conds).to_have_count(1)
    conds.nth(0).locator(".cond-group").select_option("any")
    conds.nth(0).locator(".cond-value").fill("落在, 丢了, 遗失")
    page.click("#add-condition")
    expect(conds).to_have_count(2)
    intent = conds.nth(1)
    intent.locator(".cond-group").select_option("any")
    intent.locator(".cond-field").select_option("intent")
    # The operators follow the field's type: no text operators for the intent.
    assert intent.locator(".cond-op").evaluate("s => s.querySelector('option[value=contains_any]').hidden")
    intent.locator(".cond-op").select_option("eq")
    intent.locator(".cond-value").fill("lost_item")
    page.click("#add-condition")
    spam = conds.nth(2)
    spam.locator(".cond-group").select_option("none")
    spam.locator(".cond-field").select_option("is_spam")
    expect(spam.locator(".cond-op")).to_have_value("is")
    expect(spam.locator(".cond-value")).to_be_hidden()
    expect(spam.locator(".cond-flag")).to_be_visible()
    page.click("#add-condition")  # one too many: removed again
    expect(conds).to_have_count(4)
    conds.nth(3).locator("[data-action=remove-row]").click()
    expect(conds).to_have_count(3)

    # Actions: route, label, priority; the priority moved up above the label.
    acts = page.locator("#act-rows .act-row")
    acts.nth(0).locator("select[name='act_route.team']").select_option("lost")
    page.click("#add-action")
    acts.nth(1).locator(".act-type").select_option("label")
    expect(acts.nth(1).locator("select[name='act_route.team']")).to_be_hidden()
    acts.nth(1).locator("input[name='act_label.labels']").fill("失物")
    page.click("#add-action")
    acts.nth(2).locator(".act-type").select_option("set_priority")
    acts.nth(2).locator("select[name='act_set_priority.priority']").select_option("high")
    acts.nth(2).locator("[data-action=row-up]").click()
    page.check("#rule-stop")
    shot(page, "rule_builder")
    page.click("#rule-save")
    page.wait_for_url("**/admin/rules?saved=1")
    expect(page.locator("#rules-table .rule-name")).to_have_text(["失物 → 失物招领"])

    from scrm.automation import service as automation

    with server.db.transaction(readonly=True) as s:
        [rule] = automation.list_rules(s, workspace.id)
    assert rule.conditions == {
        "any": [
            {"field": "text", "op": "contains_any", "value": ["落在", "丢了", "遗失"]},
            {"field": "intent", "op": "eq", "value": "lost_item"},
        ],
        "none": [{"field": "is_spam", "op": "is", "value": True}],
    }
    assert rule.actions == [
        {"type": "route", "team": "lost"},
        {"type": "set_priority", "priority": "high"},
        {"type": "label", "labels": ["失物"]},
    ]
    assert rule.stop and rule.position == 10

    # Dry run: paste the passenger's post, see the rule and what it would do.
    page.fill("#dry-text", LOST_BAG)
    page.click("#dry-run-submit")
    result = page.locator("#dry-result")
    expect(result).to_contain_text("失物 → 失物招领")
    expect(result.locator(".dry-action")).to_have_text(
        ["转给团队 · 团队: 失物招领", "设置优先级 · 优先级: 高", "加标签 · 标签: 失物"]
    )
    shot(page, "rules")
    page.fill("#dry-text", "请问几点登机")
    page.click("#dry-run-submit")
    expect(page.locator("#dry-none")).to_be_visible()

    # Delete asks first: dismissed keeps the rule.
    page.once("dialog", lambda d: d.dismiss())
    page.click(f"#rule-{rule.id} .delete")
    expect(page.locator("#rules-table .rule-name")).to_have_count(1)
    assert not [e for e in page.errors if "Content Security Policy" in e or "Refused" in e], page.errors


def test_admin_sla_channels_pages_and_the_sla_at_risk_view(
    browser, live_server: LiveServer, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from scrm.kit.time import utcnow
    from scrm.models import SlaTimer
    from scrm.sla import service as sla_service

    server = live_server
    with server.db.transaction() as s:
        sla_service.upsert_policy(
            s,
            workspace.id,
            "失物加急",
            {"team_id": workspace.team_ids["lost"], "priority": "urgent", "first_response_minutes": 5},
        )
        sla_service.upsert_policy(s, workspace.id, "默认", {"first_response_minutes": 10})
        week = {d: [["09:00", "12:00"], ["13:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
        sla_service.set_calendar(
            s,
            workspace.id,
            workspace.team_ids["lost"],
            timezone="Asia/Shanghai",
            hours={**week, "sat": [], "sun": []},
        )
    with httpx.Client(base_url=server.url) as http:
        deliver(http, workspace, "s1", LOST_BAG, sender="fan-1", name="林晓雯")
        deliver(http, workspace, "s2", "航班延误了三个小时也没人解释", sender="fan-2", name="成都的大熊")
        deliver(http, workspace, "s3", "请问 MU5402 明天几点起飞？", sender="fan-3", name="小可乐")
    ids = wait_for_conversation(server, workspace, 3)
    now = utcnow()
    with server.db.transaction() as s:  # time passes: one clock breached, one in its warning window
        for cid, due, warn in ((ids[1], -6, -8), (ids[0], 1.5, -0.5)):
            for t in s.query(SlaTimer).filter_by(
                workspace_id=workspace.id, conversation_id=cid, metric="first_response"
            ):
                t.due_at, t.warn_at = now + dt.timedelta(minutes=due), now + dt.timedelta(minutes=warn)

    page = new_page(browser, server)
    login(page, server, "admin@yuncheng.test")
    page.goto(server.url + "/inbox?view=sla")
    expect(page.locator(".conv-row")).to_have_count(2)
    assert page.locator(".conv-row").first.get_attribute("data-id") == str(ids[1])
    expect(page.locator(".conv-row .sla-breached")).to_contain_text("已超时")
    shot(page, "inbox_sla")

    page.goto(server.url + "/admin/sla")
    expect(page.locator("#policies-table tbody tr")).to_have_count(2)
    shot(page, "sla")

    page.goto(server.url + "/admin/channels")
    page.fill("#wechat-form input[name=name]", "云程航空服务号")
    page.fill("#wechat-form input[name=appid]", "wx5137a1b2c3d4e5f6")
    page.fill("#wechat-form input[name=secret]", "app-secret-0123456789abcdef")
    page.fill("#wechat-form input[name=token]", "tok5137yuncheng")
    page.click("#wechat-connect")
    expect(page.locator("#connected")).to_contain_text("/hooks/wechat/")
    assert "app-secret-0123456789abcdef" not in page.content()
    shot(page, "channels")
    assert not [e for e in page.errors if "Content Security Policy" in e or "Refused" in e], page.errors
