"""How members take work, in the UI: an admin edits a member's capacity, skills and seniority
(Admin → Members), and every signed-in member sets their own availability from the header
(online / away / offline; members start offline, so this is how a browser-only agent starts
getting conversations). Both go through the same services as the REST API."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from scrm.conversation import assignment
from scrm.errors import Conflict, Forbidden, Invalid
from scrm.web.deps import AdminCtx, Ctx
from scrm.web.pages.admin import _admin_page, _back
from scrm.web.pages.auth import safe_next
from scrm.workspace import service as ws_service

router = APIRouter()


def _skills_field(text: str) -> list[str]:
    """The form's comma-separated list (Chinese commas and new lines too); blanks dropped."""
    parts = text.replace("，", ",").replace("\n", ",").split(",")
    return [p for p in parts if p.strip()]


def _capacity_field(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise Invalid(
            f"capacity must be a whole number from 0 to {ws_service.MAX_CAPACITY}", field="capacity"
        ) from None


@router.post("/admin/members/{member_id}/settings")
def member_settings(
    ctx: AdminCtx,
    member_id: int,
    capacity: Annotated[str, Form(max_length=10)] = "",
    skills: Annotated[str, Form(max_length=2000)] = "",
    is_senior: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    values = {"capacity": capacity, "skills": skills, "is_senior": is_senior}
    ws = ctx.principal.workspace_id
    try:
        with ctx.db.transaction() as session:
            member, changes = ws_service.update_member(
                session,
                ctx.principal,
                member_id,
                capacity=_capacity_field(capacity),
                skills=_skills_field(skills),
                is_senior=bool(is_senior),
            )
            assignment.member_settings_changed(session, ws, member, changes)
    except (Invalid, Conflict, Forbidden) as exc:
        page: HTMLResponse = _admin_page(
            ctx,
            "members",
            exc.status_code,
            member_error=exc,
            member_error_id=member_id,
            form_values=values,
        )
        return page
    return _back("members")


@router.post("/ui/availability")
def my_availability(ctx: Ctx, availability: Annotated[str, Form(max_length=10)] = "") -> Response:
    """Going away or offline hands this member's open conversations on; coming online takes
    waiting ones (the same service as PUT /api/v1/me/availability)."""
    with ctx.db.transaction() as session:
        assignment.set_availability(
            session, ctx.principal.workspace_id, ctx.principal.member_id, availability
        )
    ref = urlsplit(ctx.request.headers.get("referer", ""))
    back = safe_next((ref.path + (f"?{ref.query}" if ref.query else "")) or "/inbox")
    if ctx.is_htmx:
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    return RedirectResponse(back, status_code=303)
