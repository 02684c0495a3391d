"""Who is using the UI, CSRF checks and page rendering.

Every page and fragment goes through :func:`web_context`: it resolves the session cookie to a
workspace-scoped principal (401 → redirect to the login page), and for unsafe methods checks
the CSRF token from the form field or the ``X-CSRF-Token`` header (HTMX sends the header).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from scrm.config import Settings
from scrm.db import Database
from scrm.errors import AppError, Forbidden, Unauthorized
from scrm.kit import crypto
from scrm.kit.time import to_local
from scrm.web import i18n
from scrm.workspace import service as workspace_service
from scrm.workspace.auth import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from scrm.workspace.schemas import Principal

TEMPLATES = Path(__file__).parent / "templates"
LANG_COOKIE = "scrm_lang"


class LoginRequired(AppError):
    """Raised by pages when there is no valid session; the web error handler redirects."""

    status_code = 401
    code = "login_required"


@dataclass
class WebContext:
    request: Request
    db: Database
    settings: Settings
    principal: Principal
    csrf_token: str
    locale: str
    workspace_name: str
    team_ids: list[int] = field(default_factory=list)
    availability: str = "offline"  # the member's (header toggle: online / away / offline)

    @property
    def is_htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    def t(self, key: str, **kw: Any) -> str:
        return i18n.t(self.locale, key, **kw)


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def request_locale(request: Request) -> str:
    """The locale before login: the language cookie, else the browser's preference, else zh-CN."""
    cookie = request.cookies.get(LANG_COOKIE, "")
    if cookie in i18n.LOCALES:
        return cookie
    accept = request.headers.get("accept-language", "").lower()
    if accept.startswith("en"):
        return "en"
    return i18n.DEFAULT_LOCALE


async def _sent_csrf(request: Request) -> str:
    sent = request.headers.get(CSRF_HEADER) or ""
    if sent:
        return sent
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached by Starlette; the endpoint's Form() params still work
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


async def web_context(request: Request) -> WebContext:
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        raise LoginRequired("login required")
    sent = await _sent_csrf(request) if request.method not in SAFE_METHODS else ""
    # The database work runs in the thread pool: never block the event loop (SSE lives there).
    return await run_in_threadpool(_resolve, request, sid, sent)


def _resolve(request: Request, sid: str, sent: str) -> WebContext:
    db = get_db(request)
    with db.transaction(readonly=True) as session:
        try:
            principal, row = workspace_service.session_principal(session, sid)
        except Unauthorized:
            raise LoginRequired("session expired") from None
        user = workspace_service.get_user(session, principal.user_id)
        ws = workspace_service.get_workspace_by_id(session, principal.workspace_id)
        team_ids = workspace_service.member_team_ids(session, principal.workspace_id, principal.member_id)
        # already loaded by session_principal (identity map): no query
        availability = workspace_service.get_member(
            session, principal.workspace_id, principal.member_id
        ).availability
        csrf = row.csrf_token
    if request.method not in SAFE_METHODS and (not sent or not crypto.constant_time_equals(sent, csrf)):
        raise Forbidden("missing or wrong CSRF token")
    locale = user.locale if user.locale in i18n.LOCALES else i18n.DEFAULT_LOCALE
    return WebContext(
        request, db, get_settings(request), principal, csrf, locale, ws.name, team_ids, availability
    )


def require_admin(ctx: Annotated[WebContext, Depends(web_context)]) -> WebContext:
    if not ctx.principal.is_admin:
        raise Forbidden("admins only")
    return ctx


def require_supervisor(ctx: Annotated[WebContext, Depends(web_context)]) -> WebContext:
    if not ctx.principal.is_supervisor:
        raise Forbidden("supervisors and admins only")
    return ctx


Ctx = Annotated[WebContext, Depends(web_context)]
AdminCtx = Annotated[WebContext, Depends(require_admin)]
SupervisorCtx = Annotated[WebContext, Depends(require_supervisor)]


# -- rendering -------------------------------------------------------------------------------
def _localtime(value: dt.datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    return to_local(value).strftime(fmt) if value else ""


def _fen(value: int | None) -> str:
    return f"¥{(value or 0) / 100:,.2f}"


env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["localtime"] = _localtime
env.filters["fen"] = _fen
env.filters["urlq"] = lambda v: quote(str(v), safe="")
env.filters["zip_labels"] = lambda values, prefix, t: [(str(v), t(f"{prefix}{v}")) for v in values]
# The admin area's tabs, in order (each is /admin/<name>).
ADMIN_TABS = ("channels", "teams", "members", "canned", "rules", "sla", "tokens", "policy", "jobs")
env.globals["admin_tabs"] = ADMIN_TABS


def render(
    template: str,
    *,
    locale: str,
    status_code: int = 200,
    ctx: WebContext | None = None,
    headers: dict[str, str] | None = None,
    **data: Any,
) -> HTMLResponse:
    def _t(key: str, **kw: Any) -> str:
        return i18n.t(locale, key, **kw)

    html = env.get_template(template).render(
        _=_t,
        locale=locale,
        ctx=ctx,
        principal=ctx.principal if ctx else None,
        csrf_token=ctx.csrf_token if ctx else data.pop("csrf_token", ""),
        path=ctx.request.url.path if ctx else "",
        **data,
    )
    return HTMLResponse(html, status_code=status_code, headers=headers)


def page(
    ctx: WebContext,
    template: str,
    status_code: int = 200,
    *,
    headers: dict[str, str] | None = None,
    **data: Any,
) -> HTMLResponse:
    return render(template, locale=ctx.locale, ctx=ctx, status_code=status_code, headers=headers, **data)
