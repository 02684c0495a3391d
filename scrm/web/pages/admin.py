"""Admin pages (admin role only): channel accounts (webhook, WeChat Official Account, Weibo,
with a connection test), teams, members and roles, canned replies, API tokens and the
publishing word list. Rules and SLA have their own modules (rules.py, sla.py)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from scrm.channels.base import ChannelError
from scrm.errors import Conflict, Invalid, NotFound
from scrm.web import deps
from scrm.web.deps import AdminCtx, WebContext
from scrm.workspace import service as ws_service

router = APIRouter(prefix="/admin")
SECTIONS = ("channels", "teams", "members", "canned", "tokens", "policy")


def _admin_page(ctx: WebContext, section: str, status_code: int = 200, **extra: Any) -> HTMLResponse:
    extra.setdefault("form_values", {})
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
    return deps.page(ctx, "admin/index.html", status_code, section=section, roles=ROLES, **data, **extra)


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


# -- WeChat Official Account and Weibo ------------------------------------------------------------
# The forms only gather the fields: the channel's own check (scrm/channels/<kind>/accounts.py,
# via ws_service) decides what is valid, as for `scrm channels create/update` and the API.
TEST_TIMEOUT = 8.0  # seconds for a connection test against the platform's API


def _connect(
    ctx: WebContext,
    kind: str,
    name: str,
    external_id: str,
    config: dict[str, Any],
    secret_values: dict[str, str],
    form_values: dict[str, str],
) -> HTMLResponse:
    """Create the account, or show the channels page again with the reason (secrets are never
    put back into the form)."""
    ws = ctx.principal.workspace_id
    try:
        with ctx.db.transaction() as session:
            account = ws_service.create_channel_account(
                session,
                ws,
                kind,
                name,
                config=config,
                secrets={k: v for k, v in secret_values.items() if v},
                external_id=external_id,
                actor_id=ctx.principal.member_id,
            )
            connected = {"id": account.id, "kind": kind, "name": name, "url": ws_service.inbound_url(account)}
    except (Invalid, Conflict) as exc:
        return _admin_page(
            ctx, "channels", exc.status_code, channel_error=exc, error_form=kind, form_values=form_values
        )
    return _admin_page(ctx, "channels", connected=connected)


@router.post("/channels/wechat")
def connect_wechat(
    ctx: AdminCtx,
    name: Annotated[str, Form(max_length=200)] = "",
    appid: Annotated[str, Form(max_length=64)] = "",
    token: Annotated[str, Form(max_length=64)] = "",
    secret: Annotated[str, Form(max_length=256)] = "",
    encoding_aes_key: Annotated[str, Form(max_length=64)] = "",
    original_id: Annotated[str, Form(max_length=64)] = "",
    require_encryption: Annotated[str, Form(max_length=5)] = "",
) -> HTMLResponse:
    values = {
        "name": name,
        "appid": appid,
        "original_id": original_id,
        "require_encryption": require_encryption,
    }
    appid = appid.strip()
    config: dict[str, Any] = {"appid": appid, "require_encryption": bool(require_encryption)}
    if original_id.strip():
        config["original_id"] = original_id.strip()
    secret_values = {
        "token": token.strip(),
        "secret": secret.strip(),
        "encoding_aes_key": encoding_aes_key.strip(),
    }
    return _connect(ctx, "wechat", name.strip(), appid, config, secret_values, values)


@router.post("/channels/weibo")
def connect_weibo(
    ctx: AdminCtx,
    name: Annotated[str, Form(max_length=200)] = "",
    uid: Annotated[str, Form(max_length=20)] = "",
    app_key: Annotated[str, Form(max_length=64)] = "",
    app_secret: Annotated[str, Form(max_length=256)] = "",
    access_token: Annotated[str, Form(max_length=256)] = "",
    poll: Annotated[str, Form(max_length=5)] = "",
) -> HTMLResponse:
    values = {"name": name, "uid": uid, "app_key": app_key, "poll": poll}
    uid = uid.strip()
    config: dict[str, Any] = {"uid": uid, "poll": bool(poll)}
    if app_key.strip():
        config["app_key"] = app_key.strip()
    secret_values = {"app_secret": app_secret.strip(), "access_token": access_token.strip()}
    return _connect(ctx, "weibo", name.strip(), uid, config, secret_values, values)


# Which form fields an edit may change, per kind: config fields, then secrets. A secret left
# blank keeps the stored one; a new EncodingAESKey rotates (the old one stays valid meanwhile).
_EDIT_CONFIG = {
    "wechat": ("original_id",),
    "weibo": ("app_key",),
    "webhook": ("callback_url",),
    "wecom": ("agent_id",),
}
_EDIT_FLAGS = {"wechat": ("require_encryption",), "weibo": ("poll",)}
_EDIT_SECRETS = {
    "wechat": ("token", "secret", "encoding_aes_key"),
    "weibo": ("app_secret", "access_token"),
    "webhook": (),
    "wecom": ("token", "encoding_aes_key"),
}


@router.post("/channels/{account_id}/edit")
async def edit_channel(ctx: AdminCtx, account_id: int, request: Request) -> HTMLResponse:
    """Change an account's name, settings or secrets from its row on the channels page."""
    form = await request.form()

    def field(name: str, limit: int = 256) -> str:
        value = form.get(name)
        return value.strip()[:limit] if isinstance(value, str) else ""

    ws = ctx.principal.workspace_id
    try:
        with ctx.db.transaction() as session:
            account = ws_service.get_channel_account(session, ws, account_id)
            kind = account.kind
            config: dict[str, Any] = {}
            for name in _EDIT_CONFIG.get(kind, ()):
                if name in form:
                    config[name] = field(name, 1000) or None
            for name in _EDIT_FLAGS.get(kind, ()):
                config[name] = bool(field(name))
            secret_values: dict[str, str | None] = {
                name: field(name) for name in _EDIT_SECRETS.get(kind, ()) if field(name)
            }
            if field("drop_previous_aes_key"):
                secret_values["previous_encoding_aes_key"] = None
            updated = ws_service.update_channel_account(
                session,
                ws,
                account_id,
                name=field("name", 200) or None,
                config=config,
                secrets=secret_values,
                actor_id=ctx.principal.member_id,
            )
            saved = {
                "id": updated.id,
                "name": updated.name,
                "rotated": "encoding_aes_key" in secret_values,
            }
    except (Invalid, Conflict) as exc:
        return _admin_page(ctx, "channels", exc.status_code, edit_error=exc, edit_id=account_id)
    return _admin_page(ctx, "channels", channel_saved=saved)


def check_connection(ctx: WebContext, account_id: int) -> dict[str, Any]:
    """Ask the platform's API (the configured base URL) whether the credentials work:
    WeChat hands out an access token, Weibo reads the brand's @mentions. Nothing is changed."""
    with ctx.db.transaction(readonly=True) as session:
        view = ws_service.account_view(
            ws_service.get_channel_account(session, ctx.principal.workspace_id, account_id)
        )
    settings = ctx.settings
    try:
        if view.kind == "wechat":
            from scrm.channels.wechat.client import WechatClient
            from scrm.channels.wechat.spec import account_config as wechat_config
            from scrm.channels.wechat.tokens import InMemoryTokenStore

            store = InMemoryTokenStore()  # a fresh fetch, so the credentials are really tried
            with WechatClient(
                wechat_config(view),
                base_url=settings.wechat_api_base,
                token_store=store,
                timeout=TEST_TIMEOUT,
            ) as client:
                client.access_token()
            message = ctx.t("channels.test_ok_wechat")
        elif view.kind == "weibo":
            from scrm.channels.weibo.client import WeiboClient
            from scrm.channels.weibo.spec import account_config as weibo_config

            with WeiboClient(
                weibo_config(view),
                base_url=settings.weibo_api_base,
                timeout=TEST_TIMEOUT,
                page_size=1,
                max_pages=1,
            ) as weibo:
                weibo.fetch_mentions(None)
            message = ctx.t("channels.test_ok_weibo")
        else:
            raise Invalid("only WeChat and Weibo accounts have a connection test", field="kind")
    except ChannelError as exc:
        return {"id": account_id, "ok": False, "message": f"{ctx.t('channels.test_failed')} {exc}"}
    return {"id": account_id, "ok": True, "message": message}


@router.post("/channels/{account_id}/test")
def channel_test(ctx: AdminCtx, account_id: int) -> HTMLResponse:
    result = check_connection(ctx, account_id)
    if ctx.is_htmx:
        return deps.page(ctx, "partials/channel_test.html", result=result)
    return _admin_page(ctx, "channels", test_result=result)
