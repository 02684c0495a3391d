"""Assignment: capacity under concurrent workers, sticky, VIP to seniors, away agents."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select, update

from scrm.conversation import assignment
from scrm.db import Database
from scrm.models import Contact, Conversation, ConversationActivity, Member
from scrm.workspace import service as ws_service
from tests.conftest import Workspace
from tests.helpers import run_concurrently


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
    db: Database, ws: Workspace, fan: str, *, tier: str | None = None, thread: str = "", team: str = "service"
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
            team_id=ws.team_ids[team],
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

    def work(i: int) -> None:
        for cid in convs[i::8]:
            assign(db, workspace, cid)

    run_concurrently(work, 8)
    with db.transaction(readonly=True) as s:
        loads = dict(
            s.execute(select(Conversation.assignee_id, func.count()).group_by(Conversation.assignee_id)).all()
        )
    assert loads[a] == 3 and loads[b] == 2 and loads[None] == 15


def test_the_pipelines_decision_is_one_pick_and_one_take(db, workspace, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With the contact at hand (as the pipeline has it), round robin picks in one query (locking
    the member on PostgreSQL) and takes; PostgreSQL writes the timeline row and the cursor in the
    take's statement. Every part still lands: assignee, timeline row, cursor."""
    from sqlalchemy import event

    from scrm.models import TeamDesk

    monkeypatch.setattr(assignment, "POOL_CACHE_SECONDS", 3600.0)  # however slow this machine is
    ids = sorted([agent(db, workspace, f"p{i}") for i in range(3)])
    assert assign(db, workspace, open_conversation(db, workspace, "warm-up")) == ids[0]  # desk row made
    assert assign(db, workspace, open_conversation(db, workspace, "again")) == ids[1]  # teams cached
    conv_id = open_conversation(db, workspace, "fan")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    with db.transaction() as s:
        conv = s.get(Conversation, (workspace.id, conv_id))
        assert conv is not None
        contact = s.get(Contact, (workspace.id, conv.contact_id))
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            got = assignment.assign(s, conv, contact=contact)
            s.flush()
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    assert got == ids[2]
    postgres = db.engine.dialect.name == "postgresql"
    # SQLite: pick, take, cursor, timeline row (all in-process, under the one write lock)
    assert len(statements) == (2 if postgres else 4), statements
    assert owner(db, workspace, conv_id) == ids[2]
    with db.transaction(readonly=True) as s:
        rows = s.execute(
            select(ConversationActivity.data).where(
                ConversationActivity.conversation_id == conv_id, ConversationActivity.kind == "assigned"
            )
        ).all()
        assert [r.data for r in rows] == [{"assignee_id": str(ids[2]), "reason": "round_robin"}]
        cursor = s.execute(
            select(TeamDesk.last_member_id).where(TeamDesk.team_id == workspace.team_ids["service"])
        ).scalar_one()
        assert cursor == ids[2]


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


def owner(db: Database, ws: Workspace, conv_id: int) -> int | None:
    with db.transaction(readonly=True) as s:
        conv = s.get(Conversation, (ws.id, conv_id))
        assert conv is not None
        return conv.assignee_id


def test_department_conversations_follow_the_front_desk(db, workspace) -> None:  # type: ignore[no-untyped-def]
    ids = sorted(agent(db, workspace, f"d{i}") for i in range(3))
    with db.transaction() as s:
        # the department's desk exists only for its own system's hook; it must not change how
        # the front desk assigns the conversations routed to the department
        assignment.configure_desk(
            s, workspace.id, workspace.team_ids["lost"], notify_url="https://lost.example/h"
        )
    # round-robin rotates through the front desk for routed conversations too
    got = [assign(db, workspace, open_conversation(db, workspace, f"l{i}", team="lost")) for i in range(3)]
    assert got == ids
    # least-load on the front desk applies to them as well
    with db.transaction() as s:
        assignment.configure_desk(s, workspace.id, workspace.team_ids["service"], strategy="least_load")
        s.execute(update(Conversation).where(Conversation.assignee_id == ids[1]).values(status="resolved"))
    assert assign(db, workspace, open_conversation(db, workspace, "least", team="lost")) == ids[1]
    # a department may hold its conversations back from auto-assignment; others still flow
    with db.transaction() as s:
        assignment.configure_desk(s, workspace.id, workspace.team_ids["lost"], auto_assign=False)
    held = open_conversation(db, workspace, "held", team="lost")
    assert assign(db, workspace, held) is None
    assert assign(db, workspace, open_conversation(db, workspace, "front")) in ids
    with db.transaction(readonly=True) as s:
        assert [c.id for c in assignment.unassigned_queue(s, workspace.id)] == [held]


def stale_candidates(monkeypatch, before_take=None, *, seed: int | None = None) -> None:  # type: ignore[no-untyped-def]
    """Candidates as a worker saw them a moment ago: everyone with room (load 0, or with `seed`
    a random load under capacity, so that workers rank the agents differently); then
    `before_take` changes the world, as another worker would, before the take."""
    import random

    real = assignment.candidates
    rnd = random.Random(seed)
    lock = threading.Lock()

    def seen(session: Any, *args: Any, **kwargs: Any) -> Any:
        pool, sticky, cursor = real(session, *args, **kwargs)
        if before_take is not None:
            before_take(session, pool)
        with lock:
            loads = [rnd.randrange(c.capacity) if seed is not None else 0 for c in pool]
        return [c._replace(load=n) for c, n in zip(pool, loads, strict=True)], sticky, cursor

    monkeypatch.setattr(assignment, "candidates", seen)


def test_the_take_rechecks_capacity_and_availability(db, workspace, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    full = agent(db, workspace, "full", capacity=1)
    leaving = agent(db, workspace, "leaving")
    spare = agent(db, workspace, "spare")
    first = open_conversation(db, workspace, "first")
    with db.transaction() as s:
        s.execute(update(Conversation).where(Conversation.id == first).values(assignee_id=full))

    def leaves(session: Any, pool: Any) -> None:
        session.execute(update(Member).where(Member.id == leaving).values(availability="away"))

    stale_candidates(monkeypatch, leaves)
    # in rotation order the full agent and the one going away come first: both are refused
    assert sorted([full, leaving, spare]) == [full, leaving, spare]
    conv = open_conversation(db, workspace, "second")
    assert assign(db, workspace, conv) == spare
    with db.transaction(readonly=True) as s:
        loads = dict(
            s.execute(
                select(Conversation.assignee_id, func.count())
                .where(Conversation.status == "open")
                .group_by(Conversation.assignee_id)
            ).all()
        )
    assert loads == {full: 1, spare: 1}


def test_a_conversation_taken_meanwhile_is_left_to_its_taker(db, workspace, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    mine = agent(db, workspace, "mine")
    other = agent(db, workspace, "other")
    conv = open_conversation(db, workspace, "fan")

    def another_worker_takes_it(session: Any, pool: Any) -> None:
        session.execute(update(Conversation).where(Conversation.id == conv).values(assignee_id=other))

    stale_candidates(monkeypatch, another_worker_takes_it)
    assert assign(db, workspace, conv) == other
    assert owner(db, workspace, conv) == other and mine != other
    with db.transaction(readonly=True) as s:
        assert (
            s.execute(select(ConversationActivity).where(ConversationActivity.kind == "assigned")).first()
            is None
        )


def test_the_one_row_pick_leaves_a_conversation_taken_meanwhile_to_its_taker(
    db, workspace, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The pipeline's path (contact at hand): another worker takes the conversation between the
    pick and the take; the decision reports that worker's agent and records nothing itself."""
    mine, other = sorted([agent(db, workspace, "mine"), agent(db, workspace, "other")])
    conv_id = open_conversation(db, workspace, "fan")
    real_pick = assignment.repo.pick

    def pick_then_lose_the_race(session: Any, *args: Any, **kwargs: Any) -> Any:
        row = real_pick(session, *args, **kwargs)
        session.execute(update(Conversation).where(Conversation.id == conv_id).values(assignee_id=other))
        return row

    monkeypatch.setattr(assignment.repo, "pick", pick_then_lose_the_race)
    with db.transaction() as s:
        conv = s.get(Conversation, (workspace.id, conv_id))
        assert conv is not None
        contact = s.get(Contact, (workspace.id, conv.contact_id))
        assert assignment.assign(s, conv, contact=contact) == other
    assert owner(db, workspace, conv_id) == other and mine != other
    with db.transaction(readonly=True) as s:
        assert (
            s.execute(select(ConversationActivity).where(ConversationActivity.kind == "assigned")).first()
            is None
        )


def test_drain_queue_fills_room_per_pool_and_stops_asking_when_everyone_is_full(db, workspace) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import event

    with db.transaction() as s:
        workspace.team_ids["vip"] = ws_service.create_team(s, workspace.id, "vip", "贵宾", "service").id
    busy = agent(db, workspace, "busy", capacity=2)
    vip_agent = agent(db, workspace, "vipdesk", capacity=5, team="vip")
    waiting = [
        open_conversation(db, workspace, f"w{i}", team="vip" if i % 2 else "service") for i in range(8)
    ]
    with db.transaction() as s:
        assert assignment.drain_queue(s, workspace.id) == 6
    owners = {c: owner(db, workspace, c) for c in waiting}
    # the service pool filled up with its two oldest; being full did not hold up the VIP pool
    assert [owners[c] for c in waiting[0::2]] == [busy, busy, None, None]
    assert [owners[c] for c in waiting[1::2]] == [vip_agent] * 4

    # everybody full now (the VIP agent too): a drain costs one statement, however long the queue
    with db.transaction() as s:
        s.execute(update(Member).where(Member.id == vip_agent).values(capacity=4))
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.transaction() as s:
            assert assignment.drain_queue(s, workspace.id) == 0
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 1 and "FROM member" in statements[0]


def test_concurrent_workers_with_stale_loads_neither_deadlock_nor_overfill(
    db, workspace, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Every worker believes every agent has room, so most takes are refused and a worker goes
    on to the next agent while holding the first one's lock: on PostgreSQL that is where two
    workers could each hold one member and wait for the other's."""
    capacity = {agent(db, workspace, f"s{i}", capacity=c): c for i, c in enumerate((2, 3, 2, 4, 3))}
    convs = [open_conversation(db, workspace, f"sf{i}") for i in range(48)]
    with db.transaction() as s:
        assignment.configure_desk(s, workspace.id, workspace.team_ids["service"], strategy="least_load")
    stale_candidates(monkeypatch, seed=5)  # each worker ranks the agents by its own stale view

    def work(i: int) -> None:
        for cid in convs[i::8]:
            assign(db, workspace, cid)

    run_concurrently(work, 8)
    with db.transaction(readonly=True) as s:
        loads = dict(
            s.execute(select(Conversation.assignee_id, func.count()).group_by(Conversation.assignee_id)).all()
        )
    assert {m: loads.get(m, 0) for m in capacity} == capacity
    assert loads[None] == 48 - sum(capacity.values())


def test_round_robin_skips_a_full_pick_then_counts_loads_while_busy(db, workspace) -> None:  # type: ignore[no-untyped-def]
    full = agent(db, workspace, "full", capacity=1)
    free = agent(db, workspace, "free", capacity=5)
    assert (full, free) == tuple(sorted([full, free]))
    assert assign(db, workspace, open_conversation(db, workspace, "f0")) == full  # now at capacity
    with db.transaction() as s:  # the rotation points at `full` again
        assignment.get_or_create_desk(s, workspace.id, workspace.team_ids["service"]).last_member_id = free
    key = (workspace.id, (workspace.team_ids["service"],))
    assignment._BUSY_POOLS.pop(key, None)
    # the guess (full, loads not counted) fails the capacity check; the counted pass gives `free`
    assert assign(db, workspace, open_conversation(db, workspace, "f1")) == free
    assert key in assignment._BUSY_POOLS
    # nobody gets more than capacity, and a pool with no room queues
    with db.transaction() as s:
        s.execute(update(Member).where(Member.id == free).values(capacity=1))
    assignment._BUSY_POOLS.pop(key, None)
    assert assign(db, workspace, open_conversation(db, workspace, "f2")) is None
    with db.transaction(readonly=True) as s:
        loads = dict(
            s.execute(
                select(Conversation.assignee_id, func.count())
                .where(Conversation.workspace_id == workspace.id, Conversation.status == "open")
                .group_by(Conversation.assignee_id)
            ).all()
        )
    assert loads == {full: 1, free: 1, None: 1}


def test_a_rolled_back_savepoint_forgets_the_member_locks_taken_in_it(db, workspace) -> None:  # type: ignore[no-untyped-def]
    kept, undone = sorted(agent(db, workspace, name) for name in ("kept", "undone"))
    with db.transaction() as s:
        assignment.set_availability(s, workspace.id, kept, "online")  # locks `kept` (its UPDATE)
        try:
            with s.begin_nested():
                assignment.set_availability(s, workspace.id, undone, "online")
                assert set(assignment._member_locks(s)) == {kept, undone}
                raise RuntimeError("a rule failed")
        except RuntimeError:
            pass
        # the savepoint's row lock is gone with it: the next take must lock `undone` again
        assert set(assignment._member_locks(s)) == {kept}
