"""SLA policies, business calendars, timers, breaches and the compliance report."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from scrm.errors import Invalid
from scrm.kit.time import utcnow
from scrm.models import SlaPolicy
from scrm.sla import service
from scrm.workspace import service as workspace
from scrm.workspace.auth import AdminPrincipal, CurrentPrincipal, SupervisorPrincipal, get_db

router = APIRouter(prefix="/sla", tags=["sla"])


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str | None = Field(default=None, description="team key; empty for the whole workspace")
    priority: str | None = None
    first_response_minutes: int = 10
    next_response_minutes: int | None = 30
    resolution_minutes: int | None = 1440
    warn_before_minutes: int = 2
    escalation: list[dict[str, Any]] = Field(default_factory=lambda: [{"type": "notify_supervisor"}])


class CalendarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str | None = None
    timezone: str = "Asia/Shanghai"
    hours: dict[str, Any]
    cn_holidays: bool = True
    special_days: list[Any] | None = Field(
        default=None,
        description='own holidays/working days [{"date": "2027-02-08", "kind": "holiday", "name": "春节"}];'
        " omitted: keep the calendar's",
    )


def _policy(p: SlaPolicy) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "name": p.name,
        "team_id": str(p.team_id) if p.team_id else None,
        "priority": p.priority,
        "first_response_minutes": p.first_response_minutes,
        "next_response_minutes": p.next_response_minutes,
        "resolution_minutes": p.resolution_minutes,
        "warn_before_minutes": p.warn_before_minutes,
        "escalation": p.escalation,
    }


@router.get("/policies")
def list_policies(request: Request, principal: SupervisorPrincipal) -> list[dict[str, Any]]:
    with get_db(request).transaction(readonly=True) as session:
        return [_policy(p) for p in service.list_policies(session, principal.workspace_id)]


@router.put("/policies/{name}", summary="Create or replace a policy")
def put_policy(request: Request, principal: AdminPrincipal, name: str, body: PolicyIn) -> dict[str, Any]:
    with get_db(request).transaction() as session:
        data = body.model_dump()
        team = data.pop("team")
        data["team_id"] = (
            workspace.get_team_by_key(session, principal.workspace_id, team).id if team else None
        )
        return _policy(service.upsert_policy(session, principal.workspace_id, name, data))


@router.delete("/policies/{policy_id}", status_code=204)
def delete_policy(request: Request, principal: AdminPrincipal, policy_id: int) -> Response:
    with get_db(request).transaction() as session:
        service.delete_policy(session, principal.workspace_id, policy_id)
    return Response(status_code=204)


@router.put("/calendar", summary="Business hours of the workspace or a team (with 调休 and holidays)")
def put_calendar(request: Request, principal: AdminPrincipal, body: CalendarIn) -> dict[str, Any]:
    with get_db(request).transaction() as session:
        team_id = (
            workspace.get_team_by_key(session, principal.workspace_id, body.team).id if body.team else None
        )
        row = service.set_calendar(
            session,
            principal.workspace_id,
            team_id,
            timezone=body.timezone,
            hours=body.hours,
            cn_holidays=body.cn_holidays,
            special_days=body.special_days,
        )
        return {
            "id": str(row.id),
            "team": body.team,
            "timezone": row.timezone,
            "hours": row.hours,
            "cn_holidays": row.cn_holidays,
            "special_days": row.special_days,
            "holiday_data": service.holiday_coverage(),
        }


@router.get("/calendar")
def list_calendars(request: Request, principal: SupervisorPrincipal) -> list[dict[str, Any]]:
    with get_db(request).transaction(readonly=True) as session:
        return [
            {
                "id": str(c.id),
                "team_id": str(c.team_id) if c.team_id else None,
                "timezone": c.timezone,
                "hours": c.hours,
                "cn_holidays": c.cn_holidays,
                "special_days": c.special_days,
            }
            for c in service.list_calendars(session, principal.workspace_id)
        ]


@router.get("/calendar/coverage", summary="Which years have official Chinese holiday data")
def calendar_coverage(principal: SupervisorPrincipal) -> dict[str, Any]:
    return service.holiday_coverage()


@router.get("/calendar/day", summary="What a calendar makes of one date (holiday, 调休, ...) and why")
def calendar_day(
    request: Request, principal: SupervisorPrincipal, date: dt.date, team: str | None = None
) -> dict[str, Any]:
    with get_db(request).transaction(readonly=True) as session:
        team_id = workspace.get_team_by_key(session, principal.workspace_id, team).id if team else None
        info = service.day_info(session, principal.workspace_id, team_id, date)
        cal = service.calendar_for(session, principal.workspace_id, team_id)
        spans = cal.intervals(date)
    return {
        "date": info.day.isoformat(),
        "kind": info.kind,
        "source": info.source,
        "name": info.name,
        "official_data": info.official_data,
        "note": info.note,
        "hours": [
            [f"{a // 3600:02d}:{a % 3600 // 60:02d}", f"{b // 3600:02d}:{b % 3600 // 60:02d}"]
            for a, b in spans
        ],
    }


@router.get("/conversations/{conversation_id}/timers")
def timers(request: Request, principal: CurrentPrincipal, conversation_id: int) -> list[dict[str, Any]]:
    with get_db(request).transaction(readonly=True) as session:
        return [
            {
                "id": str(t.id),
                "metric": t.metric,
                "cycle": t.cycle,
                "status": t.status,
                "started_at": t.started_at,
                "due_at": t.due_at,
                "warn_at": t.warn_at,
                "met_at": t.met_at,
                "breached_at": t.breached_at,
            }
            for t in service.timers_of(session, principal.workspace_id, conversation_id)
        ]


@router.get("/breaches")
def breaches(
    request: Request, principal: SupervisorPrincipal, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[dict[str, Any]]:
    with get_db(request).transaction(readonly=True) as session:
        return [
            {
                "id": str(b.id),
                "conversation_id": str(b.conversation_id),
                "metric": b.metric,
                "due_at": b.due_at,
                "occurred_at": b.occurred_at,
            }
            for b in service.breaches(session, principal.workspace_id, limit)
        ]


@router.get("/report", summary="Share of SLA targets met, per metric")
def report(
    request: Request,
    principal: SupervisorPrincipal,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict[str, Any]:
    until = until or utcnow()
    since = since or until - dt.timedelta(days=1)
    if since.tzinfo is None or until.tzinfo is None:
        raise Invalid("since/until need a time zone offset", field="since")
    with get_db(request).transaction(readonly=True) as session:
        return service.report(session, principal.workspace_id, since, until)
