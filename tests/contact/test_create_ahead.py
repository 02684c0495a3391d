"""New fans of a group of inbound jobs: `read_ahead` notes them, the first `resolve` of one
creates its contact and identity together with the next few new fans' (two statements), and
each later `resolve` finds its fan, says it was created, and behaves as if it had created the
fan itself."""

from __future__ import annotations

from sqlalchemy import event, func, select

from scrm.channels.base import Sender
from scrm.contact import repository
from scrm.contact import service as contact_service
from scrm.db import Database
from scrm.models import Contact, ContactIdentity
from tests.conftest import Workspace

NS = "weibo"


def _count(db: Database, model: type) -> int:
    with db.transaction(readonly=True) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def _ahead(s: object, ws: Workspace, senders: list[Sender]) -> None:
    contact_service.read_ahead(s, ws.id, senders)  # type: ignore[arg-type]


def test_new_fans_cost_two_statements_per_chunk_and_each_resolve_says_created(
    db: Database, workspace: Workspace
) -> None:
    n = 2 * contact_service.CREATE_AHEAD
    senders = [Sender(external_id=f"uid{i}", namespace=NS, name=f"粉丝{i}", followers=i) for i in range(n)]
    senders.append(Sender(external_id="uid3", namespace=NS, name="粉丝3"))  # writes twice in the group
    statements: list[str] = []
    with db.transaction() as s:
        contact_service.read_ahead(s, workspace.id, senders)

        def _seen(_conn: object, _cursor: object, statement: str, *_a: object) -> None:
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", _seen)
        try:
            resolved = [contact_service.resolve(s, workspace.id, sender) for sender in senders]
        finally:
            event.remove(db.engine, "before_cursor_execute", _seen)
    assert [st.split()[0:3] for st in statements] == [
        ["INSERT", "INTO", "contact"],
        ["INSERT", "INTO", "contact_identity"],
    ] * 2
    assert [r.created for r in resolved] == [True] * n + [False]
    assert resolved[n].contact.id == resolved[3].contact.id
    assert resolved[7].contact.name == "粉丝7" and resolved[7].contact.followers == 7
    assert (
        resolved[7].identity.display_name == "粉丝7"
        and resolved[7].identity.contact_id == resolved[7].contact.id
    )
    assert _count(db, Contact) == n and _count(db, ContactIdentity) == n


def test_a_group_that_stops_early_creates_no_fan_of_the_jobs_it_leaves(
    db: Database, workspace: Workspace
) -> None:
    senders = [Sender(external_id=f"uid{i}", namespace=NS) for i in range(3 * contact_service.CREATE_AHEAD)]
    with db.transaction() as s:
        _ahead(s, workspace, senders)
        contact_service.resolve(s, workspace.id, senders[0])  # then the time budget ran out
    with db.transaction(readonly=True) as s:
        made = set(s.execute(select(ContactIdentity.external_id)).scalars())
    assert made == {x.external_id for x in senders[: contact_service.CREATE_AHEAD]}
    with db.transaction() as s:  # the rest, in a later group: created then, once each
        _ahead(s, workspace, senders)
        again = [contact_service.resolve(s, workspace.id, x) for x in senders]
    assert [r.created for r in again] == [False] * contact_service.CREATE_AHEAD + [True] * (
        2 * contact_service.CREATE_AHEAD
    )
    assert _count(db, Contact) == len(senders) == _count(db, ContactIdentity)


def test_known_fans_and_fans_who_may_be_known_are_left_to_resolve(db: Database, workspace: Workspace) -> None:
    with db.transaction() as s:
        known = contact_service.resolve(s, workspace.id, Sender(external_id="old", namespace=NS))
        by_phone = Contact(
            workspace_id=workspace.id, name="老会员", phone="13800000000", attributes={}, tags=[]
        )
        s.add(by_phone)
    senders = [
        Sender(external_id="old", namespace=NS),
        Sender(external_id="new-with-phone", namespace=NS, attributes={"phone": "13800000000"}),
        Sender(external_id="fresh", namespace=NS),
    ]
    with db.transaction() as s:
        _ahead(s, workspace, senders)
        first, second, third = (contact_service.resolve(s, workspace.id, x) for x in senders)
    assert (first.created, first.contact.id) == (False, known.contact.id)
    # the phone number leads to the existing member, as resolve alone would find
    assert (second.created, second.contact.id) == (False, by_phone.id)
    assert third.created is True
    assert _count(db, Contact) == 3  # old, the member, fresh: nothing made twice


def test_an_identity_created_meanwhile_wins_and_the_contact_made_for_it_is_dropped(
    db: Database, workspace: Workspace
) -> None:
    senders = [Sender(external_id="a", namespace=NS), Sender(external_id="b", namespace=NS)]
    with db.transaction() as s:
        contact_service.read_ahead(s, workspace.id, senders)  # neither exists yet
        # another process creates fan b between the read and the insert
        winner = Contact(workspace_id=workspace.id, name="先到", attributes={}, tags=[])
        s.add(winner)
        s.flush()
        repository.insert_identity_returning(
            s,
            workspace_id=workspace.id,
            contact_id=winner.id,
            namespace=NS,
            external_id="b",
            display_name=None,
        )
        a, b = (contact_service.resolve(s, workspace.id, x) for x in senders)
    assert a.created is True
    assert (b.created, b.contact.id, b.identity.contact_id) == (False, winner.id, winner.id)
    assert _count(db, Contact) == 2 and _count(db, ContactIdentity) == 2  # no orphan contact for b


def test_a_rolled_back_group_leaves_no_fan(db: Database, workspace: Workspace) -> None:
    try:
        with db.transaction() as s:
            _ahead(s, workspace, [Sender(external_id="x", namespace=NS)])
            raise RuntimeError("a job of the group failed")
    except RuntimeError:
        pass
    assert _count(db, Contact) == 0 and _count(db, ContactIdentity) == 0
    with db.transaction() as s:  # the jobs then run one by one and create the fan themselves
        assert contact_service.resolve(s, workspace.id, Sender(external_id="x", namespace=NS)).created is True
    assert _count(db, Contact) == 1
