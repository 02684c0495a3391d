"""Enqueueing jobs. Jobs are rows written in the caller's transaction, so a rolled-back request
never leaves a job behind; the worker is woken only after the commit."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from scrm.db import CommitBuffer, after_commit
from scrm.errors import Conflict, NotFound
from scrm.kit.time import utcnow
from scrm.models import Job
from scrm.worker import repository
from scrm.worker.registry import get_kind

# Set by an in-process worker so new work is picked up at once instead of at the next poll.
wakeup = threading.Event()


# Jobs whose id the caller does not need at once (`enqueue` without a key, `schedule`) are
# written together, in one executemany just before the transaction commits (a rolled-back
# savepoint drops its own); a scheduled job whose key is taken by then is simply not inserted.
_queued = CommitBuffer("jobs", repository.insert_jobs)


def enqueue(
    session: Session,
    workspace_id: int,
    kind: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    ordering_key: str | None = None,
    run_at: dt.datetime | None = None,
) -> int | None:
    """Queue a job; returns its id, or None when the idempotency key was already used.

    A job with an idempotency key is inserted at once; one without is written when the
    transaction commits (see `flush_queued` for a reader in the same transaction)."""
    values = _row(workspace_id, kind, payload, idempotency_key, ordering_key, run_at or utcnow())
    job_id: int | None
    if idempotency_key is None:
        _queued.add(session, values)
        job_id = int(values["id"])
    else:
        job_id = repository.insert_job(session, values)
    if job_id is not None and (run_at is None or run_at <= utcnow()):
        after_commit(session, wakeup.set)
    return job_id


def schedule(
    session: Session,
    workspace_id: int,
    kind: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str,
    run_at: dt.datetime,
) -> None:
    """Queue a due-time job, written at commit; if a job of this kind already has the key
    then, that one is kept and nothing is added (as with `enqueue`, minus the answer)."""
    _queued.add(session, _row(workspace_id, kind, payload, idempotency_key, None, run_at))
    if run_at <= utcnow():
        after_commit(session, wakeup.set)


def flush_queued(session: Session) -> None:
    """Write the jobs this transaction queued so far (for a reader of the job table)."""
    _queued.flush(session)


def cancel(session: Session, workspace_id: int, kind: str, idempotency_keys: Sequence[str]) -> int:
    """Drop queued due-time jobs that became pointless (a met SLA timer's checks), so the worker
    does not claim and run them for nothing. Jobs already claimed still run."""
    keys = set(idempotency_keys)
    _queued.discard(
        session,
        lambda row: (
            row["workspace_id"] == workspace_id and row["kind"] == kind and row["idempotency_key"] in keys
        ),
    )
    return repository.delete_queued(session, workspace_id, kind, idempotency_keys)


def enqueue_many(session: Session, jobs: Sequence[tuple[int, str, dict[str, Any], str | None]]) -> None:
    """Queue many due-now jobs at once: (workspace id, kind, payload, ordering key) each."""
    if not jobs:
        return
    now = utcnow()
    repository.insert_jobs(
        session, [_row(ws, kind, payload, None, key, now) for ws, kind, payload, key in jobs]
    )
    after_commit(session, wakeup.set)


def _row(
    workspace_id: int,
    kind: str,
    payload: dict[str, Any],
    idempotency_key: str | None,
    ordering_key: str | None,
    run_at: dt.datetime,
) -> dict[str, Any]:
    spec = get_kind(kind)
    if spec is None:
        raise ValueError(f"unknown job kind {kind!r}")
    return repository.job_values(
        workspace_id=workspace_id,
        kind=kind,
        payload=payload,
        idempotency_key=idempotency_key,
        ordering_key=ordering_key,
        run_at=run_at,
        max_attempts=spec.max_attempts,
    )


# -- admin: dead letters and manual control (web admin page, `scrm jobs`) ----------------------
STATUSES = ("queued", "running", "done", "dead", "discarded")


def retry(session: Session, workspace_id: int, job_id: int) -> Job:
    """Queue a dead, discarded or done job of this workspace again, with fresh attempts."""
    job = _get(session, workspace_id, job_id)
    if job.status in ("queued", "running"):
        raise Conflict(f"job {job_id} is {job.status}; nothing to retry")
    repository.requeue(session, job)
    after_commit(session, wakeup.set)
    return job


def discard(session: Session, workspace_id: int, job_id: int) -> Job:
    """Give up on a queued or dead job of this workspace: it will not run."""
    job = _get(session, workspace_id, job_id)
    if job.status == "running":
        raise Conflict(f"job {job_id} is running; try again when it has finished")
    if job.status == "done":
        raise Conflict(f"job {job_id} is done")
    job.status = "discarded"
    job.finished_at = utcnow()
    return job


def _get(session: Session, workspace_id: int, job_id: int) -> Job:
    job = repository.get(session, job_id, workspace_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job
