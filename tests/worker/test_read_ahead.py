"""A group of inbound jobs sharing a transaction reads its events, its senders' identities and
the threads they continue in one statement each (`pipeline.read_ahead`), and every message
still lands exactly where it would have one job at a time: a returning fan in their open
conversation, a fan whose conversation was resolved in a new one, one fan writing to two
accounts as one contact. Taken events are marked at commit, and a count that falls short
(another transaction processed one meanwhile) fails the commit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import delete, event, func, select, update

from scrm import metrics
from scrm.channels.base import InboundEvent, Sender
from scrm.db import Database
from scrm.inbound import service as inbound
from scrm.models import Contact, ContactIdentity, Conversation, Job, Message, SlaTimer
from scrm.models import InboundEvent as StoredEvent
from scrm.worker import registry
from scrm.worker.runner import Worker
from scrm.workspace import service as ws_service
from tests.helpers import accept_events


def _event(external_id: str, sender: str, text: str, namespace: str, phone: str = "") -> InboundEvent:
    return InboundEvent(
        external_id=external_id,
        kind="message",
        sender=Sender(
            external_id=sender,
            namespace=namespace,
            name=f"粉丝{sender}",
            attributes={"phone": phone} if phone else {},
        ),
        sent_at=dt.datetime.now(dt.UTC),
        text=text,
    )


def _fallbacks() -> float:
    return float(metrics.JOB_SHARED_FALLBACKS._value.get())  # type: ignore[attr-defined]


@contextmanager
def _statements(db: Database) -> Iterator[Counter[str]]:
    """Statements run meanwhile, by verb and table ("SELECT contact_identity": a read of that
    table's rows, not one that names it in a subquery)."""
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        m = re.match(r"\s*(?:(SELECT) (\w+)\.|(UPDATE|INSERT INTO|DELETE FROM) (\w+))", statement)
        if m:
            verb, table = (m.group(1), m.group(2)) if m.group(1) else (m.group(3).split()[0], m.group(4))
            seen[f"{verb} {table}"] += 1

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_a_group_reads_ahead_once_and_every_message_lands_where_it_belongs(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    ns = f"webhook:{workspace.channel_id}"
    with db.transaction() as s:
        second = ws_service.create_channel_account(
            s, workspace.id, "webhook", "App 2", secrets={"secret": "whsec-second-0123456789"}
        ).id
    # Earlier: "old" has an open conversation, "gone" one that an agent resolved.
    accept_events(
        db,
        workspace.id,
        workspace.channel_id,
        [_event("e1", "old", "第一条", ns), _event("e2", "gone", "早", ns), _event("e0", "old2", "喂", ns)],
    )
    Worker(db, settings).run_until_idle()
    with db.transaction() as s:
        s.execute(
            update(Conversation)
            .where(Conversation.fan_external_id == "gone")
            .values(status="resolved", resolved_at=func.now())
        )
        first = {c.fan_external_id: c.id for c in s.execute(select(Conversation)).scalars()}

    # One group: a returning fan, a fan whose conversation was resolved, two new fans, and one
    # fan known under a shared namespace ("weibo") writing to both accounts.
    accept_events(
        db,
        workspace.id,
        workspace.channel_id,
        [
            _event("e3", "old", "第二条", ns),
            _event("e9", "old2", "还在吗", ns),
            _event("e4", "gone", "又来了", ns),
            _event("e5", "new1", "你好", ns),
            _event("e6", "new2", "在吗", ns),
            _event("e7", "shared", "给一号", "weibo"),
        ],
    )
    accept_events(db, workspace.id, second, [_event("e8", "shared", "给二号", "weibo")])
    one_group = settings.model_copy(update={"worker_tx_seconds": 600.0})
    with _statements(db) as seen:
        worker = Worker(db, one_group)
        assert worker.run_batch() >= 7
    # One read of the seven events, of their identities, of the threads they continue and of
    # those threads' SLA clocks (not one each); the seven marks go out in one UPDATE at commit.
    # The one more conversation read is for the shared fan's second message: that fan was new
    # when the group read ahead.
    assert seen["SELECT inbound_event"] == 1
    assert seen["UPDATE inbound_event"] == 1
    assert seen["SELECT contact_identity"] == 1
    assert seen["SELECT conversation"] == 2
    assert seen["SELECT sla_timer"] == 1

    with db.transaction(readonly=True) as s:
        convs = (
            s.execute(select(Conversation).order_by(Conversation.created_at, Conversation.id)).scalars().all()
        )
        texts = {
            m.text: m.conversation_id
            for m in s.execute(select(Message).where(Message.direction == "in")).scalars()
        }
        assert texts["第二条"] == first["old"]  # appended to the open conversation
        assert texts["还在吗"] == first["old2"]
        assert texts["又来了"] not in (first["gone"], first["old"])  # a new one, not the resolved
        by_id = {c.id: c for c in convs}
        assert by_id[first["old"]].message_count == 2
        assert by_id[texts["又来了"]].status == "open"
        assert len({texts["你好"], texts["在吗"], texts["给一号"], texts["给二号"]}) == 4
        # the fan writing to both accounts is one person, with one identity and two conversations
        shared = (
            s.execute(select(ContactIdentity).where(ContactIdentity.namespace == "weibo")).scalars().all()
        )
        assert len(shared) == 1
        assert {by_id[texts["给一号"]].contact_id, by_id[texts["给二号"]].contact_id} == {
            shared[0].contact_id
        }
        assert {by_id[texts["给一号"]].channel_account_id, by_id[texts["给二号"]].channel_account_id} == {
            workspace.channel_id,
            second,
        }
        assert (
            s.execute(select(func.count()).select_from(Contact)).scalar_one() == 6
        )  # old old2 gone new1 new2 shared
        assert len(convs) == 3 + 5
        # the continued conversations' clocks were not started again
        timers = s.execute(select(SlaTimer.conversation_id, SlaTimer.metric)).all()
        assert Counter(timers)[(first["old"], "first_response")] == 1
        assert Counter(timers)[(first["old2"], "first_response")] == 1
        assert set(s.execute(select(StoredEvent.status)).scalars()) == {"processed"}
        assert set(s.execute(select(Job.status).where(Job.kind == "inbound.process")).scalars()) == {"done"}


def _one_person_two_ids(db: Database, settings: Any, workspace: Any) -> None:
    """One person behind two ids "a" and "b" of the account (joined by the phone number they
    gave), with the conversation their first messages opened."""
    ns = f"webhook:{workspace.channel_id}"
    accept_events(
        db,
        workspace.id,
        workspace.channel_id,
        [_event("e1", "a", "一", ns, "13800000000"), _event("e2", "b", "二", ns, "13800000000")],
    )
    Worker(db, settings).run_until_idle()
    with db.transaction(readonly=True) as s:
        assert s.execute(select(func.count(func.distinct(ContactIdentity.contact_id)))).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(Conversation)).scalar_one() == 1


def _both_write_in_one_group(db: Database, settings: Any, workspace: Any) -> None:
    """ "a" and "b" write again, and their two jobs share one transaction, which commits."""
    ns = f"webhook:{workspace.channel_id}"
    accept_events(
        db, workspace.id, workspace.channel_id, [_event("e3", "a", "三", ns), _event("e4", "b", "四", ns)]
    )
    before = _fallbacks()
    Worker(db, settings.model_copy(update={"worker_tx_seconds": 600.0})).run_until_idle()
    assert _fallbacks() == before  # the group did not fail and run again job by job


def test_two_identities_of_one_person_writing_in_one_group_share_the_conversation_the_first_opens(
    db, settings, workspace
) -> None:  # type: ignore[no-untyped-def]
    _one_person_two_ids(db, settings, workspace)
    with db.transaction() as s:  # no conversation open when the group reads ahead
        s.execute(update(Conversation).values(status="resolved", resolved_at=func.now()))
    _both_write_in_one_group(db, settings, workspace)  # and it did not try a second conversation
    with db.transaction(readonly=True) as s:
        rows = s.execute(
            select(Message.conversation_id).where(Message.text.in_(["三", "四"]), Message.direction == "in")
        ).all()
        assert len(rows) == 2 and len({r[0] for r in rows}) == 1  # the second joined the first's
        assert s.execute(select(func.count()).where(Conversation.status != "resolved")).scalar_one() == 1


def test_two_identities_continuing_one_conversation_in_one_group_start_its_clocks_once(
    db, settings, workspace
) -> None:  # type: ignore[no-untyped-def]
    _one_person_two_ids(db, settings, workspace)
    with db.transaction() as s:  # an open conversation without clocks (opened before any policy)
        s.execute(delete(SlaTimer))
        s.execute(delete(Job).where(Job.kind == "sla.check"))
    _both_write_in_one_group(db, settings, workspace)  # and it did not start the clocks twice
    with db.transaction(readonly=True) as s:
        (conv_id,) = s.execute(select(Conversation.id)).scalars().all()
        metrics_started = s.execute(
            select(SlaTimer.metric).where(SlaTimer.conversation_id == conv_id)
        ).scalars()
        # the first message started them; the second found them (read ahead, then recorded)
        assert sorted(metrics_started) == ["first_response", "resolution"]


def test_events_read_ahead_for_jobs_a_group_did_not_reach_are_processed_later(
    db, settings, workspace
) -> None:  # type: ignore[no-untyped-def]
    ns = f"webhook:{workspace.channel_id}"
    accept_events(
        db, workspace.id, workspace.channel_id, [_event(f"e{i}", f"fan{i}", f"第{i}条", ns) for i in range(4)]
    )
    # The time budget ends every group after its first job, although all four were read ahead.
    Worker(db, settings.model_copy(update={"worker_tx_seconds": 0.0})).run_until_idle()
    with db.transaction(readonly=True) as s:
        texts = sorted(s.execute(select(Message.text).where(Message.direction == "in")).scalars())
        assert texts == [f"第{i}条" for i in range(4)]
        assert set(s.execute(select(StoredEvent.status)).scalars()) == {"processed"}
        assert set(s.execute(select(Job.status).where(Job.kind == "inbound.process")).scalars()) == {"done"}


def test_an_event_processed_elsewhere_after_the_read_ahead_fails_the_commit(
    db, settings, workspace, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    ns = f"webhook:{workspace.channel_id}"
    accept_events(
        db,
        workspace.id,
        workspace.channel_id,
        [_event("e1", "fan1", "一", ns), _event("e2", "fan2", "二", ns)],
    )
    with db.transaction(readonly=True) as s:
        ids = list(s.execute(select(StoredEvent.id).order_by(StoredEvent.id)).scalars())
    with pytest.raises(inbound.TakenMeanwhile), db.transaction() as s:
        assert [t.id for t in inbound.read_ahead(s, workspace.id, ids)] == ids
        # Another transaction processes e2 and commits (its effect on this one's final UPDATE
        # is the same as this in-transaction mark).
        s.execute(update(StoredEvent).where(StoredEvent.id == ids[1]).values(status="processed"))
        assert [t.external_id for t in (inbound.take(s, workspace.id, i) for i in ids) if t] == ["e1", "e2"]
    with db.transaction(readonly=True) as s:  # all rolled back: both still to be processed
        assert set(s.execute(select(StoredEvent.status)).scalars()) == {"pending"}

    # In the worker: the group that read both ahead fails at commit, then each job runs alone
    # and each event becomes one message.
    spec = registry.get_kind("inbound.process")
    assert spec is not None and spec.read_ahead is not None
    original = spec.read_ahead

    def read_ahead_then_overtaken(session: Any, jobs: list[tuple[int, dict[str, Any]]]) -> None:
        original(session, jobs)
        session.execute(update(StoredEvent).where(StoredEvent.id == ids[1]).values(status="processed"))

    monkeypatch.setitem(
        registry._KINDS, "inbound.process", dataclasses.replace(spec, read_ahead=read_ahead_then_overtaken)
    )
    before = _fallbacks()
    Worker(db, settings.model_copy(update={"worker_tx_seconds": 600.0})).run_until_idle()
    assert _fallbacks() == before + 1
    with db.transaction(readonly=True) as s:
        assert sorted(s.execute(select(Message.text).where(Message.direction == "in")).scalars()) == [
            "一",
            "二",
        ]
        assert set(s.execute(select(StoredEvent.status)).scalars()) == {"processed"}
        assert set(s.execute(select(Job.status).where(Job.kind == "inbound.process")).scalars()) == {"done"}
