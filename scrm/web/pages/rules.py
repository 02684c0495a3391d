"""Admin → Rules: the routing/automation rules as a form builder (no JSON), their order, and a
dry run that shows which rules a sample message would fire.

Everything goes through ``scrm.automation.service``: a rule the service refuses is shown again
in the form with the service's reason (4xx), and nothing is stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from scrm.automation import engine
from scrm.automation import service as automation
from scrm.conversation import service as conversation_service
from scrm.errors import AppError, Conflict, Invalid
from scrm.models import AutomationRule
from scrm.web import deps, rules_form
from scrm.web.deps import AdminCtx, WebContext
from scrm.web.pages.inbox import INTENTS, SENTIMENTS
from scrm.workspace import service as workspace_service

router = APIRouter(prefix="/admin/rules")
CHANNELS = ("wechat", "weibo", "webhook", "wecom")


def _names(session: Session, ws: int) -> rules_form.Names:
    return rules_form.Names(
        teams={t.key: t.name for t in workspace_service.list_teams(session, ws)},
        members={str(m.id): m.display_name for m in workspace_service.list_members(session, ws)},
        canned={c.key: c.title for c in workspace_service.list_canned_replies(session, ws)},
    )


def _list_page(
    ctx: WebContext,
    *,
    status_code: int = 200,
    error: AppError | None = None,
    dry: dict[str, Any] | None = None,
) -> HTMLResponse:
    ws = ctx.principal.workspace_id
    with ctx.db.transaction(readonly=True) as session:
        rules = automation.list_rules(session, ws)
        names = _names(session, ws)
    t = ctx.t
    rows = [
        {
            "rule": r,
            "conditions": rules_form.describe_conditions(t, r.conditions),
            "actions": [rules_form.describe_action(t, a, names) for a in r.actions or []],
        }
        for r in rules
    ]
    return deps.page(
        ctx,
        "admin/rules.html",
        status_code,
        section="rules",
        rows=rows,
        error=error,
        dry=dry or {"sample": {}},
        events=engine.RULE_EVENTS,
        channels=CHANNELS,
        intents=INTENTS,
        sentiments=SENTIMENTS,
    )


def _form_page(
    ctx: WebContext,
    draft: rules_form.Draft,
    rule: AutomationRule | None,
    *,
    status_code: int = 200,
    error: AppError | None = None,
) -> HTMLResponse:
    ws = ctx.principal.workspace_id
    with ctx.db.transaction(readonly=True) as session:
        teams = workspace_service.list_teams(session, ws)
        members = workspace_service.list_members(session, ws)
        canned = workspace_service.list_canned_replies(session, ws)
        labels = conversation_service.labels_in_use(session, ws)
    suggestions = {
        **rules_form.SUGGESTIONS,
        "team": tuple(t.key for t in teams),
        "outcome.team": tuple(t.key for t in teams),
        "labels": tuple(labels),
    }
    return deps.page(
        ctx,
        "admin/rule_form.html",
        status_code,
        section="rules",
        draft=draft,
        rule=rule,
        error=error,
        error_field=(error.field or "") if error else "",
        events=engine.RULE_EVENTS,
        groups=rules_form.GROUPS,
        field_groups=rules_form.FIELD_GROUPS,
        all_ops=rules_form.ALL_OPS,
        op_kinds=rules_form.OP_KINDS,
        attr_field=rules_form.ATTR_FIELD,
        no_value_ops=rules_form.NO_VALUE_OPS,
        suggestions=suggestions,
        action_params=rules_form.ACTION_PARAMS,
        priorities=engine.PRIORITIES,
        team_options=[(t.key, t.name) for t in teams],
        member_options=[(str(m.id), m.display_name) for m in members],
        canned_options=[(c.key, c.title) for c in canned],
        blank_condition=rules_form.CondRow("all", "text", "contains_any"),
        blank_action={"type": "route"},
        value_text=rules_form.value_text,
        form_field=rules_form.form_field,
        field_kind=rules_form.field_kind,
        kept_params=rules_form.kept_params,
    )


def _get_rule(ctx: WebContext, rule_id: int) -> AutomationRule:
    with ctx.db.transaction(readonly=True) as session:
        return automation.get_rule(session, ctx.principal.workspace_id, rule_id)  # 404 elsewhere


async def _form_items(request: Request) -> list[tuple[str, str]]:
    form = await request.form()
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


def _save(ctx: WebContext, items: list[tuple[str, str]], rule_id: int | None) -> Response:
    rule = _get_rule(ctx, rule_id) if rule_id is not None else None
    draft = rules_form.parse_form(items)
    try:
        data = draft.rule_data()
        with ctx.db.transaction() as session:
            automation.save_rule(
                session, ctx.principal.workspace_id, data, rule_id=rule_id, actor_id=ctx.principal.member_id
            )
    except (Invalid, Conflict) as exc:
        return _form_page(ctx, draft, rule, status_code=exc.status_code, error=exc)
    return RedirectResponse("/admin/rules?saved=1", status_code=303)


@router.get("")
def rules_page(ctx: AdminCtx) -> HTMLResponse:
    return _list_page(ctx)


@router.get("/new")
def new_rule(ctx: AdminCtx) -> HTMLResponse:
    draft = rules_form.Draft(
        conditions=[rules_form.CondRow("all", "text", "contains_any")], actions=[{"type": "route"}]
    )
    return _form_page(ctx, draft, None)


@router.post("")
async def create_rule(ctx: AdminCtx) -> Response:
    items = await _form_items(ctx.request)
    return await run_in_threadpool(_save, ctx, items, None)


@router.post("/dry-run")
def dry_run(
    ctx: AdminCtx,
    text: Annotated[str, Form(max_length=20000)] = "",
    event: Annotated[str, Form(max_length=40)] = "message.received",
    channel: Annotated[str, Form(max_length=20)] = "",
    visibility: Annotated[str, Form(max_length=10)] = "",
    intent: Annotated[str, Form(max_length=40)] = "",
    sentiment: Annotated[str, Form(max_length=10)] = "",
    business_hours: Annotated[str, Form(max_length=5)] = "",
) -> HTMLResponse:
    if visibility not in ("", "public", "private"):
        raise Invalid("visibility must be public or private", field="visibility")
    if business_hours not in ("", "yes", "no"):
        raise Invalid("business_hours must be yes or no", field="business_hours")
    triage = {k: v for k, v in (("intent", intent), ("sentiment", sentiment)) if v}
    sample: dict[str, Any] = {
        "text": text,
        "event": event or "message.received",
        "channel": channel or None,
        "visibility": visibility or None,
        "triage": triage or None,
        "business_hours": None if not business_hours else business_hours == "yes",
    }
    ws = ctx.principal.workspace_id
    with ctx.db.transaction(readonly=True) as session:
        hits = automation.dry_run(session, ws, sample)  # Invalid (422) for an unknown event
        names = _names(session, ws)
    dry = {
        "sample": {**sample, "intent": intent, "sentiment": sentiment, "business_hours": business_hours},
        "ran": True,
        "hits": [
            {**h, "described": [rules_form.describe_action(ctx.t, a, names) for a in h["actions"]]}
            for h in hits
        ],
    }
    if ctx.is_htmx:
        return deps.page(ctx, "partials/dry_run.html", dry=dry)
    return _list_page(ctx, dry=dry)


@router.get("/{rule_id}")
def edit_rule(ctx: AdminCtx, rule_id: int) -> HTMLResponse:
    rule = _get_rule(ctx, rule_id)
    return _form_page(ctx, rules_form.draft_of(rule), rule)


@router.post("/{rule_id}")
async def update_rule(ctx: AdminCtx, rule_id: int) -> Response:
    items = await _form_items(ctx.request)
    return await run_in_threadpool(_save, ctx, items, rule_id)


@router.post("/{rule_id}/delete")
def delete_rule(ctx: AdminCtx, rule_id: int) -> RedirectResponse:
    with ctx.db.transaction() as session:
        automation.delete_rule(session, ctx.principal.workspace_id, rule_id, actor_id=ctx.principal.member_id)
    return RedirectResponse("/admin/rules?saved=1", status_code=303)


@router.post("/{rule_id}/toggle")
def toggle_rule(ctx: AdminCtx, rule_id: int) -> Response:
    ws = ctx.principal.workspace_id
    try:
        with ctx.db.transaction() as session:
            rule = automation.get_rule(session, ws, rule_id)
            automation.save_rule(
                session,
                ws,
                {"name": rule.name, "enabled": not rule.enabled},
                rule_id=rule_id,
                actor_id=ctx.principal.member_id,
            )
    except (Invalid, Conflict) as exc:  # e.g. enabling it would close a loop of rules
        return _list_page(ctx, status_code=exc.status_code, error=exc)
    return RedirectResponse("/admin/rules?saved=1", status_code=303)


@router.post("/{rule_id}/move")
def move_rule(ctx: AdminCtx, rule_id: int, direction: Annotated[str, Form(max_length=4)]) -> Response:
    """Swap the rule with its neighbour among the rules of the same event; positions are
    renumbered 10, 20, 30… so rules that shared a position get a definite order."""
    if direction not in ("up", "down"):
        raise Invalid("direction must be up or down", field="direction")
    ws = ctx.principal.workspace_id
    try:
        with ctx.db.transaction() as session:
            rule = automation.get_rule(session, ws, rule_id)
            peers = [r for r in automation.list_rules(session, ws) if r.event == rule.event]
            i = next(k for k, r in enumerate(peers) if r.id == rule.id)
            j = i - 1 if direction == "up" else i + 1
            if 0 <= j < len(peers):
                peers[i], peers[j] = peers[j], peers[i]
                wanted = [
                    (r.id, r.name, (k + 1) * 10) for k, r in enumerate(peers) if r.position != (k + 1) * 10
                ]
                for rid, name, position in wanted:
                    automation.save_rule(
                        session,
                        ws,
                        {"name": name, "position": position},
                        rule_id=rid,
                        actor_id=ctx.principal.member_id,
                    )
    except (Invalid, Conflict) as exc:
        return _list_page(ctx, status_code=exc.status_code, error=exc)
    return RedirectResponse("/admin/rules?saved=1", status_code=303)
