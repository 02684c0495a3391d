"""Automatic assignment: who in the team takes a conversation.

Per team (TeamDesk): round-robin or least-load, agent capacity (Member.capacity counts the
agent's *open* conversations), skills, availability (only "online" agents get work), VIP fans
to senior agents first, sticky to the agent who last served the fan.

Fairness under concurrency: the chosen agent's member row is locked (FOR UPDATE on
PostgreSQL; SQLite writers are serialised by BEGIN IMMEDIATE), their load is counted again
under that lock, and the conversation is taken with a conditional UPDATE (only while it is
still unassigned). Two workers therefore never give one agent more than their capacity, and
never assign one conversation twice.

Conversations of a department or partner team (whose people work the *task*, see
scrm.casework) are answered by the front desk: the team's parent service team, or else every
service team of the workspace.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from scrm import events
from scrm.conversation import service as conversation_service
from scrm.errors import Invalid, NotFound
from scrm.kit.time import utcnow
from scrm.models import Contact, Conversation, Member, Team, TeamDesk, TeamMember

log = logging.getLogger(__name__)

STRATEGIES = ("round_robin", "least_load")
VIP_TIERS = frozenset({"vip", "gold", "platinum", "diamond", "金卡", "白金卡", "钻石卡"})


@dataclass(frozen=True)
class Candidate:
    member_id: int
    capacity: int
    skills: frozenset[str]
    is_senior: bool
    load: int


def is_vip(contact: Contact | None) -> bool:
    if contact is None:
        return False
    attrs = contact.attributes or {}
    if attrs.get("vip") in (True, "true", "1", 1, "yes"):
        return True
    tier = str(attrs.get("tier") or "").strip().lower()
    return tier in VIP_TIERS or any(str(t).lower() == "vip" for t in contact.tags or [])


# -- queries -------------------------------------------------------------------------------------
def desk(session: Session, workspace_id: int, team_id: int) -> TeamDesk | None:
    return session.execute(
        select(TeamDesk).where(TeamDesk.workspace_id == workspace_id, TeamDesk.team_id == team_id)
    ).scalar_one_or_none()


def get_or_create_desk(session: Session, workspace_id: int, team_id: int) -> TeamDesk:
    row = desk(session, workspace_id, team_id)
    if row is None:
        row = TeamDesk(workspace_id=workspace_id, team_id=team_id)
        session.add(row)
        session.flush()
    return row


def pool_team_ids(session: Session, workspace_id: int, team_id: int | None) -> list[int]:
    """Teams whose agents answer a conversation routed to `team_id`."""
    teams = {
        int(r[0]): (r[1], r[2])
        for r in session.execute(
            select(Team.id, Team.kind, Team.parent_id).where(Team.workspace_id == workspace_id)
        ).all()
    }
    team = teams.get(team_id) if team_id is not None else None
    if team is not None and team[0] == "service":
        return [team_id]  # type: ignore[list-item]
    if team is not None and team[1] in teams and teams[team[1]][0] == "service":
        return [int(team[1])]
    return sorted(tid for tid, (kind, _parent) in teams.items() if kind == "service")


def _loads(session: Session, workspace_id: int, member_ids: Sequence[int]) -> dict[int, int]:
    if not member_ids:
        return {}
    rows = session.execute(
        select(Conversation.assignee_id, func.count())
        .where(
            Conversation.workspace_id == workspace_id,
            Conversation.assignee_id.in_(member_ids),
            Conversation.status == "open",
        )
        .group_by(Conversation.assignee_id)
    ).all()
    return {int(m): int(n) for m, n in rows if m is not None}


def candidates(session: Session, workspace_id: int, team_ids: Sequence[int]) -> list[Candidate]:
    """Online, active members of the teams with their current load (columns only: this runs
    for every assignment decision)."""
    if not team_ids:
        return []
    rows = session.execute(
        select(Member.id, Member.capacity, Member.skills, Member.is_senior)
        .join(
            TeamMember,
            (TeamMember.workspace_id == Member.workspace_id) & (TeamMember.member_id == Member.id),
        )
        .where(
            Member.workspace_id == workspace_id,
            TeamMember.team_id.in_(team_ids),
            Member.is_active.is_(True),
            Member.availability == "online",
        )
    ).all()
    unique = {int(r[0]): r for r in rows}
    loads = _loads(session, workspace_id, list(unique))
    return [
        Candidate(mid, int(r[1]), frozenset(r[2] or []), bool(r[3]), loads.get(mid, 0))
        for mid, r in sorted(unique.items())
    ]


def last_agent_of(session: Session, workspace_id: int, contact_id: int, exclude_id: int) -> int | None:
    return session.execute(
        select(Conversation.assignee_id)
        .where(
            Conversation.workspace_id == workspace_id,
            Conversation.contact_id == contact_id,
            Conversation.id != exclude_id,
            Conversation.assignee_id.is_not(None),
        )
        .order_by(Conversation.last_message_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def _lock_and_count(session: Session, workspace_id: int, member_id: int) -> tuple[Member | None, int]:
    stmt = select(Member).where(Member.workspace_id == workspace_id, Member.id == member_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    member = session.execute(stmt).scalar_one_or_none()
    return member, _loads(session, workspace_id, [member_id]).get(member_id, 0)


def _take(session: Session, conv: Conversation, member_id: int) -> bool:
    result = session.execute(
        update(Conversation)
        .where(
            Conversation.workspace_id == conv.workspace_id,
            Conversation.id == conv.id,
            Conversation.assignee_id.is_(None),
        )
        .values(assignee_id=member_id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.expire(conv, ["assignee_id", "updated_at"])
    return True


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
    """Give an unassigned conversation to an agent; returns the member id, or None (queued)."""
    if conv.assignee_id is not None or conv.status == "resolved":
        return conv.assignee_id
    ws = conv.workspace_id
    team_ids = pool_team_ids(session, ws, conv.team_id)
    if not team_ids:
        return None
    primary = team_ids[0]
    desk_row = desk(session, ws, conv.team_id) if conv.team_id else None
    if desk_row is None:
        desk_row = desk(session, ws, primary)
    if desk_row is not None and not desk_row.auto_assign:
        return None
    strategy = desk_row.strategy if desk_row else "round_robin"
    pool = [c for c in candidates(session, ws, team_ids) if c.member_id not in exclude]
    if contact is None:
        contact = session.get(Contact, (ws, conv.contact_id))
    sticky_id = None
    if desk_row is None or desk_row.sticky:
        sticky_id = last_agent_of(session, ws, conv.contact_id, conv.id)
    order = order_candidates(
        pool,
        strategy=strategy,
        last_member_id=desk_row.last_member_id if desk_row else None,
        skills=frozenset(skills),
        vip=is_vip(contact),
        vip_to_senior=desk_row.vip_to_senior if desk_row else True,
        sticky_id=sticky_id,
    )
    for cand, reason in order:
        member, load = _lock_and_count(session, ws, cand.member_id)
        if member is None or member.availability != "online" or load >= member.capacity:
            continue
        if not _take(session, conv, member.id):
            return conv.assignee_id  # somebody else assigned it meanwhile
        if strategy == "round_robin" and reason == "round_robin":
            get_or_create_desk(session, ws, primary).last_member_id = member.id
        _assigned(session, conv, member.id, reason)
        return member.id
    return None


def _assigned(session: Session, conv: Conversation, member_id: int | None, reason: str) -> None:
    conversation_service.record_activity(
        session, conv, "assigned", None, assignee_id=str(member_id) if member_id else None, reason=reason
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
    convs = (
        session.execute(
            select(Conversation)
            .where(
                Conversation.workspace_id == workspace_id,
                Conversation.assignee_id == member_id,
                Conversation.status == "open",
            )
            .order_by(Conversation.last_inbound_at)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    for conv in convs:
        reassign(session, conv, reason="agent_away")
    return len(convs)


def unassigned_queue(
    session: Session, workspace_id: int, team_id: int | None = None, limit: int = 100
) -> list[Conversation]:
    stmt = select(Conversation).where(
        Conversation.workspace_id == workspace_id,
        Conversation.assignee_id.is_(None),
        Conversation.status == "open",
    )
    if team_id is not None:
        stmt = stmt.where(Conversation.team_id == team_id)
    return list(
        session.execute(stmt.order_by(Conversation.last_inbound_at, Conversation.id).limit(limit)).scalars()
    )


def drain_queue(session: Session, workspace_id: int, limit: int = 200) -> int:
    """Assign waiting conversations, oldest first, while agents have room."""
    assigned = 0
    for conv in unassigned_queue(session, workspace_id, limit=limit):
        if assign(session, conv) is not None:
            assigned += 1
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
    if availability == "online":
        return drain_queue(session, workspace_id)
    return reassign_from_member(session, workspace_id, member_id)


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
