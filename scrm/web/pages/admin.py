"""Admin pages (admin role only): channel accounts (webhook, WeChat Official Account, Weibo,
with a connection test), teams, members and roles, canned replies, API tokens and the
publishing word list. Rules and SLA have their own modules (rules.py, sla.py)."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form
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
TEST_TIMEOUT = 8.0  # seconds for a connection test against the platform's API
_WECHAT_APPID = re.compile(r"^[A-Za-z0-9_-]{3,64}$")
_WECHAT_TOKEN = re.compile(r"^[A-Za-z0-9]{3,32}$")  # WeChat's rule for the server-config Token
_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")
_PLAIN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_WEIBO_UID = re.compile(r"^[0-9]{1,20}$")
_SECRET = re.compile(r"^\S{1,256}$")


def _check(pattern: re.Pattern[str], value: str, field: str, message: str) -> None:
    if not pattern.match(value):
        raise Invalid(message, field=field)


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
        if not name:
            raise Invalid("the account needs a name", field="name")
        with ctx.db.transaction() as session:
            for other in ws_service.list_channel_accounts(session, ws, kind):
                if external_id in (
                    other.external_id,
                    str(other.config.get("appid" if kind == "wechat" else "uid")),
                ):
                    raise Conflict(f"{external_id} is already connected as {other.name!r}")
            account = ws_service.create_channel_account(
                session,
                ws,
                kind,
                name,
                config=config,
                secrets=secret_values,
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
    appid, token, secret = appid.strip(), token.strip(), secret.strip()
    aes, original_id = encoding_aes_key.strip(), original_id.strip()
    try:
        _check(_WECHAT_APPID, appid, "appid", "AppID must be 3-64 letters, digits, _ or -")
        _check(_WECHAT_TOKEN, token, "token", "Token must be 3-32 letters or digits (WeChat's rule)")
        _check(_SECRET, secret, "secret", "AppSecret is required (no spaces)")
        if aes:
            _check(_AES_KEY, aes, "encoding_aes_key", "EncodingAESKey must be 43 letters or digits")
        if original_id:
            _check(_PLAIN_ID, original_id, "original_id", "the original id looks like gh_0123456789ab")
        if require_encryption and not aes:
            raise Invalid("safe mode needs the EncodingAESKey", field="encoding_aes_key")
    except Invalid as exc:
        return _admin_page(
            ctx, "channels", exc.status_code, channel_error=exc, error_form="wechat", form_values=values
        )
    config: dict[str, Any] = {"appid": appid, "require_encryption": bool(require_encryption)}
    if original_id:
        config["original_id"] = original_id
    secret_values = {"token": token, "secret": secret}
    if aes:
        secret_values["encoding_aes_key"] = aes
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
    uid, app_key = uid.strip(), app_key.strip()
    app_secret, access_token = app_secret.strip(), access_token.strip()
    try:
        _check(_WEIBO_UID, uid, "uid", "the brand's uid is a number")
        if app_key:
            _check(_PLAIN_ID, app_key, "app_key", "App Key must be letters or digits")
        _check(_SECRET, app_secret, "app_secret", "App Secret is required (no spaces)")
        _check(_SECRET, access_token, "access_token", "the access token is required (no spaces)")
    except Invalid as exc:
        return _admin_page(
            ctx, "channels", exc.status_code, channel_error=exc, error_form="weibo", form_values=values
        )
    config: dict[str, Any] = {"uid": uid, "poll": bool(poll)}
    if app_key:
        config["app_key"] = app_key
    return _connect(
        ctx,
        "weibo",
        name.strip(),
        uid,
        config,
        {"app_secret": app_secret, "access_token": access_token},
        values,
    )


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
