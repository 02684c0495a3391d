"""Admin pages (admins only), supervisor dashboard with CSV, department view, fan page, i18n."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from scrm.web import i18n
from scrm.workspace import service as workspace_service
from tests.conftest import Workspace
from tests.web.conftest import Browser
from tests.web.helpers import inbound, seed_passenger

ADMIN_PAGES = (
    "/admin/channels",
    "/admin/teams",
    "/admin/members",
    "/admin/canned",
    "/admin/tokens",
    "/admin/policy",
)


def test_agent_gets_403_on_admin_pages_and_dashboard(agent: Browser, workspace: Workspace) -> None:
    for url in (*ADMIN_PAGES, "/dashboard", "/dashboard/queue.csv"):
        r = agent.get(url)
        assert r.status_code == 403, url
        assert "您没有权限访问此页面" in r.text
    r = agent.post("/admin/canned", {"key": "k", "title": "t", "body": "b"}, htmx=False)
    assert r.status_code == 403
    assert "/admin/channels" not in agent.get("/inbox").text  # no admin link for agents


def test_admin_pages_render(admin: Browser) -> None:
    for url in ADMIN_PAGES:
        assert admin.get(url).status_code == 200, url
    assert admin.get("/admin/nope").status_code == 404


def test_connect_webhook_shows_secret_once_then_masked(admin: Browser, db, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    r = admin.post(
        "/admin/channels", {"name": "小程序", "callback_url": "https://example.com/cb"}, htmx=False
    )
    assert r.status_code == 200
    secret = re.search(r"<code>(whsec_[^<]+)</code>", r.text)
    assert secret
    page = admin.get("/admin/channels").text
    assert "小程序" in page and secret.group(1) not in page
    assert "whsec-yuncheng-0123456789" not in page  # the fixture's channel secret is masked too
    assert (
        admin.post("/admin/channels", {"name": "x", "callback_url": "ftp://x"}, htmx=False).status_code == 422
    )


def test_admin_manages_teams_members_roles_canned_tokens_and_policy(
    admin: Browser, db, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    assert (
        admin.post(
            "/admin/teams", {"key": "after_sales", "name": "售后", "kind": "department"}, htmx=False
        ).status_code
        == 303
    )
    assert (
        admin.post(
            "/admin/members",
            {
                "email": "dept@yuncheng.test",
                "name": "失物组小李",
                "password": "password123",
                "role": "department",
            },
            htmx=False,
        ).status_code
        == 303
    )
    with db.transaction(readonly=True) as s:
        member = next(
            m for m in workspace_service.list_members(s, workspace.id) if m.display_name == "失物组小李"
        )
        team = workspace_service.get_team_by_key(s, workspace.id, "after_sales")
    assert member.role == "department"
    admin.post(f"/admin/teams/{team.id}/members", {"member_id": str(member.id)}, htmx=False)
    admin.post(f"/admin/members/{member.id}/role", {"role": "supervisor"}, htmx=False)
    assert admin.post(f"/admin/members/{member.id}/role", {"role": "king"}, htmx=False).status_code == 422
    admin.post("/admin/canned", {"key": "hello", "title": "问候", "body": "{{contact.name}}您好"}, htmx=False)
    admin.post("/admin/policy", {"words": "赔偿\n内部, 机密"}, htmx=False)
    r = admin.post("/admin/tokens", {"name": "ERP"}, htmx=False)
    token = re.search(r"<code>(scrm_[^<]+)</code>", r.text)
    assert token and token.group(1) not in admin.get("/admin/tokens").text
    with db.transaction(readonly=True) as s:
        assert workspace_service.get_member(s, workspace.id, member.id).role == "supervisor"
        assert team.id in workspace_service.member_team_ids(s, workspace.id, member.id)
        assert [c.key for c in workspace_service.list_canned_replies(s, workspace.id)] == ["hello"]
        ws = workspace_service.get_workspace_by_id(s, workspace.id)
        assert workspace_service.forbidden_words(ws) == ["内部", "机密", "赔偿"]
        workspace_service.authenticate_token(s, token.group(1))


def test_dashboard_charts_and_csv(
    admin: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    cid = inbound(client, db, settings, workspace, "e1", "包丢了")
    admin.post(f"/ui/c/{cid}/update", {"team_id": str(workspace.team_ids["lost"])})
    page = admin.get("/dashboard")
    assert page.status_code == 200
    assert 'id="chart-queue"' in page.text and "echarts-5.5.1.common.min.js" in page.text
    assert 'type="application/json" id="chart-data"' in page.text
    csv = admin.get("/dashboard/queue.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.lstrip("\ufeff").splitlines()
    assert lines[0] == "团队,处理中,待回复" and "失物招领,1,0" in lines
    agents = admin.get("/dashboard/agents.csv").text
    assert "客服小王" in agents
    frt = admin.get("/dashboard/first_response.csv").text
    assert "未回复,1" in frt
    assert admin.get("/dashboard/nope.csv").status_code == 404


def test_department_view_lists_routed_cases_and_records_the_outcome_for_the_fan(
    admin: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        user = workspace_service.create_user(s, "lost@yuncheng.test", "password123", "失物招领小陈")
        m = workspace_service.add_member(s, workspace.id, user, "department")
        workspace_service.add_to_team(s, workspace.id, workspace.team_ids["lost"], m.id)
    routed = inbound(client, db, settings, workspace, "e1", "包丢了", sender="a")
    other = inbound(client, db, settings, workspace, "e2", "要退票", sender="b")
    admin.post(f"/ui/c/{routed}/update", {"team_id": str(workspace.team_ids["lost"])})
    dept = Browser(TestClient(admin.client.app))
    dept.login("lost@yuncheng.test")
    html = dept.get("/department").text
    assert f'id="row-{routed}"' in html and f'id="row-{other}"' not in html
    pane = dept.get(f"/department?c={routed}").text
    assert 'id="outcome-box"' in pane
    # The department records the outcome; it goes back to the fan on the same thread, once.
    assert (
        dept.post(f"/ui/c/{routed}/outcome", {"text": "已找到，在成都双流 T2 到达层 3 号柜台"}).status_code
        == 200
    )
    assert dept.post(f"/ui/c/{other}/outcome", {"text": "不是我的案子"}).status_code == 403
    assert dept.post(f"/ui/c/{routed}/outcome", {"text": "  "}).status_code == 422
    with db.transaction(readonly=True) as s:
        from sqlalchemy import select

        from scrm.models import ConversationActivity, Message

        replies = (
            s.execute(select(Message).where(Message.conversation_id == routed, Message.direction == "out"))
            .scalars()
            .all()
        )
        kinds = [
            a.kind
            for a in s.execute(
                select(ConversationActivity).where(ConversationActivity.conversation_id == routed)
            ).scalars()
        ]
    assert [m.text for m in replies] == ["已找到，在成都双流 T2 到达层 3 号柜台"]
    assert "outcome" in kinds


def test_contact_page(agent: Browser, client: TestClient, db, settings, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    contact_id = seed_passenger(db, workspace)
    inbound(client, db, settings, workspace, "e1", "包丢了")
    html = agent.get(f"/contacts/{contact_id}").text
    assert "林晓雯" in html and "YC2026051213701" in html and "MU5137" in html and "139****2587" in html
    assert agent.get("/contacts/123").status_code == 404


def test_catalogues_have_the_same_keys_and_every_template_key_exists() -> None:
    assert set(i18n.ZH) == set(i18n.EN)
    from pathlib import Path

    root = Path(i18n.__file__).parent / "templates"
    for path in root.rglob("*.html"):
        for key in re.findall(r"""_\(["']([a-z_.]+)["']\s*[,)]""", path.read_text()):
            assert key in i18n.ZH, f"{path.name}: {key}"
    assert i18n.t("en", "fan.followers_n", n=3) == "3 followers"
    assert i18n.t("zh-CN", "act.some_new_kind") == "some_new_kind"


def test_english_pages_have_no_chinese_ui_text(agent: Browser) -> None:
    agent.post("/ui/locale", {"locale": "en"}, htmx=False)
    html = agent.get("/inbox").text
    # Workspace and people names are data; the UI chrome itself must be English.
    chrome = re.sub(r"(yuncheng 演示|客服小王|客服|失物招领)", "", html)
    assert not re.search(r"[\u4e00-\u9fff]", chrome.replace("中文", "")), re.findall(
        r".{20}[\u4e00-\u9fff]+.{10}", chrome
    )[:5]
