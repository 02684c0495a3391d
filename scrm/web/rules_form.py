"""The rule form builder: what the form offers, how its rows become a rule, and how a rule is
shown back (in the form, in the rule list and in the dry-run result).

The form posts one flat list of fields. Each condition row starts with ``cond_group`` and each
action row with ``act_type``; the fields that follow (up to the next row marker) belong to that
row, so rows keep the order they have on the page and need no index. Values are converted with
the rule language's field types (``scrm.automation.engine``); whatever is still wrong is left for
the rule service to refuse with its reason, which the form then shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scrm.automation import engine
from scrm.errors import Invalid

GROUPS = ("all", "any", "none")
ATTR_FIELD = engine.ATTR_PREFIX  # "contact.attributes." + a name the admin types
LIST_OPS = frozenset(
    {"contains_any", "contains_all", "not_contains_any", "has_any", "has_all", "has_none", "in", "not_in"}
)
NO_VALUE_OPS = frozenset({"present", "absent", "empty"})
NUMBER_OPS = frozenset({"gt", "gte", "lt", "lte"})
_SPLIT = re.compile(r"[\n,，、;；]+")
MAX_ROWS = 60  # a little above the engine's limits, so the engine's own message is shown
MAX_VALUE = 20000

# Field groups in the field picker (every field of the rule language, in this order).
FIELD_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "message",
        (
            "text",
            "text_length",
            "language",
            "channel",
            "channel_account",
            "visibility",
            "message_kind",
            "msg_type",
        ),
    ),
    ("triage", ("intent", "sentiment", "emotion", "urgency", "is_spam", "triaged", "entities")),
    ("conversation", ("labels", "priority", "status", "team", "assigned", "business_hours")),
    ("event", ("scene", "menu_key", "sla.metric", "outcome.team", "labels.added", "labels.removed")),
    (
        "contact",
        ("contact.tier", "contact.vip", "contact.followers", "contact.tags", "contact.city", ATTR_FIELD),
    ),
)
assert {f for _g, fs in FIELD_GROUPS for f in fs} == {*engine.FIELDS, ATTR_FIELD}

# Suggested values for a field (a <datalist> next to the value input).
SUGGESTIONS: dict[str, tuple[str, ...]] = {
    "language": ("zh", "en", "und"),
    "channel": ("wechat", "weibo", "webhook", "wecom"),
    "visibility": ("public", "private"),
    "message_kind": ("message", "mention", "comment"),
    "msg_type": ("text", "image", "voice", "video", "location", "link", "event"),
    "intent": (
        "complaint",
        "inquiry",
        "lost_item",
        "after_sales",
        "praise",
        "purchase_intent",
        "spam",
        "other",
    ),
    "sentiment": ("neg", "neutral", "pos"),
    "priority": engine.PRIORITIES,
    "status": ("open", "pending", "resolved"),
    "entities": ("flight_no", "order_no", "phone", "seat", "date", "time", "place", "product", "amount_fen"),
    "sla.metric": ("first_response", "next_response", "resolution"),
}

# Action parameters as the form edits them: (param, widget). Widgets: team, member, canned,
# priority, visibility, task_kind, bool (select: default / yes / no), text, textarea, list,
# number, url. Parameters the form does not edit (reply msg_type/payload) are kept as they are.
ACTION_PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "route": (("team", "team"),),
    "assign": (("member", "member"), ("skills", "list")),
    "set_priority": (("priority", "priority"),),
    "label": (("labels", "list"),),
    "reply": (
        ("text", "textarea"),
        ("canned", "canned"),
        ("visibility", "visibility"),
        ("await_fan", "bool"),
    ),
    "note": (("text", "textarea"),),
    "create_task": (("kind", "task_kind"), ("team", "team"), ("title", "text"), ("due_in_minutes", "number")),
    "escalate": (("priority", "priority"), ("notify_supervisors", "bool"), ("reassign", "bool")),
    "notify": (("url", "url"), ("note", "text")),
    "close_spam": (),
    "lookup_booking": (("not_found_text", "textarea"), ("visibility", "visibility"), ("await_fan", "bool")),
    "nearest_store": (
        ("text", "textarea"),
        ("no_location_text", "textarea"),
        ("no_store_text", "textarea"),
        ("max_distance_km", "number"),
        ("visibility", "visibility"),
        ("await_fan", "bool"),
    ),
}
assert set(ACTION_PARAMS) == set(engine.ACTION_FIELDS)
ACTION_TYPES = tuple(ACTION_PARAMS)


def field_kind(name: str) -> str:
    """The field's value type (str, num, bool, list, text, any); "str" for an unknown field."""
    if name == ATTR_FIELD:
        return "any"
    return engine.field_type(name) or "str"


def ops_for(kind: str) -> tuple[str, ...]:
    return engine.ANY_OPS if kind == "any" else engine.OPS.get(kind, engine.OPS[engine.STR])


ALL_OPS: tuple[str, ...] = tuple(dict.fromkeys(op for k in (*engine.OPS, "any") for op in ops_for(k)))
# For each operator, the field kinds it applies to (the page hides the others).
OP_KINDS: dict[str, str] = {
    op: " ".join(k for k in (*engine.OPS, "any") if op in ops_for(k)) for op in ALL_OPS
}


# -- form → rule ---------------------------------------------------------------------------------
@dataclass
class CondRow:
    group: str
    field: str
    op: str
    value: Any = None  # as stored in the rule (list, number, bool, str) or None


@dataclass
class Draft:
    """What the admin entered, converted as far as it goes (re-shown when the save is refused)."""

    name: str = ""
    description: str = ""
    event: str = "message.received"
    position: str = "100"
    enabled: bool = True
    stop: bool = False
    conditions: list[CondRow] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    error: Invalid | None = None  # what the form itself could not read

    def rule_data(self) -> dict[str, Any]:
        """The dict the rule service saves (raises Invalid for what the form could not read)."""
        if self.error is not None:
            raise self.error
        try:
            position = int(self.position.strip())
        except ValueError:
            raise Invalid("position must be a whole number", field="position") from None
        conditions: dict[str, list[dict[str, Any]]] = {}
        for row in self.conditions:
            cond: dict[str, Any] = {"field": row.field, "op": row.op}
            if row.value is not None:
                cond["value"] = row.value
            conditions.setdefault(row.group, []).append(cond)
        return {
            "name": self.name,
            "description": self.description,
            "event": self.event,
            "position": position,
            "enabled": self.enabled,
            "stop": self.stop,
            "conditions": conditions,
            "actions": self.actions,
        }

    def rows_by_group(self) -> list[tuple[str, CondRow]]:
        """Rows in stored order (all, any, none) with their place name, e.g. conditions.any[1]."""
        out: list[tuple[str, CondRow]] = []
        for group in GROUPS:
            rows = [r for r in self.conditions if r.group == group]
            out += [(f"conditions.{group}[{i}]", r) for i, r in enumerate(rows)]
        out += [(f"conditions.{r.group}", r) for r in self.conditions if r.group not in GROUPS]
        return out


def _number(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text  # left as text: the rule service says it needs a number


def split_values(text: str) -> list[str]:
    return [v.strip() for v in _SPLIT.split(text) if v.strip()]


def condition_value(name: str, op: str, raw: str, flag: str) -> Any:
    """The stored value of one condition from the form's text (None: no value)."""
    kind = field_kind(name)
    raw = raw.strip()
    if op in NO_VALUE_OPS:
        return None
    if op == "is":
        return flag != "false"
    if op in LIST_OPS:
        values = split_values(raw)
        if kind == engine.NUM:
            return [_number(v) for v in values] or None
        return values or None
    if not raw:
        return None
    if kind == engine.NUM or (kind == "any" and op in NUMBER_OPS):
        return _number(raw)
    return raw


def _rows(items: Iterable[tuple[str, str]], marker: str, prefix: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for key, value in items:
        if key == marker:
            if len(rows) >= MAX_ROWS:  # the rule service refuses it with its own limit
                break
            current = {}
            rows.append(current)
        if current is not None and key.startswith(prefix):
            current.setdefault(key, value[:MAX_VALUE])
    return rows


def parse_form(items: list[tuple[str, str]]) -> Draft:
    """The form's fields, in page order, as a Draft (never raises on odd values)."""
    top: dict[str, str] = {}
    for key, value in items:
        top.setdefault(key, value)
    draft = Draft(
        name=top.get("name", "").strip()[:200],
        description=top.get("description", "").strip()[:2000],
        event=top.get("event", "message.received")[:40],
        position=top.get("position", "100")[:20],
        enabled=bool(top.get("enabled")),
        stop=bool(top.get("stop")),
    )
    for row in _rows(items, "cond_group", "cond_"):
        name = row.get("cond_field", "")[:200]
        if name == ATTR_FIELD:
            name = ATTR_FIELD + row.get("cond_attr", "").strip()[:100]
        op = row.get("cond_op", "")[:20]
        value = condition_value(name, op, row.get("cond_value", ""), row.get("cond_flag", ""))
        draft.conditions.append(CondRow(row.get("cond_group", "all")[:10], name, op, value))
    for i, row in enumerate(_rows(items, "act_type", "act_")):
        try:
            draft.actions.append(action_from_row(row))
        except Invalid as exc:
            draft.error = draft.error or Invalid(f"actions[{i}]: {exc.message}", field=f"actions[{i}]")
            draft.actions.append(action_from_row({**row, "act_keep": ""}))
    return draft


def action_from_row(row: dict[str, str]) -> dict[str, Any]:
    kind = row.get("act_type", "")[:40]
    action: dict[str, Any] = {"type": kind}
    keep = row.get("act_keep", "").strip()
    if keep:
        try:
            kept = json.loads(keep)
        except ValueError:
            raise Invalid("kept action parameters are not valid JSON", field="actions") from None
        if not isinstance(kept, dict):
            raise Invalid("kept action parameters must be an object", field="actions")
        action.update({str(k): v for k, v in kept.items() if k != "type"})
    for param, widget in ACTION_PARAMS.get(kind, ()):
        raw = row.get(f"act_{kind}.{param}", "").strip()
        if not raw:
            continue
        if widget == "list":
            action[param] = split_values(raw)
        elif widget == "number":
            action[param] = _number(raw)
        elif widget == "bool":
            action[param] = raw == "yes"
        else:
            action[param] = raw
    return action


def kept_params(action: dict[str, Any]) -> str:
    """Parameters of an action that the form does not edit, as JSON for a hidden field."""
    edited = {p for p, _w in ACTION_PARAMS.get(str(action.get("type")), ())} | {"type"}
    rest = {k: v for k, v in action.items() if k not in edited}
    return json.dumps(rest, ensure_ascii=False) if rest else ""


def draft_of(rule: Any) -> Draft:
    """A saved rule (AutomationRule) as a Draft, for the edit form."""
    rows = [
        CondRow(group, str(c.get("field", "")), str(c.get("op", "")), c.get("value"))
        for group in GROUPS
        for c in (rule.conditions or {}).get(group, [])
        if isinstance(c, dict)
    ]
    return Draft(
        name=rule.name,
        description=rule.description or "",
        event=rule.event,
        position=str(rule.position),
        enabled=rule.enabled,
        stop=rule.stop,
        conditions=rows,
        actions=[dict(a) for a in rule.actions or [] if isinstance(a, dict)],
    )


# -- rule → text ---------------------------------------------------------------------------------
def value_text(value: Any) -> str:
    """A stored value as the form shows it: lists comma-separated, booleans yes/no."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def form_field(name: str) -> tuple[str, str]:
    """(picker value, attribute name) of a condition's field."""
    if name.startswith(ATTR_FIELD):
        return ATTR_FIELD, name[len(ATTR_FIELD) :]
    return name, ""


@dataclass
class Names:
    """Display names of what rules refer to by key or id."""

    teams: dict[str, str] = field(default_factory=dict)  # key → name
    members: dict[str, str] = field(default_factory=dict)  # id → name
    canned: dict[str, str] = field(default_factory=dict)  # key → title


def describe_condition(t: Any, cond: dict[str, Any] | CondRow) -> str:
    if isinstance(cond, CondRow):
        name, op, value = cond.field, cond.op, cond.value
    else:
        name, op, value = str(cond.get("field", "")), str(cond.get("op", "")), cond.get("value")
    label = field_label(t, name)
    text = f"{label} {t('op.' + op)}"
    if op == "is":
        return f"{text} {t('rules.yes') if value else t('rules.no')}"
    if value is None or op in NO_VALUE_OPS:
        return text
    values = value if isinstance(value, list) else [value]
    return f"{text} {t('rules.sep').join(value_label(t, name, v) for v in values)}"


# Fields whose values have a label in the catalogue (intent "lost_item" → 失物).
VALUE_LABELS = {
    "intent": "intent.",
    "sentiment": "sentiment.",
    "priority": "priority.",
    "status": "status.",
    "channel": "channel.",
    "visibility": "rules.visibility.",
}


def value_label(t: Any, name: str, value: Any) -> str:
    prefix = VALUE_LABELS.get(name)
    if prefix and str(value) in SUGGESTIONS.get(name, ()):
        return str(t(prefix + str(value)))
    return str(value)


def field_label(t: Any, name: str) -> str:
    if name.startswith(ATTR_FIELD) and name != ATTR_FIELD:
        return f"{t('rf.' + ATTR_FIELD)} {name[len(ATTR_FIELD) :]}"
    return str(t("rf." + name))


def describe_action(t: Any, action: dict[str, Any], names: Names) -> str:
    kind = str(action.get("type", ""))
    parts: list[str] = []
    for param, widget in ACTION_PARAMS.get(kind, ()):
        if param not in action:
            continue
        value = action[param]
        if widget == "team":
            shown = names.teams.get(str(value), str(value))
        elif widget == "member":
            shown = names.members.get(str(value), str(value))
        elif widget == "canned":
            shown = names.canned.get(str(value), str(value))
        elif widget == "priority":
            shown = t(f"priority.{value}")
        elif widget == "bool":
            shown = t("rules.yes") if value else t("rules.no")
        elif widget in ("visibility", "task_kind"):
            shown = t(f"rules.{widget}.{value}")
        else:
            shown = value_text(value)
            if len(shown) > 80:
                shown = shown[:80] + "…"
        parts.append(f"{t('rp.' + param)}: {shown}")
    head = str(t("ra." + kind))
    return f"{head} · {'; '.join(parts)}" if parts else head


def describe_conditions(t: Any, conditions: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """[(group label, [condition text, ...]), ...] for the groups that have conditions."""
    out: list[tuple[str, list[str]]] = []
    for group in GROUPS:
        items = [c for c in (conditions or {}).get(group, []) if isinstance(c, dict)]
        if items:
            out.append((str(t("rules.group." + group)), [describe_condition(t, c) for c in items]))
    return out
