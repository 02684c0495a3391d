"""Department view: the cases routed to my teams (lost-and-found, after-sales, partners),
where the department reads the case and records its outcome."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from scrm.web import deps
from scrm.web.deps import Ctx
from scrm.web.pages.conversation import pane_data
from scrm.web.pages.inbox import InboxQuery, list_data, sidebar_data

router = APIRouter()


@router.get("/department")
def department(ctx: Ctx, c: str = "") -> HTMLResponse:
    q = InboxQuery.from_request(ctx.request)
    q.view = "department"
    selected = int(c) if c.isdigit() else None
    with ctx.db.transaction(readonly=True) as session:
        data = {**list_data(session, ctx, q), **sidebar_data(session, ctx, q)}
        pane = pane_data(session, ctx, selected) if selected is not None else None
    my_teams = [t for t in data["team_list"] if t.id in ctx.team_ids]
    return deps.page(ctx, "department.html", pane=pane, selected=selected, my_teams=my_teams, **data)
