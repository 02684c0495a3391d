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
