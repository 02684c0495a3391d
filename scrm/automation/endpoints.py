"""Rules (CRUD, dry run, audit of firings) and routing (queue, availability, team desks)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from scrm.automation import service
from scrm.automation.schemas import (
    AvailabilityIn,
    DeskIn,
    DryRunHit,
    DryRunIn,
    FiringOut,
    QueueItem,
    RuleIn,
    RuleOut,
)
from scrm.conversation import assignment
from scrm.models import AutomationRule, RuleFiring
from scrm.workspace import service as workspace
from scrm.workspace.auth import AdminPrincipal, CurrentPrincipal, SupervisorPrincipal, get_db

router = APIRouter(prefix="/automation", tags=["automation"])


def rule_out(r: AutomationRule) -> RuleOut:
    return RuleOut(
        id=str(r.id),
        name=r.name,
        description=r.description,
        event=r.event,
        position=r.position,
        enabled=r.enabled,
        stop=r.stop,
        conditions=r.conditions,
        actions=r.actions,
        failure_count=r.failure_count,
        last_error=r.last_error,
        last_error_at=r.last_error_at,
        updated_at=r.updated_at,
    )


def firing_out(f: RuleFiring) -> FiringOut:
    return FiringOut(
        id=str(f.id),
        rule_id=str(f.rule_id),
        event=f.event,
        trigger_key=f.trigger_key,
        conversation_id=str(f.conversation_id) if f.conversation_id else None,
        status=f.status,
        actions=f.actions,
        error=f.error,
        created_at=f.created_at,
    )


@router.get(
    "/rules", response_model=list[RuleOut], summary="Rules in evaluation order, with run-time failures"
)
def list_rules(request: Request, principal: SupervisorPrincipal) -> list[RuleOut]:
    with get_db(request).transaction(readonly=True) as session:
        return [rule_out(r) for r in service.list_rules(session, principal.workspace_id)]


@router.post(
    "/rules",
    response_model=RuleOut,
    status_code=201,
    summary="Create a rule (422 with the reason if invalid)",
)
def create_rule(request: Request, principal: AdminPrincipal, body: RuleIn) -> RuleOut:
    with get_db(request).transaction() as session:
        return rule_out(
            service.save_rule(
                session, principal.workspace_id, body.model_dump(), actor_id=principal.member_id
            )
        )


@router.get("/rules/{rule_id}", response_model=RuleOut)
def get_rule(request: Request, principal: SupervisorPrincipal, rule_id: int) -> RuleOut:
    with get_db(request).transaction(readonly=True) as session:
        return rule_out(service.get_rule(session, principal.workspace_id, rule_id))


@router.put("/rules/{rule_id}", response_model=RuleOut)
def update_rule(request: Request, principal: AdminPrincipal, rule_id: int, body: RuleIn) -> RuleOut:
    with get_db(request).transaction() as session:
        row = service.save_rule(
            session, principal.workspace_id, body.model_dump(), rule_id=rule_id, actor_id=principal.member_id
        )
        return rule_out(row)


@router.delete("/rules/{rule_id}", status_code=204)
def delete_rule(request: Request, principal: AdminPrincipal, rule_id: int) -> Response:
    with get_db(request).transaction() as session:
        service.delete_rule(session, principal.workspace_id, rule_id, actor_id=principal.member_id)
    return Response(status_code=204)


@router.post(
    "/rules/dry-run", response_model=list[DryRunHit], summary="Which rules would fire for a sample message"
)
def dry_run(request: Request, principal: SupervisorPrincipal, body: DryRunIn) -> list[DryRunHit]:
    with get_db(request).transaction(readonly=True) as session:
        return [
            DryRunHit(**hit) for hit in service.dry_run(session, principal.workspace_id, body.model_dump())
        ]


@router.get("/firings", response_model=list[FiringOut], summary="Audit: rule firings and failures")
def list_firings(
    request: Request,
    principal: SupervisorPrincipal,
    rule_id: int | None = None,
    conversation_id: int | None = None,
    status: Annotated[str | None, Query(pattern="^(fired|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[FiringOut]:
    with get_db(request).transaction(readonly=True) as session:
        rows = service.firings(
            session,
            principal.workspace_id,
            rule_id=rule_id,
            conversation_id=conversation_id,
            status=status,
            limit=limit,
        )
        return [firing_out(f) for f in rows]


@router.get("/queue", response_model=list[QueueItem], summary="Unassigned open conversations, oldest first")
def queue(
    request: Request,
    principal: CurrentPrincipal,
    team: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QueueItem]:
    with get_db(request).transaction(readonly=True) as session:
        team_id = workspace.get_team_by_key(session, principal.workspace_id, team).id if team else None
        rows = assignment.unassigned_queue(session, principal.workspace_id, team_id, limit)
        reasons = assignment.queue_reasons(session, principal.workspace_id, rows)
        return [
            QueueItem(
                id=str(c.id),
                team_id=str(c.team_id) if c.team_id else None,
                priority=c.priority,
                subject=c.subject,
                waiting_since=c.last_inbound_at,
                required_skills=list(c.required_skills or []),
                reason=reasons[c.id],
            )
            for c in rows
        ]


@router.put("/availability", summary="Set my availability; going away hands my open conversations on")
def my_availability(request: Request, principal: CurrentPrincipal, body: AvailabilityIn) -> dict[str, object]:
    with get_db(request).transaction() as session:
        moved = assignment.set_availability(
            session, principal.workspace_id, principal.member_id, body.availability
        )
    return {"availability": body.availability, "conversations_moved": moved}


@router.put("/members/{member_id}/availability", summary="Set an agent's availability (supervisors)")
def member_availability(
    request: Request, principal: SupervisorPrincipal, member_id: int, body: AvailabilityIn
) -> dict[str, object]:
    with get_db(request).transaction() as session:
        moved = assignment.set_availability(session, principal.workspace_id, member_id, body.availability)
    return {"availability": body.availability, "conversations_moved": moved}


@router.put("/teams/{team_key}/desk", summary="How a team takes work (strategy, sticky, VIP, notify URL)")
def configure_desk(
    request: Request, principal: AdminPrincipal, team_key: str, body: DeskIn
) -> dict[str, object]:
    with get_db(request).transaction() as session:
        team = workspace.get_team_by_key(session, principal.workspace_id, team_key)
        row = assignment.configure_desk(
            session, principal.workspace_id, team.id, **body.model_dump(exclude_unset=True)
        )
        return {
            "team": team.key,
            "strategy": row.strategy,
            "auto_assign": row.auto_assign,
            "sticky": row.sticky,
            "vip_to_senior": row.vip_to_senior,
            "notify_url": row.notify_url,
        }
