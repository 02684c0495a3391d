"""The job table's hot statements must use the right index, on both databases.

- The claim's ordering check: with the statuses bound as parameters, neither planner could
  prove that the partial index `ix_job_ordering_active` applies (PostgreSQL in the generic
  plan of the prepared claim), and each candidate walked the primary key over every earlier
  job of its workspace.
- `scrm.db.keys_in`, which the job, inbound, contact and conversation repositories use for
  many-key lookups, matches exactly the keys given.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select, text

from scrm.db import Database, keys_in
from scrm.models import Job
from scrm.worker import repository
from scrm.worker.service import enqueue_many

from .test_worker import CALLS  # noqa: F401  (registers the test.record job kind)


def _statements(db: Database, prefix: str, run: Any) -> list[tuple[str, Any]]:
    """The statements starting with `prefix` that `run(session)` sends, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(prefix):
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.transaction() as s:
            run(s)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    return seen


def _queue(db: Database, workspace_id: int, n: int) -> None:
    with db.transaction() as s:
        enqueue_many(s, [(workspace_id, "test.record", {"n": i}, f"fan-{i % 50}") for i in range(n)])


def test_claim_checks_ordering_through_the_partial_index(db: Database, workspace) -> None:  # type: ignore[no-untyped-def]
    _queue(db, workspace.id, 300)
    selects = _statements(
        db, "SELECT", lambda s: repository.claim(s, worker_id="plan", limit=5, lease_seconds=30)
    )
    assert "ix_job_ordering_active" in _plan(db, *selects[-1])


def test_keys_in_matches_exactly_the_keys_given(db: Database, workspace, other_workspace) -> None:  # type: ignore[no-untyped-def]
    _queue(db, workspace.id, 5)
    _queue(db, other_workspace.id, 5)
    with db.transaction() as s:
        rows = s.execute(select(Job.workspace_id, Job.id).order_by(Job.id)).all()
        mine = [tuple(r) for r in rows if r[0] == workspace.id]
        theirs = [tuple(r) for r in rows if r[0] == other_workspace.id]
        wanted = [mine[0], mine[3], theirs[1], theirs[4]]
        crossed = (workspace.id, theirs[2][1])  # a real id, under the wrong workspace
        got = s.execute(
            select(Job.workspace_id, Job.id).where(keys_in((Job.workspace_id, Job.id), [*wanted, crossed]))
        ).all()
    assert sorted(tuple(r) for r in got) == sorted(wanted)


def _plan(db: Database, statement: str, params: Any) -> str:
    """The plan of a captured statement; on PostgreSQL the generic plan a prepared statement
    settles on (the parameters unknown)."""
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as conn:
            plan = " | ".join(
                str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
            )
    else:
        import psycopg
        from psycopg import sql

        # The plan a prepared statement settles on: generic, the parameters unknown.
        names = list(params)
        numbered = statement
        for i, name in enumerate(names, 1):
            numbered = numbered.replace(f"%({name})s", f"${i}")
        with db.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            conn.execute(text("ANALYZE job"))
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            raw.execute(sql.SQL("PREPARE captured AS {}").format(sql.SQL(numbered)))  # type: ignore[arg-type]
            args = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
            rows = raw.execute(sql.SQL("EXPLAIN EXECUTE captured({})").format(args)).fetchall()
            plan = " | ".join(r[0] for r in rows)
            raw.execute("DEALLOCATE captured")
            conn.rollback()
    return plan
