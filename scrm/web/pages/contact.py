"""A fan's own page: everything the fan panel shows, in full."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from scrm.contact import service as contact_service
from scrm.web import deps
from scrm.web.deps import Ctx
from scrm.web.pages.conversation import fan_data
from scrm.workspace import service as workspace_service

router = APIRouter()


@router.get("/contacts/{contact_id}")
def contact_page(ctx: Ctx, contact_id: int) -> HTMLResponse:
    ws = ctx.principal.workspace_id
    with ctx.db.transaction(readonly=True) as session:
        data = fan_data(session, ws, contact_id)
        data["orders"] = contact_service.orders(session, ws, contact_id, limit=200)
        data["past"] = contact_service.conversations(session, ws, contact_id, limit=100)
        data["accounts"] = {a.id: a for a in workspace_service.list_channel_accounts(session, ws)}
    return deps.page(ctx, "contact.html", fan=data)
