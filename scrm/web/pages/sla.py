"""Admin → SLA: response-time policies (per workspace, team and priority) and business hours
per team (time zone, weekly hours, Chinese public holidays and swapped working days).

Everything is saved through ``scrm.sla.service``, which validates; a refused form is shown
again with the reason (4xx) and nothing is stored.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import chinese_calendar
from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from scrm.errors import AppError, Invalid, NotFound
from scrm.kit.time import to_local, utcnow
from scrm.models import SlaCalendar, SlaPolicy
from scrm.sla import service as sla_service
from scrm.sla.calendar import DAYS, KEYS, BusinessCalendar, CalendarError
from scrm.web import deps
from scrm.web.deps import AdminCtx, WebContext
from scrm.web.pages.inbox import PRIORITIES
from scrm.workspace import service as workspace_service

router = APIRouter(prefix="/admin/sla")
TIMEZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Tokyo",
    "Asia/Singapore",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "UTC",
)
HORIZON_DAYS = 60  # how far ahead the page lists public holidays and swapped working days
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*[-–~至]\s*(\d{1,2}):(\d{2})$")
_SEP = re.compile(r"[,，;；、\n]+")
HOLIDAY_KEYS = {h.value: h.name for h in chinese_calendar.Holiday}
DEFAULT_HOURS = {
    **{d: [["09:00", "18:00"]] for d in DAYS[:5]},
    "sat": [],
    "sun": [],
    "holiday": [],
}


# -- forms ---------------------------------------------------------------------------------------
@dataclass
class PolicyForm:
    name: str = ""
    team_id: str = ""
    priority: str = ""
    first_response_minutes: str = "10"
    next_response_minutes: str = "30"
    resolution_minutes: str = "1440"
    warn_before_minutes: str = "2"
    escalation: list[str] = field(default_factory=lambda: ["notify_supervisor"])
    editing: bool = False

    @classmethod
    def of(cls, p: SlaPolicy) -> PolicyForm:
        def text(v: int | None) -> str:
            return "" if v is None else str(v)

        return cls(
            name=p.name,
            team_id=text(p.team_id),
            priority=p.priority or "",
            first_response_minutes=text(p.first_response_minutes),
            next_response_minutes=text(p.next_response_minutes),
            resolution_minutes=text(p.resolution_minutes),
            warn_before_minutes=text(p.warn_before_minutes),
            escalation=[str(e.get("type")) for e in p.escalation or [] if isinstance(e, dict)],
            editing=True,
        )


@dataclass
class CalendarForm:
    team_id: str = ""
    timezone: str = "Asia/Shanghai"
    hours: dict[str, str] = field(default_factory=lambda: hours_text(DEFAULT_HOURS))
    cn_holidays: bool = True
    special_days: str = ""  # one "YYYY-MM-DD kind name" per line

    @classmethod
    def of(cls, c: SlaCalendar) -> CalendarForm:
        return cls(
            team_id=str(c.team_id) if c.team_id else "",
            timezone=c.timezone,
            hours=hours_text(c.hours),
            cn_holidays=c.cn_holidays,
            special_days=special_days_text(c.special_days or []),
        )


def special_days_text(days: list[dict[str, Any]]) -> str:
    return "\n".join(
        " ".join(x for x in (str(d.get("date", "")), str(d.get("kind", "")), str(d.get("name", ""))) if x)
        for d in days
    )


def parse_special_days(text: str) -> list[dict[str, str]]:
    """Form lines "2027-02-08 holiday 春节" → the service's list (which validates the values)."""
    out: list[dict[str, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split(maxsplit=2)
        if not parts:
            continue
        if len(parts) < 2:
            raise Invalid(f"special days, line {n}: date and kind (holiday or workday)", field="special_days")
        out.append(
            {"date": parts[0], "kind": parts[1], **({"name": parts[2].strip()} if len(parts) > 2 else {})}
        )
    return out


def hours_text(hours: dict[str, Any]) -> dict[str, str]:
    """{"mon": [["09:00", "12:00"], ...]} → {"mon": "09:00-12:00, 13:00-18:00"}; a missing
    "workday" stays missing (it then follows Monday)."""
    out: dict[str, str] = {}
    for key in KEYS:
        spans = hours.get(key) or []
        out[key] = ", ".join(f"{a}-{b}" for a, b in spans if isinstance(a, str) and isinstance(b, str))
    return out


def parse_spans(key: str, text: str) -> list[list[str]]:
    spans: list[list[str]] = []
    for part in _SEP.split(text):
        part = part.strip()
        if not part:
            continue
        m = _SPAN.match(part)
        if not m:
            raise Invalid(f"{key}: {part!r} is not a time range like 09:00-18:00", field=f"hours.{key}")
        h1, m1, h2, m2 = m.groups()
        spans.append([f"{int(h1):02d}:{m1}", f"{int(h2):02d}:{m2}"])
    return spans


def _minutes(value: str, name: str, *, blank: int | None) -> int | None:
    value = value.strip()
    if not value:
        return blank
    try:
        return int(value)
    except ValueError:
        raise Invalid(f"{name} must be a whole number of minutes", field=name) from None


def _team_id(session: Session, ws: int, value: str) -> int | None:
    if not value:
        return None
    try:
        team_id = int(value)
    except ValueError:
        raise Invalid("team must be a team id", field="team_id") from None
    return workspace_service.get_team(session, ws, team_id).id  # NotFound (404) elsewhere


# -- page ----------------------------------------------------------------------------------------
def _hours_label(t: Any, cal: BusinessCalendar, day: dt.date) -> str:
    spans = cal.intervals(day)
    if not spans:
        return str(t("sla.closed"))
    return ", ".join(
        f"{a // 3600:02d}:{a % 3600 // 60:02d}-{b // 3600:02d}:{b % 3600 // 60:02d}" for a, b in spans
    )


def special_days(today: dt.date, days: int = HORIZON_DAYS) -> list[tuple[dt.date, str, str]]:
    """Public holidays and swapped working days (调休) ahead: (date, "holiday"/"workday", name key)."""
    out: list[tuple[dt.date, str, str]] = []
    for i in range(days):
        day = today + dt.timedelta(days=i)
        try:
            on_holiday, name = chinese_calendar.get_holiday_detail(day)
            workday = chinese_calendar.is_workday(day)
        except NotImplementedError:  # a year the package does not know yet
            break
        if on_holiday and name:
            out.append((day, "holiday", HOLIDAY_KEYS.get(name, "other")))
        elif workday and day.weekday() >= 5:
            out.append((day, "workday", HOLIDAY_KEYS.get(name or "", "other")))
    return out


def _page(
    ctx: WebContext,
    *,
    policy_form: PolicyForm | None = None,
    calendar_form: CalendarForm | None = None,
    error: AppError | None = None,
    error_form: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    ws = ctx.principal.workspace_id
    t = ctx.t
    with ctx.db.transaction(readonly=True) as session:
        teams = workspace_service.list_teams(session, ws)
        policies = sla_service.list_policies(session, ws)
        calendars = sla_service.list_calendars(session, ws)
    team_names = {tm.id: tm.name for tm in teams}
    now = utcnow()
    today = to_local(now).date()
    cal_rows = []
    compiled: list[tuple[str, BusinessCalendar | None]] = []
    for c in sorted(calendars, key=lambda c: (c.team_id is not None, team_names.get(c.team_id or 0, ""))):
        scope = team_names.get(c.team_id, str(c.team_id)) if c.team_id else t("sla.whole_workspace")
        try:
            cal: BusinessCalendar | None = BusinessCalendar.from_config(c.timezone, c.hours, c.cn_holidays)
        except CalendarError:
            cal = None
        compiled.append((scope, cal))
        cal_rows.append(
            {
                "row": c,
                "scope": scope,
                "hours": hours_text(c.hours),
                "workday_follows_monday": "workday" not in c.hours,
                "open_now": cal.is_open(now) if cal else None,
                "next_open": cal.add(now, 0) if cal and not cal.is_open(now) else None,
                "offset": now.astimezone(cal.tz).strftime("%z") if cal else "",
            }
        )
    specials = [
        {
            "day": day,
            "weekday": DAYS[day.weekday()],
            "kind": kind,
            "name": name,
            "hours": [_hours_label(t, cal, day) if cal else "" for _scope, cal in compiled],
        }
        for day, kind, name in special_days(today)
    ]
    return deps.page(
        ctx,
        "admin/sla.html",
        status_code,
        section="sla",
        teams=teams,
        team_names=team_names,
        policies=sorted(policies, key=lambda p: (p.team_id is not None, p.priority is not None, p.name)),
        calendars=cal_rows,
        calendar_scopes=[scope for scope, _cal in compiled],
        specials=specials,
        policy_form=policy_form or PolicyForm(),
        calendar_form=calendar_form or CalendarForm(),
        error=error,
        error_form=error_form,
        error_field=(error.field or "") if error else "",
        coverage=sla_service.holiday_coverage(today),
        defaults=sla_service.DEFAULT_TARGETS,
        priorities=PRIORITIES,
        escalations=sla_service.ESCALATIONS,
        timezones=TIMEZONES,
        day_keys=KEYS,
        horizon=HORIZON_DAYS,
    )


def _find(items: list[Any], item_id: int | None, what: str) -> Any:
    for item in items:
        if item.id == item_id:
            return item
    raise NotFound(f"no such {what}")


@router.get("")
def sla_page(
    ctx: AdminCtx,
    policy: Annotated[int | None, Query()] = None,
    calendar: Annotated[int | None, Query()] = None,
) -> HTMLResponse:
    ws = ctx.principal.workspace_id
    policy_form = calendar_form = None
    with ctx.db.transaction(readonly=True) as session:
        if policy is not None:
            policy_form = PolicyForm.of(_find(sla_service.list_policies(session, ws), policy, "policy"))
        if calendar is not None:
            calendar_form = CalendarForm.of(
                _find(sla_service.list_calendars(session, ws), calendar, "calendar")
            )
    return _page(ctx, policy_form=policy_form, calendar_form=calendar_form)


@router.post("/policies")
def save_policy(
    ctx: AdminCtx,
    name: Annotated[str, Form(max_length=200)] = "",
    team_id: Annotated[str, Form(max_length=30)] = "",
    priority: Annotated[str, Form(max_length=10)] = "",
    first_response_minutes: Annotated[str, Form(max_length=10)] = "",
    next_response_minutes: Annotated[str, Form(max_length=10)] = "",
    resolution_minutes: Annotated[str, Form(max_length=10)] = "",
    warn_before_minutes: Annotated[str, Form(max_length=10)] = "",
    escalation: Annotated[list[str] | None, Form()] = None,
    editing: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    ws = ctx.principal.workspace_id
    form = PolicyForm(
        name.strip(),
        team_id,
        priority,
        first_response_minutes,
        next_response_minutes,
        resolution_minutes,
        warn_before_minutes,
        [e[:40] for e in (escalation or [])[:10]],
        editing=bool(editing),
    )
    try:
        if not form.name:
            raise Invalid("a policy needs a name", field="name")
        data = {
            "priority": priority or None,
            "first_response_minutes": _minutes(first_response_minutes, "first_response_minutes", blank=None),
            "next_response_minutes": _minutes(next_response_minutes, "next_response_minutes", blank=None),
            "resolution_minutes": _minutes(resolution_minutes, "resolution_minutes", blank=None),
            "warn_before_minutes": _minutes(warn_before_minutes, "warn_before_minutes", blank=0),
            "escalation": [{"type": e} for e in form.escalation],
        }
        with ctx.db.transaction() as session:
            data["team_id"] = _team_id(session, ws, team_id)
            sla_service.upsert_policy(session, ws, form.name, data)
    except Invalid as exc:
        return _page(ctx, policy_form=form, error=exc, error_form="policy", status_code=exc.status_code)
    return RedirectResponse("/admin/sla?saved=1", status_code=303)


@router.post("/policies/{policy_id}/delete")
def delete_policy(ctx: AdminCtx, policy_id: int) -> RedirectResponse:
    with ctx.db.transaction() as session:
        sla_service.delete_policy(session, ctx.principal.workspace_id, policy_id)  # 404 elsewhere
    return RedirectResponse("/admin/sla?saved=1", status_code=303)


@router.post("/calendars")
def save_calendar(
    ctx: AdminCtx,
    team_id: Annotated[str, Form(max_length=30)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "Asia/Shanghai",
    cn_holidays: Annotated[str, Form(max_length=5)] = "",
    mon: Annotated[str, Form(max_length=200)] = "",
    tue: Annotated[str, Form(max_length=200)] = "",
    wed: Annotated[str, Form(max_length=200)] = "",
    thu: Annotated[str, Form(max_length=200)] = "",
    fri: Annotated[str, Form(max_length=200)] = "",
    sat: Annotated[str, Form(max_length=200)] = "",
    sun: Annotated[str, Form(max_length=200)] = "",
    holiday: Annotated[str, Form(max_length=200)] = "",
    workday: Annotated[str, Form(max_length=200)] = "",
    special_days: Annotated[str, Form(max_length=20000)] = "",
) -> Response:
    ws = ctx.principal.workspace_id
    texts = {
        "mon": mon,
        "tue": tue,
        "wed": wed,
        "thu": thu,
        "fri": fri,
        "sat": sat,
        "sun": sun,
        "holiday": holiday,
        "workday": workday,
    }
    form = CalendarForm(team_id, timezone.strip(), texts, bool(cn_holidays), special_days)
    try:
        own_days = parse_special_days(special_days)
        hours = {
            key: parse_spans(key, text) for key, text in texts.items() if key != "workday" or text.strip()
        }
        with ctx.db.transaction() as session:
            sla_service.set_calendar(
                session,
                ws,
                _team_id(session, ws, team_id),
                timezone=form.timezone,
                hours=hours,
                cn_holidays=form.cn_holidays,
                special_days=own_days,
            )
    except Invalid as exc:
        return _page(ctx, calendar_form=form, error=exc, error_form="calendar", status_code=exc.status_code)
    return RedirectResponse("/admin/sla?saved=1", status_code=303)
