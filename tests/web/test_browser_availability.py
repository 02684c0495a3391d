"""In a real Chromium: an agent who only uses the web UI goes online from the header switch and
gets the next conversation; going away hands it back to the queue. An admin edits a member's
capacity, skills and seniority on Admin → Members."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scrm.models import Conversation, Member
from tests.conftest import Workspace
from tests.web.conftest import LiveServer
from tests.web.helpers import deliver
from tests.web.test_browser import ARGS, CHROMIUM, expect, login, new_page, playwright_api

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


def script_errors(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Script errors and CSP refusals (a 4xx status is not one: the 422 page is expected)."""
    return [e for e in page.errors if not e.startswith("Failed to load resource")]


def availability(server: LiveServer, ws: Workspace, member_id: int) -> str:
    with server.db.transaction(readonly=True) as s:
        m = s.get(Member, (ws.id, member_id))
        assert m is not None
        return m.availability


def wait_for(check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def assignees(server: LiveServer, ws: Workspace) -> list[int | None]:
    with server.db.transaction(readonly=True) as s:
        return [
            c.assignee_id
            for c in s.query(Conversation).filter_by(workspace_id=ws.id).order_by(Conversation.id)
        ]


def test_a_browser_only_agent_goes_online_gets_work_and_hands_it_on_going_away(
    browser, live_server: LiveServer, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    server, me = live_server, workspace.agent_member_id
    page = new_page(browser, server)
    login(page, server, "agent@yuncheng.test")
    page.goto(server.url + "/inbox?view=mine")
    # members start offline: the switch says so
    expect(page.locator("#avail-offline")).to_have_class("avail-offline on")
    expect(page.locator("#avail-online")).to_have_attribute("aria-pressed", "false")
    page.click("#avail-online")
    expect(page.locator("#avail-online")).to_have_class("avail-online on")
    assert page.url.endswith("/inbox?view=mine")  # back on the same view
    assert availability(server, workspace, me) == "online"

    # a fan writes: the pipeline gives it to the one agent online
    with httpx.Client(base_url=server.url) as http:
        deliver(http, workspace, "avail-1", "请问行李托运限额是多少？", sender="fan-a")
    assert wait_for(lambda: assignees(server, workspace) == [me] or None)

    # going away hands it on (nobody else online: to the unassigned queue)
    page.click("#avail-away")
    expect(page.locator("#avail-away")).to_have_class("avail-away on")
    assert availability(server, workspace, me) == "away"
    assert assignees(server, workspace) == [None]
    # and back online it comes back
    page.click("#avail-online")
    expect(page.locator("#avail-online")).to_have_class("avail-online on")
    assert assignees(server, workspace) == [me]

    # the switch is in English too
    page.click("#user-menu")
    page.click("#lang-en")
    expect(page.locator("#avail-online")).to_have_text("Online")
    expect(page.locator("#avail-away")).to_have_text("Away")
    assert not script_errors(page), page.errors  # type: ignore[attr-defined]


def test_an_admin_edits_capacity_skills_and_seniority(
    browser, live_server: LiveServer, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    server, target = live_server, workspace.agent_member_id
    page = new_page(browser, server)
    login(page, server, "admin@yuncheng.test")
    page.goto(server.url + "/admin/members")
    row = page.locator(f"#member-{target}")
    row.locator("input[name=capacity]").fill("6")
    row.locator("input[name=skills]").fill("lang:en, channel:weibo")
    row.locator("input[name=is_senior]").check()
    row.locator(".member-settings button").click()
    page.wait_for_selector("#flash-saved")
    row = page.locator(f"#member-{target}")
    expect(row.locator("input[name=capacity]")).to_have_value("6")
    expect(row.locator("input[name=skills]")).to_have_value("lang:en, channel:weibo")
    expect(row.locator("input[name=is_senior]")).to_be_checked()
    with server.db.transaction(readonly=True) as s:
        m = s.get(Member, (workspace.id, target))
        assert m is not None
        assert (m.capacity, m.skills, m.is_senior) == (6, ["lang:en", "channel:weibo"], True)
    # a refused value is shown with the reason, and nothing is stored
    row.locator("input[name=skills]").fill("x" * 41)
    row.locator(".member-settings button").click()
    expect(page.locator("#member-error")).to_contain_text("at most 40")
    with server.db.transaction(readonly=True) as s:
        m = s.get(Member, (workspace.id, target))
        assert m is not None and m.skills == ["lang:en", "channel:weibo"]
    assert not script_errors(page), page.errors  # type: ignore[attr-defined]
