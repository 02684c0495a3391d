"""What a fired rule does. Each action works through the owning domain's service."""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrm import events
from scrm.casework import service as casework
from scrm.contact import service as contact_service
from scrm.conversation import assignment
from scrm.conversation import service as conversation_service
from scrm.kit.time import as_utc, to_local, utcnow
from scrm.models import ChannelAccount, Contact, Conversation, Message
from scrm.outbox import service as outbox
from scrm.sla import service as sla
from scrm.store import service as store_service
from scrm.worker.service import enqueue
from scrm.workspace import service as workspace

log = logging.getLogger(__name__)

# Loop protection against another bot answering ours: at most this many automatic replies per
# conversation in the window.
BOT_REPLY_LIMIT = 3
BOT_REPLY_WINDOW = dt.timedelta(minutes=10)
_VAR = re.compile(r"\{\{\s*([a-z_.]+)\s*\}\}")


class ActionSkipped(Exception):
    """The action could not apply here (recorded on the firing, not an error)."""


@dataclass
class ActionContext:
    session: Session
    workspace_id: int
    event: str
    trigger_key: str
    rule_id: int
    rule_name: str
    conversation: Conversation | None
    contact: Contact | None
    account: ChannelAccount | None
    recipient: str | None  # the fan's external id, for events without a conversation
    facts: dict[str, Any] = field(default_factory=dict)
    depth: int = 0
    message: Message | None = None  # the fan's latest message, if the trigger knows it


def render(template: str, values: dict[str, Any]) -> str:
    return _VAR.sub(lambda m: str(values.get(m.group(1), "") or ""), template)


def template_values(ctx: ActionContext) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if ctx.contact is not None:
        values["contact.name"] = ctx.contact.name
    triage = ctx.facts.get("triage") or {}
    for e in triage.get("entities") or []:
        if isinstance(e, dict) and e.get("type"):
            values.setdefault(f"entity.{e['type']}", e.get("value"))
    for k, v in (ctx.facts.get("booking") or {}).items():
        values[f"booking.{k}"] = v
    return values


def _bot_replies_recently(session: Session, conv: Conversation) -> int:
    since = utcnow() - BOT_REPLY_WINDOW
    return int(
        session.execute(
            select(func.count()).where(
                Message.workspace_id == conv.workspace_id,
                Message.conversation_id == conv.id,
                Message.sender_type == "bot",
                Message.created_at >= since,
            )
        ).scalar_one()
    )


def _send(
    ctx: ActionContext, text: str, *, kind: str, payload: dict[str, Any], visibility: str | None
) -> dict[str, Any]:
    key = f"rule:{ctx.rule_id}:{ctx.trigger_key}"[:200]
    conv = ctx.conversation
    passive = ctx.facts.get("passive_reply") or {}
    if passive.get("rule_id") == str(ctx.rule_id):
        # Already delivered in the response to the platform's push (scrm.automation.passive).
        if conv is None:
            return {"passive": True}
        msg = conversation_service.send_reply(
            ctx.session,
            conv,
            str(passive.get("text") or text),
            sender_type="bot",
            visibility="private",
            delivered=True,
        )
        return {"message_id": str(msg.id), "passive": True}
    if conv is not None:
        if _bot_replies_recently(ctx.session, conv) >= BOT_REPLY_LIMIT:
            raise ActionSkipped("loop protection: too many automatic replies in this conversation")
        msg = conversation_service.send_reply(
            ctx.session,
            conv,
            text or kind,
            sender_type="bot",
            kind=kind,
            payload=payload,
            visibility=visibility,
            idempotency_key=key,
            reply_to=ctx.message,
        )
        return {"message_id": str(msg.id)}
    if ctx.account is None or not ctx.recipient:
        raise ActionSkipped("no conversation and no recipient to reply to")
    outbox_id = outbox.queue(
        ctx.session,
        ctx.workspace_id,
        channel_account_id=ctx.account.id,
        idempotency_key=key,
        payload={
            "recipient": ctx.recipient,
            "text": text,
            "msg_type": kind,
            "visibility": "private",
            "thread_key": "",
            "reply_to_external_id": None,
            "payload": payload,
        },
    )
    return {"outbox_id": str(outbox_id)}


def _need_conv(ctx: ActionContext) -> Conversation:
    if ctx.conversation is None:
        raise ActionSkipped("this event has no conversation")
    return ctx.conversation


def run_action(ctx: ActionContext, action: dict[str, Any]) -> dict[str, Any]:
    """Apply one action; returns what it did (for the audit record)."""
    kind = action["type"]
    s = ctx.session
    who = f"rule:{ctx.rule_name}"
    if kind == "route":
        conv = _need_conv(ctx)
        team = workspace.get_team_by_key(s, ctx.workspace_id, action["team"])
        if conv.team_id != team.id:
            conv.team_id = team.id
            conversation_service.record_activity(
                s, conv, "routed", None, team_id=str(team.id), team=team.key, by=who
            )
            events.emit(
                s,
                ctx.workspace_id,
                "conversation.routed",
                {"conversation_id": str(conv.id), "team_id": str(team.id), "team": team.key},
            )
        out: dict[str, Any] = {"team": team.key}
        if team.kind in ("department", "partner"):
            task = casework.create_task(
                s, conv, kind="department", team=team, created_by=who, facts=ctx.facts
            )
            out["task_id"] = str(task.id)
        return out
    if kind == "assign":
        # Skills are kept on the conversation (every later assignment honours them); a named
        # member takes it only if online, under capacity and skilled, else it is assigned
        # automatically (or waits in the queue). See assignment.assign_by_rule.
        conv = _need_conv(ctx)
        member_id: int | None = None
        if action.get("member"):
            try:
                member_id = int(str(action["member"]))
            except ValueError:
                member_id = 0  # no member has id 0: refused as no_such_member
        done = assignment.assign_by_rule(
            s,
            conv,
            reason=who,
            member_id=member_id,
            skills=action.get("skills") or [],
            contact=ctx.contact,
        )
        if "member" in done:
            done["member"] = str(action["member"])
        return done
    if kind == "set_priority":
        conv = _need_conv(ctx)
        if conv.priority != action["priority"]:
            conv.priority = action["priority"]
            conversation_service.record_activity(s, conv, "priority", None, priority=conv.priority, by=who)
        return {"priority": conv.priority}
    if kind == "label":
        conv = _need_conv(ctx)
        return {"labels": _add_labels(ctx, conv, action["labels"])}
    if kind == "reply":
        text = action.get("text", "")
        if action.get("canned"):
            canned = {c.key: c for c in workspace.list_canned_replies(s, ctx.workspace_id)}.get(
                action["canned"]
            )
            if canned is None:
                raise ActionSkipped(f"canned reply {action['canned']!r} no longer exists")
            text = canned.body
        text = render(text, template_values(ctx))
        sent = _send(
            ctx,
            text,
            kind=action.get("msg_type", "text"),
            payload=action.get("payload") or {},
            visibility=action.get("visibility"),
        )
        return sent | _await_fan(ctx, action)
    if kind == "note":
        conv = _need_conv(ctx)
        note = Message(
            workspace_id=conv.workspace_id,
            conversation_id=conv.id,
            direction="internal",
            sender_type="system",
            kind="note",
            text=render(action["text"], template_values(ctx)),
            media=[],
            visibility="private",
            status="note",
            triage={},
            extra={"rule": ctx.rule_name},
        )
        s.add(note)
        s.flush()
        conversation_service.record_activity(s, conv, "note", None, message_id=str(note.id), by=who)
        return {"message_id": str(note.id)}
    if kind == "create_task":
        conv = _need_conv(ctx)
        task_team = (
            workspace.get_team_by_key(s, ctx.workspace_id, action["team"]) if action.get("team") else None
        )
        due = utcnow() + dt.timedelta(minutes=int(action.get("due_in_minutes", 60)))
        task = casework.create_task(
            s,
            conv,
            kind=action.get("kind", "follow_up"),
            team=task_team,
            title=action.get("title", ""),
            due_at=due,
            created_by=who,
            facts=ctx.facts,
        )
        return {"task_id": str(task.id)}
    if kind == "escalate":
        conv = _need_conv(ctx)
        priority = action.get("priority", "urgent")
        if conv.priority != priority:
            conv.priority = priority
            conversation_service.record_activity(s, conv, "priority", None, priority=priority, by=who)
        if action.get("notify_supervisors", True):
            sla.notify_supervisors(
                s, conv, f"{who} on {ctx.event}", key=f"rule:{ctx.rule_id}:{ctx.trigger_key}"
            )
        if action.get("reassign"):
            assignment.reassign(s, conv, reason="escalation")
        return {"priority": priority}
    if kind == "notify":
        body = {
            "event": ctx.event,
            "rule": ctx.rule_name,
            "conversation_id": str(ctx.conversation.id) if ctx.conversation else None,
            "note": action.get("note", ""),
        }
        enqueue(
            s,
            ctx.workspace_id,
            "automation.notify",
            {"url": action["url"], "body": body},
            idempotency_key=f"notify:{ctx.rule_id}:{ctx.trigger_key}"[:200],
        )
        return {"url": action["url"]}
    if kind == "close_spam":
        conv = _need_conv(ctx)
        _add_labels(ctx, conv, ["spam"])
        if conv.status != "resolved":
            conversation_service.set_status(s, conv, "resolved", None)
        return {"status": "resolved"}
    if kind == "lookup_booking":
        out = _lookup_booking(ctx, action)
        return out | (_await_fan(ctx, action) if out.get("found") else {})
    if kind == "nearest_store":
        out = _nearest_store(ctx, action)
        return out | (_await_fan(ctx, action) if out.get("found") else {})
    raise ActionSkipped(f"unknown action {kind!r}")  # validation makes this unreachable


def _await_fan(ctx: ActionContext, action: dict[str, Any]) -> dict[str, Any]:
    """Self-service: the bot's answer may be all the fan needed, so the conversation waits on the
    fan (pending: no human queue, SLA clocks paused) instead of on an agent. It only applies while
    no human has answered; the fan's next message reopens the conversation and resumes the clocks."""
    conv = ctx.conversation
    if not action.get("await_fan") or conv is None or conv.status != "open" or conv.first_response_at:
        return {}
    conversation_service.set_status(ctx.session, conv, "pending", None)
    return {"status": "pending"}


def _add_labels(ctx: ActionContext, conv: Conversation, labels: list[str]) -> list[str]:
    new = sorted(set(conv.labels or []) | {lbl.strip()[:40] for lbl in labels})
    if new != sorted(conv.labels or []):
        added = sorted(set(new) - set(conv.labels or []))
        conv.labels = new
        conversation_service.record_activity(
            ctx.session, conv, "labeled", None, added=added, by=f"rule:{ctx.rule_name}"
        )
        events.emit(
            ctx.session,
            ctx.workspace_id,
            "conversation.labeled",
            {"conversation_id": str(conv.id), "added": added, "removed": [], "depth": ctx.depth + 1},
        )
    return new


def _lookup_booking(ctx: ActionContext, action: dict[str, Any]) -> dict[str, Any]:
    """Menu service: the fan's next (or latest) flight from the imported bookings."""
    if ctx.contact is None:
        raise ActionSkipped("unknown fan")
    now = utcnow()
    best: tuple[int, float, dict[str, Any]] | None = None
    for order in contact_service.orders(ctx.session, ctx.workspace_id, ctx.contact.id, limit=50):
        d = order.details or {}
        if not d.get("flight_no"):
            continue
        try:
            depart = as_utc(dt.datetime.fromisoformat(str(d.get("depart_at"))))
        except ValueError:
            continue
        ahead = depart >= now - dt.timedelta(hours=6)
        # upcoming flights first (soonest), then the most recent past one
        rank = (
            0 if ahead else 1,
            abs((depart - now).total_seconds()),
            {**d, "depart": depart, "status": order.status},
        )
        if best is None or rank[:2] < best[:2]:
            best = rank
    if best is None:
        text = action.get("not_found_text") or "没有找到您的航班预订。请回复订单号，客服会尽快为您查询。"
        return _send(ctx, text, kind="text", payload={}, visibility=action.get("visibility")) | {
            "found": False
        }
    d = best[2]
    local = to_local(d["depart"])
    status = d.get("flight_status") or d.get("status") or "计划"
    text = (
        f"您的航班 {d['flight_no']}：{d.get('origin', '')} → {d.get('destination', '')}，"
        f"计划 {local:%m月%d日 %H:%M} 起飞，状态：{status}。"
    )
    ctx.facts["booking"] = {k: v for k, v in d.items() if isinstance(v, str)}
    return _send(ctx, text, kind="text", payload={}, visibility=action.get("visibility")) | {
        "found": True,
        "flight_no": d["flight_no"],
    }


NEAREST_STORE_TEXT = (
    "离您最近的门店：{{store.name}}（约 {{store.distance_km}} 公里）\n"
    "地址：{{store.address}}\n营业时间：{{store.hours}}"
)
NO_LOCATION_TEXT = "请点击输入框旁的“+”，选择“位置”把您的位置发给我们，马上为您查找最近的门店。"
NO_STORE_TEXT = "抱歉，您附近暂时没有我们的门店。"


def _nearest_store(ctx: ActionContext, action: dict[str, Any]) -> dict[str, Any]:
    """The store nearest to the fan's last shared location (a location message or report), or
    a request to share one."""
    if ctx.contact is None:
        raise ActionSkipped("unknown fan")
    visibility = action.get("visibility")
    values = template_values(ctx)
    where = contact_service.last_location(ctx.contact)
    if where is None:
        text = render(action.get("no_location_text") or NO_LOCATION_TEXT, values)
        return _send(ctx, text, kind="text", payload={}, visibility=visibility) | {
            "found": False,
            "reason": "no_location",
        }
    km = action.get("max_distance_km")
    found = store_service.nearest(
        ctx.session, ctx.workspace_id, where.lat, where.lng, max_km=float(km) if km else None
    )
    if found is None:
        text = render(action.get("no_store_text") or NO_STORE_TEXT, values)
        return _send(ctx, text, kind="text", payload={}, visibility=visibility) | {
            "found": False,
            "reason": "no_store",
        }
    store = found.store
    facts = {
        "code": store.code,
        "name": store.name,
        "address": store.address,
        "hours": store.hours,
        "city": store.city,
        "phone": store.phone,
        "distance_km": f"{found.distance_km:.1f}",
    }
    ctx.facts["store"] = facts
    values.update({f"store.{k}": v for k, v in facts.items()})
    text = render(action.get("text") or NEAREST_STORE_TEXT, values)
    return _send(ctx, text, kind="text", payload={}, visibility=visibility) | {
        "found": True,
        "store": store.code,
        "distance_km": facts["distance_km"],
    }
