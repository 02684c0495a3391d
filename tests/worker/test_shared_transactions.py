"""Jobs whose effects are database writes only run many to one transaction: fewer commits and
one bookkeeping UPDATE per group. If any job of the group fails, or a lease was lost, the whole
group rolls back and each job runs again in its own transaction: nothing is lost, nothing is
committed twice, and a failure is retried or dead-lettered alone."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import func, select, update

from scrm import metrics, pipeline
from scrm.config import Settings
from scrm.db import Database
from scrm.models import Contact, Conversation, ConversationActivity, Job, Message
from scrm.worker import repository
from scrm.worker.registry import job
from scrm.worker.runner import JobContext, Worker
from scrm.worker.service import enqueue
from tests.automation.helpers import deliver
from tests.helpers import run_jobs

SESSIONS: list[int] = []  # the unit of work (session) each run was in
_UNITS = itertools.count()
RUNS: list[int] = []


@job("test.shared", max_attempts=3, shares_transaction=True)
def _shared(ctx: JobContext, payload: dict[str, Any]) -> None:
    SESSIONS.append(ctx.session.info.setdefault("test_unit", next(_UNITS)))
    RUNS.append(payload["n"])
    ctx.session.add(Contact(workspace_id=ctx.workspace_id, name=f"shared-{payload['n']}"))
    ctx.session.flush()
    if payload.get("fail_once") and ctx.job.attempts == 1:
        raise RuntimeError(f"job {payload['n']} fails once")


def _queue(db: Database, workspace_id: int, n: int, **extra: Any) -> None:
    with db.transaction() as s:
        for i in range(n):
            enqueue(s, workspace_id, "test.shared", {"n": i, **extra.get(f"job{i}", {})})
    SESSIONS.clear()
    RUNS.clear()


def _contacts(db: Database) -> list[str]:
    with db.transaction(readonly=True) as s:
        return sorted(s.execute(select(Contact.name).where(Contact.name.like("shared-%"))).scalars().all())


def _jobs(db: Database) -> dict[int, Job]:
    with db.transaction(readonly=True) as s:
        rows = s.execute(select(Job).where(Job.kind == "test.shared")).scalars().all()
        return {int(j.payload["n"]): j for j in rows}


def _fallbacks() -> float:
    return float(metrics.JOB_SHARED_FALLBACKS._value.get())  # type: ignore[attr-defined]


def test_jobs_that_share_a_transaction_commit_together(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    _queue(db, workspace.id, 12)
    Worker(db, settings).run_until_idle()
    assert sorted(RUNS) == list(range(12))
    assert len(set(SESSIONS)) == 1  # one transaction for all twelve
    assert _contacts(db) == sorted(f"shared-{i}" for i in range(12))
    jobs = _jobs(db)
    assert {j.status for j in jobs.values()} == {"done"}
    assert all(j.attempts == 1 and j.finished_at is not None and j.lease_until is None for j in jobs.values())


def test_one_job_per_transaction_when_sharing_is_off(db, settings: Settings, workspace) -> None:  # type: ignore[no-untyped-def]
    _queue(db, workspace.id, 5)
    Worker(db, settings.model_copy(update={"worker_tx_jobs": 1})).run_until_idle()
    assert len(set(SESSIONS)) == 5
    assert len(_contacts(db)) == 5


def test_a_claim_takes_as_many_jobs_as_a_transaction_may_share(db, settings: Settings, workspace) -> None:  # type: ignore[no-untyped-def]
    _queue(db, workspace.id, 60)
    roomy = settings.model_copy(update={"worker_tx_jobs": 50, "worker_tx_seconds": 600.0})
    Worker(db, roomy).run_batch()
    # One claim of 50 in one transaction (a claim took 20 whatever the setting).
    assert len(RUNS) == 50 and len(set(SESSIONS)) == 1
    assert sorted(n for n, j in _jobs(db).items() if j.status == "done") == sorted(RUNS)


def test_the_time_budget_ends_a_shared_transaction(db, settings: Settings, workspace) -> None:  # type: ignore[no-untyped-def]
    _queue(db, workspace.id, 4)
    Worker(db, settings.model_copy(update={"worker_tx_seconds": 1e-9})).run_until_idle()
    assert len(set(SESSIONS)) == 4  # each transaction took one job, then its budget was spent
    assert RUNS == [0, 1, 2, 3]  # each ran once
    assert {j.status for j in _jobs(db).values()} == {"done"}


def test_a_failing_job_rolls_its_group_back_and_every_job_then_runs_alone(
    db, settings, workspace, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("scrm.worker.runner.backoff_seconds", lambda attempts: 0.0)  # retry at once
    _queue(db, workspace.id, 6, job3={"fail_once": True})
    before = _fallbacks()
    Worker(db, settings).run_until_idle()
    assert _fallbacks() == before + 1
    # Jobs 0-3 ran in the group, which rolled back at job 3; then each ran on its own (job 3
    # failing again on its first attempt, then succeeding); jobs 4 and 5 shared a transaction.
    assert sorted(RUNS) == [0, 0, 1, 1, 2, 2, 3, 3, 3, 4, 5]
    assert _contacts(db) == sorted(f"shared-{i}" for i in range(6))  # each exactly once
    jobs = _jobs(db)
    assert {j.status for j in jobs.values()} == {"done"}
    assert jobs[3].attempts == 2 and jobs[3].last_error is None
    assert all(jobs[i].attempts == 1 for i in (0, 1, 2, 4, 5))


def test_a_lost_lease_rolls_the_group_back_and_the_job_is_left_to_its_new_worker(
    db, settings, workspace
) -> None:  # type: ignore[no-untyped-def]
    _queue(db, workspace.id, 3)
    worker = Worker(db, settings)
    with db.transaction() as s:
        claimed = repository.claim(s, worker_id=worker.worker_id, limit=10, lease_seconds=30)
    assert len(claimed) == 3
    stolen = next(j for j in claimed if j.payload["n"] == 1)
    with db.transaction() as s:  # its lease expired and another worker took it over
        s.execute(update(Job).where(Job.id == stolen.id).values(worker_id="other-worker"))

    assert worker._run_shared(claimed) == (0, 3)
    assert _contacts(db) == []  # the whole group rolled back
    for j in claimed:
        worker._run_one(j.workspace_id, j.id, j)
    assert _contacts(db) == ["shared-0", "shared-2"]  # the stolen job's work is its new worker's
    jobs = _jobs(db)
    assert jobs[0].status == jobs[2].status == "done"
    assert jobs[1].status == "running" and jobs[1].worker_id == "other-worker"


def test_a_failing_pipeline_step_in_a_shared_transaction_loses_and_doubles_no_message(
    db, settings, workspace, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    def broken(ctx: pipeline.PipelineContext) -> None:
        if ctx.message is not None and "坏" in ctx.message.text:
            raise RuntimeError("the step has a bug")

    steps = sorted([*pipeline.steps(), (150, "broken", broken)], key=lambda s: s[0])
    monkeypatch.setattr(pipeline, "_STEPS", steps)
    monkeypatch.setattr(pipeline, "_last_failure", float("-inf"))
    monkeypatch.setattr("scrm.worker.runner.backoff_seconds", lambda attempts: 0.0)
    for i in range(8):
        deliver(db, workspace, f"e{i}", "这条坏了" if i == 5 else f"你好 {i}", sender=f"fan-{i}")
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        texts = s.execute(select(Message.text).where(Message.direction == "in")).scalars().all()
        assert sorted(texts) == sorted(["这条坏了", *(f"你好 {i}" for i in range(8) if i != 5)])
        assert s.execute(select(func.count()).select_from(Conversation)).scalar_one() == 8
        failed = (
            s.execute(select(ConversationActivity).where(ConversationActivity.kind == "step_failed"))
            .scalars()
            .all()
        )
        assert [a.data["step"] for a in failed] == ["broken"]
        statuses = s.execute(
            select(Job.status, func.count()).where(Job.kind == "inbound.process").group_by(Job.status)
        ).all()
        assert dict(statuses) == {"done": 8}  # type: ignore[arg-type]
