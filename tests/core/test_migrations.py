"""Migrations run up from empty, down to nothing and up again, and match the models."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from scrm import migrate
from scrm.db import Base, Database
from tests.conftest import DB_KIND, PG_URL


def fresh_url(tmp_path) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    if DB_KIND == "postgres":
        name = f"scrm_mig_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()

        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False), drop
    return f"sqlite:///{tmp_path / 'fresh.db'}", lambda: None


def test_upgrade_from_empty_down_and_up_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url, drop = fresh_url(tmp_path)
    db = Database(url)
    try:
        assert not migrate.is_current(db)
        migrate.upgrade(db)
        assert migrate.is_current(db)
        tables = set(inspect(db.engine).get_table_names())
        assert {"workspace", "conversation", "message", "inbound_event", "job", "outbox_message"} <= tables
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"include_object": migrate.include_object})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        migrate.downgrade(db, "base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(db)
        assert migrate.is_current(db)
    finally:
        db.dispose()
        drop()  # type: ignore[operator]


def test_every_workspace_table_is_keyed_by_workspace() -> None:
    """Citus-ready: PK (workspace_id, id); unique keys and FKs between owned tables include it."""
    global_tables = {"workspace", "user_account", "user_session", "alembic_version"}
    for table in Base.metadata.sorted_tables:
        if table.name in global_tables:
            continue
        assert [c.name for c in table.primary_key.columns][:1] == ["workspace_id"], table.name
        for uc in [c for c in table.constraints if c.__class__.__name__ == "UniqueConstraint"]:
            assert "workspace_id" in [c.name for c in uc.columns], (table.name, uc.name)
        for fk in table.foreign_key_constraints:
            target = fk.referred_table.name
            if target not in global_tables:
                assert "workspace_id" in [c.name for c in fk.columns], (table.name, target)
