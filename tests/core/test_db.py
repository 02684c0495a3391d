"""The dialect helpers of scrm/db.py."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import registry

from scrm.db import DIALECTS, conflict_insert
from scrm.models import InboundEvent


@pytest.mark.parametrize("name", DIALECTS)
def test_conflict_insert_builds_the_dialects_own_on_conflict(name: str) -> None:
    stmt = conflict_insert(name, InboundEvent).on_conflict_do_nothing()
    sql = str(stmt.compile(dialect=registry.load(name)()))
    assert sql.startswith("INSERT INTO inbound_event")
    assert sql.endswith("ON CONFLICT DO NOTHING")


def test_conflict_insert_follows_the_session(db) -> None:  # type: ignore[no-untyped-def]
    with db.transaction(readonly=True) as s:
        name = s.get_bind().dialect.name
        stmt = conflict_insert(s, InboundEvent)
    assert type(stmt).__module__ == f"sqlalchemy.dialects.{name}.dml"


def test_conflict_insert_refuses_an_unknown_database() -> None:
    with pytest.raises(ValueError, match="unsupported database dialect 'mysql'"):
        conflict_insert("mysql", InboundEvent)
