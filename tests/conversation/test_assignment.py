"""Assignment: capacity under concurrent workers, sticky, VIP to seniors, away agents."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from scrm.conversation import assignment
from scrm.db import Database
from scrm.models import Contact, Conversation
from scrm.workspace import service as ws_service
from tests.conftest import Workspace


def agent(
    db: Database,
    ws: Workspace,
    name: str,
    *,
    capacity: int = 5,
    senior: bool = False,
    team: str = "service",
    availability: str = "online",
) -> int:
    with db.transaction() as s:
        user = ws_service.create_user(s, f"{name}@{ws.slug}.test", "password123", name)
        m = ws_service.add_member(s, ws.id, user, "agent", capacity=capacity, is_senior=senior)
        m.availability = availability
        ws_service.add_to_team(s, ws.id, ws.team_ids[team], m.id)
        return m.id


def open_conversation(
    db: Database, ws: Workspace, fan: str, *, tier: str | None = None, thread: str = ""
) -> int:
    with db.transaction() as s:
        contact = s.execute(
            select(Contact).where(Contact.workspace_id == ws.id, Contact.name == fan)
        ).scalar_one_or_none()
        if contact is None:
            contact = Contact(
                workspace_id=ws.id, name=fan, attributes={"tier": tier} if tier else {}, tags=[]
            )
            s.add(contact)
            s.flush()
        conv = Conversation(
            workspace_id=ws.id,
            contact_id=contact.id,
            channel_account_id=ws.channel_id,
            thread_key=thread,
            fan_external_id=fan,
            status="open",
            labels=[],
            team_id=ws.team_ids["service"],
        )
        s.add(conv)
        s.flush()
        return conv.id


def assign(db: Database, ws: Workspace, conv_id: int) -> int | None:
    with db.transaction() as s:
        conv = s.get(Conversation, (ws.id, conv_id))
        assert conv is not None
        return assignment.assign(s, conv)


def test_concurrent_workers_never_exceed_capacity(db, workspace) -> None:  # type: ignore[no-untyped-def]
    a = agent(db, workspace, "a1", capacity=3)
    b = agent(db, workspace, "a2", capacity=2)
    convs = [open_conversation(db, workspace, f"fan{i}") for i in range(20)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(ids: list[int]) -> None:
        try:
            barrier.wait()
            for cid in ids:
                assign(db, workspace, cid)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(convs[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with db.transaction(readonly=True) as s:
        loads = dict(
            s.execute(select(Conversation.assignee_id, func.count()).group_by(Conversation.assignee_id)).all()
        )
    assert loads[a] == 3 and loads[b] == 2 and loads[None] == 15


def test_round_robin_and_least_load(db, workspace) -> None:  # type: ignore[no-untyped-def]
    ids = sorted([agent(db, workspace, f"r{i}") for i in range(3)])
    got = [assign(db, workspace, open_conversation(db, workspace, f"f{i}")) for i in range(6)]
    assert got == ids + ids
    with db.transaction() as s:
        assignment.configure_desk(s, workspace.id, workspace.team_ids["service"], strategy="least_load")
        s.execute(
            Conversation.__table__.update()
            .where(Conversation.assignee_id == ids[1])
            .values(status="resolved")
        )
    assert assign(db, workspace, open_conversation(db, workspace, "g")) == ids[1]


def test_sticky_vip_and_away(db, workspace) -> None:  # type: ignore[no-untyped-def]
    junior = agent(db, workspace, "junior")
    senior = agent(db, workspace, "senior", senior=True)
    other = agent(db, workspace, "other")
    # VIP fans go to the senior agent first
    vip_conv = open_conversation(db, workspace, "vipfan", tier="platinum")
    assert assign(db, workspace, vip_conv) == senior
    # the same fan comes back on another thread: sticky beats round-robin
    first = open_conversation(db, workspace, "regular", thread="t1")
    served_by = assign(db, workspace, first)
    again = open_conversation(db, workspace, "regular", thread="t2")
    assert assign(db, workspace, again) == served_by
    # the agent goes away: their open work is handed on, never to an away agent
    with db.transaction() as s:
        moved = assignment.set_availability(s, workspace.id, served_by, "away")
    assert moved == 2
    with db.transaction(readonly=True) as s:
        owners = {s.get(Conversation, (workspace.id, c)).assignee_id for c in (first, again)}  # type: ignore[union-attr]
    assert served_by not in owners and owners <= {junior, senior, other}
    # nobody online: the conversation waits in the unassigned queue
    with db.transaction() as s:
        for m in (junior, senior, other):
            assignment.set_availability(s, workspace.id, m, "offline")
        queued = assignment.unassigned_queue(s, workspace.id)
    assert {c.id for c in queued} == {vip_conv, first, again}
    with db.transaction() as s:
        assignment.set_availability(s, workspace.id, junior, "online")
        assert len(assignment.unassigned_queue(s, workspace.id)) == 0


def test_rebalance_fills_the_queue_but_keeps_hand_assigned_work(db, workspace) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from scrm.automation.tasks import rebalance

    offline = agent(db, workspace, "offline", availability="offline")
    online = agent(db, workspace, "online")
    given = open_conversation(db, workspace, "given")
    waiting = open_conversation(db, workspace, "waiting")
    with db.transaction() as s:
        conv = s.get(Conversation, (workspace.id, given))
        assert conv is not None
        conv.assignee_id = offline  # a supervisor gave it to the offline agent on purpose
    with db.transaction() as s:
        rebalance(SimpleNamespace(session=s, workspace_id=workspace.id), {})  # type: ignore[arg-type]
    with db.transaction(readonly=True) as s:
        owners = {c: s.get(Conversation, (workspace.id, c)).assignee_id for c in (given, waiting)}  # type: ignore[union-attr]
    assert owners == {given: offline, waiting: online}
