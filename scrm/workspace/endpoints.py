from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from scrm.conversation import assignment
from scrm.models import ChannelAccount, Member
from scrm.workspace import service
from scrm.workspace.auth import AdminPrincipal, CurrentPrincipal, SupervisorPrincipal, get_db
from scrm.workspace.schemas import (
    AvailabilityIn,
    ChannelAccountIn,
    ChannelAccountOut,
    ChannelAccountPatch,
    MemberOut,
    MemberPatch,
    TeamOut,
)

router = APIRouter(tags=["workspace"])


def channel_out(a: ChannelAccount) -> ChannelAccountOut:
    return ChannelAccountOut(
        id=str(a.id),
        kind=a.kind,
        name=a.name,
        external_id=a.external_id,
        status=a.status,
        inbound_url=service.inbound_url(a),
        config=dict(a.config),
        secrets=service.masked_secrets(a),
    )


@router.get("/me")
def me(request: Request, principal: CurrentPrincipal) -> dict[str, object]:
    with get_db(request).transaction(readonly=True) as session:
        ws = service.get_workspace_by_id(session, principal.workspace_id)
        return {
            "member_id": str(principal.member_id),
            "name": principal.name,
            "role": principal.role,
            "workspace": {"id": str(ws.id), "slug": ws.slug, "name": ws.name},
        }


@router.get("/channels", response_model=list[ChannelAccountOut])
def list_channels(request: Request, principal: CurrentPrincipal) -> list[ChannelAccountOut]:
    with get_db(request).transaction(readonly=True) as session:
        return [channel_out(a) for a in service.list_channel_accounts(session, principal.workspace_id)]


@router.post(
    "/channels", response_model=ChannelAccountOut, status_code=201, summary="Connect a channel account"
)
def create_channel(request: Request, principal: AdminPrincipal, body: ChannelAccountIn) -> ChannelAccountOut:
    with get_db(request).transaction() as session:
        account = service.create_channel_account(
            session,
            principal.workspace_id,
            body.kind,
            body.name,
            config=body.config,
            secrets=body.secrets,
            external_id=body.external_id,
            actor_id=principal.member_id,
        )
        return channel_out(account)


@router.patch(
    "/channels/{channel_id}",
    response_model=ChannelAccountOut,
    summary="Change a channel account's name, config or secrets (admins; a new EncodingAESKey rotates)",
)
def update_channel(
    request: Request, principal: AdminPrincipal, channel_id: int, body: ChannelAccountPatch
) -> ChannelAccountOut:
    with get_db(request).transaction() as session:
        account = service.update_channel_account(
            session,
            principal.workspace_id,
            channel_id,
            name=body.name,
            config=body.config,
            secrets=body.secrets,
            actor_id=principal.member_id,
        )
        return channel_out(account)


@router.get("/channels/{channel_id}", response_model=ChannelAccountOut)
def get_channel(request: Request, principal: CurrentPrincipal, channel_id: int) -> ChannelAccountOut:
    with get_db(request).transaction(readonly=True) as session:
        return channel_out(service.get_channel_account(session, principal.workspace_id, channel_id))


@router.get("/teams", response_model=list[TeamOut])
def list_teams(request: Request, principal: CurrentPrincipal) -> list[TeamOut]:
    with get_db(request).transaction(readonly=True) as session:
        return [
            TeamOut(id=str(t.id), key=t.key, name=t.name, kind=t.kind)
            for t in service.list_teams(session, principal.workspace_id)
        ]


def member_out(session: Session, workspace_id: int, m: Member, teams: dict[int, str]) -> MemberOut:
    user = service.get_user(session, m.user_id)
    return MemberOut(
        id=str(m.id),
        name=m.display_name,
        email=user.email,
        role=m.role,
        availability=m.availability,
        capacity=m.capacity,
        skills=list(m.skills or []),
        is_senior=m.is_senior,
        teams=[teams[t] for t in service.member_team_ids(session, workspace_id, m.id) if t in teams],
    )


@router.get("/members", response_model=list[MemberOut])
def list_members(request: Request, principal: CurrentPrincipal) -> list[MemberOut]:
    with get_db(request).transaction(readonly=True) as session:
        teams = {t.id: t.key for t in service.list_teams(session, principal.workspace_id)}
        return [
            member_out(session, principal.workspace_id, m, teams)
            for m in service.list_members(session, principal.workspace_id)
        ]


@router.patch(
    "/members/{member_id}",
    response_model=MemberOut,
    summary="Change a member's capacity, skills, seniority (admins, supervisors) or role (admins)",
)
def patch_member(
    request: Request, principal: SupervisorPrincipal, member_id: int, body: MemberPatch
) -> MemberOut:
    with get_db(request).transaction() as session:
        member, changes = service.update_member(
            session,
            principal,
            member_id,
            capacity=body.capacity,
            skills=body.skills,
            is_senior=body.is_senior,
            role=body.role,
            display_name=body.name,
        )
        assignment.member_settings_changed(session, principal.workspace_id, member, changes)
        teams = {t.id: t.key for t in service.list_teams(session, principal.workspace_id)}
        return member_out(session, principal.workspace_id, member, teams)


@router.put(
    "/me/availability", summary="Set my availability; going away or offline hands my open conversations on"
)
def set_availability(
    request: Request, principal: CurrentPrincipal, body: AvailabilityIn
) -> dict[str, object]:
    with get_db(request).transaction() as session:
        moved = assignment.set_availability(
            session, principal.workspace_id, principal.member_id, body.availability
        )
    return {"availability": body.availability, "conversations_moved": moved}
