"""One conversation: thread, reply box with canned replies and policy warnings, notes,
transfer, resolve/reopen, timeline, and the fan panel beside it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from scrm.contact import service as contact_service
from scrm.conversation import service as conversation_service
from scrm.web import canned, deps, outcome
from scrm.web.deps import Ctx, WebContext
from scrm.workspace import service as workspace_service

router = APIRouter()


def fan_data(session: Session, ws: int, contact_id: int) -> dict[str, Any]:
    contact = contact_service.get(session, ws, contact_id)
    identities = contact_service.identities(session, ws, contact_id)
    return {
        "contact": contact,
        "phone_masked": contact_service.mask_phone(contact.phone),
        "identities": [
            (i, contact_service.mask_phone(i.external_id) if i.namespace == "phone" else i.external_id)
            for i in identities
        ],
        "memberships": contact_service.memberships(session, ws, contact_id),
        "orders": contact_service.orders(session, ws, contact_id, limit=20),
        "past": contact_service.conversations(session, ws, contact_id, limit=10),
    }


def pane_data(session: Session, ctx: WebContext, conversation_id: int) -> dict[str, Any]:
    ws = ctx.principal.workspace_id
    conv = conversation_service.get(session, ws, conversation_id)  # 404 for another workspace
    messages = conversation_service.messages(session, ws, conv.id, limit=500)
    last_in = conversation_service.last_inbound_message(session, ws, conv.id)
    entities = canned.entities_of(last_in)
    fan = fan_data(session, ws, conv.contact_id)
    values = canned.variables(fan["contact"], ctx.principal.name, entities)
    replies = [(r, canned.fill(r.body, values)) for r in workspace_service.list_canned_replies(session, ws)]
    members = workspace_service.list_members(session, ws)
    account = workspace_service.get_channel_account(session, ws, conv.channel_account_id)
    return {
        "conv": conv,
        "messages": messages,
        "triage": (last_in.triage if last_in else {}) or {},
        "entities": entities,
        "canned_replies": replies,
        "activities": conversation_service.activities(session, ws, conv.id),
        "members": {m.id: m for m in members},
        "member_list": members,
        "team_list": workspace_service.list_teams(session, ws),
        "account": account,
        "can_record_outcome": conv.team_id is not None and conv.team_id in ctx.team_ids,
        **fan,
    }


def render_pane(ctx: WebContext, conversation_id: int, **extra: Any) -> HTMLResponse:
    with ctx.db.transaction(readonly=True) as session:
        data = pane_data(session, ctx, conversation_id)
    return deps.page(ctx, "partials/pane.html", pane=data, **extra)


@router.get("/ui/c/{conversation_id}")
def pane(ctx: Ctx, conversation_id: int) -> HTMLResponse:
    return render_pane(ctx, conversation_id)


@router.get("/ui/c/{conversation_id}/thread")
def thread(ctx: Ctx, conversation_id: int) -> HTMLResponse:
    with ctx.db.transaction(readonly=True) as session:
        data = pane_data(session, ctx, conversation_id)
    return deps.page(ctx, "partials/thread.html", pane=data)


@router.post("/ui/c/{conversation_id}/reply")
def reply(
    ctx: Ctx,
    conversation_id: int,
    text: Annotated[str, Form(max_length=2000)] = "",
    visibility: Annotated[str, Form(max_length=10)] = "",
    confirm: Annotated[str, Form(max_length=5)] = "",
) -> HTMLResponse:
    ws = ctx.principal.workspace_id
    with ctx.db.transaction() as session:
        conv = conversation_service.get(session, ws, conversation_id)
        words = workspace_service.forbidden_words(workspace_service.get_workspace_by_id(session, ws))
        verdict = canned.check(text, words)
        if not verdict.ok and confirm != "yes":
            # Nothing is sent: the agent sees why and must confirm (or edit) first.
            return deps.page(
                ctx,
                "partials/reply_box.html",
                pane={"conv": conv, "canned_replies": []},
                draft=text,
                draft_visibility=visibility,
                policy=verdict,
                headers={"HX-Retarget": "#reply-box", "HX-Reswap": "outerHTML"},
            )
        conversation_service.reply(
            session, ctx.principal, conversation_id, text, visibility=visibility or None
        )
    return render_pane(ctx, conversation_id, flash="flash.sent")


@router.post("/ui/c/{conversation_id}/note")
def note(ctx: Ctx, conversation_id: int, text: Annotated[str, Form(max_length=2000)] = "") -> HTMLResponse:
    with ctx.db.transaction() as session:
        conversation_service.add_note(session, ctx.principal, conversation_id, text)
    return render_pane(ctx, conversation_id, flash="flash.noted")


@router.post("/ui/c/{conversation_id}/update")
def update(
    ctx: Ctx,
    conversation_id: int,
    status: Annotated[str | None, Form(max_length=12)] = None,
    priority: Annotated[str | None, Form(max_length=10)] = None,
    assignee_id: Annotated[str | None, Form(max_length=30)] = None,
    team_id: Annotated[str | None, Form(max_length=30)] = None,
    labels: Annotated[str | None, Form(max_length=1000)] = None,
) -> HTMLResponse:
    if priority is not None and priority not in ("low", "normal", "high", "urgent"):
        from scrm.errors import Invalid

        raise Invalid("priority must be low, normal, high or urgent", field="priority")
    with ctx.db.transaction() as session:
        conversation_service.update(
            session,
            ctx.principal,
            conversation_id,
            status=status or None,
            priority=priority or None,
            assignee_id=assignee_id,
            team_id=team_id,
            labels=[x for x in labels.replace("，", ",").split(",")] if labels is not None else None,
        )
    return render_pane(ctx, conversation_id, flash="flash.updated")


@router.post("/ui/c/{conversation_id}/outcome")
def record_outcome(
    ctx: Ctx, conversation_id: int, text: Annotated[str, Form(max_length=2000)] = ""
) -> HTMLResponse:
    with ctx.db.transaction() as session:
        conv = conversation_service.get(session, ctx.principal.workspace_id, conversation_id)
        outcome.record(session, ctx.principal, conv, text, ctx.team_ids)
    return render_pane(ctx, conversation_id, flash="flash.outcome")
