"""The job table's own housekeeping: deleting done jobs after the retention period."""

from __future__ import annotations

import datetime as dt
from typing import Any

from scrm.kit.time import utcnow
from scrm.worker import repository
from scrm.worker.registry import job
from scrm.worker.runner import JobContext, periodic
from scrm.worker.service import enqueue

PURGE_BATCH = 5000
PURGE_BATCHES_PER_JOB = 10


@job("jobs.purge", max_attempts=3, timeout_seconds=300)
def purge(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Delete this workspace's done jobs older than `job_retention_days`, in bounded batches.

    One job deletes at most PURGE_BATCH × PURGE_BATCHES_PER_JOB rows in its transaction; when
    more are left it queues its own continuation, so a large backlog is worked off in steps
    without a long-running transaction.
    """
    cutoff = utcnow() - dt.timedelta(days=ctx.settings.job_retention_days)
    deleted = 0
    for _ in range(PURGE_BATCHES_PER_JOB):
        n = repository.purge_finished(ctx.session, cutoff, PURGE_BATCH, workspace_id=ctx.workspace_id)
        deleted += n
        if n < PURGE_BATCH:
            return
    part = int(payload.get("part", 0)) + 1
    slot = payload.get("slot")
    enqueue(
        ctx.session,
        ctx.workspace_id,
        "jobs.purge",
        {"slot": slot, "part": part},
        idempotency_key=f"slot:{slot}:part:{part}",
    )


periodic("jobs.purge", 3600.0)
