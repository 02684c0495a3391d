"""A group of inbound jobs is triaged in one batch (`triage.read_ahead_triage`), and every
message still gets exactly the triage it would get alone, with its contact's influence: the
batch guesses each contact's followers, and a message whose guess was wrong is triaged again."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update

from scrm.channels.base import InboundEvent, Sender
from scrm.models import Contact, ContactIdentity, Message
from scrm.nlp.service import Analyzer, get_analyzer
from scrm.worker.runner import Worker
from tests.helpers import accept_events


def _event(external_id: str, sender: str, text: str, ns: str, followers: int | None) -> InboundEvent:
    return InboundEvent(
        external_id=external_id,
        kind="message",
        sender=Sender(external_id=sender, namespace=ns, name=f"粉丝{sender}", followers=followers),
        sent_at=dt.datetime.now(dt.UTC),
        text=text,
    )


def test_a_group_is_triaged_in_one_batch_with_each_contacts_followers(
    db, settings, workspace, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    ns = f"webhook:{workspace.channel_id}"
    accept_events(
        db,
        workspace.id,
        workspace.channel_id,
        [
            _event("a1", "big", "你好", ns, 5_000_000),
            _event("a2", "small", "你好", ns, 10),
            _event("a3", "old", "你好", ns, 5),
            _event("a4", "main", "你好", ns, 2_000_000),
        ],
    )
    Worker(db, settings).run_until_idle()
    with db.transaction() as s:  # "old" was merged into "main" since
        ids = {
            ext: cid
            for ext, cid in s.execute(select(ContactIdentity.external_id, ContactIdentity.contact_id))
        }
        s.execute(update(Contact).where(Contact.id == ids["old"]).values(merged_into_id=ids["main"]))

    texts = {
        "big": "@云程航空 MU5137 的行李到底什么时候能找到？",
        "small": "@云程航空 CZ3101 改签要收多少钱",
        "new": "@云程航空 订单 YC20261203 退款一周了还没到",
        "old": "请问 MU5101 明天还有经济舱吗",
    }
    # Followers each message is triaged with: the contact's, or the count the channel sent
    # (which updates the contact); the merged fan's are those of the contact merged into.
    followers = {"big": 5_000_000, "small": 3_000_000, "new": 20_000, "old": 2_000_000}
    sent = {"big": None, "small": 3_000_000, "new": 20_000, "old": None}
    accept_events(
        db,
        workspace.id,
        workspace.channel_id,
        [_event(f"b-{k}", k, t, ns, sent[k]) for k, t in texts.items()],
    )

    calls: list[tuple[str, int]] = []
    many, one = Analyzer.analyze_many, Analyzer.analyze

    def analyze_many(self: Analyzer, batch: Any, **kw: Any) -> Any:
        calls.append(("many", len(batch)))
        return many(self, batch, **kw)

    def analyze(self: Analyzer, text: str, **kw: Any) -> Any:
        calls.append(("one", 1))
        return one(self, text, **kw)

    monkeypatch.setattr(Analyzer, "analyze_many", analyze_many)
    monkeypatch.setattr(Analyzer, "analyze", analyze)
    one_group = settings.model_copy(update={"worker_tx_seconds": 600.0})
    assert Worker(db, one_group).run_batch() == 4
    monkeypatch.undo()

    # One batch of the four texts; the merged fan's guess (the merged contact's 5 followers)
    # was wrong, so that message alone was triaged again (its inner analyze_many of one).
    assert sorted(calls) == [("many", 1), ("many", 4), ("one", 1)]
    analyzer = get_analyzer(workspace.slug)
    with db.transaction(readonly=True) as s:
        stored = {
            m.text: m.triage for m in s.execute(select(Message).where(Message.direction == "in")).scalars()
        }
    for fan, text in texts.items():
        # A batch's matrix products may sum in another order than one message's: the same
        # labels, scores equal to float rounding.
        expected = analyzer.analyze(text, followers=followers[fan]).to_dict()
        assert stored[text].keys() == expected.keys(), fan
        for key, value in expected.items():
            want = pytest.approx(value) if isinstance(value, float) else value
            assert stored[text][key] == want, (fan, key)
    # The guess would have made a difference: influence raises the merged fan's urgency.
    assert analyzer.analyze(texts["old"], followers=5).urgency != stored[texts["old"]]["urgency"]
