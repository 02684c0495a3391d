"""The job worker: claims due jobs, runs each in its own transaction, retries with backoff.

A job's database effects commit together with marking it done, so a job that crashes half-way
leaves nothing behind and runs again; a worker killed mid-job loses only its lease.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from scrm import metrics
from scrm.config import Settings
from scrm.db import Database
from scrm.kit.ids import new_id
from scrm.kit.time import as_utc, utcnow
from scrm.logs import job_id_var
from scrm.models import Job, Workspace
from scrm.worker import repository
from scrm.worker.registry import PermanentJobError, RerunAtOnce, RetryLater, get_kind, warmups
from scrm.worker.service import enqueue, wakeup

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    db: Database
    session: Session
    settings: Settings
    job: Job
    # Run again at once after it raised RerunAtOnce (same attempt).
    rerun: bool = False

    @property
    def workspace_id(self) -> int:
        return self.job.workspace_id


@dataclass(frozen=True)
class Periodic:
    kind: str
    interval_seconds: float


_PERIODIC: list[Periodic] = []


def periodic(kind: str, interval_seconds: float) -> None:
    """Run job `kind` once per interval per workspace, however many workers there are."""
    _PERIODIC.append(Periodic(kind, interval_seconds))


def backoff_seconds(attempts: int) -> float:
    base: float = min(3600, 2 ** min(attempts, 12))
    return float(base * (0.5 + random.random()))


@dataclass
class Worker:
    db: Database
    settings: Settings
    concurrency: int = 1
    batch_size: int = 0  # jobs per claim; 0 = max(20, jobs per shared transaction)
    lease_seconds: float = 0.0  # 0 = settings.worker_lease_seconds
    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{new_id() % 100000}"
    )
    on_idle: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self._warmed = False
        if self.lease_seconds <= 0:
            self.lease_seconds = self.settings.worker_lease_seconds
        postgres = self.db.engine.dialect.name == "postgresql"
        self.tx_jobs = self.settings.worker_tx_jobs or (50 if postgres else 20)
        self.tx_seconds = self.settings.worker_tx_seconds or (0.25 if postgres else 0.1)
        if self.batch_size <= 0:
            self.batch_size = max(20, self.tx_jobs)
        self._stop = threading.Event()
        self._running: set[tuple[int, int]] = set()
        self._running_lock = threading.Lock()
        self._last_tick = 0.0

    # -- public -----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        wakeup.set()

    def warm_up(self) -> None:
        """Run the registered warm-ups once (loading models) before any job is claimed."""
        if self._warmed:
            return
        self._warmed = True
        for fn in warmups():
            try:
                fn()
            except Exception:
                log.exception("worker warm-up %s failed", getattr(fn, "__name__", fn))

    def run_forever(self) -> None:
        self.warm_up()
        threads = [
            threading.Thread(target=self._loop, name=f"scrm-worker-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        lease_thread = threading.Thread(target=self._renew_loop, name="scrm-lease", daemon=True)
        for t in threads:
            t.start()
        lease_thread.start()
        for t in threads:
            t.join()
        lease_thread.join(timeout=2)

    def run_until_idle(self, max_seconds: float = 30.0) -> int:
        """Process due jobs until none is left (tests, CLI); returns how many ran."""
        deadline = time.monotonic() + max_seconds
        total = 0
        while time.monotonic() < deadline:
            n = self.run_batch()
            total += n
            if n == 0:
                return total
        return total

    def run_batch(self) -> int:
        self._maybe_tick()
        try:
            with self.db.transaction(background=True) as session:
                jobs = repository.claim(
                    session, worker_id=self.worker_id, limit=self.batch_size, lease_seconds=self.lease_seconds
                )
                now = utcnow()
                for j in jobs:
                    if j.attempts == 1:
                        metrics.JOB_QUEUE_SECONDS.labels(j.kind).observe(
                            max(0.0, (now - as_utc(j.run_at)).total_seconds())
                        )
        except OperationalError:
            log.warning("job claim failed; database unavailable?", exc_info=True)
            time.sleep(1.0)
            return 0
        keys = [(j.workspace_id, j.id) for j in jobs]
        with self._running_lock:
            self._running.update(keys)
        # Jobs that may share a transaction run first, many to a transaction; then the rest,
        # one transaction each. Order only matters per ordering key, and a claim holds at
        # most one job per key.
        sharing = self.tx_jobs > 1
        shared = [j for j in jobs if sharing and _shares(j.kind)]
        alone = [j for j in jobs if not (sharing and _shares(j.kind))]
        done = 0
        try:
            while shared:
                if self._stop.is_set():
                    self._release([(j.workspace_id, j.id) for j in shared + alone])
                    return done
                group = shared[: self.tx_jobs]
                ran, tried = self._run_shared(group) if len(group) > 1 else (0, 1)
                if ran == 0:  # one job, or the group failed: each job it tried runs on its own
                    ran = max(1, tried)  # (it failed before its first job: that one runs alone)
                    for j in group[:ran]:
                        self._run_one(j.workspace_id, j.id, j)
                self._finished(group[:ran])
                shared = shared[ran:]
                done += ran
            for i, j in enumerate(alone):
                if self._stop.is_set():
                    self._release([(x.workspace_id, x.id) for x in alone[i:]])
                    break
                self._run_one(j.workspace_id, j.id, j)
                self._finished([j])
                done += 1
        finally:
            with self._running_lock:
                self._running.difference_update(keys)
        return done

    # -- internals --------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.run_batch()
            except Exception:
                # Never let a worker thread die: whatever it held is leased and comes back.
                log.exception("worker batch failed")
                self._stop.wait(1.0)
                continue
            if n == 0:
                if self.on_idle:
                    self.on_idle()
                wakeup.wait(self.settings.worker_poll_interval)
                wakeup.clear()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            with self._running_lock:
                keys = list(self._running)
            if not keys:
                continue
            try:
                with self.db.transaction(background=True) as session:
                    repository.renew_leases(session, self.worker_id, keys, self.lease_seconds)
            except Exception:
                log.warning("lease renewal failed", exc_info=True)

    def _release(self, keys: list[tuple[int, int]]) -> None:
        with self.db.transaction(background=True) as session:
            repository.release(session, self.worker_id, keys)

    def _finished(self, jobs: list[Job]) -> None:
        with self._running_lock:
            self._running.difference_update((j.workspace_id, j.id) for j in jobs)

    def _run_shared(self, group: list[Job]) -> tuple[int, int]:
        """Run jobs of `shares_transaction` kinds in one transaction, on their first try without
        savepoints, and mark them done with one UPDATE. The transaction takes no further job
        once `worker_tx_seconds` have passed (on SQLite it holds the write lock meanwhile).

        Returns (jobs done, jobs tried). If anything fails (a job raises, the database goes
        away, a lease was lost) it all rolls back and returns (0, tried): the caller runs each
        tried job in its own transaction, where a failure is retried or dead-lettered alone.
        """
        deadline = time.perf_counter() + self.tx_seconds
        timings: list[tuple[str, float]] = []
        tried = 0
        try:
            with self.db.transaction(background=True) as session:
                self._read_ahead(session, group)
                for claimed in group:
                    if tried and time.perf_counter() > deadline:
                        break
                    tried += 1
                    started = time.perf_counter()
                    token = job_id_var.set(str(claimed.id))
                    try:
                        job = session.merge(claimed, load=False)
                        spec = get_kind(job.kind)
                        assert spec is not None  # _shares() found it
                        spec.handler(JobContext(self.db, session, self.settings, job), dict(job.payload))
                    finally:
                        job_id_var.reset(token)
                    timings.append((job.kind, time.perf_counter() - started))
                if not repository.mark_many_done(session, group[:tried], self.worker_id):
                    raise _LeaseLost()
        except Exception as exc:
            metrics.JOB_SHARED_FALLBACKS.inc()
            log.info("%d jobs sharing a transaction failed (%s); running each alone", tried, exc)
            return 0, tried
        for kind, seconds in timings:
            metrics.JOBS_DONE.labels(kind).inc()
            metrics.JOB_SECONDS.labels(kind).observe(seconds)
        return tried, tried

    @staticmethod
    def _read_ahead(session: Session, group: list[Job]) -> None:
        by_kind: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for j in group:
            by_kind.setdefault(j.kind, []).append((j.workspace_id, dict(j.payload)))
        for kind, jobs in by_kind.items():
            spec = get_kind(kind)
            if spec is not None and spec.read_ahead is not None and len(jobs) > 1:
                spec.read_ahead(session, jobs)

    def _run_one(self, workspace_id: int, job_id: int, claimed: Job | None = None) -> None:
        token = job_id_var.set(str(job_id))
        try:
            self._run_one_inner(workspace_id, job_id, claimed)
        finally:
            job_id_var.reset(token)

    def _run_one_inner(
        self, workspace_id: int, job_id: int, claimed: Job | None = None, *, rerun: bool = False
    ) -> None:
        started = time.perf_counter()
        kind_name = "?"
        try:
            with self.db.transaction(background=True) as session:
                if claimed is not None:
                    # The row as the claim's UPDATE ... RETURNING left it, without reading it
                    # again: if the lease was lost meanwhile, mark_done says so and all rolls back.
                    job = session.merge(claimed, load=False)
                else:
                    job = session.execute(
                        select(Job).where(Job.workspace_id == workspace_id, Job.id == job_id)
                    ).scalar_one()
                kind_name = job.kind
                spec = get_kind(job.kind)
                if spec is None:
                    raise PermanentJobError(f"no handler for job kind {job.kind!r}")
                spec.handler(JobContext(self.db, session, self.settings, job, rerun), dict(job.payload))
                if not repository.mark_done(session, job, self.worker_id):
                    raise _LeaseLost()
            metrics.JOBS_DONE.labels(kind_name).inc()
            metrics.JOB_SECONDS.labels(kind_name).observe(time.perf_counter() - started)
        except _LeaseLost:
            log.warning("lease lost on job %s; another worker has it", job_id)
        except RetryLater as exc:
            metrics.JOBS_RETRY_LATER.labels(kind_name).inc()
            self._after_failure(workspace_id, job_id, str(exc), delay=exc.delay, count=False)
        except OperationalError as exc:
            # The database went away (restart, failover) or timed out: not the job's fault, so
            # no attempt is counted. If recording this fails too, the lease expires instead.
            log.warning("job %s (%s): database unavailable: %s", job_id, kind_name, str(exc.orig)[:200])
            self._after_failure(
                workspace_id,
                job_id,
                f"database unavailable: {exc.orig}",
                delay=1.0 + random.random(),
                count=False,
            )
        except PermanentJobError as exc:
            self._after_failure(workspace_id, job_id, str(exc), dead=True)
        except RerunAtOnce as exc:
            if rerun:
                self._failed(workspace_id, job_id, kind_name, exc)
            else:
                log.info("job %s (%s): %s; running it again at once", job_id, kind_name, exc)
                self._run_one_inner(workspace_id, job_id, claimed, rerun=True)
        except Exception as exc:
            self._failed(workspace_id, job_id, kind_name, exc)

    def _failed(self, workspace_id: int, job_id: int, kind_name: str, exc: Exception) -> None:
        log.warning("job %s (%s) failed: %s", job_id, kind_name, exc, exc_info=True)
        metrics.JOBS_FAILED.labels(kind_name).inc()
        self._after_failure(workspace_id, job_id, "".join(traceback.format_exception_only(exc)).strip())

    def _after_failure(
        self,
        workspace_id: int,
        job_id: int,
        error: str,
        *,
        delay: float | None = None,
        count: bool = True,
        dead: bool = False,
    ) -> None:
        import datetime as dt

        try:
            with self.db.transaction(background=True) as session:
                job = repository.get(session, job_id, workspace_id)
                if job is None or job.worker_id != self.worker_id:
                    return
                if dead or (count and job.attempts >= job.max_attempts):
                    repository.mark_dead(session, job, self.worker_id, error)
                    metrics.JOBS_DEAD.labels(job.kind).inc()
                    log.error("job %s (%s) dead-lettered: %s", job_id, job.kind, error)
                    return
                wait = delay if delay is not None else backoff_seconds(job.attempts)
                repository.reschedule(
                    session,
                    job,
                    self.worker_id,
                    run_at=utcnow() + dt.timedelta(seconds=wait),
                    error=error,
                    count_attempt=count,
                )
        except Exception:
            # The lease will expire and the job will run again: nothing is lost.
            log.exception("could not record failure of job %s", job_id)

    def _maybe_tick(self) -> None:
        now = time.time()
        if not _PERIODIC or now - self._last_tick < 1.0:
            return
        self._last_tick = now
        try:
            with self.db.transaction(background=True) as session:
                workspace_ids = session.execute(select(Workspace.id)).scalars().all()
                for p in _PERIODIC:
                    slot = int(now // p.interval_seconds)
                    for ws in workspace_ids:
                        enqueue(session, ws, p.kind, {"slot": slot}, idempotency_key=f"slot:{slot}")
        except Exception:
            log.warning("periodic tick failed", exc_info=True)


class _LeaseLost(Exception):
    def __str__(self) -> str:
        return "a lease was lost"


def _shares(kind: str) -> bool:
    spec = get_kind(kind)
    return spec is not None and spec.shares_transaction
