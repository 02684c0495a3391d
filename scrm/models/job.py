from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import Base, UTCDateTime
from scrm.kit.time import utcnow
from scrm.models._base import Timestamped, WorkspaceOwned

_ACTIVE = text("status IN ('queued', 'running')")


class Job(WorkspaceOwned, Timestamped, Base):
    """A durable unit of background work, and also a due-time row for scheduled work.

    Jobs with the same `ordering_key` run one at a time in id order (a fan's messages never
    overtake each other). `lease_until` is renewed while a job runs; a dead worker's job is
    claimable again once its lease has passed.
    """

    __tablename__ = "job"
    __table_args__ = (
        UniqueConstraint("workspace_id", "kind", "idempotency_key"),
        Index("ix_job_due", "status", "run_at", "id"),
        Index(
            "ix_job_ordering_active",
            "workspace_id",
            "ordering_key",
            "id",
            sqlite_where=_ACTIVE,
            postgresql_where=_ACTIVE,
        ),
    )

    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="queued")
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    ordering_key: Mapped[str | None] = mapped_column(String(200))
    run_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=10)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
