"""Supervisor dashboard: live queue by team, agents' load, first-response times, volume by
intent and sentiment. Each chart's data is also a CSV download."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from scrm.conversation import service as conversation_service
from scrm.errors import NotFound
from scrm.kit.time import utcnow
from scrm.web import deps, i18n
from scrm.web.deps import SupervisorCtx, WebContext
from scrm.workspace import service as workspace_service

router = APIRouter()
CHARTS = ("queue", "agents", "first_response", "intent", "sentiment")
# First-response buckets (upper bounds in minutes); the default goal is 10 minutes (S5).
FRT_BUCKETS = ((1, "<1m"), (5, "1-5m"), (10, "5-10m"), (30, "10-30m"), (60, "30-60m"), (240, "1-4h"))
WINDOW = dt.timedelta(days=7)


def chart_tables(ctx: WebContext) -> dict[str, dict[str, Any]]:
    """Each chart as a table: column headers and rows (what the chart draws and the CSV holds)."""
    ws = ctx.principal.workspace_id
    t = ctx.t
    with ctx.db.transaction(readonly=True) as session:
        stats = conversation_service.queue_stats(session, ws, utcnow() - WINDOW)
        teams = {tm.id: tm.name for tm in workspace_service.list_teams(session, ws)}
        members = workspace_service.list_members(session, ws)
    queue: dict[str, dict[str, int]] = {}
    for team_id, status, n in stats.open_by_team:
        name = teams.get(team_id, "") if team_id is not None else t("dash.no_team")
        queue.setdefault(name, {"open": 0, "pending": 0})[status] = n
    load = dict(stats.open_by_assignee)
    buckets = [0] * (len(FRT_BUCKETS) + 1)
    for seconds in stats.first_response_seconds:
        minutes = seconds / 60
        idx = next((i for i, (limit, _) in enumerate(FRT_BUCKETS) if minutes < limit), len(FRT_BUCKETS))
        buckets[idx] += 1
    frt_labels = [label for _, label in FRT_BUCKETS] + [">4h"]
    within = sum(1 for s in stats.first_response_seconds if s <= 600)
    total = len(stats.first_response_seconds) + stats.unanswered
    return {
        "queue": {
            "columns": [t("dash.team"), t("status.open"), t("status.pending")],
            "rows": [[name, c["open"], c["pending"]] for name, c in sorted(queue.items())],
        },
        "agents": {
            "columns": [t("dash.agent"), t("dash.open_cases"), t("dash.capacity"), t("dash.availability")],
            "rows": [
                [m.display_name, load.get(m.id, 0), m.capacity, t(f"avail.{m.availability}")]
                for m in members
                if m.role in ("agent", "supervisor", "admin")
            ]
            + ([[t("dash.unassigned"), load.get(None, 0), "", ""]] if load.get(None) else []),
        },
        "first_response": {
            "columns": [t("dash.bucket"), t("dash.conversations")],
            "rows": [
                *([label, n] for label, n in zip(frt_labels, buckets, strict=True)),
                [t("dash.unanswered"), stats.unanswered],
            ],
            "summary": {"within_goal": within, "total": total},
        },
        "intent": {
            "columns": [t("filter.intent"), t("dash.conversations")],
            "rows": [[i18n.label(ctx.locale, "intent", k), n] for k, n in stats.by_intent],
        },
        "sentiment": {
            "columns": [t("filter.sentiment"), t("dash.conversations")],
            "rows": [[i18n.label(ctx.locale, "sentiment", k), n] for k, n in stats.by_sentiment],
        },
    }


@router.get("/dashboard")
def dashboard(ctx: SupervisorCtx) -> HTMLResponse:
    tables = chart_tables(ctx)
    return deps.page(ctx, "dashboard.html", tables=tables, charts=CHARTS)


@router.get("/dashboard/{chart}.csv")
def chart_csv(ctx: SupervisorCtx, chart: str) -> Response:
    if chart not in CHARTS:
        raise NotFound("no such chart")
    table = chart_tables(ctx)[chart]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(table["columns"])
    writer.writerows(table["rows"])
    # A BOM so Excel opens the Chinese headers as UTF-8.
    return Response(
        "\ufeff" + buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{chart}.csv"'},
    )
