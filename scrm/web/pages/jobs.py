"""Admin: background jobs of this workspace, dead letters first; retry or discard one.

Jobs are workspace-owned: every query and action here is scoped to the admin's workspace.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse

from scrm.web import deps
from scrm.web.deps import AdminCtx
from scrm.worker import repository
from scrm.worker import service as jobs
from scrm.worker.registry import kinds

router = APIRouter(prefix="/admin/jobs")
PAGE_SIZE = 50


@router.get("")
def jobs_page(
    ctx: AdminCtx,
    status: Annotated[str, Query(max_length=12)] = "dead",
    kind: Annotated[str, Query(max_length=64)] = "",
    before: Annotated[int | None, Query()] = None,
) -> HTMLResponse:
    ws = ctx.principal.workspace_id
    status = status if status in jobs.STATUSES or status == "all" else "dead"
    kind = kind if kind in kinds() else ""
    with ctx.db.transaction(readonly=True) as session:
        counts = repository.counts_for_workspace(session, ws)
        stats = repository.queue_stats(session, ws)
        rows = list(
            repository.list_jobs(
                session,
                status=None if status == "all" else status,
                kind=kind or None,
                limit=PAGE_SIZE + 1,
                workspace_id=ws,
                before_id=before,
            )
        )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_url = ""
    if more and rows:
        next_url = "/admin/jobs?" + urlencode({"status": status, "kind": kind, "before": rows[-1].id})
    return deps.page(
        ctx,
        "admin/jobs.html",
        section="jobs",
        status=status,
        kind=kind,
        statuses=(*jobs.STATUSES, "all"),
        kinds=sorted(kinds()),
        counts=counts,
        stats=sorted(stats.items()),
        jobs=rows,
        next_url=next_url,
    )


def _back(status: str, kind: str) -> RedirectResponse:
    query = urlencode({"status": status or "dead", "kind": kind, "saved": 1})
    return RedirectResponse(f"/admin/jobs?{query}", status_code=303)


@router.post("/{job_id}/retry")
def retry_job(
    ctx: AdminCtx,
    job_id: int,
    status: Annotated[str, Form(max_length=12)] = "dead",
    kind: Annotated[str, Form(max_length=64)] = "",
) -> RedirectResponse:
    with ctx.db.transaction() as session:
        jobs.retry(session, ctx.principal.workspace_id, job_id)
    return _back(status, kind)


@router.post("/{job_id}/discard")
def discard_job(
    ctx: AdminCtx,
    job_id: int,
    status: Annotated[str, Form(max_length=12)] = "dead",
    kind: Annotated[str, Form(max_length=64)] = "",
) -> RedirectResponse:
    with ctx.db.transaction() as session:
        jobs.discard(session, ctx.principal.workspace_id, job_id)
    return _back(status, kind)
