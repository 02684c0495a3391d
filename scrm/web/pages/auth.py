"""Login (rate-limited), logout and the language switch."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from scrm.errors import Forbidden, Unauthorized
from scrm.kit import crypto
from scrm.web import deps, i18n
from scrm.web.deps import Ctx
from scrm.web.ratelimit import LoginLimiter
from scrm.workspace import service as workspace_service
from scrm.workspace.auth import SESSION_COOKIE

router = APIRouter()
LOGIN_CSRF_COOKIE = "scrm_login_csrf"


def safe_next(value: str | None, default: str = "/inbox") -> str:
    """Only same-site paths: never an absolute or protocol-relative URL (open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    return default if parts.scheme or parts.netloc else value


def _limiter(request: Request) -> LoginLimiter:
    limiter: LoginLimiter = request.app.state.login_limiter
    return limiter


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "-"


def _login_page(
    request: Request,
    locale: str,
    *,
    error: str = "",
    email: str = "",
    next_url: str = "",
    status_code: int = 200,
) -> Response:
    token = secrets.token_urlsafe(24)
    resp = deps.render(
        "login.html",
        locale=locale,
        status_code=status_code,
        csrf_token=token,
        error=error,
        email=email,
        next_url=next_url,
    )
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=deps.get_settings(request).cookie_secure,
        max_age=3600,
    )
    return resp


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/inbox", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str = "", lang: str = "") -> Response:
    locale = lang if lang in i18n.LOCALES else deps.request_locale(request)
    resp = _login_page(request, locale, next_url=safe_next(next, ""))
    if lang in i18n.LOCALES:
        resp.set_cookie(deps.LANG_COOKIE, lang, samesite="lax", max_age=365 * 86400)
    return resp


@router.post("/login")
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    locale = deps.request_locale(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not crypto.constant_time_equals(cookie, csrf_token):
        raise Forbidden("missing or wrong CSRF token; reload the login page")
    email = email.strip().lower()
    ip = _client_ip(request)
    limiter = _limiter(request)
    wait = limiter.retry_after(email, ip)
    if wait:
        resp = _login_page(
            request,
            locale,
            error=i18n.t(locale, "login.too_many", minutes=max(1, (wait + 59) // 60)),
            email=email,
            next_url=next,
            status_code=429,
        )
        resp.headers["Retry-After"] = str(wait)
        return resp
    db = deps.get_db(request)
    try:
        with db.transaction() as session:
            sid, row = workspace_service.login(session, email, password)
            user = workspace_service.get_user(session, row.user_id)
            member = workspace_service.session_principal(session, sid)[0]
            user_locale = user.locale
    except Unauthorized:
        limiter.failed(email, ip)
        return _login_page(
            request,
            locale,
            error=i18n.t(locale, "login.failed"),
            email=email,
            next_url=next,
            status_code=401,
        )
    limiter.succeeded(email, ip)
    home = "/department" if member.role == "department" else "/inbox"
    resp = RedirectResponse(safe_next(next, home), status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        sid,
        httponly=True,
        samesite="lax",
        secure=deps.get_settings(request).cookie_secure,
        max_age=int(workspace_service.SESSION_TTL.total_seconds()),
        path="/",
    )
    resp.set_cookie(deps.LANG_COOKIE, user_locale, samesite="lax", max_age=365 * 86400)
    resp.delete_cookie(LOGIN_CSRF_COOKIE)
    return resp


@router.post("/logout")
def logout(ctx: Ctx) -> Response:
    sid = ctx.request.cookies.get(SESSION_COOKIE, "")
    with ctx.db.transaction() as session:
        workspace_service.logout(session, sid)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.post("/ui/locale")
def switch_locale(ctx: Ctx, locale: Annotated[str, Form(max_length=10)] = "") -> Response:
    with ctx.db.transaction() as session:
        workspace_service.set_locale(session, ctx.principal.user_id, locale)
    ref = urlsplit(ctx.request.headers.get("referer", ""))
    back = safe_next((ref.path + (f"?{ref.query}" if ref.query else "")) or "/inbox")
    if ctx.is_htmx:
        resp: Response = Response(status_code=204, headers={"HX-Refresh": "true"})
    else:
        resp = RedirectResponse(back, status_code=303)
    resp.set_cookie(deps.LANG_COOKIE, locale, samesite="lax", max_age=365 * 86400)
    return resp
