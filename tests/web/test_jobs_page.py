"""Admin jobs page: dead letters of the admin's own workspace only; retry and discard."""

from __future__ import annotations

from sqlalchemy import select

from scrm.db import Database
from scrm.models import Job
from scrm.worker.service import enqueue, flush_queued
from tests.conftest import Workspace, make_workspace
from tests.web.conftest import Browser


def _dead_job(db: Database, ws_id: int, n: int) -> int:
    with db.transaction() as s:
        job_id = enqueue(s, ws_id, "jobs.purge", {"n": n})
        assert job_id is not None
        flush_queued(s)  # (jobs without a key are written at commit)
        job = s.get(Job, (ws_id, job_id))
        assert job is not None
        job.status, job.attempts, job.last_error = "dead", 3, f"RuntimeError: boom {n}"
    return job_id


def test_admin_sees_and_retries_and_discards_own_dead_letters(
    admin: Browser, db, workspace: Workspace
) -> None:  # type: ignore[no-untyped-def]
    other = make_workspace(db, "other")
    mine, mine2 = _dead_job(db, workspace.id, 1), _dead_job(db, workspace.id, 2)
    theirs = _dead_job(db, other.id, 3)
    page = admin.get("/admin/jobs").text
    assert f"job-{mine}" in page and "boom 1" in page and f"job-{theirs}" not in page
    assert "tab-jobs" in admin.get("/admin/channels").text
    assert admin.post(f"/admin/jobs/{mine}/retry", {"status": "dead"}, htmx=False).status_code == 303
    assert admin.post(f"/admin/jobs/{mine2}/discard", htmx=False).status_code == 303
    # Another workspace's job is not found, whatever its id.
    assert admin.post(f"/admin/jobs/{theirs}/retry", htmx=False).status_code == 404
    with db.transaction(readonly=True) as s:
        status = dict(s.execute(select(Job.id, Job.status)).all())  # type: ignore[arg-type]
    assert status[mine] == "queued" and status[mine2] == "discarded" and status[theirs] == "dead"
    assert f"job-{mine}" in admin.get("/admin/jobs?status=queued").text
    assert admin.post(f"/admin/jobs/{mine}/retry", htmx=False).status_code == 409
    # Without the CSRF token nothing happens.
    r = admin.client.post(f"/admin/jobs/{mine}/discard", data={}, follow_redirects=False)
    assert r.status_code == 403


def test_agents_cannot_see_jobs(agent: Browser, workspace: Workspace) -> None:
    assert agent.get("/admin/jobs").status_code == 403


def test_jobs_page_in_english(admin: Browser) -> None:
    admin.post("/ui/locale", {"locale": "en"}, htmx=False)
    assert "Dead letters" in admin.get("/admin/jobs").text
