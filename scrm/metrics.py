"""Prometheus metrics (exposed at /metrics on API processes, `--metrics-port` on workers).

Counters and histograms count what this process did. The job-queue gauges
(:class:`QueueCollector`) are read from the database at scrape time, so every process reports
the same cluster-wide values: aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from scrm.db import Database

log = logging.getLogger(__name__)

INBOUND_ACCEPTED = Counter("scrm_inbound_accepted_total", "Inbound events stored", ["channel"])
INBOUND_DUPLICATE = Counter("scrm_inbound_duplicate_total", "Inbound deliveries already stored", ["channel"])
INBOUND_REJECTED = Counter("scrm_inbound_rejected_total", "Inbound requests refused", ["channel", "status"])
JOBS_DONE = Counter("scrm_jobs_done_total", "Jobs completed", ["kind"])
JOBS_FAILED = Counter("scrm_jobs_failed_total", "Job attempts that raised", ["kind"])
JOBS_DEAD = Counter("scrm_jobs_dead_total", "Jobs dead-lettered", ["kind"])
JOBS_RETRY_LATER = Counter(
    "scrm_jobs_retry_later_total", "Job attempts postponed without counting (RetryLater)", ["kind"]
)
JOB_SHARED_FALLBACKS = Counter(
    "scrm_job_shared_fallbacks_total",
    "Transactions shared by several jobs that failed and were re-run one job per transaction",
)
JOB_SECONDS = Histogram("scrm_job_seconds", "Job run time", ["kind"])
JOB_QUEUE_SECONDS = Histogram(
    "scrm_job_queue_seconds",
    "Time from a job's due time to its claim",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
OUTBOUND_SENT = Counter("scrm_outbound_sent_total", "Outbound messages delivered", ["channel"])
OUTBOUND_ERRORS = Counter("scrm_outbound_errors_total", "Outbound send errors", ["channel", "code"])
OUTBOUND_THROTTLED = Counter(
    "scrm_outbound_throttled_total", "Sends postponed by the per-account rate limit", ["channel"]
)
EVENTS = Counter("scrm_events_total", "Domain events emitted (committed)", ["event"])
SLA_BREACHES = Counter("scrm_sla_breaches_total", "SLA breaches recorded (committed)")
HTTP_REQUESTS = Counter("scrm_http_requests_total", "HTTP requests answered", ["status"])


def count_event(event: str) -> None:
    EVENTS.labels(event).inc()
    if event == "sla.breached":
        SLA_BREACHES.inc()


class QueueCollector(Collector):
    """Queue depth, running, dead letters and oldest due age per job kind, from the database.

    One indexed query (``ix_job_due`` on status, run_at; done rows are never touched), at most
    once per `ttl` seconds per process, with a statement timeout on PostgreSQL so a slow
    database cannot hang a scrape.
    """

    def __init__(self, db: Database, ttl: float = 2.0) -> None:
        self.db = db
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = 0.0
        self._families: list[GaugeMetricFamily] = []

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._empty())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                try:
                    self._families = self._query()
                except Exception as exc:
                    log.warning("queue metrics unavailable: %s", exc.__class__.__name__)
                    up = self._empty()
                    up[-1].add_metric([], 0)
                    return iter(up)
                self._at = time.monotonic()
            return iter(self._families)

    @staticmethod
    def _empty() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily("scrm_jobs_queued", "Jobs due now and waiting for a worker", labels=["kind"]),
            GaugeMetricFamily(
                "scrm_jobs_scheduled", "Jobs queued for a later time (timers)", labels=["kind"]
            ),
            GaugeMetricFamily("scrm_jobs_running", "Jobs claimed by a worker", labels=["kind"]),
            GaugeMetricFamily(
                "scrm_jobs_dead_letters", "Dead-lettered jobs awaiting an admin", labels=["kind"]
            ),
            GaugeMetricFamily(
                "scrm_job_oldest_queued_age_seconds", "Age of the oldest due queued job", labels=["kind"]
            ),
            GaugeMetricFamily("scrm_queue_metrics_up", "1 if the queue gauges could be read"),
        ]

    def _query(self) -> list[GaugeMetricFamily]:
        from scrm.worker import repository

        with self.db.transaction(readonly=True) as session:
            if not self.db.is_sqlite:
                from sqlalchemy import text

                session.execute(text("SET LOCAL statement_timeout = 2000"))
            stats = repository.queue_stats(session)
        queued, scheduled, running, dead, age, up = self._empty()
        for kind, s in sorted(stats.items()):
            queued.add_metric([kind], s.queued)
            scheduled.add_metric([kind], s.scheduled)
            running.add_metric([kind], s.running)
            dead.add_metric([kind], s.dead)
            age.add_metric([kind], s.oldest_queued_age)
        up.add_metric([], 1)
        return [queued, scheduled, running, dead, age, up]


_installed: QueueCollector | None = None


def install_queue_collector(db: Database) -> None:
    """Register the queue gauges for this process's database (the last call wins)."""
    global _installed
    from prometheus_client import REGISTRY

    if _installed is not None:
        _installed.db = db
        _installed._at = 0.0
        return
    _installed = QueueCollector(db)
    REGISTRY.register(_installed)
