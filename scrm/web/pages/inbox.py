"""The inbox: views (Mine, Unassigned, My team, All, Mentions, SLA at risk), filters, search and
the list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from scrm.conversation import service as conversation_service
from scrm.errors import Invalid
from scrm.kit.time import UTC, utcnow
from scrm.models import ChannelAccount, Conversation
from scrm.sla import service as sla_service
from scrm.web import deps
from scrm.web.deps import Ctx, WebContext
from scrm.workspace import service as workspace_service

router = APIRouter()
PAGE_SIZE = 40
STATUSES = ("open", "pending", "resolved")
PRIORITIES = ("urgent", "high", "normal", "low")
SENTIMENTS = ("neg", "neutral", "pos")
INTENTS = ("complaint", "inquiry", "lost_item", "after_sales", "praise", "purchase_intent", "spam", "other")
FILTER_KEYS = ("status", "channel", "team", "agent", "intent", "sentiment", "label", "priority", "q")


@dataclass
class InboxQuery:
    view: str
    params: dict[str, str]

    @classmethod
    def from_request(cls, request: Request) -> InboxQuery:
        qp = request.query_params
        view = qp.get("view", "") or "mine"
        params = {k: qp.get(k, "").strip()[:100] for k in FILTER_KEYS if qp.get(k, "").strip()}
        return cls(view, params)

    def url(self, base: str = "/inbox", **override: str) -> str:
        data = {"view": self.view, **self.params, **override}
        return f"{base}?{urlencode({k: v for k, v in data.items() if v})}"

    def list_url(self, **override: str) -> str:
        return self.url("/ui/inbox/list", **override)


def _int(value: str | None, field: str) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise Invalid(f"{field} must be an id", field=field) from None


def view_filter(ctx: WebContext, view: str, params: dict[str, str]) -> conversation_service.InboxFilter:
    status = params.get("status", "")
    if status and status not in (*STATUSES, "all"):
        raise Invalid("unknown status", field="status")
    statuses: tuple[str, ...] = ("open", "pending") if not status else () if status == "all" else (status,)
    base: dict[str, Any] = {}
    if view == "mine":
        base["assignee_id"] = ctx.principal.member_id
    elif view == "unassigned":
        base["unassigned"] = True
    elif view in ("team", "department"):
        base["team_ids"] = tuple(ctx.team_ids)
    elif view == "mentions":
        base["visibility"] = "public"
    elif view not in ("all", "sla"):
        raise Invalid("unknown view", field="view")
    team = _int(params.get("team"), "team")
    if team is not None:
        base["team_ids"] = (team,) if base.get("team_ids") is None or team in base["team_ids"] else ()
    agent = params.get("agent", "")
    if agent == "none":
        base["unassigned"] = True
    elif agent and view != "mine":
        base["assignee_id"] = _int(agent, "agent")
    return conversation_service.InboxFilter(
        statuses=statuses,
        channel_account_id=_int(params.get("channel"), "channel"),
        intent=params.get("intent") or None,
        sentiment=params.get("sentiment") or None,
        label=params.get("label") or None,
        priority=params.get("priority") or None,
        query=params.get("q") or None,
        **base,
    )


def views_for(session: Session, ctx: WebContext) -> list[str]:
    views = ["mine", "unassigned", "team", "all"]
    if workspace_service.list_channel_accounts(session, ctx.principal.workspace_id, "weibo"):
        views.append("mentions")
    views.append("sla")  # SLA at risk: in the warning window or past due, soonest first
    return views


def _cursor(at: dt.datetime, conversation_id: int) -> str:
    return f"{int(at.timestamp() * 1_000_000)}_{conversation_id}"


def encode_cursor(conv: Conversation) -> str:
    return _cursor(conv.last_message_at, conv.id)


def decode_cursor(cursor: str) -> tuple[dt.datetime, int] | None:
    if not cursor:
        return None
    try:
        micros, cid = cursor.split("_", 1)
        return dt.datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC), int(cid)
    except ValueError:
        raise Invalid("bad cursor", field="cursor") from None


def list_data(session: Session, ctx: WebContext, q: InboxQuery, cursor: str = "") -> dict[str, Any]:
    f = view_filter(ctx, q.view, q.params)
    ws = ctx.principal.workspace_id
    risks: dict[int, sla_service.Risk] = {}
    if q.view == "sla":
        now = utcnow()
        after = decode_cursor(cursor)
        due_rows = sla_service.at_risk_page(session, ws, f, now, after=after, limit=PAGE_SIZE + 1)
        rows = [conv for conv, _due in due_rows]
        page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
        risks = sla_service.risks(session, ws, [c.id for c in page], now)
        next_cursor = _cursor(due_rows[PAGE_SIZE - 1][1], page[-1].id) if more and page else ""
    else:
        rows = conversation_service.inbox_page(
            session, ws, f, after=decode_cursor(cursor), limit=PAGE_SIZE + 1
        )
        page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
        next_cursor = encode_cursor(page[-1]) if more and page else ""
    return {
        "conversations": page,
        "contacts": conversation_service.contacts_for(session, ws, page),
        "accounts": {a.id: a for a in workspace_service.list_channel_accounts(session, ws)},
        "members": {m.id: m for m in workspace_service.list_members(session, ws)},
        "teams": {t.id: t for t in workspace_service.list_teams(session, ws)},
        "risks": risks,
        "next_url": q.list_url(cursor=next_cursor) if next_cursor else "",
        "q": q,
    }


def view_count(session: Session, ctx: WebContext, view: str) -> int:
    ws = ctx.principal.workspace_id
    if view == "sla":
        return sla_service.at_risk_count(session, ws, view_filter(ctx, view, {}), utcnow())
    return conversation_service.inbox_count(session, ws, view_filter(ctx, view, {}))


def sidebar_data(session: Session, ctx: WebContext, q: InboxQuery) -> dict[str, Any]:
    ws = ctx.principal.workspace_id
    views = views_for(session, ctx)
    counts = {v: view_count(session, ctx, v) for v in views}
    return {
        "views": views,
        "counts": counts,
        "channels": workspace_service.list_channel_accounts(session, ws),
        "team_list": workspace_service.list_teams(session, ws),
        "member_list": workspace_service.list_members(session, ws),
        "labels": conversation_service.labels_in_use(session, ws),
        "statuses": STATUSES,
        "priorities": PRIORITIES,
        "sentiments": SENTIMENTS,
        "intents": INTENTS,
    }


def channel_label(account: ChannelAccount | None, visibility: str) -> str:
    """The i18n key of a badge: a public Weibo comment is not a private message."""
    kind = account.kind if account else "unknown"
    if kind == "weibo":
        return "channel.weibo_public" if visibility == "public" else "channel.weibo_private"
    return f"channel.{kind}" if kind in ("wechat", "wecom", "webhook") else "channel.other"


deps.env.globals["channel_label"] = channel_label


def inbox_page(ctx: Ctx, selected: int | None = None, base_view: str = "") -> HTMLResponse:
    from scrm.web.pages.conversation import pane_data

    q = InboxQuery.from_request(ctx.request)
    if base_view:
        q.view = base_view if "view" not in ctx.request.query_params else q.view
    with ctx.db.transaction(readonly=True) as session:
        data = {**list_data(session, ctx, q), **sidebar_data(session, ctx, q)}
        pane = pane_data(session, ctx, selected) if selected is not None else None
    return deps.page(ctx, "inbox.html", pane=pane, selected=selected, **data)


@router.get("/inbox")
def inbox(ctx: Ctx, c: str = "") -> HTMLResponse:
    return inbox_page(ctx, _int(c, "c"))


@router.get("/c/{conversation_id}")
def conversation_page(ctx: Ctx, conversation_id: int) -> HTMLResponse:
    return inbox_page(ctx, conversation_id)


@router.get("/ui/inbox/list")
def inbox_list(ctx: Ctx, cursor: str = "") -> HTMLResponse:
    q = InboxQuery.from_request(ctx.request)
    with ctx.db.transaction(readonly=True) as session:
        data = list_data(session, ctx, q, cursor)
    template = "partials/conv_rows.html" if cursor else "partials/conv_list.html"
    return deps.page(ctx, template, **data)
