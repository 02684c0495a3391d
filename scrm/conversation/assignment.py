"""Automatic assignment: who in the team takes a conversation.

Per team (TeamDesk): round-robin or least-load, agent capacity (Member.capacity counts the
agent's *open* conversations), skills, availability (only "online" agents get work), VIP fans
to senior agents first, sticky to the agent who last served the fan.

Skills: a conversation's Conversation.required_skills (set by the rule action `assign
{skills}` or the API) must all be in the agent's Member.skills, on every path: the pipeline,
queue drains, reassignment when an agent goes away, a rule naming a member. With nobody
skilled available the conversation waits in the unassigned queue (`queue_reasons` says why).

Fairness under concurrency: the chosen agent's member row is locked (FOR UPDATE on
PostgreSQL; SQLite writers are serialised by BEGIN IMMEDIATE), then the conversation is taken
with one conditional UPDATE: only while it is still unassigned and while the agent, online,
has fewer open conversations than their capacity (counted inside that statement, i.e. after
the lock was granted). Two workers therefore never give one agent more than their capacity,
and never assign one conversation twice. A transaction that already holds a member lock
never waits for another one (it skips members locked by someone else), so member locks
cannot deadlock.

Conversations of a department or partner team (whose people work the *task*, see
scrm.casework) are answered by the front desk: the team's parent service team, or else every
service team of the workspace.

The decision's SQL lives in scrm.conversation.assignment_repository.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from time import monotonic as _monotonic
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value

from scrm import events
from scrm.conversation import assignment_repository as repo
from scrm.conversation import repository as conversation_repository
from scrm.conversation.assignment_repository import Candidate
from scrm.db import after_commit, undone_by
from scrm.errors import Invalid, NotFound
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow
from scrm.models import Contact, Conversation, ConversationActivity, Member, Team, TeamDesk
from scrm.workspace.service import clean_skills

log = logging.getLogger(__name__)

STRATEGIES = ("round_robin", "least_load")
VIP_TIERS = frozenset({"vip", "gold", "platinum", "diamond", "金卡", "白金卡", "钻石卡"})


def is_vip(contact: Contact | None) -> bool:
    if contact is None:
        return False
    return vip_fields(contact.attributes, contact.tags)


def vip_fields(attributes: dict[str, Any] | None, tags: list[str] | None) -> bool:
    """VIP: attributes.vip set, a VIP tier (gold, platinum, 金卡, ...) or the tag VIP."""
    attrs = attributes or {}
    if attrs.get("vip") in (True, "true", "1", 1, "yes"):
        return True
    tier = str(attrs.get("tier") or "").strip().lower()
    return tier in VIP_TIERS or any(str(t).lower() == "vip" for t in tags or [])


# Pools recently found with their first round-robin pick full: (workspace, team ids) -> when.
# While a pool is busy, decisions read every member's load first instead of guessing.
_BUSY_POOLS: dict[tuple[int, tuple[int, ...]], float] = {}
BUSY_POOL_SECONDS = 5.0


@dataclass(frozen=True)
class DeskSettings:
    """The assignment settings of one team desk (defaults when the team has no desk row)."""

    id: int | None = None
    strategy: str = "round_robin"
    auto_assign: bool = True
    sticky: bool = True
    vip_to_senior: bool = True


@dataclass(frozen=True)
class Pool:
    team_ids: list[int]  # teams whose agents answer; the first one's desk holds the settings
    desk: DeskSettings  # of the answering team
    held: bool  # auto-assignment is off (on the answering desk, or the routed team's own desk)


def desk(session: Session, workspace_id: int, team_id: int) -> TeamDesk | None:
    return repo.desk(session, workspace_id, team_id)


def get_or_create_desk(session: Session, workspace_id: int, team_id: int) -> TeamDesk:
    row = desk(session, workspace_id, team_id)
    if row is None:
        row = TeamDesk(workspace_id=workspace_id, team_id=team_id)
        session.add(row)
        session.flush()
    return row


# The teams of a workspace with their desk settings, per process for a few seconds: every
# decision needs them and they change rarely. A change made in this process is seen at once
# (the cache entry is dropped on flush and again after the commit); other processes see it
# within POOL_CACHE_SECONDS. The round-robin cursor is not cached (read by the decision).
POOL_CACHE_SECONDS = 2.0
_TeamsView = tuple[dict[int, tuple[str, int | None]], dict[int, DeskSettings]]
_POOLS: dict[int, tuple[float, _TeamsView]] = {}


def _teams_view(session: Session, workspace_id: int) -> _TeamsView:
    now = _monotonic()
    hit = _POOLS.get(workspace_id)
    if hit is not None and now - hit[0] < POOL_CACHE_SECONDS:
        return hit[1]
    teams: dict[int, tuple[str, int | None]] = {}
    desks: dict[int, DeskSettings] = {}
    for row in repo.teams_with_desks(session, workspace_id):
        tid, kind, parent, desk_id, strategy, auto, sticky, vip = row
        teams[int(tid)] = (kind, parent)
        if desk_id is not None:
            desks[int(tid)] = DeskSettings(int(desk_id), strategy, bool(auto), bool(sticky), bool(vip))
    if session.info.get("scrm_teams_changed") is None:  # never cache what this unit is changing
        if len(_POOLS) > 10_000:
            _POOLS.clear()
        _POOLS[workspace_id] = (now, (teams, desks))
    return teams, desks


@event.listens_for(Session, "after_flush")
def _teams_changed(session: Session, _flush_context: Any) -> None:
    changed = {
        obj.workspace_id
        for group in (session.new, session.dirty, session.deleted)
        for obj in group
        if isinstance(obj, Team | TeamDesk)
    }
    if not changed:
        return
    session.info.setdefault("scrm_teams_changed", set()).update(changed)
    for ws in changed:
        _POOLS.pop(ws, None)

    def forget() -> None:
        for ws in changed:
            _POOLS.pop(ws, None)

    after_commit(session, forget)


@event.listens_for(Session, "after_transaction_end")
def _teams_unit_over(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop("scrm_teams_changed", None)


def pool_of(session: Session, workspace_id: int, team_id: int | None) -> Pool:
    """Who answers a conversation routed to `team_id`, and under which desk settings.

    A service team answers its own conversations. A department's or partner's conversation is
    answered by its parent service team, else by every service team of the workspace; the
    settings are the answering team's, but the department's own desk may hold its
    conversations back from auto-assignment (auto_assign off)."""
    teams, desks = _teams_view(session, workspace_id)
    kind, parent = teams.get(team_id, ("", None)) if team_id is not None else ("", None)
    if kind == "service" and team_id is not None:
        ids = [team_id]
    elif parent is not None and parent in teams and teams[parent][0] == "service":
        ids = [parent]
    else:
        ids = sorted(tid for tid, (kind, _parent) in teams.items() if kind == "service")
    own = desks.get(team_id) if team_id is not None else None
    answering = desks.get(ids[0], DeskSettings()) if ids else DeskSettings()
    return Pool(ids, answering, held=(own is not None and not own.auto_assign) or not answering.auto_assign)


def pool_team_ids(session: Session, workspace_id: int, team_id: int | None) -> list[int]:
    """Teams whose agents answer a conversation routed to `team_id`."""
    return pool_of(session, workspace_id, team_id).team_ids


def candidates(
    session: Session,
    workspace_id: int,
    team_ids: Sequence[int],
    *,
    contact_id: int = 0,
    conv_id: int = 0,
    with_skills: bool = True,
    with_load: bool = True,
) -> tuple[list[Candidate], int | None, int | None]:
    """Online, active members of the teams with their current open load, the agent who last
    served the contact on another conversation, and the round-robin cursor of the first team
    (one query; columns only). Without `with_skills` the candidates' skills are left empty (not
    fetched); without `with_load` every load reads 0 (not counted)."""
    if not team_ids:
        return [], None, None
    return repo.candidates(
        session,
        workspace_id,
        team_ids,
        contact_id=contact_id,
        conv_id=conv_id,
        with_skills=with_skills,
        with_load=with_load,
    )


def _contact_is_vip(session: Session, workspace_id: int, contact_id: int) -> bool:
    loaded = session.identity_map.get(session.identity_key(Contact, (workspace_id, contact_id)))
    if isinstance(loaded, Contact):
        return is_vip(loaded)
    fields = repo.contact_vip_fields(session, workspace_id, contact_id)
    return fields is not None and vip_fields(*fields)


def _member_locks(session: Session) -> dict[int, SessionTransaction]:
    """The members whose rows this transaction has locked (or updated), each with the
    (sub)transaction that took the lock: rolling back a savepoint releases the locks taken in
    it (see _locks_released)."""
    txn = session.get_transaction()
    entry = session.info.get("scrm_member_locks")
    held: dict[int, SessionTransaction] = entry[1] if entry is not None and entry[0] is txn else {}
    session.info["scrm_member_locks"] = (txn, held)
    return held


def _hold(session: Session, member_id: int) -> None:
    txn = session.get_nested_transaction() or session.get_transaction()
    if txn is not None:
        _member_locks(session).setdefault(member_id, txn)


@event.listens_for(Session, "after_soft_rollback")
def _locks_released(session: Session, previous: SessionTransaction) -> None:
    entry = session.info.get("scrm_member_locks")
    if entry is None or not previous.nested:
        return
    for member, txn in list(entry[1].items()):
        if undone_by(txn, previous):
            del entry[1][member]


def _lock_member(session: Session, workspace_id: int, member_id: int) -> bool:
    """Lock the member's row until the end of the transaction. Waits only while the transaction
    holds no other member lock, so member locks never form a cycle; otherwise a member locked
    by someone else is skipped (False)."""
    held = _member_locks(session)
    if member_id in held:
        return True
    if not repo.lock_member(session, workspace_id, member_id, skip_locked=bool(held)):
        return False
    _hold(session, member_id)
    return True


def _take(
    session: Session, conv: Conversation, pool: Pool, settings: DeskSettings, member_id: int, reason: str
) -> bool:
    """Lock the member (PostgreSQL), then take the conversation if they still have room; record
    it (timeline, round-robin cursor, event). False if the take was refused."""
    ws = conv.workspace_id
    postgres = session.get_bind().dialect.name == "postgresql"
    # PostgreSQL: serialise takers per member; the count in _TAKE then runs after the lock is
    # granted. (SQLite: this write transaction began IMMEDIATE and holds the one write lock.)
    if postgres and not _lock_member(session, ws, member_id):
        return False
    now = utcnow()
    move = settings.strategy == "round_robin" and reason == "round_robin"
    if postgres:  # one round trip: take, timeline row and cursor together
        in_statement = move and settings.id is not None
        taken = repo.take_recorded(
            session,
            ws,
            conv.id,
            member_id,
            now,
            activity_id=new_id(),
            data=_activity_data(member_id, reason),
            cursor_team=pool.team_ids[0] if in_statement else None,
        )
    else:
        in_statement = False
        taken = repo.take(session, ws, conv.id, member_id, now)
    if not taken:
        return False
    # The row was written by Core: tell the ORM object, without marking it dirty or reloading.
    set_committed_value(conv, "assignee_id", member_id)
    set_committed_value(conv, "updated_at", now)
    if move:
        _move_cursor(session, ws, pool.team_ids[0], settings, member_id, now, written=in_statement)
    _assigned(session, conv, member_id, reason, recorded=postgres)
    return True


def _move_cursor(
    session: Session,
    workspace_id: int,
    team_id: int,
    settings: DeskSettings,
    member_id: int,
    now: dt.datetime,
    *,
    written: bool = False,
) -> None:
    """Round-robin: remember who got the last conversation of the team (`written`: the take's
    statement already did)."""
    if settings.id is None:
        get_or_create_desk(session, workspace_id, team_id).last_member_id = member_id
        return
    if not written:
        repo.move_cursor(session, workspace_id, team_id, member_id, now)
    loaded = session.identity_map.get(session.identity_key(TeamDesk, (workspace_id, settings.id)))
    if loaded is not None:
        set_committed_value(loaded, "last_member_id", member_id)
        set_committed_value(loaded, "updated_at", now)


# -- the decision --------------------------------------------------------------------------------
def order_candidates(
    pool: list[Candidate],
    *,
    strategy: str,
    last_member_id: int | None,
    skills: frozenset[str],
    vip: bool,
    vip_to_senior: bool,
    sticky_id: int | None,
) -> list[tuple[Candidate, str]]:
    """Candidates in the order to try them, each with the reason it would be chosen."""
    fit = [c for c in pool if skills <= c.skills and c.load < c.capacity]
    if not fit:
        return []
    if strategy == "least_load":
        fit.sort(key=lambda c: (c.load / max(c.capacity, 1), c.load, c.member_id))
    else:
        # fit is sorted by member id: rotate so the member after the last one comes first
        cut = (
            0
            if last_member_id is None
            else next((i for i, c in enumerate(fit) if c.member_id > last_member_id), 0)
        )
        fit = fit[cut:] + fit[:cut]
    ordered: list[tuple[Candidate, str]] = []
    if sticky_id is not None:
        ordered += [(c, "sticky") for c in fit if c.member_id == sticky_id]
    if vip and vip_to_senior:
        ordered += [(c, "vip_senior") for c in fit if c.is_senior and c.member_id != sticky_id]
    seen = {c.member_id for c, _ in ordered}
    ordered += [(c, strategy) for c in fit if c.member_id not in seen]
    return ordered


def assign(
    session: Session,
    conv: Conversation,
    *,
    skills: Sequence[str] = (),
    contact: Contact | None = None,
    exclude: Sequence[int] = (),
) -> int | None:
    """Give an unassigned conversation to an agent who has every skill it requires
    (`conv.required_skills`, plus `skills` for this decision only); returns the member id, or
    None (it waits in the queue)."""
    return _assign(session, conv, skills=skills, contact=contact, exclude=exclude, full=None)


_NO_SKILLS: frozenset[str] = frozenset()
_FullKey = tuple[tuple[int, ...], frozenset[str]]


def _needed(conv: Conversation, skills: Sequence[str] = ()) -> frozenset[str]:
    required = conv.required_skills
    if not required and not skills:
        return _NO_SKILLS
    return frozenset(required or ()) | frozenset(skills)


def _assign(
    session: Session,
    conv: Conversation,
    *,
    skills: Sequence[str],
    contact: Contact | None,
    exclude: Sequence[int],
    full: set[_FullKey] | None,
) -> int | None:
    """`full`: (pool, skills) already found without a fitting agent with room in this unit of
    work; one found so is added (loads only grow within one transaction, so the next
    conversation of that pool needing those skills is queued without asking the database
    again; a pool full for no skills is full for any)."""
    if conv.assignee_id is not None or conv.status == "resolved":
        return conv.assignee_id
    session.flush()  # the statements below run on the connection: no autoflush
    ws = conv.workspace_id
    pool = pool_of(session, ws, conv.team_id)
    if not pool.team_ids or pool.held:
        return None
    key = tuple(pool.team_ids)
    need = _needed(conv, skills)
    if full is not None and ((key, _NO_SKILLS) in full or (key, need) in full):
        return None
    settings = pool.desk
    # Round robin needs no loads to pick: the take below checks capacity atomically. So try the
    # rotation's first pick without counting anyone's load (the count is most of a decision's
    # cost), and count only if that pick was full, or the pool was busy a moment ago.
    busy_key = (ws, key)
    guess = settings.strategy == "round_robin" and _monotonic() - _BUSY_POOLS.get(busy_key, -1e9) > (
        BUSY_POOL_SECONDS
    )
    if guess and not need and not exclude and (contact is not None or not settings.vip_to_senior):
        # The common case (a new conversation from the pipeline): the pick is one SQL row.
        decided, assignee = _pick_and_take(session, conv, pool, settings, contact)
        if decided:
            return assignee
        guess = False  # the pick was full or went away: count loads
    order: list[tuple[Candidate, str]] = []
    for with_load in (False, True) if guess else (True,):
        found, last_agent, cursor = candidates(
            session,
            ws,
            pool.team_ids,
            contact_id=conv.contact_id,
            conv_id=conv.id,
            with_skills=bool(need),
            with_load=with_load,
        )
        if exclude:
            found = [c for c in found if c.member_id not in exclude]
        vip = False
        if settings.vip_to_senior and any(c.is_senior for c in found):
            vip = is_vip(contact) if contact is not None else _contact_is_vip(session, ws, conv.contact_id)
        order = order_candidates(
            found,
            strategy=settings.strategy,
            last_member_id=cursor,
            skills=need,
            vip=vip,
            vip_to_senior=settings.vip_to_senior,
            sticky_id=last_agent if settings.sticky else None,
        )
        for cand, reason in order if with_load else order[:1]:
            if not _take(session, conv, pool, settings, cand.member_id, reason):
                if _taken_elsewhere(session, conv):
                    return conv.assignee_id
                continue  # this member filled up or went away meanwhile: try the next one
            return cand.member_id
        if not with_load and order:
            _busy(busy_key)
    if full is not None and not exclude and not order:
        full.add((key, need))
    return None


def _pick_and_take(
    session: Session, conv: Conversation, pool: Pool, settings: DeskSettings, contact: Contact | None
) -> tuple[bool, int | None]:
    """Round robin's first pick (SQL, no loads counted; on PostgreSQL the pick also locks the
    member), then the conditional take. Returns (decided, assignee): decided with the member
    it went to, the one who took it meanwhile, or None (closed meanwhile, or nobody online);
    not decided when the pick was refused (full, or gone): then the caller counts loads."""
    ws = conv.workspace_id
    vip = settings.vip_to_senior and contact is not None and is_vip(contact)
    lock = ""
    if session.get_bind().dialect.name == "postgresql":
        lock = "skip" if _member_locks(session) else "wait"
    row = repo.pick(
        session,
        ws,
        pool.team_ids,
        contact_id=conv.contact_id,
        conv_id=conv.id,
        sticky=settings.sticky,
        vip=vip,
        lock=lock,
    )
    if row is None:
        # Nobody online. (PostgreSQL: or every member locked by others, or changed while this
        # waited: let the caller look again.)
        return (not lock), None
    member, senior, sticky_id = row
    if lock:
        _hold(session, member)
    reason = "sticky" if member == sticky_id else "vip_senior" if vip and senior else "round_robin"
    if not _take(session, conv, pool, settings, member, reason):
        if _taken_elsewhere(session, conv):
            return True, conv.assignee_id
        _busy((ws, tuple(pool.team_ids)))
        return False, None
    return True, member


def _taken_elsewhere(session: Session, conv: Conversation) -> bool:
    """After a refused take: was the conversation assigned (or closed) by someone else?"""
    assignee, status = repo.conversation_state(session, conv.workspace_id, conv.id)
    if assignee is None and status != "resolved":
        return False
    set_committed_value(conv, "assignee_id", assignee)
    return True


def _busy(busy_key: tuple[int, tuple[int, ...]]) -> None:
    if len(_BUSY_POOLS) > 10_000:
        _BUSY_POOLS.clear()
    _BUSY_POOLS[busy_key] = _monotonic()


def _activity_data(member_id: int | None, reason: str) -> dict[str, Any]:
    return {"assignee_id": str(member_id) if member_id else None, "reason": reason}


def _assigned(
    session: Session, conv: Conversation, member_id: int | None, reason: str, *, recorded: bool = False
) -> None:
    """The timeline row (unless `recorded` by the take's statement) and the event."""
    if not recorded:
        # Everything earlier in the unit of work was flushed before the decision (timeline order).
        conversation_repository.insert_activity(
            session, conv.workspace_id, conv.id, "assigned", _activity_data(member_id, reason)
        )
    events.emit(
        session,
        conv.workspace_id,
        "conversation.assigned",
        {
            "conversation_id": str(conv.id),
            "assignee_id": str(member_id) if member_id else None,
            "reason": reason,
        },
    )


def unassign(session: Session, conv: Conversation, reason: str) -> None:
    if conv.assignee_id is None:
        return
    conv.assignee_id = None
    session.flush()
    _assigned(session, conv, None, reason)


def reassign(session: Session, conv: Conversation, reason: str = "reassigned") -> int | None:
    """Take a conversation from its agent and give it to another one (or the queue)."""
    previous = conv.assignee_id
    unassign(session, conv, reason)
    return assign(session, conv, exclude=[previous] if previous else [])


def reassign_from_member(session: Session, workspace_id: int, member_id: int, limit: int = 500) -> int:
    """An agent went away: their open conversations go back through assignment."""
    # Locked first (FOR UPDATE on PostgreSQL), before any member lock: a worker busy with one of
    # them finishes first, and is never left waiting for a member this transaction holds.
    convs = repo.open_of_member_for_update(session, workspace_id, member_id, limit)
    for conv in convs:
        reassign(session, conv, reason="agent_away")
    return len(convs)


def require_skills(
    session: Session,
    conv: Conversation,
    skills: Sequence[str],
    *,
    replace: bool = False,
    by: str | None = None,
    actor_id: int | None = None,
) -> list[str]:
    """Record the skills an agent needs to be given this conversation (added to those already
    required, or with `replace` instead of them); returns the requirement now. The current
    assignee keeps the conversation: the requirement applies from the next assignment on."""
    clean = clean_skills(skills)
    current = list(conv.required_skills or [])
    new = sorted(set(clean) if replace else set(current) | set(clean))
    if new != sorted(current):
        conv.required_skills = new
        session.flush()
        data: dict[str, Any] = {"skills": new}
        if by:
            data["by"] = by
        session.add(
            ConversationActivity(
                workspace_id=conv.workspace_id,
                conversation_id=conv.id,
                kind="skills_required",
                actor_id=actor_id,
                data=data,
            )
        )
        session.flush()
    return new


# Why a member named by a rule could not take the conversation.
MEMBER_REFUSALS = ("no_such_member", "inactive", "not_online", "at_capacity", "missing_skills", "locked")


def assign_member(
    session: Session, conv: Conversation, member_id: int, *, reason: str, skills: Sequence[str] = ()
) -> tuple[int | None, str | None]:
    """Give the conversation to one named member (a rule's `assign {member}`), taking it from
    its current assignee, if that member can take work now: active, online, under capacity
    and with every skill required (`conv.required_skills` and `skills`). Returns (member, None),
    or (None, why not: one of MEMBER_REFUSALS, or "resolved") and changes nothing.

    Fair under concurrency like the automatic take: on PostgreSQL the member's row is locked
    first and the load is counted after the lock was granted; SQLite holds the write lock."""
    if conv.status == "resolved":
        return None, "resolved"
    if conv.assignee_id == member_id:
        return member_id, None
    session.flush()
    ws = conv.workspace_id
    locked = session.get_bind().dialect.name != "postgresql" or _lock_member(session, ws, member_id)
    state = repo.member_state(session, ws, member_id)
    refusal: str | None = None
    if state is None:
        refusal = "no_such_member"
    elif not locked:
        refusal = "locked"  # another worker is assigning to them while this one holds a member
    elif not state.is_active:
        refusal = "inactive"
    elif state.availability != "online":
        refusal = "not_online"
    elif state.load >= state.capacity:
        refusal = "at_capacity"
    elif not _needed(conv, skills) <= state.skills:
        refusal = "missing_skills"
    if refusal is not None:
        return None, refusal
    conv.assignee_id = member_id
    session.flush()
    _assigned(session, conv, member_id, reason)
    return member_id, None


def assign_by_rule(
    session: Session,
    conv: Conversation,
    *,
    reason: str,
    member_id: int | None = None,
    skills: Sequence[str] = (),
    contact: Contact | None = None,
) -> dict[str, Any]:
    """The rule action `assign {member?, skills?}`: the skills are recorded on the conversation
    (every later assignment honours them); a named member gets it if they can take work now
    (see assign_member), else, or without a member, an unassigned conversation is assigned
    automatically to someone with the skills, or waits in the queue. A conversation that
    already has an agent keeps them unless the named member takes it. Returns what happened
    (for the rule's audit record)."""
    ws = conv.workspace_id
    out: dict[str, Any] = {}
    if conv.status == "resolved":
        return {"assignee_id": None, "skipped": "resolved"}
    # Conversation before member, as everywhere (a queue drain holds the conversations it
    # locked and may wait for a member): lock it now, before any member lock below.
    session.flush()
    if session.get_bind().dialect.name == "postgresql" and not repo.lock_conversation(
        session, ws, conv.id, skip_locked=bool(_member_locks(session))
    ):
        return {"assignee_id": str(conv.assignee_id) if conv.assignee_id else None, "skipped": "locked"}
    if skills:
        out["required_skills"] = require_skills(session, conv, skills, by=reason)
    got: int | None = conv.assignee_id
    if member_id is not None:
        out["member"] = str(member_id)
        taken, refusal = assign_member(session, conv, member_id, reason=reason)
        if taken is not None:
            got = taken
        else:
            out["member_refused"] = refusal
    if conv.assignee_id is None and conv.status == "open":
        got = assign(session, conv, contact=contact)
        if got is None:
            out["queued"] = queue_reasons(session, ws, [conv])[conv.id]
    out["assignee_id"] = str(got) if got else None
    return out


def auto_assign(session: Session, conv: Conversation, reason: str = "manual") -> int | None:
    """Run assignment again on request (the API's auto-assign): an unassigned conversation is
    assigned as the pipeline would; an assigned one goes to someone else, or to the queue."""
    if conv.status != "open":
        raise Invalid("only open conversations are assigned", field="status")
    if conv.assignee_id is not None:
        return reassign(session, conv, reason=reason)
    return assign(session, conv)


# Why a conversation waits in the unassigned queue (`queue_reasons`), most specific first.
QUEUE_REASONS = {
    "auto_assign_off": "auto-assignment is off for this team",
    "no_team": "no service team answers it",
    "no_agent_with_skills": "no member of the answering team has the required skills",
    "no_skilled_agent_online": "nobody with the required skills is online",
    "nobody_online": "nobody in the answering team is online",
    "agents_at_capacity": "every online agent who could take it is at capacity",
    "waiting": "an agent has room: the next queue round (within 30 s) assigns it",
}


def queue_reasons(session: Session, workspace_id: int, convs: Sequence[Conversation]) -> dict[int, str]:
    """Why each of these unassigned conversations waits (a key of QUEUE_REASONS): one query per
    distinct answering pool and set of required skills."""
    out: dict[int, str] = {}
    seen: dict[tuple[tuple[int, ...], bool, frozenset[str]], str] = {}
    for conv in convs:
        pool = pool_of(session, workspace_id, conv.team_id)
        need = _needed(conv)
        key = (tuple(pool.team_ids), pool.held, need)
        if key not in seen:
            seen[key] = _why_waiting(session, workspace_id, pool, need)
        out[conv.id] = seen[key]
    return out


def _why_waiting(session: Session, workspace_id: int, pool: Pool, need: frozenset[str]) -> str:
    if pool.held:
        return "auto_assign_off"
    if not pool.team_ids:
        return "no_team"
    members = [m for m in repo.pool_member_states(session, workspace_id, pool.team_ids) if m.is_active]
    skilled = [m for m in members if need <= m.skills]
    online = [m for m in skilled if m.availability == "online"]
    if need and not skilled:
        return "no_agent_with_skills"
    if not online:
        return (
            "no_skilled_agent_online"
            if need and any(m.availability == "online" for m in members)
            else ("nobody_online")
        )
    if all(m.load >= m.capacity for m in online):
        return "agents_at_capacity"
    return "waiting"


def unassigned_queue(
    session: Session, workspace_id: int, team_id: int | None = None, limit: int = 100, *, lock: bool = False
) -> list[Conversation]:
    """Open, unassigned conversations, oldest first. `lock` (PostgreSQL): lock them, skipping
    those another transaction holds (a worker is processing a message of theirs right now)."""
    return repo.unassigned(session, workspace_id, team_id, limit, lock=lock)


# A drain looks at most this many waiting conversations that it cannot assign (held, needing a
# skill nobody online has, their pool full) before it stops: a long tail of those at the head
# of the queue must not keep the conversations behind them waiting.
DRAIN_MAX_PASSED = 2000


def drain_queue(session: Session, workspace_id: int, limit: int = 200) -> int:
    """Assign up to `limit` waiting conversations, oldest first, while agents have room, each
    to an agent with the skills it requires.

    Runs every 30 s and whenever an agent comes online (or gets more capacity or skills),
    typically while the queue is long because everybody is busy: with nobody online under
    capacity it returns at once, and a pool (for a set of skills) found without room is not
    asked again for the rest of the queue. Conversations it cannot assign are passed over,
    and the next page of the queue is read after them."""
    if not repo.anyone_with_room(session, workspace_id):
        return 0
    assigned = 0
    full: set[_FullKey] = set()
    passed: list[int] = []
    while assigned < limit and len(passed) < DRAIN_MAX_PASSED:
        size = min(limit - assigned, DRAIN_MAX_PASSED - len(passed))
        # The queue is locked up front (skipping conversations a worker holds), so taking one
        # below never waits for a transaction that may itself wait for a member this one holds.
        page = repo.unassigned(session, workspace_id, None, size, lock=True, exclude=passed)
        for conv in page:
            if _assign(session, conv, skills=(), contact=None, exclude=(), full=full) is not None:
                assigned += 1
            else:
                passed.append(conv.id)
        if len(page) < size or not repo.anyone_with_room(session, workspace_id):
            break  # the end of the queue, or nobody has room left for the rest of it
    return assigned


def set_availability(session: Session, workspace_id: int, member_id: int, availability: str) -> int:
    """Set an agent's availability; going away or offline hands their open work on."""
    if availability not in ("online", "away", "offline"):
        raise Invalid("availability must be online, away or offline", field="availability")
    member = session.get(Member, (workspace_id, member_id))
    if member is None:
        raise NotFound("no such member")
    member.availability = availability
    session.flush()
    _hold(session, member_id)  # the UPDATE holds the row until the commit
    if availability == "online":
        return drain_queue(session, workspace_id)
    return reassign_from_member(session, workspace_id, member_id)


def member_settings_changed(
    session: Session, workspace_id: int, member: Member, changes: dict[str, Any]
) -> int:
    """After a member's capacity, skills or seniority changed (`changes` as
    workspace.service.update_member reports them): an online member with more room or new
    skills may take waiting conversations now. Returns how many were assigned. (A lower
    capacity takes nothing back: the agent just gets no more until under it.)"""
    if not changes:
        return 0
    _hold(session, member.id)  # the UPDATE holds the member's row until the commit
    if member.availability != "online" or not member.is_active:
        return 0
    if not {"capacity", "skills", "is_senior"} & changes.keys():
        return 0
    return drain_queue(session, workspace_id)


def configure_desk(
    session: Session,
    workspace_id: int,
    team_id: int,
    *,
    strategy: str | None = None,
    auto_assign: bool | None = None,
    sticky: bool | None = None,
    vip_to_senior: bool | None = None,
    notify_url: str | None = None,
) -> TeamDesk:
    row = get_or_create_desk(session, workspace_id, team_id)
    if strategy is not None:
        if strategy not in STRATEGIES:
            raise Invalid(f"strategy must be one of {', '.join(STRATEGIES)}", field="strategy")
        row.strategy = strategy
    if auto_assign is not None:
        row.auto_assign = auto_assign
    if sticky is not None:
        row.sticky = sticky
    if vip_to_senior is not None:
        row.vip_to_senior = vip_to_senior
    if notify_url is not None:
        if notify_url and not notify_url.startswith(("http://", "https://")):
            raise Invalid("notify_url must be an http(s) URL", field="notify_url")
        row.notify_url = notify_url
    return row
