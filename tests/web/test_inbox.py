"""Inbox views, filters, search (Chinese substrings), the conversation pane and its actions."""

from __future__ import annotations

from fastapi.testclient import TestClient

from scrm.conversation import service as conversation_service
from scrm.db import Database
from scrm.models import Message
from scrm.workspace import service as workspace_service
from tests.conftest import Workspace, make_workspace
from tests.helpers import run_jobs
from tests.web.conftest import Browser
from tests.web.helpers import LOST_BAG, conversation_ids, deliver, inbound, seed_passenger


def test_new_conversation_shows_in_unassigned_and_all_not_in_mine(
    agent: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    cid = inbound(client, db, settings, workspace, "e1", LOST_BAG)
    assert f'id="row-{cid}"' in agent.get("/inbox?view=unassigned").text
    assert f'id="row-{cid}"' in agent.get("/inbox?view=all").text
    assert f'id="row-{cid}"' not in agent.get("/inbox?view=mine").text
    assert f'id="row-{cid}"' not in agent.get("/inbox?view=team").text  # not routed to a team yet


def test_search_finds_chinese_substrings_in_messages_and_contact_names(
    agent: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    seed_passenger(db, workspace, "fan-1")
    deliver(client, workspace, "e1", LOST_BAG, sender="fan-1")
    deliver(client, workspace, "e2", "请问几点登机", sender="fan-2", name="王先生")
    run_jobs(db, settings)
    ids = conversation_ids(db, workspace)
    assert len(ids) == 2
    by_text = agent.get("/ui/inbox/list?view=all&q=双肩包").text
    assert by_text.count('class="conv-row') == 1 and "黑色双肩包" in by_text
    by_name = agent.get("/ui/inbox/list?view=all&q=晓雯").text
    assert by_name.count('class="conv-row') == 1
    assert agent.get("/ui/inbox/list?view=all&q=登机").text.count('class="conv-row') == 1
    # LIKE wildcards are literal text, not patterns.
    assert agent.get("/ui/inbox/list?view=all&q=%25").text.count('class="conv-row') == 0


def test_filters_by_status_priority_label_team_and_agent(
    agent: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    deliver(client, workspace, "e1", "包丢了", sender="fan-1")
    deliver(client, workspace, "e2", "要退票", sender="fan-2")
    run_jobs(db, settings)
    a, b = conversation_ids(db, workspace)
    lost = workspace.team_ids["lost"]
    r = agent.post(
        f"/ui/c/{a}/update",
        {
            "priority": "urgent",
            "labels": "失物, VIP",
            "team_id": str(lost),
            "assignee_id": str(workspace.agent_member_id),
        },
    )
    assert r.status_code == 200
    agent.post(f"/ui/c/{b}/update", {"status": "resolved"})

    def rows(url: str) -> set[int]:
        html = agent.get(url).text
        return {i for i in (a, b) if f'id="row-{i}"' in html}

    assert rows("/ui/inbox/list?view=all") == {a}  # resolved ones hide by default
    assert rows("/ui/inbox/list?view=all&status=resolved") == {b}
    assert rows("/ui/inbox/list?view=all&status=all") == {a, b}
    assert rows("/ui/inbox/list?view=all&priority=urgent") == {a}
    assert rows("/ui/inbox/list?view=all&label=VIP") == {a}
    assert rows("/ui/inbox/list?view=all&label=VI") == set()
    assert rows(f"/ui/inbox/list?view=all&team={lost}") == {a}
    assert rows(f"/ui/inbox/list?view=all&agent={workspace.agent_member_id}") == {a}
    assert rows("/ui/inbox/list?view=mine") == {a}
    assert agent.get("/ui/inbox/list?view=nope").status_code == 422


def test_pane_shows_thread_triage_and_fan_panel(
    agent: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    seed_passenger(db, workspace, "fan-1")
    cid = inbound(client, db, settings, workspace, "e1", LOST_BAG)
    with db.transaction() as s:  # what the NLP step writes (it may not be installed here)
        conv = conversation_service.get(s, workspace.id, cid)
        conv.intent, conv.sentiment = "lost_item", "neg"
        msg = s.query(Message).filter_by(workspace_id=workspace.id, conversation_id=cid).one()
        msg.triage = {
            "intent": "lost_item",
            "sentiment": "neg",
            "entities": [
                {"type": "flight_no", "value": "MU5137", "start": 0, "end": 0},
                {"type": "seat", "value": "32C", "start": 0, "end": 0},
            ],
        }
    html = agent.get(f"/ui/c/{cid}").text
    assert "黑色双肩包落在 32C" in html
    assert "失物" in html and "负面" in html and "MU5137" in html
    assert "林晓雯" in html and "139****2587" in html and "13916042587" not in html
    assert "银卡" in html and "18,620" in html and "SHA→CTU" in html
    assert "Webhook" in html
    full = agent.get(f"/c/{cid}").text
    assert 'id="pane-inner"' in full and f'id="row-{cid}"' not in agent.get("/inbox?view=mine").text


def test_canned_reply_is_filled_from_contact_and_entities_and_reply_is_sent(
    agent: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    seed_passenger(db, workspace, "fan-1")
    cid = inbound(client, db, settings, workspace, "e1", LOST_BAG)
    with db.transaction() as s:
        workspace_service.upsert_canned_reply(
            s,
            workspace.id,
            "lost",
            "失物登记",
            "{{contact.name}}您好，已为您登记航班 {{entities.flight_no}} 座位 {{entities.seat}} 的遗失物品。客服{{agent.name}}",
        )
        msg = s.query(Message).filter_by(workspace_id=workspace.id, conversation_id=cid).one()
        msg.triage = {
            "entities": [{"type": "flight_no", "value": "MU5137"}, {"type": "seat", "value": "32C"}]
        }
    html = agent.get(f"/ui/c/{cid}").text
    filled = "林晓雯您好，已为您登记航班 MU5137 座位 32C 的遗失物品。客服客服小王"
    assert f'data-text="{filled}"' in html
    r = agent.post(f"/ui/c/{cid}/reply", {"text": filled, "visibility": "private"})
    assert r.status_code == 200 and "回复已发送" in r.text and filled in r.text
    with db.transaction(readonly=True) as s:
        conv = conversation_service.get(s, workspace.id, cid)
        assert conv.assignee_id == workspace.agent_member_id and conv.first_response_at is not None


def test_policy_words_warn_and_need_a_confirm_before_sending(
    agent: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    cid = inbound(client, db, settings, workspace, "e1", "包丢了")
    with db.transaction() as s:
        workspace_service.set_forbidden_words(s, workspace.id, ["赔偿", "内部航班"])
    r = agent.post(f"/ui/c/{cid}/reply", {"text": "我们会全额赔偿", "visibility": "private"})
    assert r.status_code == 200 and 'id="policy-warning"' in r.text and "赔偿" in r.text
    assert r.headers["HX-Retarget"] == "#reply-box"
    with db.transaction(readonly=True) as s:
        assert [m.direction for m in conversation_service.messages(s, workspace.id, cid)] == ["in"]
    r = agent.post(
        f"/ui/c/{cid}/reply", {"text": "我们会全额赔偿", "visibility": "private", "confirm": "yes"}
    )
    assert "回复已发送" in r.text
    # Unfilled canned variables warn the same way.
    r = agent.post(f"/ui/c/{cid}/reply", {"text": "航班 {{entities.flight_no}}", "visibility": "private"})
    assert "{{entities.flight_no}}" in r.text and 'id="policy-confirm"' in r.text


def test_note_transfer_resolve_reopen_and_timeline(
    agent: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    cid = inbound(client, db, settings, workspace, "e1", "包丢了")
    assert "备注已添加" in agent.post(f"/ui/c/{cid}/note", {"text": "已电话联系旅客"}).text
    assert agent.post(f"/ui/c/{cid}/note", {"text": "  "}).status_code == 422
    agent.post(f"/ui/c/{cid}/update", {"team_id": str(workspace.team_ids["lost"])})
    r = agent.post(f"/ui/c/{cid}/update", {"status": "resolved"})
    assert 'id="btn-reopen"' in r.text
    r = agent.post(f"/ui/c/{cid}/update", {"status": "open"})
    assert 'id="btn-resolve"' in r.text
    for kind in ("创建会话", "内部备注", "转交", "状态变更"):
        assert kind in r.text
    assert agent.post(f"/ui/c/{cid}/update", {"priority": "whenever"}).status_code == 422


def test_public_thread_offers_public_or_private_reply(
    agent: Browser, db, settings, workspace: Workspace, client: TestClient
) -> None:  # type: ignore[no-untyped-def]
    cid = inbound(client, db, settings, workspace, "e1", "包丢了")
    assert 'name="visibility" value="public"' not in agent.get(f"/ui/c/{cid}").text
    with db.transaction() as s:
        conversation_service.get(s, workspace.id, cid).visibility = "public"
    html = agent.get(f"/ui/c/{cid}").text
    assert 'name="visibility" value="public"' in html and 'name="visibility" value="private"' in html


def test_xss_in_a_fan_message_renders_as_text(
    agent: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    cid = inbound(client, db, settings, workspace, "e1", payload, name='<b onmouseover="x">坏人</b>')
    for url in (f"/ui/c/{cid}", "/inbox?view=all", f"/c/{cid}"):
        html = agent.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html and "<b onmouseover" not in html
        assert "&lt;script&gt;alert" in html


def test_another_workspaces_conversation_is_404(
    agent: Browser, db, settings, client: TestClient, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    other = make_workspace(db, "xiaomo")
    cid = inbound(client, db, settings, other, "x1", "别家的会话")
    for url in (f"/ui/c/{cid}", f"/c/{cid}", f"/ui/c/{cid}/thread"):
        r = agent.get(url)
        assert r.status_code == 404 and "别家的会话" not in r.text
    assert agent.post(f"/ui/c/{cid}/reply", {"text": "hi"}).status_code == 404
    assert agent.post(f"/ui/c/{cid}/update", {"status": "resolved"}).status_code == 404
    assert "404" in agent.get(f"/c/{cid}").text


def test_fragment_actions_need_the_csrf_header(
    agent: Browser, client: TestClient, db, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    cid = inbound(client, db, settings, workspace, "e1", "包丢了")
    r = agent.client.post(f"/ui/c/{cid}/reply", data={"text": "hi"}, headers={"HX-Request": "true"})
    assert r.status_code == 403
    r = agent.client.post(f"/ui/c/{cid}/update", data={"status": "resolved", "csrf_token": "wrong"})
    assert r.status_code == 403
    with db.transaction(readonly=True) as s:
        assert conversation_service.get(s, workspace.id, cid).status == "open"


def test_load_more_pages_through_the_list(
    agent: Browser, client: TestClient, db: Database, settings, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    from scrm.web.pages import inbox

    for i in range(inbox.PAGE_SIZE + 3):
        deliver(client, workspace, f"p{i}", f"消息 {i}", sender=f"fan-{i}")
    run_jobs(db, settings)
    first = agent.get("/ui/inbox/list?view=all").text
    assert first.count('class="conv-row') == inbox.PAGE_SIZE and "cursor=" in first
    import re

    nxt = re.search(r'hx-get="(/ui/inbox/list\?[^"]*cursor=[^"]*)"', first)
    assert nxt
    second = agent.get(nxt.group(1).replace("&amp;", "&")).text
    assert second.count('class="conv-row') == 3
