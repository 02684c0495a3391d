"""The claim's ordering check must use the partial index of active jobs, on both databases.

With the statuses bound as parameters, neither planner can prove that the partial index
`ix_job_ordering_active` applies (PostgreSQL only in its generic plan for the prepared claim),
and each candidate walked the primary key over every earlier job of its workspace.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from scrm.db import Database
from scrm.worker import repository
from scrm.worker.service import enqueue_many

from .test_worker import CALLS  # noqa: F401  (registers the test.record job kind)


def _claim_select(db: Database) -> tuple[str, Any]:
    seen: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "FROM job" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.transaction() as s:
            repository.claim(s, worker_id="plan", limit=5, lease_seconds=30)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    return seen[-1]


def test_claim_checks_ordering_through_the_partial_index(db: Database, workspace) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as s:
        enqueue_many(s, [(workspace.id, "test.record", {"n": i}, f"fan-{i % 50}") for i in range(300)])
    statement, params = _claim_select(db)
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
            raw.execute(sql.SQL("PREPARE claim_plan AS {}").format(sql.SQL(numbered)))  # type: ignore[arg-type]
            args = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
            rows = raw.execute(sql.SQL("EXPLAIN EXECUTE claim_plan({})").format(args)).fetchall()
            plan = " | ".join(r[0] for r in rows)
            raw.execute("DEALLOCATE claim_plan")
            conn.rollback()
    assert "ix_job_ordering_active" in plan, plan
