"""Job kinds and their handlers. A domain registers its handlers in its own `tasks.py`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from scrm.worker.runner import JobContext

Handler = Callable[["JobContext", dict[str, Any]], None]
# Called once before a group of jobs of one kind shares a transaction, with their (workspace
# id, payload): it may read ahead for them (see scrm.db.tx_memo). It must leave the handlers
# correct whether or not they run, so the group may stop early.
ReadAhead = Callable[["Session", list[tuple[int, dict[str, Any]]]], None]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    max_attempts: int
    timeout_seconds: float
    # Its effects are database writes only (no call out, no side effect a rollback cannot
    # undo): the worker may run several such jobs in one transaction (see Worker._run_shared).
    shares_transaction: bool = False
    read_ahead: ReadAhead | None = None


_KINDS: dict[str, JobKind] = {}


def job(
    name: str,
    *,
    max_attempts: int = 10,
    timeout_seconds: float = 60.0,
    shares_transaction: bool = False,
    read_ahead: ReadAhead | None = None,
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _KINDS[name] = JobKind(name, fn, max_attempts, timeout_seconds, shares_transaction, read_ahead)
        return fn

    return register


def get_kind(name: str) -> JobKind | None:
    return _KINDS.get(name)


def kinds() -> dict[str, JobKind]:
    return dict(_KINDS)


_WARMUPS: list[Callable[[], None]] = []


def warmup(fn: Callable[[], None]) -> Callable[[], None]:
    """Register slow one-time set-up (e.g. loading models) that a worker runs before it claims
    jobs, so no job ever holds a database transaction open while it happens."""
    _WARMUPS.append(fn)
    return fn


def warmups() -> list[Callable[[], None]]:
    return list(_WARMUPS)


class RetryLater(Exception):
    """Ask the worker to run the job again after `delay` seconds without counting an attempt."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay:.1f}s")
        self.delay = delay


class RerunAtOnce(Exception):
    """The attempt failed in a way that a second run, in a new transaction and right away,
    handles (the pipeline's first attempt runs its steps without savepoints; the rerun isolates
    them). The runner reruns the job once at once, within the same attempt."""


class PermanentJobError(Exception):
    """The job can never succeed: dead-letter it at once with this reason."""
