"""Server-rendered web UI (Jinja2 + HTMX): mounting, security headers and HTML error pages."""

from __future__ import annotations

import inspect
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scrm.errors import AppError, Unauthorized
from scrm.web import deps
from scrm.web.pages import (
    admin,
    auth,
    contact,
    conversation,
    dashboard,
    department,
    inbox,
    jobs,
    live,
    members,
    rules,
    sla,
)
from scrm.web.ratelimit import LoginLimiter

STATIC = Path(__file__).parent / "static"
NON_WEB_PREFIXES = ("/api/", "/hooks/", "/healthz", "/readyz", "/metrics")

# Self only; no inline script anywhere. Inline style *attributes* are allowed because ECharts
# positions its tooltips with them; <style> elements stay blocked.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def is_web_path(path: str) -> bool:
    return not path.startswith(NON_WEB_PREFIXES)


class SecurityHeaders:
    """Pure ASGI (not BaseHTTPMiddleware) so the SSE stream is not buffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_web_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount(app: FastAPI) -> None:
    app.state.login_limiter = LoginLimiter()
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    # jobs, rules and sla before admin: /admin/jobs must not be taken by /admin/{section}
    for module in (
        auth,
        inbox,
        conversation,
        contact,
        department,
        jobs,
        rules,
        sla,
        members,
        admin,
        dashboard,
        live,
    ):
        app.include_router(module.router, include_in_schema=False)
    app.add_middleware(SecurityHeaders)

    api_handler = app.exception_handlers.get(AppError)

    async def app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        if not is_web_path(request.url.path):
            if api_handler is None:  # pragma: no cover - create_app always installs one
                raise exc
            result = api_handler(request, exc)
            return await result if inspect.isawaitable(result) else result
        return error_response(request, exc)

    app.add_exception_handler(AppError, app_error)


def error_response(request: Request, exc: AppError) -> Response:
    htmx = request.headers.get("hx-request") == "true"
    if isinstance(exc, deps.LoginRequired | Unauthorized):
        target = "/login"
        if request.method == "GET" and not htmx:
            target += "?next=" + quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
        if htmx:
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    locale = deps.request_locale(request)
    template = "partials/error.html" if htmx else "error.html"
    return deps.render(
        template,
        locale=locale,
        status_code=exc.status_code,
        status=exc.status_code,
        code=exc.code,
        detail=exc.message,
        field=exc.field,
    )
