"""Operations: shared per-account send quotas, queue gauges, purge of old jobs, request/job ids
in logs."""

from __future__ import annotations

import datetime as dt
import json
import logging

from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from sqlalchemy import func, select

from scrm import metrics
from scrm.app import create_app
from scrm.db import Database
from scrm.kit.time import utcnow
from scrm.logs import ContextFilter, JsonFormatter, job_id_var
from scrm.models import ChannelAccount, ChannelRateLimit, Job, OutboxMessage
from scrm.outbox import ratelimit
from scrm.outbox import service as outbox
from scrm.worker import repository
from scrm.worker.runner import Worker
from scrm.worker.service import enqueue, flush_queued
from scrm.worker.tasks import purge
from tests.conftest import make_workspace
from tests.helpers import Recorder


def _set_quota(db: Database, account_id: int, rate: float, burst: float) -> None:
    with db.transaction() as s:
        account = s.execute(select(ChannelAccount).where(ChannelAccount.id == account_id)).scalar_one()
        account.config = {**account.config, "rate_limit_per_second": rate, "rate_limit_burst": burst}


def test_token_bucket_is_one_row_per_account_and_refills(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    waits = []
    for _ in range(3):
        with db.transaction() as s:
            waits.append(ratelimit.take(s, workspace.id, workspace.channel_id, 1.0, 2.0))
    assert waits[:2] == [0.0, 0.0] and 0.9 < waits[2] <= 1.0
    with db.transaction() as s:
        (bucket,) = s.execute(select(ChannelRateLimit)).scalars().all()
        bucket.updated_at = utcnow() - dt.timedelta(seconds=10)
    with db.transaction() as s:
        assert ratelimit.take(s, workspace.id, workspace.channel_id, 1.0, 2.0) == 0.0
        # Refilled to the burst size (2), not to 10: one token left.
        assert s.execute(select(ChannelRateLimit.tokens)).scalar_one() == 1.0


def test_sends_beyond_the_quota_are_queued_not_failed(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    with Recorder().running() as rec:
        with db.transaction() as s:
            account = s.execute(
                select(ChannelAccount).where(ChannelAccount.id == workspace.channel_id)
            ).scalar_one()
            account.config = {"callback_url": rec.url, "rate_limit_per_second": 0.01, "rate_limit_burst": 2}
        with db.transaction() as s:
            for i in range(3):
                outbox.queue(
                    s,
                    workspace.id,
                    channel_account_id=workspace.channel_id,
                    idempotency_key=f"k{i}",
                    payload={"recipient": "fan", "text": f"回复{i}"},
                )
        Worker(db, settings).run_until_idle()
        assert len(rec.requests) == 2
        with db.transaction(readonly=True) as s:
            statuses = sorted(s.execute(select(OutboxMessage.status)).scalars())
            waiting = s.execute(
                select(Job).where(Job.kind == "outbox.send", Job.status == "queued")
            ).scalar_one()
        assert statuses == ["pending", "sent", "sent"]
        assert waiting.attempts == 0 and waiting.run_at > utcnow() and "quota" in (waiting.last_error or "")
        # Quota back (time passes), the job is due: it goes out, once.
        with db.transaction() as s:
            s.execute(select(ChannelRateLimit)).scalar_one().updated_at = utcnow() - dt.timedelta(hours=1)
            s.get(Job, (waiting.workspace_id, waiting.id)).run_at = utcnow()  # type: ignore[union-attr]
        Worker(db, settings).run_until_idle()
        assert len(rec.requests) == 3
        keys = [
            r["headers"].get("idempotency-key") or r["headers"].get("Idempotency-Key") for r in rec.requests
        ]
        assert sorted(keys) == ["k0", "k1", "k2"]


def test_queue_gauges_come_from_the_database(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        enqueue(s, workspace.id, "jobs.purge", {"slot": 1}, run_at=utcnow() - dt.timedelta(seconds=30))
        enqueue(s, workspace.id, "jobs.purge", {"slot": 2}, run_at=utcnow() + dt.timedelta(hours=1))
    with db.transaction(readonly=True) as s:
        stats = repository.queue_stats(s)
    assert stats["jobs.purge"].queued == 1 and stats["jobs.purge"].scheduled == 1
    assert 29 < stats["jobs.purge"].oldest_queued_age < 120
    client = TestClient(create_app(settings, db))
    text = client.get("/metrics").text
    assert 'scrm_jobs_queued{kind="jobs.purge"} 1.0' in text
    assert 'scrm_jobs_scheduled{kind="jobs.purge"} 1.0' in text
    assert "scrm_job_oldest_queued_age_seconds" in text and "scrm_queue_metrics_up 1.0" in text


def test_sla_breach_events_are_counted_after_commit(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    from scrm import events

    before = metrics.SLA_BREACHES._value.get()
    try:
        with db.transaction() as s:
            events.emit(s, workspace.id, "sla.breached", {"conversation_id": "1"})
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert metrics.SLA_BREACHES._value.get() == before
    with db.transaction() as s:
        events.emit(s, workspace.id, "sla.breached", {"conversation_id": "1"})
    assert metrics.SLA_BREACHES._value.get() == before + 1
    assert b"scrm_sla_breaches_total" in generate_latest()


def test_purge_deletes_old_done_jobs_of_its_workspace_only(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    other = make_workspace(db, "other")
    old = utcnow() - dt.timedelta(days=settings.job_retention_days + 1)
    with db.transaction() as s:
        for ws in (workspace.id, other.id):
            for i in range(3):
                enqueue(s, ws, "jobs.purge", {"n": i}, run_at=old)
            enqueue(s, ws, "jobs.purge", {"n": "fresh"})
        flush_queued(s)  # (jobs without a key are written at commit)
        for j in s.execute(select(Job)).scalars():
            j.status = "done"
            j.finished_at = j.run_at
    with db.transaction() as s:
        job = s.execute(select(Job).where(Job.workspace_id == workspace.id)).scalars().first()
        assert job is not None
        from scrm.worker.runner import JobContext

        purge(JobContext(db, s, settings, job), {"slot": 1})
    with db.transaction(readonly=True) as s:
        left = dict(s.execute(select(Job.workspace_id, func.count()).group_by(Job.workspace_id)).all())  # type: ignore[arg-type]
    assert left == {workspace.id: 1, other.id: 4}


def test_request_id_and_job_id_reach_the_log_lines(db, settings, workspace, caplog) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(create_app(settings, db))
    r = client.get("/healthz", headers={"x-request-id": "req-abc"})
    assert r.headers["x-request-id"] == "req-abc"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
    record = logging.LogRecord("scrm.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    token = job_id_var.set("42")
    try:
        ContextFilter().filter(record)
    finally:
        job_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["job_id"] == "42" and line["message"] == "hello x" and "request_id" not in line
