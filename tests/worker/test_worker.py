"""The job worker: ordering per fan, retries, dead letters, leases, crash recovery."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from scrm.channels.base import InboundEvent, Sender
from scrm.db import Database
from scrm.kit.time import utcnow
from scrm.models import Job, Message
from scrm.worker import repository
from scrm.worker.registry import PermanentJobError, job
from scrm.worker.runner import JobContext, Worker
from scrm.worker.service import cancel, enqueue, enqueue_many, schedule
from tests.helpers import accept_events

CALLS: list[tuple[str, Any]] = []


@job("test.record", max_attempts=3)
def _record(ctx: JobContext, payload: dict[str, Any]) -> None:
    CALLS.append(("run", payload["n"]))
    if payload.get("fail_times", 0) > ctx.job.attempts - 1:
        raise RuntimeError(f"boom {ctx.job.attempts}")
    if payload.get("permanent"):
        raise PermanentJobError("never")


def event(n: int, sender: str) -> InboundEvent:
    return InboundEvent(
        external_id=f"evt-{n}",
        kind="message",
        sender=Sender(external_id=sender, namespace="webhook:test", name=f"粉丝{sender}"),
        sent_at=dt.datetime.now(dt.UTC),
        text=f"第{n}条",
    )


def accept(db: Database, ws, events: list[InboundEvent]) -> None:  # type: ignore[no-untyped-def]
    accept_events(db, ws.id, ws.channel_id, events)


def jobs_by_status(db: Database, kind: str = "inbound.process") -> dict[str, int]:
    """Status counts of one job kind (processing also schedules later work, e.g. SLA checks)."""
    with db.transaction(readonly=True) as s:
        rows = s.execute(select(Job.status, func.count()).where(Job.kind == kind).group_by(Job.status)).all()
        return dict(rows)  # type: ignore[arg-type]


def make_due(db: Database) -> None:
    with db.transaction() as s:
        for j in s.execute(select(Job).where(Job.status == "queued")).scalars():
            j.run_at = utcnow() - dt.timedelta(seconds=1)


def test_a_fans_messages_are_processed_in_order(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    accept(db, workspace, [event(i, sender="a" if i % 2 else "b") for i in range(20)])
    with db.transaction() as s:
        claimed = repository.claim(s, worker_id="w1", limit=50, lease_seconds=30)
    # Only the head of each fan's queue may run: one job per fan.
    assert len(claimed) == 2
    with db.transaction() as s:
        again = repository.claim(s, worker_id="w2", limit=50, lease_seconds=30)
    assert again == []
    with db.transaction() as s:
        for j in claimed:
            repository.release(s, "w1", [(j.workspace_id, j.id)])
    Worker(db, settings).run_until_idle()
    with db.transaction(readonly=True) as s:
        texts = s.execute(select(Message.text).order_by(Message.id)).scalars().all()
    a = [t for t in texts if int(t[1:-1]) % 2]
    assert a == [f"第{i}条" for i in range(1, 20, 2)]


def test_failures_retry_with_backoff_then_dead_letter(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    CALLS.clear()
    with db.transaction() as s:
        enqueue(s, workspace.id, "test.record", {"n": 1, "fail_times": 1})
        enqueue(s, workspace.id, "test.record", {"n": 2, "fail_times": 99})
        enqueue(s, workspace.id, "test.record", {"n": 3, "permanent": True})
    w = Worker(db, settings)
    for _ in range(4):
        w.run_until_idle()
        make_due(db)
    assert CALLS.count(("run", 1)) == 2  # failed once, then succeeded
    assert CALLS.count(("run", 2)) == 3  # max_attempts
    assert CALLS.count(("run", 3)) == 1  # permanent: no retry
    with db.transaction(readonly=True) as s:
        rows = {j.payload["n"]: j for j in s.execute(select(Job).where(Job.kind == "test.record")).scalars()}
    assert rows[1].status == "done"
    assert rows[2].status == "dead" and "boom 3" in (rows[2].last_error or "")
    assert rows[3].status == "dead" and "never" in (rows[3].last_error or "")


def test_backoff_schedules_the_retry_in_the_future(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        enqueue(s, workspace.id, "test.record", {"n": 9, "fail_times": 5})
    Worker(db, settings).run_until_idle()
    with db.transaction(readonly=True) as s:
        j = s.execute(select(Job).where(Job.kind == "test.record")).scalar_one()
    assert j.status == "queued" and j.attempts == 1 and j.run_at > utcnow()


def test_idempotency_key_enqueues_once(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        first = enqueue(s, workspace.id, "test.record", {"n": 1}, idempotency_key="k")
        second = enqueue(s, workspace.id, "test.record", {"n": 1}, idempotency_key="k")
    assert first is not None and second is None


def test_jobs_without_a_key_are_written_together_at_commit_and_a_rolled_back_savepoint_drops_its_own(
    db, settings, workspace
) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        kept = enqueue(s, workspace.id, "test.record", {"n": 1})
        try:
            with s.begin_nested():
                enqueue(s, workspace.id, "test.record", {"n": 2})
                raise RuntimeError("this part fails")
        except RuntimeError:
            pass
        enqueue(s, workspace.id, "test.record", {"n": 3})
        assert s.execute(select(func.count()).select_from(Job)).scalar_one() == 0  # not yet
    with db.transaction(readonly=True) as s:
        rows = s.execute(select(Job.id, Job.payload).order_by(Job.created_at, Job.id)).all()
    assert sorted(p["n"] for _, p in rows) == [1, 3]
    assert kept in {job_id for job_id, _ in rows}  # the id enqueue returned is the row's


def test_scheduled_jobs_are_written_at_commit_once_per_key_and_a_cancel_drops_them_unwritten(
    db, workspace
) -> None:  # type: ignore[no-untyped-def]
    later = utcnow() + dt.timedelta(hours=1)
    with db.transaction() as s:
        assert enqueue(s, workspace.id, "test.record", {"n": 1}, idempotency_key="taken", run_at=later)
    with db.transaction() as s:
        for n, key in ((2, "taken"), (3, "new"), (4, "new"), (5, "dropped"), (6, "kept")):
            schedule(s, workspace.id, "test.record", {"n": n}, idempotency_key=key, run_at=later)
        assert cancel(s, workspace.id, "test.record", ["dropped", "taken"]) == 1  # the stored one
        schedule(s, workspace.id, "test.record", {"n": 7}, idempotency_key="again", run_at=later)
        cancel(s, workspace.id, "test.other", ["again"])  # the key of another kind: not this job
        try:
            with s.begin_nested():
                schedule(s, workspace.id, "test.record", {"n": 8}, idempotency_key="undone", run_at=later)
                raise RuntimeError("this part fails")
        except RuntimeError:
            pass
        assert s.execute(select(func.count()).select_from(Job)).scalar_one() == 0  # not yet
    with db.transaction(readonly=True) as s:
        rows = s.execute(select(Job.idempotency_key, Job.payload, Job.run_at, Job.status)).all()
    # "taken" was cancelled after the scheduling that found it taken: neither is left; of two
    # schedules with one key the first wins, as with enqueue
    assert sorted((key, p["n"]) for key, p, _at, _st in rows) == [("again", 7), ("kept", 6), ("new", 3)]
    assert {(st, abs((at.replace(tzinfo=dt.UTC) - later).total_seconds()) < 1) for *_, at, st in rows} == {
        ("queued", True)
    }


def test_an_unknown_job_kind_is_refused_and_queues_nothing(db, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        enqueue(s, workspace.id, "test.record", {"n": 1})
        with pytest.raises(ValueError, match=r"unknown job kind 'no\.such'"):
            enqueue(s, workspace.id, "no.such", {"n": 2})
        with pytest.raises(ValueError, match=r"unknown job kind 'no\.such'"):
            schedule(s, workspace.id, "no.such", {"n": 4}, idempotency_key="k", run_at=utcnow())
        with pytest.raises(ValueError, match=r"unknown job kind 'no\.such'"):
            enqueue_many(
                s, [(workspace.id, "test.record", {"n": 3}, None), (workspace.id, "no.such", {}, None)]
            )
    with db.transaction(readonly=True) as s:
        rows = s.execute(select(Job.kind, Job.payload)).all()
    assert [(kind, payload["n"]) for kind, payload in rows] == [("test.record", 1)]


def test_a_rolled_back_request_leaves_no_job(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    try:
        with db.transaction() as s:
            enqueue(s, workspace.id, "test.record", {"n": 1})
            raise RuntimeError("request failed")
    except RuntimeError:
        pass
    assert jobs_by_status(db, "test.record") == {}


def test_an_expired_lease_is_taken_over_and_the_old_worker_cannot_finish(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    accept(db, workspace, [event(1, "x")])
    with db.transaction() as s:
        (stale,) = repository.claim(s, worker_id="dead-worker", limit=1, lease_seconds=0.01)
    time.sleep(0.05)
    with db.transaction() as s:
        (taken,) = repository.claim(s, worker_id="live-worker", limit=1, lease_seconds=30)
    assert taken.id == stale.id and taken.attempts == 2
    with db.transaction() as s:
        assert repository.mark_done(s, stale, "dead-worker") is False
        assert repository.mark_done(s, taken, "live-worker") is True


def _spawn_worker(db_url: str) -> subprocess.Popen[bytes]:
    """Start `scrm worker` and return once it says it is running (imports take seconds)."""
    env = dict(
        os.environ,
        SCRM_DATABASE_URL=db_url,
        SCRM_WORKER_LEASE_SECONDS="1.5",
        SCRM_WORKER_POLL_INTERVAL="0.05",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrm.cli", "worker", "--concurrency", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if b"running with" in line:
            # Keep draining stderr so a chatty worker never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc
    proc.kill()
    raise AssertionError("worker did not start")


def test_worker_sigkilled_mid_work_loses_and_doubles_nothing(db, db_url, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    n = 1500
    accept(db, workspace, [event(i, sender=f"fan{i % 37}") for i in range(n)])
    done_at_kill: list[int] = []
    for _ in range(3):  # three workers killed as soon as they have committed some work
        before = jobs_by_status(db).get("done", 0)
        proc = _spawn_worker(db_url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and jobs_by_status(db).get("done", 0) == before:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        done_at_kill.append(jobs_by_status(db).get("done", 0))
    # then one worker finishes the rest (the killed ones' jobs come back after their lease)
    proc = _spawn_worker(db_url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and jobs_by_status(db).get("done", 0) < n:
        time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    # The kills really landed mid-work: some, but not all, jobs were done at one of them.
    assert any(0 < d < n for d in done_at_kill), done_at_kill
    with db.transaction(readonly=True) as s:
        messages = s.execute(
            select(Message.inbound_event_id, func.count()).group_by(Message.inbound_event_id)
        ).all()
    assert len(messages) == n and all(c == 1 for _, c in messages)
    assert jobs_by_status(db) == {"done": n}


def test_sigterm_releases_claimed_jobs(db, db_url, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    proc = _spawn_worker(db_url)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert jobs_by_status(db).get("running", 0) == 0
