"""An outbox send reads its row, the channel account and the message it delivers in one
statement, then delivers once and records the outcome on both rows."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from sqlalchemy import event, select

from scrm.conversation import service as conversation_service
from scrm.models import Conversation, Message, OutboxMessage
from tests.automation.helpers import deliver
from tests.conftest import make_workspace
from tests.helpers import Recorder, run_jobs


def test_a_send_reads_its_row_account_and_message_at_once_and_delivers_once(db, settings) -> None:  # type: ignore[no-untyped-def]
    with Recorder().running() as rec:
        ws = make_workspace(db, "sendonce", callback_url=rec.url)
        deliver(db, ws, "e1", "行李丢了", sender="fan-1")
        run_jobs(db, settings)
        with db.transaction() as s:
            conv = s.execute(select(Conversation)).scalar_one()
            reply = conversation_service.send_reply(s, conv, "已为您登记", author_id=ws.agent_member_id)
            reply_id = reply.id

        selects: Counter[str] = Counter()

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            m = re.match(r"\s*SELECT (\w+)\.", statement)
            if m:
                selects[m.group(1)] += 1

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            run_jobs(db, settings)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)

    assert [json.loads(r["body"])["text"] for r in rec.requests] == ["已为您登记"]
    assert selects["outbox_message"] == 1
    assert selects["channel_account"] == 0 and selects["message"] == 0  # came with the outbox row
    with db.transaction(readonly=True) as s:
        message = s.get(Message, (ws.id, reply_id))
        assert message is not None and message.status == "sent" and message.sent_at is not None
        row = s.execute(select(OutboxMessage).where(OutboxMessage.message_id == reply_id)).scalar_one()
        assert row.status == "sent" and row.attempts == 1
