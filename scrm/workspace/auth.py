"""Who is calling: an API token (Authorization: Bearer) or a web session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from scrm.db import Database
from scrm.errors import Forbidden, Unauthorized
from scrm.kit import crypto
from scrm.workspace import service
from scrm.workspace.schemas import Principal

SESSION_COOKIE = "scrm_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def authenticate(request: Request) -> Principal:
    db = get_db(request)
    header = request.headers.get("authorization", "")
    with db.transaction(readonly=True) as session:
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("use Authorization: Bearer <token>")
            return service.authenticate_token(session, token.strip())
        sid = request.cookies.get(SESSION_COOKIE)
        if not sid:
            raise Unauthorized("authentication required")
        principal, row = service.session_principal(session, sid)
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER) or ""
            if not sent or not crypto.constant_time_equals(sent, row.csrf_token):
                raise Forbidden("missing or wrong CSRF token")
        return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("admins only")
    return principal


def require_supervisor(principal: CurrentPrincipal) -> Principal:
    if not principal.is_supervisor:
        raise Forbidden("supervisors and admins only")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]
SupervisorPrincipal = Annotated[Principal, Depends(require_supervisor)]
