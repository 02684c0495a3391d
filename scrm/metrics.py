"""Prometheus metrics (exposed at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INBOUND_ACCEPTED = Counter("scrm_inbound_accepted_total", "Inbound events stored", ["channel"])
INBOUND_DUPLICATE = Counter("scrm_inbound_duplicate_total", "Inbound deliveries already stored", ["channel"])
INBOUND_REJECTED = Counter("scrm_inbound_rejected_total", "Inbound requests refused", ["channel", "status"])
JOBS_DONE = Counter("scrm_jobs_done_total", "Jobs completed", ["kind"])
JOBS_FAILED = Counter("scrm_jobs_failed_total", "Job attempts that raised", ["kind"])
JOBS_DEAD = Counter("scrm_jobs_dead_total", "Jobs dead-lettered", ["kind"])
JOB_SECONDS = Histogram("scrm_job_seconds", "Job run time", ["kind"])
OUTBOUND_SENT = Counter("scrm_outbound_sent_total", "Outbound messages delivered", ["channel"])
OUTBOUND_ERRORS = Counter("scrm_outbound_errors_total", "Outbound send errors", ["channel", "code"])
