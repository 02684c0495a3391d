"""Queries on the job table. Claims use FOR UPDATE SKIP LOCKED on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import BindParameter

from scrm.db import conflict_insert, keys_in
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow
from scrm.models import Job

# Statements built once with bound parameters (the enqueue is on the ingest hot path).
_JOB_TABLE = cast(Table, Job.__table__)
_PLAIN_INSERT = insert(_JOB_TABLE)
_IDEMPOTENT_INSERT: dict[tuple[str, bool], Any] = {}


def _idempotent_insert(session: Session, *, returning: bool) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` on the job table (a taken key inserts nothing), built
    once per dialect; with `returning`, it answers the new row's id."""
    dialect = session.get_bind().dialect.name
    stmt = _IDEMPOTENT_INSERT.get((dialect, returning))
    if stmt is None:
        stmt = conflict_insert(dialect, _JOB_TABLE).on_conflict_do_nothing()
        if returning:
            stmt = stmt.returning(_JOB_TABLE.c.id)
        _IDEMPOTENT_INSERT[(dialect, returning)] = stmt
    return stmt


def job_values(
    *,
    workspace_id: int,
    kind: str,
    payload: dict[str, Any],
    idempotency_key: str | None,
    ordering_key: str | None,
    run_at: dt.datetime,
    max_attempts: int,
) -> dict[str, Any]:
    """A new queued job row, with its id (for insert_job or insert_jobs)."""
    return {
        "workspace_id": workspace_id,
        "id": new_id(),
        "kind": kind,
        "payload": payload,
        "status": "queued",
        "idempotency_key": idempotency_key,
        "ordering_key": ordering_key,
        "run_at": run_at,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": utcnow(),
    }


def insert_job(session: Session, values: dict[str, Any]) -> int | None:
    """Insert a job; with an idempotency key already used for this kind, insert nothing."""
    if values["idempotency_key"] is None:
        session.connection().execute(_PLAIN_INSERT, values)
        return int(values["id"])
    return (
        session.connection().execute(_idempotent_insert(session, returning=True), values).scalar_one_or_none()
    )


def delete_queued(session: Session, workspace_id: int, kind: str, idempotency_keys: Sequence[str]) -> int:
    """Delete the still-queued jobs of `kind` with these idempotency keys (by the unique index);
    a job already claimed is left to run. Returns how many were deleted."""
    if not idempotency_keys:
        return 0
    result = session.connection().execute(
        _JOB_TABLE.delete().where(
            _JOB_TABLE.c.workspace_id == workspace_id,
            _JOB_TABLE.c.kind == kind,
            _JOB_TABLE.c.idempotency_key.in_(list(idempotency_keys)),
            _JOB_TABLE.c.status == "queued",
        )
    )
    return int(result.rowcount or 0)


def insert_jobs(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many jobs in one executemany; one whose idempotency key is taken is skipped."""
    if rows:
        session.connection().execute(_idempotent_insert(session, returning=False), list(rows))


# Written into the SQL, not bound: only a literal predicate lets the planner prove that
# ix_job_ordering_active (partial: status IN ('queued', 'running')) applies. With a bound one,
# PostgreSQL's generic plan for the prepared claim (and SQLite's every plan) walked the primary
# key instead, ~2,000 rows per candidate: 90 ms a claim and three quarters of the server's CPU under load.
_ACTIVE_STATUSES: BindParameter[list[str]] = bindparam(
    "active_statuses", ["queued", "running"], expanding=True, literal_execute=True
)


def claim(session: Session, *, worker_id: str, limit: int, lease_seconds: float) -> list[Job]:
    """Claim up to `limit` due jobs, honouring per-ordering-key order, and lease them.

    Two reads, each walking the (status, run_at, id) index in order and stopping at `limit`:
    jobs whose lease expired (their worker died) first, then queued jobs that are due. A single
    `queued OR expired` read would sort the whole backlog on every claim.
    """
    now = utcnow()
    earlier = aliased(Job)
    blocked = exists().where(
        earlier.workspace_id == Job.workspace_id,
        earlier.ordering_key == Job.ordering_key,
        earlier.id < Job.id,
        earlier.status.in_(_ACTIVE_STATUSES),
    )
    pg = session.get_bind().dialect.name == "postgresql"
    keys: list[tuple[int, int]] = []
    for due in (
        and_(Job.status == "running", Job.lease_until < now),
        and_(Job.status == "queued", Job.run_at <= now),
    ):
        want = limit - len(keys)
        if want <= 0:
            break
        stmt = (
            select(Job.workspace_id, Job.id)
            .where(due, or_(Job.ordering_key.is_(None), ~blocked))
            .order_by(Job.status, Job.run_at, Job.id)
            .limit(want)
        )
        if pg:
            stmt = stmt.with_for_update(skip_locked=True, of=Job)
        keys.extend((int(ws), int(jid)) for ws, jid in session.execute(stmt).all())
    if not keys:
        return []
    lease = now + dt.timedelta(seconds=lease_seconds)
    # One UPDATE ... RETURNING per chunk rather than one per job; rows come back in any order.
    by_key: dict[tuple[int, int], Job] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        rows = session.execute(
            update(Job)
            .where(keys_in((Job.workspace_id, Job.id), chunk))
            .values(status="running", worker_id=worker_id, lease_until=lease, attempts=Job.attempts + 1)
            .returning(Job)
            .execution_options(synchronize_session=False)
        ).scalars()
        by_key.update(((row.workspace_id, row.id), row) for row in rows)
    return [by_key[k] for k in keys if k in by_key]


def mark_done(session: Session, job: Job, worker_id: str) -> bool:
    """False if the lease was lost (another worker took the job over)."""
    return mark_many_done(session, [job], worker_id)


def mark_many_done(session: Session, jobs: Sequence[Job], worker_id: str) -> bool:
    """Mark jobs done with one UPDATE; False (and the caller rolls back) unless every one of
    them was still this worker's."""
    keys = [(j.workspace_id, j.id) for j in jobs]
    result = session.execute(
        update(Job)
        .where(keys_in((Job.workspace_id, Job.id), keys), Job.worker_id == worker_id, Job.status == "running")
        .values(status="done", finished_at=utcnow(), lease_until=None, last_error=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == len(keys)  # type: ignore[attr-defined]


def reschedule(
    session: Session, job: Job, worker_id: str, *, run_at: dt.datetime, error: str, count_attempt: bool
) -> None:
    values: dict[str, Any] = {
        "status": "queued",
        "run_at": run_at,
        "lease_until": None,
        "worker_id": None,
        "last_error": error[:4000],
    }
    if not count_attempt:
        values["attempts"] = Job.attempts - 1
    session.execute(
        update(Job)
        .where(Job.workspace_id == job.workspace_id, Job.id == job.id, Job.worker_id == worker_id)
        .values(**values)
    )


def mark_dead(session: Session, job: Job, worker_id: str, error: str) -> None:
    session.execute(
        update(Job)
        .where(Job.workspace_id == job.workspace_id, Job.id == job.id, Job.worker_id == worker_id)
        .values(status="dead", lease_until=None, finished_at=utcnow(), last_error=error[:4000])
    )


def renew_leases(
    session: Session, worker_id: str, keys: Sequence[tuple[int, int]], lease_seconds: float
) -> None:
    until = utcnow() + dt.timedelta(seconds=lease_seconds)
    for ws, jid in keys:
        session.execute(
            update(Job)
            .where(Job.workspace_id == ws, Job.id == jid, Job.worker_id == worker_id, Job.status == "running")
            .values(lease_until=until)
        )


def release(session: Session, worker_id: str, keys: Sequence[tuple[int, int]]) -> None:
    """Give claimed-but-unstarted jobs back at once (graceful shutdown)."""
    for ws, jid in keys:
        session.execute(
            update(Job)
            .where(Job.workspace_id == ws, Job.id == jid, Job.worker_id == worker_id, Job.status == "running")
            .values(status="queued", lease_until=None, worker_id=None, attempts=Job.attempts - 1)
        )


def get(session: Session, job_id: int, workspace_id: int | None = None) -> Job | None:
    stmt = select(Job).where(Job.id == job_id)
    if workspace_id is not None:
        stmt = stmt.where(Job.workspace_id == workspace_id)
    return session.execute(stmt).scalar_one_or_none()


def list_jobs(
    session: Session,
    *,
    status: str | None,
    kind: str | None,
    limit: int,
    workspace_id: int | None = None,
    before_id: int | None = None,
) -> Sequence[Job]:
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if workspace_id is not None:
        stmt = stmt.where(Job.workspace_id == workspace_id)
    if before_id is not None:
        stmt = stmt.where(Job.id < before_id)
    if status:
        stmt = stmt.where(Job.status == status)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    return session.execute(stmt).scalars().all()


def requeue(session: Session, job: Job) -> None:
    job.status = "queued"
    job.run_at = utcnow()
    job.attempts = 0
    job.lease_until = None
    job.worker_id = None
    job.finished_at = None


def counts_by_status(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)).all()
    return {(k, s): int(n) for k, s, n in rows}


def oldest_queued_age(session: Session) -> dict[str, float]:
    now = utcnow()
    rows = session.execute(
        select(Job.kind, func.min(Job.run_at))
        .where(Job.status == "queued", Job.run_at <= now)
        .group_by(Job.kind)
    ).all()
    out: dict[str, float] = {}
    for kind, oldest in rows:
        if oldest is not None:
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=dt.UTC)
            out[kind] = max(0.0, (now - oldest).total_seconds())
    return out


def purge_finished(
    session: Session, older_than: dt.datetime, limit: int = 5000, *, workspace_id: int | None = None
) -> int:
    """Delete up to `limit` done jobs finished before `older_than` (one workspace, or all).

    `run_at <= finished_at`, so the extra `run_at` bound lets the (status, run_at) index find
    the candidates without reading every done row.
    """
    stmt = (
        select(Job.workspace_id, Job.id)
        .where(Job.status == "done", Job.run_at < older_than, Job.finished_at < older_than)
        .limit(limit)
    )
    if workspace_id is not None:
        stmt = stmt.where(Job.workspace_id == workspace_id)
    ids = session.execute(stmt).all()
    by_ws: dict[int, list[int]] = {}
    for ws, jid in ids:
        by_ws.setdefault(ws, []).append(jid)
    for ws, jids in by_ws.items():
        for i in range(0, len(jids), 500):
            session.execute(delete(Job).where(Job.workspace_id == ws, Job.id.in_(jids[i : i + 500])))
    return len(ids)


@dataclass
class KindStats:
    queued: int = 0
    scheduled: int = 0
    running: int = 0
    dead: int = 0
    oldest_queued_age: float = 0.0


def queue_stats(session: Session, workspace_id: int | None = None) -> dict[str, KindStats]:
    """Per kind: due and future queued jobs, running, dead, and the oldest due job's age.

    Reads only queued/running/dead rows through the (status, run_at) index; done rows, which
    are the bulk of the table, are never scanned.
    """
    now = utcnow()
    due = (Job.run_at <= now).label("due")
    stmt = (
        select(Job.kind, Job.status, due, func.count(), func.min(Job.run_at))
        .where(Job.status.in_(("queued", "running", "dead")))
        .group_by(Job.kind, Job.status, due)
    )
    if workspace_id is not None:
        stmt = stmt.where(Job.workspace_id == workspace_id)
    out: dict[str, KindStats] = {}
    for kind, status, is_due, n, oldest in session.execute(stmt).all():
        s = out.setdefault(kind, KindStats())
        if status == "running":
            s.running += int(n)
        elif status == "dead":
            s.dead += int(n)
        elif is_due:
            s.queued += int(n)
            if oldest is not None:
                if oldest.tzinfo is None:
                    oldest = oldest.replace(tzinfo=dt.UTC)
                s.oldest_queued_age = max(0.0, (now - oldest).total_seconds())
        else:
            s.scheduled += int(n)
    return out


def counts_for_workspace(session: Session, workspace_id: int) -> dict[str, int]:
    """Jobs per status in one workspace (done jobs counted up to 10,000 for the admin page)."""
    out: dict[str, int] = {}
    for status in ("queued", "running", "dead", "discarded"):
        out[status] = int(
            session.execute(
                select(func.count())
                .select_from(Job)
                .where(Job.workspace_id == workspace_id, Job.status == status)
            ).scalar_one()
        )
    done = select(Job.id).where(Job.workspace_id == workspace_id, Job.status == "done").limit(10_000)
    out["done"] = int(session.execute(select(func.count()).select_from(done.subquery())).scalar_one())
    return out
