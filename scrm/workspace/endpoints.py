from __future__ import annotations

from fastapi import APIRouter, Request

from scrm.errors import Invalid
from scrm.models import ChannelAccount
from scrm.workspace import service
from scrm.workspace.auth import AdminPrincipal, CurrentPrincipal, get_db
from scrm.workspace.schemas import (
    ChannelAccountIn,
    ChannelAccountOut,
    ChannelAccountPatch,
    MemberOut,
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


@router.get("/members", response_model=list[MemberOut])
def list_members(request: Request, principal: CurrentPrincipal) -> list[MemberOut]:
    with get_db(request).transaction(readonly=True) as session:
        teams = {t.id: t.key for t in service.list_teams(session, principal.workspace_id)}
        out = []
        for m in service.list_members(session, principal.workspace_id):
            user = service.get_user(session, m.user_id)
            out.append(
                MemberOut(
                    id=str(m.id),
                    name=m.display_name,
                    email=user.email,
                    role=m.role,
                    availability=m.availability,
                    capacity=m.capacity,
                    teams=[
                        teams[t]
                        for t in service.member_team_ids(session, principal.workspace_id, m.id)
                        if t in teams
                    ],
                )
            )
        return out


@router.put("/me/availability")
def set_availability(request: Request, principal: CurrentPrincipal, body: dict[str, str]) -> dict[str, str]:
    value = body.get("availability")
    if not isinstance(value, str):
        raise Invalid("availability is required", field="availability")
    with get_db(request).transaction() as session:
        member = service.set_availability(session, principal, value)
        return {"availability": member.availability}
