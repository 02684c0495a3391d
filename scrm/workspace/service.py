"""Workspaces, users, members, teams, API tokens, sessions and channel accounts."""

from __future__ import annotations

import datetime as dt
import re
import secrets as pysecrets
from typing import Any

import orjson
from sqlalchemy.orm import Session

from scrm.channels import registry as channel_registry
from scrm.channels.base import InvalidAccount
from scrm.channels.registry import AccountView
from scrm.config import get_settings
from scrm.db import after_commit
from scrm.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from scrm.governance.service import audit
from scrm.kit import crypto
from scrm.kit.time import utcnow
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
from scrm.workspace import repository
from scrm.workspace.schemas import ROLES, Principal

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SESSION_TTL = dt.timedelta(days=7)
TEAM_KINDS = ("service", "department", "partner")


def _secret_box() -> crypto.SecretBox:
    return crypto.SecretBox(get_settings().secret_key.get_secret_value())


# -- workspaces ------------------------------------------------------------------------------
def create_workspace(session: Session, slug: str, name: str, timezone: str = "Asia/Shanghai") -> Workspace:
    if not SLUG_RE.match(slug):
        raise Invalid("slug must be 2-63 lowercase letters, digits or dashes", field="slug")
    if repository.workspace_by_slug(session, slug):
        raise Conflict(f"workspace {slug!r} exists")
    ws = Workspace(slug=slug, name=name, timezone=timezone, settings={})
    session.add(ws)
    session.flush()
    return ws


def get_workspace(session: Session, slug: str) -> Workspace:
    ws = repository.workspace_by_slug(session, slug)
    if ws is None:
        raise NotFound(f"no workspace {slug!r}")
    return ws


def get_workspace_by_id(session: Session, workspace_id: int) -> Workspace:
    ws = repository.workspace_by_id(session, workspace_id)
    if ws is None:
        raise NotFound("no such workspace")
    return ws


def create_brand(session: Session, workspace_id: int, name: str) -> Brand:
    existing = repository.brand_by_name(session, workspace_id, name)
    if existing:
        return existing
    brand = Brand(workspace_id=workspace_id, name=name)
    session.add(brand)
    session.flush()
    return brand


# -- users and members -----------------------------------------------------------------------
def create_user(session: Session, email: str, password: str, name: str = "") -> User:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise Invalid("not an email address", field="email")
    if len(password) < 8:
        raise Invalid("password must have at least 8 characters", field="password")
    if repository.user_by_email(session, email):
        raise Conflict(f"user {email} exists")
    user = User(email=email, name=name or email.split("@")[0], password_hash=crypto.hash_password(password))
    session.add(user)
    session.flush()
    return user


def get_user_by_email(session: Session, email: str) -> User:
    user = repository.user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user {email}")
    return user


# Skills: short labels matched exactly (after clean_skills) between what a conversation needs
# (Conversation.required_skills) and what an agent has (Member.skills). Conventions, see
# docs/routing.md: `lang:en`, `channel:weibo`, `product:baggage`; any other label works too.
MAX_SKILLS = 20
MAX_SKILL_LENGTH = 40
MAX_CAPACITY = 200
_SKILL_BAD = re.compile(r"[\x00-\x1f\x7f,，;；]")


def clean_skills(values: Any, field: str = "skills") -> list[str]:
    """A list of skills as stored: trimmed, lower case, inner spaces collapsed, duplicates
    dropped (first one kept). Refuses (Invalid, with the place) anything that is not a list of
    1-40 character strings without control characters, commas or semicolons, or more than 20."""
    if not isinstance(values, list | tuple):
        raise Invalid("skills must be a list of strings", field=field)
    out: list[str] = []
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise Invalid(f"{field}[{i}]: a skill is a string", field=field)
        skill = " ".join(value.split()).lower()
        if not skill:
            raise Invalid(f"{field}[{i}]: a skill cannot be blank", field=field)
        if len(skill) > MAX_SKILL_LENGTH:
            raise Invalid(f"{field}[{i}]: at most {MAX_SKILL_LENGTH} characters", field=field)
        if _SKILL_BAD.search(skill):
            raise Invalid(
                f"{field}[{i}]: no control characters, commas or semicolons in a skill", field=field
            )
        if skill not in out:
            out.append(skill)
    if len(out) > MAX_SKILLS:
        raise Invalid(f"at most {MAX_SKILLS} skills", field=field)
    return out


def _check_capacity(capacity: Any) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= MAX_CAPACITY:
        raise Invalid(f"capacity must be a whole number from 0 to {MAX_CAPACITY}", field="capacity")
    return capacity


def add_member(
    session: Session,
    workspace_id: int,
    user: User,
    role: str = "agent",
    *,
    display_name: str = "",
    capacity: int = 20,
    skills: list[str] | None = None,
    is_senior: bool = False,
) -> Member:
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
        raise Invalid("capacity must be a whole number, 0 or more", field="capacity")
    clean = clean_skills(skills or [])
    existing = repository.member_by_user(session, workspace_id, user.id)
    if existing:
        return existing
    member = Member(
        workspace_id=workspace_id,
        user_id=user.id,
        role=role,
        display_name=display_name or user.name,
        capacity=capacity,
        skills=clean,
        is_senior=is_senior,
    )
    session.add(member)
    session.flush()
    return member


def get_member(session: Session, workspace_id: int, member_id: int) -> Member:
    member = repository.member_by_id(session, workspace_id, member_id)
    if member is None:
        raise NotFound("no such member")
    return member


def list_members(session: Session, workspace_id: int) -> list[Member]:
    return list(repository.members(session, workspace_id))


def member_team_ids(session: Session, workspace_id: int, member_id: int) -> list[int]:
    return repository.team_ids_of_member(session, workspace_id, member_id)


def update_member(
    session: Session,
    principal: Principal,
    member_id: int,
    *,
    capacity: int | None = None,
    skills: list[str] | None = None,
    is_senior: bool | None = None,
    role: str | None = None,
    display_name: str | None = None,
) -> tuple[Member, dict[str, Any]]:
    """An admin or supervisor changes how a member takes work (capacity, skills, seniority) or,
    admins only, their role. Returns the member and what changed ({} if nothing did; audited).

    Availability is not set here: going away must hand work on, see
    scrm.conversation.assignment.set_availability."""
    if not principal.is_supervisor:
        raise Forbidden("only admins and supervisors change members")
    member = get_member(session, principal.workspace_id, member_id)
    changes: dict[str, Any] = {}
    if role is not None and role != member.role:
        if not principal.is_admin:
            raise Forbidden("only admins change roles")
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
        _keep_an_admin(session, member, role)
        changes["role"] = {"from": member.role, "to": role}
        member.role = role
    if capacity is not None and _check_capacity(capacity) != member.capacity:
        changes["capacity"] = {"from": member.capacity, "to": capacity}
        member.capacity = capacity
    if skills is not None:
        clean = clean_skills(skills)
        if clean != list(member.skills or []):
            changes["skills"] = {"from": list(member.skills or []), "to": clean}
            member.skills = clean
    if is_senior is not None:
        if not isinstance(is_senior, bool):
            raise Invalid("is_senior must be true or false", field="is_senior")
        if is_senior != member.is_senior:
            changes["is_senior"] = {"from": member.is_senior, "to": is_senior}
            member.is_senior = is_senior
    if display_name is not None:
        name = " ".join(display_name.split())
        if not name or len(name) > 200:
            raise Invalid("the name must have 1-200 characters", field="display_name")
        if name != member.display_name:
            changes["display_name"] = {"from": member.display_name, "to": name}
            member.display_name = name
    if changes:
        session.flush()
        audit(
            session,
            principal.workspace_id,
            "member.updated",
            actor_id=principal.member_id,
            target_type="member",
            target_id=member.id,
            data=changes,
        )
    return member, changes


def _keep_an_admin(session: Session, member: Member, new_role: str) -> None:
    """A workspace keeps at least one active admin: the last one cannot be demoted."""
    if member.role != "admin" or new_role == "admin":
        return
    others = [
        m
        for m in repository.members(session, member.workspace_id)
        if m.role == "admin" and m.is_active and m.id != member.id
    ]
    if not others:
        raise Conflict("the workspace's last admin cannot be given another role")


# -- teams -----------------------------------------------------------------------------------
def create_team(
    session: Session,
    workspace_id: int,
    key: str,
    name: str,
    kind: str = "service",
    parent_id: int | None = None,
) -> Team:
    if kind not in TEAM_KINDS:
        raise Invalid(f"team kind must be one of {', '.join(TEAM_KINDS)}", field="kind")
    existing = repository.team_by_key(session, workspace_id, key)
    if existing:
        return existing
    team = Team(workspace_id=workspace_id, key=key, name=name, kind=kind, parent_id=parent_id)
    session.add(team)
    session.flush()
    return team


def add_to_team(session: Session, workspace_id: int, team_id: int, member_id: int) -> None:
    if repository.team_membership(session, workspace_id, team_id, member_id) is None:
        session.add(TeamMember(workspace_id=workspace_id, team_id=team_id, member_id=member_id))
        session.flush()


def get_team(session: Session, workspace_id: int, team_id: int) -> Team:
    team = repository.team_by_id(session, workspace_id, team_id)
    if team is None:
        raise NotFound("no such team")
    return team


def get_team_by_key(session: Session, workspace_id: int, key: str) -> Team:
    team = repository.team_by_key(session, workspace_id, key)
    if team is None:
        raise NotFound(f"no team {key!r}")
    return team


def list_teams(session: Session, workspace_id: int) -> list[Team]:
    return list(repository.teams(session, workspace_id))


# -- canned replies ---------------------------------------------------------------------------
def upsert_canned_reply(
    session: Session, workspace_id: int, key: str, title: str, body: str, team_id: int | None = None
) -> CannedReply:
    row = repository.canned_reply_by_key(session, workspace_id, key)
    if row is None:
        row = CannedReply(workspace_id=workspace_id, key=key, title=title, body=body, team_id=team_id)
        session.add(row)
    else:
        row.title, row.body, row.team_id = title, body, team_id
    session.flush()
    return row


def list_canned_replies(session: Session, workspace_id: int) -> list[CannedReply]:
    return list(repository.canned_replies(session, workspace_id))


# -- API tokens ------------------------------------------------------------------------------
def create_api_token(
    session: Session, workspace_id: int, member_id: int, name: str = ""
) -> tuple[str, ApiToken]:
    """Returns the token text (shown once) and its row; only a hash is stored."""
    token = f"scrm_{workspace_id:x}_{pysecrets.token_urlsafe(32)}"
    row = ApiToken(
        workspace_id=workspace_id,
        member_id=member_id,
        name=name,
        token_hash=crypto.hash_token(token),
        prefix=token[:16],
    )
    session.add(row)
    session.flush()
    audit(
        session,
        workspace_id,
        "api_token.created",
        actor_label="cli",
        target_type="api_token",
        target_id=row.id,
    )
    return token, row


def authenticate_token(session: Session, token: str) -> Principal:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "scrm":
        raise Unauthorized("invalid API token")
    try:
        workspace_id = int(parts[1], 16)
    except ValueError:
        raise Unauthorized("invalid API token") from None
    row = repository.token_by_hash(session, workspace_id, crypto.hash_token(token))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("invalid API token")
    return _principal(session, workspace_id, row.member_id)


def _principal(session: Session, workspace_id: int, member_id: int) -> Principal:
    member = repository.member_by_id(session, workspace_id, member_id)
    if member is None or not member.is_active:
        raise Unauthorized("membership is not active")
    user = repository.user_by_id(session, member.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("user is not active")
    return Principal(workspace_id, member.id, user.id, member.role, member.display_name or user.name)


# -- web sessions ----------------------------------------------------------------------------
def login(session: Session, email: str, password: str) -> tuple[str, UserSession]:
    """Check the password and open a session in the user's first workspace."""
    user = repository.user_by_email(session, email)
    # Hash even when the user does not exist, so timing does not reveal which emails exist.
    if user is None:
        crypto.verify_password(_DUMMY_HASH, password)
        raise Unauthorized("wrong email or password")
    if not crypto.verify_password(user.password_hash, password) or not user.is_active:
        raise Unauthorized("wrong email or password")
    memberships = repository.memberships_of_user(session, user.id)
    if not memberships:
        raise Unauthorized("this user belongs to no workspace")
    sid = pysecrets.token_urlsafe(32)
    row = UserSession(
        id_hash=crypto.hash_token(sid),
        user_id=user.id,
        workspace_id=memberships[0].workspace_id,
        csrf_token=pysecrets.token_urlsafe(24),
        expires_at=utcnow() + SESSION_TTL,
    )
    session.add(row)
    session.flush()
    return sid, row


def session_principal(session: Session, sid: str) -> tuple[Principal, UserSession]:
    row = session.get(UserSession, crypto.hash_token(sid))
    if row is None or row.expires_at < utcnow():
        raise Unauthorized("session expired; log in again")
    member = repository.member_by_user(session, row.workspace_id, row.user_id)
    if member is None:
        raise Unauthorized("membership is not active")
    return _principal(session, row.workspace_id, member.id), row


def logout(session: Session, sid: str) -> None:
    repository.delete_user_session(session, crypto.hash_token(sid))


def set_locale(session: Session, user_id: int, locale: str) -> None:
    if locale not in ("zh-CN", "en"):
        raise Invalid("locale must be zh-CN or en", field="locale")
    user = repository.user_by_id(session, user_id)
    if user is None:
        raise NotFound("no such user")
    user.locale = locale


def get_user(session: Session, user_id: int) -> User:
    user = repository.user_by_id(session, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


_DUMMY_HASH = crypto.hash_password("timing-equaliser-not-a-password")


# -- channel accounts ------------------------------------------------------------------------
def _checked_settings(
    kind: str, external_id: str, config: dict[str, Any], secrets: dict[str, str]
) -> channel_registry.AccountSettings:
    """The channel's own check of an account's settings (formats, required secrets, a usable
    EncodingAESKey), as `Invalid` naming the field; the same for the CLI, API and admin page."""
    try:
        spec = channel_registry.get(kind)
    except KeyError:
        raise Invalid(f"unknown channel kind {kind!r}", field="kind") from None
    missing = [f for f in spec.secret_fields if not secrets.get(f)]
    if missing and spec.validate_account is None:  # a channel's own check names the field better
        raise Invalid(f"missing secret fields: {', '.join(missing)}", field="secrets")
    settings = channel_registry.AccountSettings(external_id=external_id, config=config, secrets=secrets)
    try:
        return channel_registry.validate_account(kind, settings)
    except InvalidAccount as exc:
        raise Invalid(exc.message, field=exc.field or "config") from None


def _check_not_connected(
    session: Session, workspace_id: int, kind: str, external_id: str, *, except_id: int | None = None
) -> None:
    if not external_id:
        return
    for other in repository.channel_accounts(session, workspace_id, kind):
        if other.id != except_id and external_id == other.external_id:
            raise Conflict(f"{external_id} is already connected as {other.name!r}")


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise Invalid("the account needs a name (1-200 characters)", field="name")
    return name


def create_channel_account(
    session: Session,
    workspace_id: int,
    kind: str,
    name: str,
    *,
    config: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    external_id: str = "",
    brand_id: int | None = None,
    actor_id: int | None = None,
) -> ChannelAccount:
    """Connect an account after the channel has checked its settings (Invalid / Conflict)."""
    name = _check_name(name)
    checked = _checked_settings(kind, external_id, dict(config or {}), dict(secrets or {}))
    if repository.channel_account_by_name(session, workspace_id, name):
        raise Conflict(f"a channel named {name!r} exists")
    _check_not_connected(session, workspace_id, kind, checked.external_id)
    account = ChannelAccount(
        workspace_id=workspace_id,
        brand_id=brand_id,
        kind=kind,
        name=name,
        external_id=checked.external_id,
        config=checked.config,
        secrets=_secret_box().encrypt(orjson.dumps(checked.secrets).decode()),
        state={},
    )
    session.add(account)
    session.flush()
    audit(
        session,
        workspace_id,
        "channel.created",
        actor_id=actor_id,
        target_type="channel_account",
        target_id=account.id,
        data={"kind": kind, "name": name},
    )
    return account


def update_channel_account(
    session: Session,
    workspace_id: int,
    account_id: int,
    *,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    secrets: dict[str, str | None] | None = None,
    actor_id: int | None = None,
) -> ChannelAccount:
    """Change an account's name, config or secrets; only what is given changes.

    `config` and `secrets` are merged into what is stored: a key with None (or "") removes it.
    Setting a new ``encoding_aes_key`` (WeChat, WeCom) is a rotation: the current key becomes
    ``previous_encoding_aes_key`` unless that is given too, so pushes encrypted with either
    key verify while the platform switches over. The merged settings go through the channel's
    check like a new account's. The external id (AppID, uid, CorpID) cannot change.

    Processes cache an account for ``scrm.inbound.committer.ACCOUNT_TTL`` seconds: this one
    forgets it when the change commits; other API processes see it within that time.
    """
    account = get_channel_account(session, workspace_id, account_id)
    changed: list[str] = []
    if name is not None and name.strip() != account.name:
        new_name = _check_name(name)
        other = repository.channel_account_by_name(session, workspace_id, new_name)
        if other is not None and other.id != account.id:
            raise Conflict(f"a channel named {new_name!r} exists")
        account.name = new_name
        changed.append("name")
    new_config = dict(account.config)
    for key, value in (config or {}).items():
        if value is None:
            new_config.pop(key, None)
        else:
            new_config[key] = value
    current = account_secrets(account)
    new_secrets = dict(current)
    given = {k: (v if v is None else str(v)) for k, v in (secrets or {}).items()}
    for key, value in given.items():
        if value is None or not value.strip():
            new_secrets.pop(key, None)
        else:
            new_secrets[key] = value.strip()
    old_key = current.get("encoding_aes_key")
    new_key = new_secrets.get("encoding_aes_key")
    rotated = bool(old_key and new_key and new_key != old_key)
    if rotated and "previous_encoding_aes_key" not in given:
        new_secrets["previous_encoding_aes_key"] = old_key or ""
    checked = _checked_settings(account.kind, account.external_id, new_config, new_secrets)
    if checked.external_id != account.external_id:
        raise Invalid("the account's platform id (AppID, uid, CorpID) cannot change", field="external_id")
    if checked.config != account.config:
        account.config = checked.config
        changed.append("config")
    secrets_changed = sorted(
        k for k in set(current) | set(checked.secrets) if current.get(k) != checked.secrets.get(k)
    )
    if secrets_changed:
        account.secrets = _secret_box().encrypt(orjson.dumps(checked.secrets).decode())
        changed.append("secrets")
    if changed:
        session.flush()
        audit(
            session,
            workspace_id,
            "channel.updated",
            actor_id=actor_id,
            target_type="channel_account",
            target_id=account.id,
            # which secrets changed, never their values
            data={"changed": changed, "secrets": secrets_changed, "aes_key_rotated": rotated},
        )
        kind, row_id = account.kind, account.id
        after_commit(session, lambda: _forget_cached_account(kind, row_id))
    return account


def _forget_cached_account(kind: str, account_id: int) -> None:
    from scrm.inbound.committer import forget_account  # the inbound path imports this module

    forget_account(kind, account_id)


def get_channel_account(session: Session, workspace_id: int, account_id: int) -> ChannelAccount:
    account = repository.channel_account(session, workspace_id, account_id)
    if account is None:
        raise NotFound("no such channel account")
    return account


def find_channel_account_for_inbound(session: Session, account_id: int, kind: str) -> ChannelAccount:
    account = repository.channel_account_any_workspace(session, account_id)
    if account is None or account.kind != kind or account.status != "active":
        raise NotFound("unknown channel")
    return account


def list_channel_accounts(
    session: Session, workspace_id: int, kind: str | None = None
) -> list[ChannelAccount]:
    return list(repository.channel_accounts(session, workspace_id, kind))


def account_secrets(account: ChannelAccount) -> dict[str, str]:
    if not account.secrets:
        return {}
    data = orjson.loads(_secret_box().decrypt(account.secrets))
    return {str(k): str(v) for k, v in data.items()}


def account_view(account: ChannelAccount) -> AccountView:
    return AccountView(
        id=account.id,
        workspace_id=account.workspace_id,
        kind=account.kind,
        name=account.name,
        external_id=account.external_id,
        config=dict(account.config),
        secrets=account_secrets(account),
        state=dict(account.state),
    )


def masked_secrets(account: ChannelAccount) -> dict[str, str]:
    return {k: crypto.mask_secret(v) for k, v in account_secrets(account).items()}


def inbound_url(account: ChannelAccount) -> str:
    return f"{get_settings().base_url.rstrip('/')}/hooks/{account.kind}/{account.id}"


def list_workspaces(session: Session) -> list[Workspace]:
    return list(repository.all_workspaces(session))


# -- admin (web UI) --------------------------------------------------------------------------
def list_api_tokens(session: Session, workspace_id: int) -> list[ApiToken]:
    return list(repository.api_tokens(session, workspace_id))


def users_of_members(session: Session, members: list[Member]) -> dict[int, User]:
    """Member id → user (for emails in the admin's member list)."""
    users = repository.users_by_ids(session, {m.user_id for m in members})
    return {m.id: users[m.user_id] for m in members if m.user_id in users}


def set_member_role(
    session: Session, workspace_id: int, member_id: int, role: str, *, actor_id: int | None = None
) -> Member:
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    member = get_member(session, workspace_id, member_id)
    if member.role != role:
        _keep_an_admin(session, member, role)
        audit(
            session,
            workspace_id,
            "member.role_changed",
            actor_id=actor_id,
            target_type="member",
            target_id=member.id,
            data={"from": member.role, "to": role},
        )
        member.role = role
    return member


def forbidden_words(ws: Workspace) -> list[str]:
    return [str(w) for w in (ws.settings or {}).get("forbidden_words", []) if str(w).strip()]


def set_forbidden_words(
    session: Session, workspace_id: int, words: list[str], *, actor_id: int | None = None
) -> list[str]:
    """The publishing rule agents are warned about before sending (G3): one word per entry."""
    ws = get_workspace_by_id(session, workspace_id)
    clean = sorted({w.strip()[:50] for w in words if w.strip()})[:500]
    ws.settings = {**(ws.settings or {}), "forbidden_words": clean}
    audit(
        session,
        workspace_id,
        "policy.forbidden_words",
        actor_id=actor_id,
        target_type="workspace",
        target_id=workspace_id,
        data={"count": len(clean)},
    )
    return clean
