"""The assignment decision's queries (see scrm.conversation.assignment for the decision).

A decision runs for every new conversation, so its statements are built once (bound
parameters, memoised compilation) and run as Core statements on the session's connection:
columns only, no ORM objects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Insert,
    Select,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import BindParameter

from scrm.models import Contact, Conversation, ConversationActivity, Member, Team, TeamDesk, TeamMember


class Candidate(NamedTuple):  # a tuple: one is built per online agent in every decision
    member_id: int
    capacity: int
    skills: frozenset[str]
    is_senior: bool
    load: int


_WS: BindParameter[int] = bindparam("ws")
_MEMBER: BindParameter[int] = bindparam("member")
_NOW: BindParameter[dt.datetime] = bindparam("now")

_TEAMS = (
    select(
        Team.id,
        Team.kind,
        Team.parent_id,
        TeamDesk.id,
        TeamDesk.strategy,
        TeamDesk.auto_assign,
        TeamDesk.sticky,
        TeamDesk.vip_to_senior,
    )
    .outerjoin(TeamDesk, (TeamDesk.workspace_id == Team.workspace_id) & (TeamDesk.team_id == Team.id))
    .where(Team.workspace_id == _WS)
)

_Load = aliased(Conversation, name="load_conv")
_Last = aliased(Conversation, name="last_conv")
# Open conversations of each member: one index range per member (ix_conversation_assignee).
_LOAD = (
    select(func.count())
    .select_from(_Load)
    .where(_Load.workspace_id == _WS, _Load.assignee_id == Member.id, _Load.status == "open")
    .correlate(Member)
    .scalar_subquery()
)
# The agent who last served the fan on another conversation (uncorrelated: computed once).
_STICKY = (
    select(_Last.assignee_id)
    .where(
        _Last.workspace_id == _WS,
        _Last.contact_id == bindparam("contact"),
        _Last.id != bindparam("conv"),
        _Last.assignee_id.is_not(None),
    )
    .order_by(_Last.last_message_at.desc())
    .limit(1)
    .scalar_subquery()
)


# The round-robin cursor of the answering team, read fresh in the decision's own query (the
# pool's other settings come from a short-lived cache, see pool_of).
_CURSOR_OF = (
    select(TeamDesk.last_member_id)
    .where(TeamDesk.workspace_id == _WS, TeamDesk.team_id == bindparam("team"))
    .scalar_subquery()
)
_IN_POOL = Member.id.in_(
    select(TeamMember.member_id).where(
        TeamMember.workspace_id == _WS, TeamMember.team_id.in_(bindparam("teams", expanding=True))
    )
)


def _pick_stmt(sticky: bool, vip: bool, lock: str) -> Select[Any]:
    """Round robin's first pick in SQL, loads not counted: the fan's last agent (sticky), else a
    senior for a VIP fan, else the next member after the cursor, wrapping around. One row.
    `lock` (PostgreSQL): "wait" or "skip" locks the picked member's row in the same statement."""
    order: list[Any] = []
    if sticky:
        order.append(case((Member.id == _STICKY, 0), else_=1))
    if vip:
        order.append(case((Member.is_senior.is_(True), 0), else_=1))
    order += [case((Member.id > func.coalesce(_CURSOR_OF, -1), 0), else_=1), Member.id]
    stmt = (
        select(Member.id, Member.is_senior, _STICKY if sticky else literal(None))
        .where(
            Member.workspace_id == _WS,
            Member.is_active.is_(True),
            Member.availability == "online",
            Member.capacity > 0,
            _IN_POOL,
        )
        .order_by(*order)
        .limit(1)
    )
    if lock:
        stmt = stmt.with_for_update(of=Member, skip_locked=lock == "skip")
    return stmt


_PICK = {
    (sticky, vip, lock): _pick_stmt(sticky, vip, lock)
    for sticky in (False, True)
    for vip in (False, True)
    for lock in ("", "wait", "skip")
}


def _candidates_stmt(with_skills: bool, with_load: bool = True) -> Select[Any]:
    # Skills (a JSON list per member) are only fetched and parsed when the decision needs them;
    # loads (one index range count per member) only when the ordering needs them.
    load = _LOAD if with_load else literal(0)
    cols: list[Any] = [Member.id, Member.capacity, Member.is_senior, load, _STICKY, _CURSOR_OF]
    return (
        select(*cols, *([Member.skills] if with_skills else []))
        .where(
            Member.workspace_id == _WS,
            Member.is_active.is_(True),
            Member.availability == "online",
            _IN_POOL,
        )
        .order_by(Member.id)
    )


_CANDIDATES = {(sk, ld): _candidates_stmt(sk, ld) for sk in (False, True) for ld in (False, True)}
_CONTACT_VIP = select(Contact.attributes, Contact.tags).where(
    Contact.workspace_id == _WS, Contact.id == bindparam("contact")
)
_MEMBER_ROW = select(Member.id).where(Member.workspace_id == _WS, Member.id == _MEMBER)
_LOCK_MEMBER = _MEMBER_ROW.with_for_update()
# While this transaction already holds a member lock, it never waits for another one (it skips
# a member someone else is assigning to): two transactions each holding one member and waiting
# for the other's would deadlock.
_LOCK_MEMBER_OR_SKIP = _MEMBER_ROW.with_for_update(skip_locked=True)
_CONV_ROW = select(Conversation.id).where(
    Conversation.workspace_id == _WS, Conversation.id == bindparam("conv")
)
_LOCK_CONV = _CONV_ROW.with_for_update()
_LOCK_CONV_OR_SKIP = _CONV_ROW.with_for_update(skip_locked=True)
_Count = aliased(Conversation, name="count_conv")
# Take the conversation only while it is unassigned and the member, online, is under capacity.
# The count runs inside this statement: on SQLite under the one write lock; on PostgreSQL in
# a snapshot taken after the member lock was granted, so it sees every earlier taker's commit.
_TAKE = (
    update(Conversation)
    .where(
        Conversation.workspace_id == _WS,
        Conversation.id == bindparam("conv"),
        Conversation.assignee_id.is_(None),
        Conversation.status != "resolved",
        select(func.count())
        .select_from(_Count)
        .where(_Count.workspace_id == _WS, _Count.assignee_id == _MEMBER, _Count.status == "open")
        .scalar_subquery()
        < select(Member.capacity)
        .where(
            Member.workspace_id == _WS,
            Member.id == _MEMBER,
            Member.is_active.is_(True),
            Member.availability == "online",
        )
        .scalar_subquery(),
    )
    .values(assignee_id=_MEMBER, updated_at=_NOW)
)


def _take_recorded_stmt(move_cursor: bool) -> Insert:
    """PostgreSQL: the take, its timeline row and (round robin) the cursor move in one statement
    (data-modifying CTEs); a row is inserted only if the conversation was taken."""
    take = _TAKE.returning(Conversation.workspace_id, Conversation.id).cte("take")
    stmt = insert(ConversationActivity).from_select(
        ["workspace_id", "conversation_id", "kind", "data", "id", "created_at"],
        select(
            take.c.workspace_id,
            take.c.id,
            literal("assigned"),
            bindparam("data", type_=JSON),
            bindparam("activity", type_=BigInteger),
            _NOW,
        ),
        include_defaults=False,
    )
    if move_cursor:
        cursor = (
            update(TeamDesk)
            .where(TeamDesk.workspace_id == _WS, TeamDesk.team_id == bindparam("team"), exists(take.select()))
            .values(last_member_id=_MEMBER, updated_at=_NOW)
        )
        stmt = stmt.add_cte(cursor.cte("cursor"))
    return stmt.returning(ConversationActivity.id)


_TAKE_RECORDED = {move: _take_recorded_stmt(move) for move in (False, True)}

_ANYONE_WITH_ROOM = (
    select(Member.id)
    .where(
        Member.workspace_id == _WS,
        Member.is_active.is_(True),
        Member.availability == "online",
        Member.capacity > _LOAD,
    )
    .limit(1)
)


class MemberState(NamedTuple):
    """A member as a decision outside the hot path sees them (a named member, the queue's
    reasons): availability and skills whatever they are, and their open load."""

    member_id: int
    is_active: bool
    availability: str
    capacity: int
    skills: frozenset[str]
    load: int


_MEMBER_STATE = select(
    Member.id, Member.is_active, Member.availability, Member.capacity, Member.skills, _LOAD
).where(Member.workspace_id == _WS)
_ONE_MEMBER_STATE = _MEMBER_STATE.where(Member.id == _MEMBER)
_POOL_MEMBER_STATES = _MEMBER_STATE.where(_IN_POOL).order_by(Member.id)
_CONV_STATE = select(Conversation.assignee_id, Conversation.status).where(
    Conversation.workspace_id == _WS, Conversation.id == bindparam("conv")
)
_CURSOR = (
    update(TeamDesk)
    .where(TeamDesk.workspace_id == _WS, TeamDesk.team_id == bindparam("team"))
    .values(last_member_id=_MEMBER, updated_at=_NOW)
)


# -- the decision's reads and writes -------------------------------------------------------------
def teams_with_desks(session: Session, workspace_id: int) -> list[tuple[Any, ...]]:
    """(team id, kind, parent id, desk id, strategy, auto_assign, sticky, vip_to_senior) per team."""
    return [tuple(row) for row in session.connection().execute(_TEAMS, {"ws": workspace_id})]


def _pool_params(workspace_id: int, team_ids: Sequence[int], contact_id: int, conv_id: int) -> dict[str, Any]:
    """The pool (its teams; the first one's cursor) and the fan (for the sticky look-up)."""
    return {
        "ws": workspace_id,
        "teams": list(team_ids),
        "team": team_ids[0],
        "contact": contact_id,
        "conv": conv_id,
    }


def pick(
    session: Session,
    workspace_id: int,
    team_ids: Sequence[int],
    *,
    contact_id: int,
    conv_id: int,
    sticky: bool,
    vip: bool,
    lock: str,
) -> tuple[int, bool, int | None] | None:
    """(member id, is_senior, the fan's last agent or None) of round robin's first pick."""
    params = _pool_params(workspace_id, team_ids, contact_id, conv_id)
    row = session.connection().execute(_PICK[sticky, vip, lock], params).first()
    return None if row is None else (row[0], bool(row[1]), row[2])


def candidates(
    session: Session,
    workspace_id: int,
    team_ids: Sequence[int],
    *,
    contact_id: int,
    conv_id: int,
    with_skills: bool,
    with_load: bool,
) -> tuple[list[Candidate], int | None, int | None]:
    """Online, active members of the teams (with their open load unless `with_load` is off, and
    their skills if `with_skills`), the fan's last agent and the first team's cursor."""
    params = _pool_params(workspace_id, team_ids, contact_id, conv_id)
    pool: list[Candidate] = []
    sticky = cursor = None
    none: frozenset[str] = frozenset()
    for row in session.connection().execute(_CANDIDATES[with_skills, with_load], params):
        skills = frozenset(row[6] or ()) if with_skills else none
        pool.append(Candidate(row[0], row[1], skills, bool(row[2]), row[3]))
        sticky, cursor = row[4], row[5]
    return pool, sticky, cursor


def _member_state(row: Any) -> MemberState:
    return MemberState(row[0], bool(row[1]), row[2], row[3], frozenset(row[4] or ()), row[5])


def member_state(session: Session, workspace_id: int, member_id: int) -> MemberState | None:
    """One member's availability, capacity, skills and open load (read now: after a lock on
    the member, it sees every earlier taker's commit)."""
    row = session.connection().execute(_ONE_MEMBER_STATE, {"ws": workspace_id, "member": member_id}).first()
    return None if row is None else _member_state(row)


def pool_member_states(session: Session, workspace_id: int, team_ids: Sequence[int]) -> list[MemberState]:
    """Every member of the teams (online or not), with their open load."""
    params = {"ws": workspace_id, "teams": list(team_ids)}
    return [_member_state(row) for row in session.connection().execute(_POOL_MEMBER_STATES, params)]


def contact_vip_fields(
    session: Session, workspace_id: int, contact_id: int
) -> tuple[dict[str, Any] | None, list[str] | None] | None:
    row = session.connection().execute(_CONTACT_VIP, {"ws": workspace_id, "contact": contact_id}).first()
    return None if row is None else (row[0], row[1])


def lock_member(session: Session, workspace_id: int, member_id: int, *, skip_locked: bool) -> bool:
    """Lock the member's row (PostgreSQL) until the end of the transaction; with `skip_locked`,
    False instead of waiting if another transaction holds it (or if there is no such member)."""
    stmt = _LOCK_MEMBER_OR_SKIP if skip_locked else _LOCK_MEMBER
    return session.connection().execute(stmt, {"ws": workspace_id, "member": member_id}).first() is not None


def lock_conversation(session: Session, workspace_id: int, conv_id: int, *, skip_locked: bool) -> bool:
    """Lock the conversation's row (PostgreSQL) until the end of the transaction; with
    `skip_locked`, False instead of waiting if another transaction holds it."""
    stmt = _LOCK_CONV_OR_SKIP if skip_locked else _LOCK_CONV
    return session.connection().execute(stmt, {"ws": workspace_id, "conv": conv_id}).first() is not None


def take(session: Session, workspace_id: int, conv_id: int, member_id: int, now: dt.datetime) -> bool:
    """The conditional take alone; True if the conversation is now the member's."""
    params = {"ws": workspace_id, "conv": conv_id, "member": member_id, "now": now}
    return session.connection().execute(_TAKE, params).rowcount == 1


def take_recorded(
    session: Session,
    workspace_id: int,
    conv_id: int,
    member_id: int,
    now: dt.datetime,
    *,
    activity_id: int,
    data: dict[str, Any],
    cursor_team: int | None,
) -> bool:
    """PostgreSQL: the take with its timeline row and, with `cursor_team`, that team's round-robin
    cursor moved to the member, in one statement. True if taken (and so recorded)."""
    params = {
        "ws": workspace_id,
        "conv": conv_id,
        "member": member_id,
        "now": now,
        "team": cursor_team,
        "data": data,
        "activity": activity_id,
    }
    stmt = _TAKE_RECORDED[cursor_team is not None]
    return session.connection().execute(stmt, params).first() is not None


def conversation_state(session: Session, workspace_id: int, conv_id: int) -> tuple[int | None, str]:
    assignee, status = session.connection().execute(_CONV_STATE, {"ws": workspace_id, "conv": conv_id}).one()
    return assignee, status


def move_cursor(session: Session, workspace_id: int, team_id: int, member_id: int, now: dt.datetime) -> None:
    params = {"ws": workspace_id, "team": team_id, "member": member_id, "now": now}
    session.connection().execute(_CURSOR, params)


def anyone_with_room(session: Session, workspace_id: int) -> bool:
    """Is any online member under capacity? (One query, however long the queue.)"""
    return session.connection().execute(_ANYONE_WITH_ROOM, {"ws": workspace_id}).first() is not None


def desk(session: Session, workspace_id: int, team_id: int) -> TeamDesk | None:
    return session.execute(
        select(TeamDesk).where(TeamDesk.workspace_id == workspace_id, TeamDesk.team_id == team_id)
    ).scalar_one_or_none()


def open_of_member_for_update(
    session: Session, workspace_id: int, member_id: int, limit: int
) -> list[Conversation]:
    """The member's open conversations, oldest first, locked (FOR UPDATE on PostgreSQL)."""
    return list(
        session.execute(
            select(Conversation)
            .where(
                Conversation.workspace_id == workspace_id,
                Conversation.assignee_id == member_id,
                Conversation.status == "open",
            )
            .order_by(Conversation.last_inbound_at, Conversation.id)
            .limit(limit)
            .with_for_update()
        )
        .scalars()
        .all()
    )


def unassigned(
    session: Session,
    workspace_id: int,
    team_id: int | None,
    limit: int,
    *,
    lock: bool,
    exclude: Sequence[int] = (),
) -> list[Conversation]:
    """Open, unassigned conversations, oldest first, but those in `exclude`; `lock`: FOR UPDATE
    SKIP LOCKED."""
    stmt = select(Conversation).where(
        Conversation.workspace_id == workspace_id,
        Conversation.assignee_id.is_(None),
        Conversation.status == "open",
    )
    if team_id is not None:
        stmt = stmt.where(Conversation.team_id == team_id)
    if exclude:
        stmt = stmt.where(Conversation.id.not_in(list(exclude)))
    stmt = stmt.order_by(Conversation.last_inbound_at, Conversation.id).limit(limit)
    if lock:
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.execute(stmt).scalars())
