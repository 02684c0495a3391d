from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from scrm.db import tx_pin
from scrm.models import (
    ApiToken,
    Brand,
    CannedReply,
    ChannelAccount,
    Member,
    Team,
    TeamMember,
    User,
    UserSession,
    Workspace,
)


def workspace_by_slug(session: Session, slug: str) -> Workspace | None:
    return session.execute(select(Workspace).where(Workspace.slug == slug)).scalar_one_or_none()


def workspace_by_id(session: Session, workspace_id: int) -> Workspace | None:
    return tx_pin(session, session.get(Workspace, workspace_id))


def all_workspaces(session: Session) -> Sequence[Workspace]:
    return session.execute(select(Workspace).order_by(Workspace.id)).scalars().all()


def user_by_email(session: Session, email: str) -> User | None:
    return session.execute(select(User).where(User.email == email.strip().lower())).scalar_one_or_none()


def user_by_id(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def brand_by_name(session: Session, workspace_id: int, name: str) -> Brand | None:
    return session.execute(
        select(Brand).where(Brand.workspace_id == workspace_id, Brand.name == name)
    ).scalar_one_or_none()


def brands(session: Session, workspace_id: int) -> Sequence[Brand]:
    return session.execute(select(Brand).where(Brand.workspace_id == workspace_id)).scalars().all()


def team_by_key(session: Session, workspace_id: int, key: str) -> Team | None:
    return session.execute(
        select(Team).where(Team.workspace_id == workspace_id, Team.key == key)
    ).scalar_one_or_none()


def team_by_id(session: Session, workspace_id: int, team_id: int) -> Team | None:
    return session.get(Team, (workspace_id, team_id))


def teams(session: Session, workspace_id: int) -> Sequence[Team]:
    return (
        session.execute(select(Team).where(Team.workspace_id == workspace_id).order_by(Team.id))
        .scalars()
        .all()
    )


def member_by_user(session: Session, workspace_id: int, user_id: int) -> Member | None:
    return session.execute(
        select(Member).where(Member.workspace_id == workspace_id, Member.user_id == user_id)
    ).scalar_one_or_none()


def member_by_id(session: Session, workspace_id: int, member_id: int) -> Member | None:
    return session.get(Member, (workspace_id, member_id))


def members(session: Session, workspace_id: int) -> Sequence[Member]:
    return (
        session.execute(select(Member).where(Member.workspace_id == workspace_id).order_by(Member.id))
        .scalars()
        .all()
    )


def memberships_of_user(session: Session, user_id: int) -> Sequence[Member]:
    return (
        session.execute(select(Member).where(Member.user_id == user_id).order_by(Member.id)).scalars().all()
    )


def team_ids_of_member(session: Session, workspace_id: int, member_id: int) -> list[int]:
    return list(
        session.execute(
            select(TeamMember.team_id).where(
                TeamMember.workspace_id == workspace_id, TeamMember.member_id == member_id
            )
        ).scalars()
    )


def team_membership(session: Session, workspace_id: int, team_id: int, member_id: int) -> TeamMember | None:
    return session.execute(
        select(TeamMember).where(
            TeamMember.workspace_id == workspace_id,
            TeamMember.team_id == team_id,
            TeamMember.member_id == member_id,
        )
    ).scalar_one_or_none()


def token_by_hash(session: Session, workspace_id: int, token_hash: str) -> ApiToken | None:
    return session.execute(
        select(ApiToken).where(ApiToken.workspace_id == workspace_id, ApiToken.token_hash == token_hash)
    ).scalar_one_or_none()


def channel_account(session: Session, workspace_id: int, account_id: int) -> ChannelAccount | None:
    return tx_pin(session, session.get(ChannelAccount, (workspace_id, account_id)))


def channel_account_any_workspace(session: Session, account_id: int) -> ChannelAccount | None:
    """Inbound URLs carry only the account id (unique across workspaces)."""
    return session.execute(select(ChannelAccount).where(ChannelAccount.id == account_id)).scalar_one_or_none()


def channel_accounts(
    session: Session, workspace_id: int, kind: str | None = None
) -> Sequence[ChannelAccount]:
    stmt = select(ChannelAccount).where(ChannelAccount.workspace_id == workspace_id)
    if kind:
        stmt = stmt.where(ChannelAccount.kind == kind)
    return session.execute(stmt.order_by(ChannelAccount.id)).scalars().all()


def channel_account_by_name(session: Session, workspace_id: int, name: str) -> ChannelAccount | None:
    return session.execute(
        select(ChannelAccount).where(ChannelAccount.workspace_id == workspace_id, ChannelAccount.name == name)
    ).scalar_one_or_none()


def canned_replies(session: Session, workspace_id: int) -> Sequence[CannedReply]:
    return (
        session.execute(
            select(CannedReply).where(CannedReply.workspace_id == workspace_id).order_by(CannedReply.key)
        )
        .scalars()
        .all()
    )


def canned_reply_by_key(session: Session, workspace_id: int, key: str) -> CannedReply | None:
    return session.execute(
        select(CannedReply).where(CannedReply.workspace_id == workspace_id, CannedReply.key == key)
    ).scalar_one_or_none()


def api_tokens(session: Session, workspace_id: int) -> Sequence[ApiToken]:
    return (
        session.execute(select(ApiToken).where(ApiToken.workspace_id == workspace_id).order_by(ApiToken.id))
        .scalars()
        .all()
    )


def users_by_ids(session: Session, ids: set[int]) -> dict[int, User]:
    if not ids:
        return {}
    return {u.id: u for u in session.execute(select(User).where(User.id.in_(ids))).scalars()}


def delete_user_session(session: Session, id_hash: str) -> None:
    """End a login session (by its hashed id); nothing happens if it has already gone."""
    session.execute(delete(UserSession).where(UserSession.id_hash == id_hash))
