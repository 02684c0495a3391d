"""Admin pages (admin role only): channel accounts, teams, members and roles, canned replies,
API tokens and the publishing word list."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse

from scrm.errors import Invalid, NotFound
from scrm.web import deps
from scrm.web.deps import AdminCtx, WebContext
from scrm.workspace import service as ws_service

router = APIRouter(prefix="/admin")
SECTIONS = ("channels", "teams", "members", "canned", "tokens", "policy")


def _admin_page(ctx: WebContext, section: str, status_code: int = 200, **extra: Any) -> HTMLResponse:
    ws = ctx.principal.workspace_id
    with ctx.db.transaction(readonly=True) as session:
        members = ws_service.list_members(session, ws)
        data: dict[str, Any] = {
            "channels": [
                (a, ws_service.masked_secrets(a), ws_service.inbound_url(a))
                for a in ws_service.list_channel_accounts(session, ws)
            ],
            "team_list": ws_service.list_teams(session, ws),
            "member_list": members,
            "users": ws_service.users_of_members(session, members),
            "canned": ws_service.list_canned_replies(session, ws),
            "tokens": ws_service.list_api_tokens(session, ws),
            "forbidden_words": ws_service.forbidden_words(ws_service.get_workspace_by_id(session, ws)),
        }
    return deps.page(
        ctx, "admin/index.html", status_code, section=section, sections=SECTIONS, roles=ROLES, **data, **extra
    )


ROLES = ("admin", "supervisor", "agent", "department")


def _back(section: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/{section}?saved=1", status_code=303)


@router.get("")
def admin_home(ctx: AdminCtx) -> RedirectResponse:
    return RedirectResponse("/admin/channels", status_code=303)


@router.get("/{section}")
def admin_section(ctx: AdminCtx, section: str) -> HTMLResponse:
    if section not in SECTIONS:
        raise NotFound("no such admin page")
    return _admin_page(ctx, section)


@router.post("/channels")
def connect_webhook(
    ctx: AdminCtx,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    callback_url: Annotated[str, Form(max_length=500)] = "",
) -> HTMLResponse:
    if callback_url and not callback_url.startswith(("http://", "https://")):
        raise Invalid("callback URL must start with http:// or https://", field="callback_url")
    secret = "whsec_" + secrets.token_urlsafe(24)
    with ctx.db.transaction() as session:
        account = ws_service.create_channel_account(
            session,
            ctx.principal.workspace_id,
            "webhook",
            name.strip(),
            config={"callback_url": callback_url.strip()},
            secrets={"secret": secret},
            actor_id=ctx.principal.member_id,
        )
        account_id = account.id
    # The secret is shown exactly once, now; afterwards only its mask.
    return _admin_page(ctx, "channels", new_secret=secret, new_channel_id=account_id)


@router.post("/teams")
def create_team(
    ctx: AdminCtx,
    key: Annotated[str, Form(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    kind: Annotated[str, Form(max_length=20)] = "service",
) -> RedirectResponse:
    with ctx.db.transaction() as session:
        ws_service.create_team(session, ctx.principal.workspace_id, key, name.strip(), kind)
    return _back("teams")


@router.post("/teams/{team_id}/members")
def add_team_member(ctx: AdminCtx, team_id: int, member_id: Annotated[int, Form()]) -> RedirectResponse:
    ws = ctx.principal.workspace_id
    with ctx.db.transaction() as session:
        ws_service.get_team(session, ws, team_id)
        ws_service.get_member(session, ws, member_id)
        ws_service.add_to_team(session, ws, team_id, member_id)
    return _back("teams")


@router.post("/members")
def add_member(
    ctx: AdminCtx,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=20)] = "agent",
) -> RedirectResponse:
    ws = ctx.principal.workspace_id
    with ctx.db.transaction() as session:
        try:
            user = ws_service.get_user_by_email(session, email.strip().lower())
        except NotFound:
            user = ws_service.create_user(session, email, password, name.strip())
        ws_service.add_member(session, ws, user, role, display_name=name.strip())
    return _back("members")


@router.post("/members/{member_id}/role")
def change_role(ctx: AdminCtx, member_id: int, role: Annotated[str, Form(max_length=20)]) -> RedirectResponse:
    with ctx.db.transaction() as session:
        ws_service.set_member_role(
            session, ctx.principal.workspace_id, member_id, role, actor_id=ctx.principal.member_id
        )
    return _back("members")


@router.post("/canned")
def upsert_canned(
    ctx: AdminCtx,
    key: Annotated[str, Form(min_length=1, max_length=64)],
    title: Annotated[str, Form(min_length=1, max_length=200)],
    body: Annotated[str, Form(min_length=1, max_length=2000)],
) -> RedirectResponse:
    with ctx.db.transaction() as session:
        ws_service.upsert_canned_reply(session, ctx.principal.workspace_id, key.strip(), title.strip(), body)
    return _back("canned")


@router.post("/tokens")
def create_token(ctx: AdminCtx, name: Annotated[str, Form(max_length=200)] = "") -> HTMLResponse:
    with ctx.db.transaction() as session:
        token, _row = ws_service.create_api_token(
            session, ctx.principal.workspace_id, ctx.principal.member_id, name.strip()
        )
    return _admin_page(ctx, "tokens", new_token=token)


@router.post("/policy")
def save_policy(ctx: AdminCtx, words: Annotated[str, Form(max_length=20000)] = "") -> RedirectResponse:
    items = [w for line in words.splitlines() for w in line.replace("，", ",").split(",")]
    with ctx.db.transaction() as session:
        ws_service.set_forbidden_words(
            session, ctx.principal.workspace_id, items, actor_id=ctx.principal.member_id
        )
    return _back("policy")
