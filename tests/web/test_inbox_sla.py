"""The inbox's "SLA at risk" view: running clocks inside their warning window or past due,
soonest due first, with the inbox filters, paging and tenancy."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from scrm.db import Database
from scrm.kit.time import utcnow
from scrm.models import SlaTimer
from scrm.web.pages import inbox
from tests.conftest import Workspace
from tests.helpers import run_jobs
from tests.web.conftest import Browser
from tests.web.helpers import conversation_ids, deliver


def set_clock(
    db: Database, ws: Workspace, cid: int, *, due_in: float, warn_in: float | None, status: str = "running"
) -> None:
    """Move a conversation's first-response clock (minutes from now) as time passing would."""
    now = utcnow()
    with db.transaction() as s:
        timers = s.query(SlaTimer).filter_by(workspace_id=ws.id, conversation_id=cid).all()
        assert {t.metric for t in timers} >= {"first_response"}, "the pipeline starts the SLA clocks"
        for t in timers:
            if t.metric == "first_response":
                t.due_at = now + dt.timedelta(minutes=due_in)
                t.warn_at = None if warn_in is None else now + dt.timedelta(minutes=warn_in)
                t.status = status


def rows(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'id="row-(\d+)"', html)]


@pytest.fixture
def four(client: TestClient, db: Database, settings, workspace: Workspace) -> list[int]:  # type: ignore[no-untyped-def]
    for i, text in enumerate(["包丢了", "航班延误", "要退票", "改签"]):
        deliver(client, workspace, f"e{i}", text, sender=f"fan-{i}")
    run_jobs(db, settings)
    ids = sorted(conversation_ids(db, workspace))
    assert len(ids) == 4
    return ids


def test_sla_at_risk_lists_warned_and_breached_clocks_soonest_first(
    agent: Browser, db: Database, workspace: Workspace, four: list[int]
) -> None:
    breached, warned, calm, paused = four
    set_clock(db, workspace, breached, due_in=-7, warn_in=-9)
    set_clock(db, workspace, warned, due_in=1.5, warn_in=-0.5)
    set_clock(db, workspace, calm, due_in=9, warn_in=7)
    set_clock(db, workspace, paused, due_in=-30, warn_in=-32, status="paused")  # waiting on the fan

    page = agent.get("/inbox?view=sla").text
    assert rows(page) == [breached, warned]
    assert re.search(r'id="view-sla"[^>]*>\s*<span>SLA 风险</span><span class="count">2</span>', page)
    row = page[page.index(f'id="row-{breached}"') : page.index(f'id="row-{warned}"')]
    assert "首次响应 · 已超时 7 分钟" in row and "sla-breached" in row
    assert "首次响应 · 剩 2 分钟" in page
    # The fragment the live list refreshes from, and the other views are unchanged.
    assert rows(agent.get("/ui/inbox/list?view=sla").text) == [breached, warned]
    assert set(rows(agent.get("/ui/inbox/list?view=all").text)) == set(four)
    assert "sla-breached" not in agent.get("/ui/inbox/list?view=all").text


def test_sla_at_risk_uses_the_inbox_filters_and_pages_by_due_time(
    agent: Browser, db: Database, workspace: Workspace, four: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    for n, cid in enumerate(reversed(four)):  # the last conversation is the most overdue
        set_clock(db, workspace, cid, due_in=-10 + n, warn_in=-12 + n)
    expected = list(reversed(four))
    assert rows(agent.get("/ui/inbox/list?view=sla").text) == expected

    lost = workspace.team_ids["lost"]
    assert agent.post(f"/ui/c/{four[0]}/update", {"team_id": str(lost)}).status_code == 200
    assert rows(agent.get(f"/ui/inbox/list?view=sla&team={lost}").text) == [four[0]]
    assert rows(agent.get("/ui/inbox/list?view=sla&q=退票").text) == [four[2]]
    agent.post(f"/ui/c/{four[1]}/update", {"status": "resolved"})  # met: no longer at risk
    expected.remove(four[1])
    assert rows(agent.get("/ui/inbox/list?view=sla").text) == expected

    monkeypatch.setattr(inbox, "PAGE_SIZE", 2)
    first = agent.get("/ui/inbox/list?view=sla").text
    assert rows(first) == expected[:2]
    more = re.search(r'hx-get="([^"]+cursor=[^"]+)"', first)
    assert more
    second = agent.get(more.group(1).replace("&amp;", "&")).text
    assert rows(second) == expected[2:] and "load-more" not in second
    assert agent.get("/ui/inbox/list?view=sla&cursor=garbage").status_code == 422


def test_sla_at_risk_never_shows_another_workspace(
    agent: Browser,
    client: TestClient,
    db: Database,
    settings,
    workspace: Workspace,
    other_workspace: Workspace,
) -> None:  # type: ignore[no-untyped-def]
    deliver(client, other_workspace, "x1", "别家的会话", sender="fan-x")
    run_jobs(db, settings)
    [theirs] = conversation_ids(db, other_workspace)
    set_clock(db, other_workspace, theirs, due_in=-5, warn_in=-6)
    page = agent.get("/inbox?view=sla").text
    assert rows(page) == [] and 'id="list-empty"' in page
    assert re.search(r'id="view-sla"[^>]*>\s*<span>SLA 风险</span><span class="count">0</span>', page)
