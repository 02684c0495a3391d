"""Department tasks and follow-ups; outcomes by REST or by a signed webhook from the
department's own system (same signature scheme as the inbound webhook channel)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scrm.casework import service
from scrm.channels.base import InboundRejected
from scrm.channels.webhook.handler import verify
from scrm.conversation import service as conversation_service
from scrm.errors import Forbidden, Invalid, NotFound
from scrm.kit.time import utcnow
from scrm.models import Team
from scrm.workspace import service as workspace
from scrm.workspace.auth import AdminPrincipal, CurrentPrincipal, get_db

router = APIRouter(prefix="/casework", tags=["casework"])


class TaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: str
    kind: Literal["follow_up", "department"] = "follow_up"
    team: str | None = None
    title: str = Field(default="", max_length=200)
    due_in_minutes: int = Field(default=24 * 60, ge=1, le=60 * 24 * 30)


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000)
    notify_fan: bool | None = None


class HookOutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_id: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=2000)
    external_id: str | None = Field(default=None, max_length=200)
    by: str = Field(default="", max_length=80)


def _team(session: Any, workspace_id: int, team_id: int | None) -> Team | None:
    return workspace.get_team(session, workspace_id, team_id) if team_id else None


@router.get("/tasks", summary="Tasks of a team, newest first")
def list_tasks(
    request: Request,
    principal: CurrentPrincipal,
    team: str | None = None,
    status: Annotated[str | None, Query(pattern="^(open|done|cancelled)$")] = None,
    kind: Annotated[str | None, Query(pattern="^(department|follow_up)$")] = None,
    conversation_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    with get_db(request).transaction(readonly=True) as session:
        team_row = workspace.get_team_by_key(session, principal.workspace_id, team) if team else None
        rows = service.list_tasks(
            session,
            principal.workspace_id,
            team_id=team_row.id if team_row else None,
            status=status,
            kind=kind,
            conversation_id=conversation_id,
            limit=limit,
        )
        return [service.task_out(t, _team(session, principal.workspace_id, t.team_id)) for t in rows]


@router.get("/tasks/{task_id}")
def get_task(request: Request, principal: CurrentPrincipal, task_id: int) -> dict[str, Any]:
    with get_db(request).transaction(readonly=True) as session:
        t = service.get_task(session, principal.workspace_id, task_id)
        return service.task_out(t, _team(session, principal.workspace_id, t.team_id))


@router.post("/tasks", status_code=201, summary="Create a follow-up (call-back) or department task")
def create_task(request: Request, principal: CurrentPrincipal, body: TaskIn) -> dict[str, Any]:
    try:
        conv_id = int(body.conversation_id)
    except ValueError:
        raise Invalid("conversation_id must be an id", field="conversation_id") from None
    with get_db(request).transaction() as session:
        conv = conversation_service.get(session, principal.workspace_id, conv_id)
        team = workspace.get_team_by_key(session, principal.workspace_id, body.team) if body.team else None
        t = service.create_task(
            session,
            conv,
            kind=body.kind,
            team=team,
            title=body.title,
            due_at=utcnow() + dt.timedelta(minutes=body.due_in_minutes),
            created_by=f"member:{principal.member_id}",
        )
        return service.task_out(t, team)


@router.post("/tasks/{task_id}/outcome", summary="Record the outcome; a department task's goes to the fan")
def record_outcome(
    request: Request, principal: CurrentPrincipal, task_id: int, body: OutcomeIn
) -> JSONResponse:
    with get_db(request).transaction() as session:
        task = service.get_task(session, principal.workspace_id, task_id)
        if (
            task.team_id
            and not principal.is_supervisor
            and task.team_id
            not in workspace.member_team_ids(session, principal.workspace_id, principal.member_id)
        ):
            raise Forbidden("only the task's team or a supervisor records its outcome")
        task, new = service.record_outcome(
            session,
            principal.workspace_id,
            task_id,
            body.text,
            source="api",
            actor_id=principal.member_id,
            actor_label=principal.name,
            notify_fan=body.notify_fan,
        )
        out = service.task_out(task, _team(session, principal.workspace_id, task.team_id))
    return JSONResponse(out, status_code=201 if new else 200)


@router.post("/tasks/{task_id}/cancel")
def cancel_task(request: Request, principal: CurrentPrincipal, task_id: int) -> dict[str, Any]:
    with get_db(request).transaction() as session:
        return service.task_out(
            service.cancel_task(session, principal.workspace_id, task_id, principal.member_id)
        )


@router.post(
    "/teams/{team_key}/hook-secret", summary="New secret for the department's outcome webhook (shown once)"
)
def rotate_secret(request: Request, principal: AdminPrincipal, team_key: str) -> dict[str, str]:
    with get_db(request).transaction() as session:
        ws = workspace.get_workspace_by_id(session, principal.workspace_id)
        team = workspace.get_team_by_key(session, principal.workspace_id, team_key)
        secret = service.rotate_hook_secret(session, principal.workspace_id, team.id)
    return {"secret": secret, "url": f"/api/v1/casework/hooks/{ws.slug}/{team.key}"}


@router.post(
    "/hooks/{workspace_slug}/{team_key}", summary="Signed outcome webhook from a department's system"
)
async def outcome_hook(request: Request, workspace_slug: str, team_key: str) -> JSONResponse:
    body = await request.body()
    if len(body) > 64 * 1024:
        return JSONResponse({"error": "payload_too_large", "detail": "body over 64 KiB"}, status_code=413)
    db = get_db(request)
    with db.transaction() as session:
        try:
            ws = workspace.get_workspace(session, workspace_slug)
            team = workspace.get_team_by_key(session, ws.id, team_key)
        except NotFound:
            return JSONResponse({"error": "not_found", "detail": "no such department"}, status_code=404)
        secret = service.hook_secret(session, ws.id, team.id)
        try:
            if secret is None:
                raise InboundRejected(401, "this team has no outcome webhook secret")
            verify(request.headers, body, secret)
        except InboundRejected as exc:
            return JSONResponse({"error": "rejected", "detail": str(exc)}, status_code=401)
        try:
            data = HookOutcomeIn.model_validate_json(body)
            task_id = int(data.task_id)
        except (ValidationError, ValueError) as exc:
            return JSONResponse(
                {"error": "invalid", "detail": str(exc).splitlines()[0][:300]}, status_code=422
            )
        task = service.get_task(session, ws.id, task_id)
        if task.team_id != team.id:
            raise NotFound("no such task for this team")
        task, new = service.record_outcome(
            session,
            ws.id,
            task_id,
            data.text,
            source="webhook",
            actor_label=data.by or team.name,
            external_id=data.external_id,
        )
        return JSONResponse(
            {"status": "recorded" if new else "duplicate", "task_id": str(task.id)},
            status_code=202 if new else 200,
        )
