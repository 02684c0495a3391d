"""Live updates across processes on PostgreSQL: NOTIFY on commit, relayed by each listener."""

from __future__ import annotations

import asyncio

import pytest

from scrm import events, live
from scrm.db import Database
from tests.conftest import DB_KIND, Workspace

pytestmark = pytest.mark.skipif(DB_KIND != "postgres", reason="LISTEN/NOTIFY is PostgreSQL's")


def test_an_event_reaches_subscribers_only_when_its_transaction_commits(
    db: Database, workspace: Workspace
) -> None:
    listener = live.Listener(db.url)  # as in another API process: its own connection
    listener.start()
    try:
        assert listener.listening.wait(10)

        def emit(commit: bool, conversation: str) -> None:
            with db.transaction() as s:
                events.emit(
                    s,
                    workspace.id,
                    "conversation.updated",
                    {"conversation_id": conversation, "text": "粉丝的原话不外传"},
                )
                if not commit:
                    raise RuntimeError("roll back")

        async def scenario() -> list[tuple[str, dict[str, object]]]:
            mine = live.subscribe(workspace.id)
            other = live.subscribe(workspace.id + 1)
            try:
                with pytest.raises(RuntimeError):
                    await asyncio.to_thread(emit, False, "rolled-back")
                await asyncio.to_thread(emit, True, "42")
                got = [await asyncio.wait_for(mine.queue.get(), timeout=10)]
                await asyncio.sleep(0.5)
                while not mine.queue.empty():
                    got.append(mine.queue.get_nowait())
                assert other.queue.empty()  # another workspace hears nothing
                return got
            finally:
                live.unsubscribe(mine)
                live.unsubscribe(other)

        got = asyncio.run(scenario())
    finally:
        listener.stop()
    assert got == [("conversation.updated", {"conversation_id": "42"})]  # no text, no rolled-back event


def test_a_transactions_events_go_out_in_one_statement_in_order_without_rolled_back_savepoints(
    db: Database, workspace: Workspace
) -> None:
    from sqlalchemy import event

    listener = live.Listener(db.url)
    listener.start()
    notify_statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if "pg_notify" in statement:
            notify_statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert listener.listening.wait(10)

        def emit_many() -> None:
            with db.transaction() as s:
                for n in ("1", "2"):
                    events.emit(s, workspace.id, "conversation.updated", {"conversation_id": n})
                with pytest.raises(RuntimeError), s.begin_nested():
                    events.emit(s, workspace.id, "conversation.updated", {"conversation_id": "undone"})
                    raise RuntimeError("a rule failed")
                with s.begin_nested():  # a released savepoint keeps its events
                    events.emit(s, workspace.id, "conversation.updated", {"conversation_id": "3"})
                assert notify_statements == []  # nothing is sent before the commit

        async def scenario() -> list[str]:
            sub = live.subscribe(workspace.id)
            try:
                await asyncio.to_thread(emit_many)
                got = [await asyncio.wait_for(sub.queue.get(), timeout=10) for _ in range(3)]
                await asyncio.sleep(0.5)
                assert sub.queue.empty()
                return [str(data["conversation_id"]) for _name, data in got]
            finally:
                live.unsubscribe(sub)

        got = asyncio.run(scenario())
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
        listener.stop()
    assert got == ["1", "2", "3"]
    assert len(notify_statements) == 1
