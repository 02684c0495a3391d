"""The rule language and its evaluator: pure functions, no database.

A rule is `event` → `conditions` → `actions`. Conditions are three lists, all optional::

    {"all": [cond, ...], "any": [cond, ...], "none": [cond, ...]}
    cond = {"field": "text", "op": "contains_any", "value": ["落在", "遗失"]}

Every keyword of every rule goes into one Aho-Corasick automaton, so a message's text is
scanned once whatever the number of rules; a rule whose `all` list needs a keyword is not even
looked at unless one of its keywords occurred. Validation happens here too, so a bad rule is
refused when it is saved, never discovered at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

# -- the catalogue -------------------------------------------------------------------------------
RULE_EVENTS = (
    "message.received",
    "conversation.created",
    "conversation.reopened",
    "conversation.labeled",
    "conversation.triaged",
    "sla.warning",
    "sla.breached",
    "outcome.recorded",
    "contact.subscribed",
    "contact.unsubscribed",
    "contact.scanned",
    "contact.menu_clicked",
)

STR, NUM, BOOL, LIST, TEXT = "str", "num", "bool", "list", "text"
FIELDS: dict[str, str] = {
    "text": TEXT,
    "text_length": NUM,
    "language": STR,
    "channel": STR,  # wechat, weibo, webhook, wecom
    "channel_account": STR,  # channel account id
    "visibility": STR,  # public, private
    "message_kind": STR,  # message, mention, comment
    "msg_type": STR,  # text, image, voice, ...
    "intent": STR,
    "sentiment": STR,
    "emotion": STR,
    "urgency": NUM,
    "is_spam": BOOL,
    "triaged": BOOL,
    "entities": LIST,  # entity types present: flight_no, order_no, phone, seat, ...
    "labels": LIST,
    "priority": STR,
    "status": STR,
    "team": STR,  # team key the conversation is routed to
    "assigned": BOOL,
    "scene": STR,  # QR scene
    "menu_key": STR,
    "business_hours": BOOL,
    "contact.tier": STR,
    "contact.vip": BOOL,
    "contact.followers": NUM,
    "contact.tags": LIST,
    "contact.city": STR,
    "sla.metric": STR,  # on sla.warning / sla.breached
    "outcome.team": STR,  # on outcome.recorded
    "labels.added": LIST,  # on conversation.labeled: the labels this change added
    "labels.removed": LIST,  # on conversation.labeled: the labels this change removed
}
ATTR_PREFIX = "contact.attributes."

OPS: dict[str, tuple[str, ...]] = {
    TEXT: ("contains_any", "contains_all", "not_contains_any", "matches", "not_matches", "eq", "empty"),
    STR: ("eq", "ne", "in", "not_in", "present", "absent", "matches"),
    NUM: ("eq", "ne", "gt", "gte", "lt", "lte", "present", "absent"),
    BOOL: ("is",),
    LIST: ("has", "has_any", "has_all", "has_none", "empty"),
}
ANY_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "present", "absent", "is")

PRIORITIES = ("low", "normal", "high", "urgent")
ACTION_FIELDS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    # name: {param: (type, required)}
    "route": {"team": (str, True)},
    "assign": {"member": (str, False), "skills": (list, False)},
    "set_priority": {"priority": (str, True)},
    "label": {"labels": (list, True)},
    "reply": {
        "text": (str, False),
        "canned": (str, False),
        "msg_type": (str, False),
        "payload": (dict, False),
        "visibility": (str, False),
        "await_fan": (bool, False),
    },
    "note": {"text": (str, True)},
    "create_task": {
        "kind": (str, False),
        "team": (str, False),
        "title": (str, False),
        "due_in_minutes": (int, False),
    },
    "escalate": {"priority": (str, False), "notify_supervisors": (bool, False), "reassign": (bool, False)},
    "notify": {"url": (str, True), "note": (str, False)},
    "close_spam": {},
    "lookup_booking": {
        "not_found_text": (str, False),
        "visibility": (str, False),
        "await_fan": (bool, False),
    },
    "nearest_store": {
        "text": (str, False),
        "no_location_text": (str, False),
        "no_store_text": (str, False),
        "max_distance_km": (int, False),
        "visibility": (str, False),
        "await_fan": (bool, False),
    },
}
# Which rule events an action can cause (for cycle detection). Every other action causes no
# event that a rule listens to (routed, assigned, task.created, message.sent, resolved are not
# rule events), so this table is the whole graph of rule chains.
ACTION_EMITS: dict[str, tuple[str, ...]] = {
    "label": ("conversation.labeled",),
    "close_spam": ("conversation.labeled",),
}
# Actions that make no sense without a conversation (subscribe / menu-click events may have none).
REPLY_ACTIONS = frozenset({"reply", "lookup_booking", "nearest_store"})
MAX_CONDITIONS = 50
MAX_ACTIONS = 20
MAX_KEYWORDS = 500
# A chain of rules (a rule's action causes an event another rule fires on, ...) holds at most
# this many rules; the run-time depth cap (scrm.automation.service.MAX_DEPTH) is one less.
MAX_CHAIN = 4

# What a reply can send: msg_type → payload parameters {name: (type, required)}. Every type
# also takes "kf_account" (WeChat: the customer-service account to send as).
REPLY_TYPES: dict[str, dict[str, tuple[type, bool]]] = {
    "text": {},
    "image": {"media_id": (str, True)},
    "voice": {"media_id": (str, True)},
    "mpnews": {"media_id": (str, True)},
    "video": {
        "media_id": (str, True),
        "thumb_media_id": (str, False),
        "title": (str, False),
        "description": (str, False),
    },
    "news": {"articles": (list, True)},
    "music": {
        "title": (str, True),
        "music_url": (str, True),
        "hq_music_url": (str, False),
        "description": (str, False),
        "thumb_media_id": (str, False),
    },
}
ARTICLE_KEYS = ("title", "description", "url", "picurl")
MAX_ARTICLES = 8
# Which message types each channel's client can deliver (scrm/channels/*/client.py): a reply of
# another type would only fail at delivery, so a rule that can fire on such a channel is refused.
# WeCom accounts only answer passively (text); the webhook channel forwards any payload.
CHANNEL_REPLY_TYPES: dict[str, frozenset[str]] = {
    "wechat": frozenset({"text", "image", "voice", "video", "music", "news", "mpnews"}),
    "weibo": frozenset({"text"}),
    "wecom": frozenset({"text"}),
    "webhook": frozenset(REPLY_TYPES),
}
CHANNELS = tuple(CHANNEL_REPLY_TYPES)
# Placeholders a reply or note may use (rendered by scrm.automation.actions.render).
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
PLACEHOLDER_NAME = re.compile(r"^(contact\.name|entity\.[a-z_]+|booking\.[a-z_]+)$")
# What the nearest_store reply's text may name about the store it found.
STORE_FIELDS = ("name", "address", "hours", "distance_km", "city", "phone", "code")
STORE_PLACEHOLDER = re.compile(r"^store\.(" + "|".join(STORE_FIELDS) + r")$")
MAX_STORE_DISTANCE_KM = 20_000  # half the Earth's circumference: anything is nearer
_URL = re.compile(r"^https?://[^\s/]+\S*$")


class RuleError(ValueError):
    """A rule that cannot be saved; `where` names the offending part."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.reason = message


@dataclass(frozen=True)
class RuleSpec:
    id: int
    name: str
    event: str
    position: int
    stop: bool
    conditions: dict[str, Any]
    actions: list[dict[str, Any]]


# -- validation ----------------------------------------------------------------------------------
def field_type(name: str) -> str | None:
    if name.startswith(ATTR_PREFIX) and len(name) > len(ATTR_PREFIX):
        return "any"
    return FIELDS.get(name)


def validate_conditions(conditions: Any) -> None:
    if not isinstance(conditions, dict):
        raise RuleError("conditions must be an object with all/any/none lists", "conditions")
    unknown = set(conditions) - {"all", "any", "none"}
    if unknown:
        raise RuleError(f"unknown key {sorted(unknown)[0]!r} (use all, any, none)", "conditions")
    total = 0
    for group, items in conditions.items():
        if not isinstance(items, list):
            raise RuleError("must be a list of conditions", f"conditions.{group}")
        total += len(items)
        for i, cond in enumerate(items):
            _validate_condition(cond, f"conditions.{group}[{i}]")
    if total > MAX_CONDITIONS:
        raise RuleError(f"at most {MAX_CONDITIONS} conditions", "conditions")


def _validate_condition(cond: Any, where: str) -> None:
    if not isinstance(cond, dict):
        raise RuleError("a condition is an object {field, op, value}", where)
    extra = set(cond) - {"field", "op", "value"}
    if extra:
        raise RuleError(f"unknown key {sorted(extra)[0]!r}", where)
    name, op = cond.get("field"), cond.get("op")
    if not isinstance(name, str) or not name:
        raise RuleError("field is required", where)
    kind = field_type(name)
    if kind is None:
        raise RuleError(f"unknown field {name!r}", where)
    allowed = ANY_OPS if kind == "any" else OPS[kind]
    if op not in allowed:
        raise RuleError(f"op {op!r} does not apply to field {name!r} (use {', '.join(allowed)})", where)
    value = cond.get("value")
    if op in ("present", "absent", "empty"):
        return
    if op in (
        "contains_any",
        "contains_all",
        "not_contains_any",
        "has_any",
        "has_all",
        "has_none",
        "in",
        "not_in",
    ):
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str | int | float) for v in value)
        ):
            raise RuleError(f"op {op!r} needs a non-empty list of words or values", where)
        if op.startswith(("contains", "not_contains")):
            if any(not str(v).strip() for v in value):
                raise RuleError("keywords must not be blank", where)
            if len(value) > MAX_KEYWORDS:
                raise RuleError(f"at most {MAX_KEYWORDS} keywords per condition", where)
        _known_values(name, value, where)
        return
    if op in ("matches", "not_matches"):
        if not isinstance(value, str) or not value:
            raise RuleError("op 'matches' needs a regular expression", where)
        if len(value) > 500:
            raise RuleError("regular expression longer than 500 characters", where)
        try:
            re.compile(value)
        except re.error as exc:
            raise RuleError(f"bad regular expression: {exc}", where) from None
        return
    if op == "is":
        if not isinstance(value, bool):
            raise RuleError("op 'is' needs true or false", where)
        return
    if kind == NUM and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise RuleError(f"op {op!r} on {name!r} needs a number", where)
    if kind in (STR, TEXT) and not isinstance(value, str):
        raise RuleError(f"op {op!r} on {name!r} needs a string", where)
    if op in ("eq", "ne"):
        _known_values(name, [value], where)
    if kind == LIST and not isinstance(value, str):
        raise RuleError(f"op {op!r} on {name!r} needs a string", where)
    if value is None:
        raise RuleError("value is required", where)


def _known_values(name: str, values: list[Any], where: str) -> None:
    """Fields with a closed set of values: a value outside it would never match."""
    known = {"channel": CHANNELS, "priority": PRIORITIES}.get(name)
    if known is None:
        return
    for v in values:
        if str(v).lower() not in known:
            raise RuleError(f"{name} {v!r} does not exist (use {', '.join(known)})", where)


def validate_actions(
    actions: Any, event: str, conditions: Any = None, account_kinds: dict[str, str] | None = None
) -> None:
    """Every action and every parameter, with the reason and the place of the first problem.
    `conditions` and `account_kinds` (channel account id → channel kind) let a reply's message
    type be checked against the channels the rule can fire on."""
    if not isinstance(actions, list) or not actions:
        raise RuleError("a rule needs at least one action", "actions")
    if len(actions) > MAX_ACTIONS:
        raise RuleError(f"at most {MAX_ACTIONS} actions", "actions")
    for i, action in enumerate(actions):
        where = f"actions[{i}]"
        if not isinstance(action, dict):
            raise RuleError("an action is an object {type, ...}", where)
        kind = action.get("type")
        if kind not in ACTION_FIELDS:
            raise RuleError(f"unknown action type {kind!r} (use {', '.join(ACTION_FIELDS)})", where)
        params = ACTION_FIELDS[kind]
        extra = set(action) - set(params) - {"type"}
        if extra:
            raise RuleError(f"unknown parameter {sorted(extra)[0]!r} for {kind}", where)
        for name, (typ, required) in params.items():
            if name not in action:
                if required:
                    raise RuleError(f"{kind} needs {name!r}", where)
                continue
            value = action[name]
            if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
                raise RuleError(f"{name!r} has the wrong type ({_type_name(typ)} expected)", where)
        _validate_action_values(kind, action, where)
        if kind == "reply":
            _validate_reply_channels(action, conditions, account_kinds, where)


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _type_name(typ: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "a whole number", bool: "true or false", list: "a list", dict: "an object"}
    return names.get(typ, "another type") if isinstance(typ, type) else "another type"


def _text(action: dict[str, Any], name: str, where: str, *, limit: int, blank_ok: bool = False) -> None:
    value = action.get(name)
    if value is None:
        return
    if not blank_ok and not value.strip():
        raise RuleError(f"{name!r} must not be blank", where)
    if len(value) > limit:
        raise RuleError(f"{name!r} longer than {limit} characters", where)


def _placeholders(text: str, name: str, where: str, *, store: bool = False) -> None:
    for m in PLACEHOLDER.finditer(text):
        inner = m.group(1).strip()
        if PLACEHOLDER_NAME.match(inner) or (store and STORE_PLACEHOLDER.match(inner)):
            continue
        if store:
            raise RuleError(
                f"unknown placeholder {{{{{inner}}}}} in {name!r} (use {{{{contact.name}}}} or"
                f" {', '.join('{{store.' + f + '}}' for f in STORE_FIELDS)})",
                where,
            )
        raise RuleError(
            f"unknown placeholder {{{{{inner}}}}} in {name!r}"
            " (use {{contact.name}}, {{entity.<type>}} or {{booking.<field>}})",
            where,
        )


def _http_url(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 2000 and _URL.match(value) is not None


def _validate_payload(msg_type: str, payload: dict[str, Any], where: str) -> None:
    spec = REPLY_TYPES[msg_type]
    extra = set(payload) - set(spec) - {"kf_account"}
    if extra:
        allowed = ", ".join([*spec, "kf_account"])
        raise RuleError(f"payload of {_a(msg_type)} reply has no {sorted(extra)[0]!r} (use {allowed})", where)
    if "kf_account" in payload and (not isinstance(payload["kf_account"], str) or not payload["kf_account"]):
        raise RuleError("payload.kf_account must be a customer-service account name", where)
    for name, (typ, required) in spec.items():
        if name not in payload:
            if required:
                raise RuleError(f"{_a(msg_type)} reply needs payload.{name}", where)
            continue
        value: Any = payload[name]
        if not isinstance(value, typ) or (isinstance(value, str) and not value.strip()):
            raise RuleError(f"payload.{name} must be {_type_name(typ)}, not blank", where)
        if isinstance(value, str) and len(value) > 2000:
            raise RuleError(f"payload.{name} longer than 2000 characters", where)
        if name.endswith("_url") and not _http_url(value):
            raise RuleError(f"payload.{name} must be an http(s) URL", where)
    if msg_type == "news":
        articles = payload["articles"]
        if not 1 <= len(articles) <= MAX_ARTICLES:
            raise RuleError(f"a news reply holds 1 to {MAX_ARTICLES} articles", where)
        for j, article in enumerate(articles):
            at = f"payload.articles[{j}]"
            if not isinstance(article, dict):
                raise RuleError(f"{at} must be an object {{title, description, url, picurl}}", where)
            extra = set(article) - set(ARTICLE_KEYS)
            if extra:
                raise RuleError(f"{at} has no {sorted(extra)[0]!r} (use {', '.join(ARTICLE_KEYS)})", where)
            if not isinstance(article.get("title"), str) or not article["title"].strip():
                raise RuleError(f"{at} needs a title", where)
            for key in ("description", "url", "picurl"):
                if key in article and not isinstance(article[key], str):
                    raise RuleError(f"{at}.{key} must be a string", where)
            for key in ("url", "picurl"):
                if key in article and not _http_url(article[key]):
                    raise RuleError(f"{at}.{key} must be an http(s) URL", where)


def _validate_action_values(kind: str, action: dict[str, Any], where: str) -> None:
    if kind == "route":
        _text(action, "team", where, limit=64)
    if kind == "set_priority" and action["priority"] not in PRIORITIES:
        raise RuleError(f"priority must be one of {', '.join(PRIORITIES)}", where)
    if kind == "escalate" and action.get("priority", "urgent") not in PRIORITIES:
        raise RuleError(f"priority must be one of {', '.join(PRIORITIES)}", where)
    if kind == "label":
        labels = action["labels"]
        if not labels or not all(isinstance(x, str) and x.strip() and len(x) <= 40 for x in labels):
            raise RuleError("labels must be 1-40 characters each", where)
        if len(labels) > 20:
            raise RuleError("at most 20 labels", where)
    if kind in ("reply", "lookup_booking", "nearest_store") and action.get("visibility", "private") not in (
        "public",
        "private",
    ):
        raise RuleError("visibility must be public or private", where)
    if kind == "reply":
        msg_type = action.get("msg_type", "text")
        if msg_type not in REPLY_TYPES:
            raise RuleError(
                f"msg_type {msg_type!r} is not a reply type (use {', '.join(REPLY_TYPES)})", where
            )
        payload = action.get("payload") or {}
        _text(action, "text", where, limit=2000, blank_ok=True)
        _placeholders(action.get("text", ""), "text", where)
        if msg_type == "text":
            if not action.get("text", "").strip() and not action.get("canned"):
                raise RuleError("a text reply needs text or canned (a canned reply key)", where)
        elif action.get("canned"):
            raise RuleError(f"canned replies are text: {_a(msg_type)} reply cannot use one", where)
        _validate_payload(msg_type, payload, where)
        if msg_type != "text" and action.get("visibility") == "public":
            raise RuleError("public replies (comment replies) are text only", where)
    if kind == "note":
        _text(action, "text", where, limit=2000)
        _placeholders(action["text"], "text", where)
    if kind == "create_task":
        if action.get("kind", "follow_up") not in ("follow_up", "department"):
            raise RuleError("task kind must be follow_up or department", where)
        if action.get("kind") == "department" and not action.get("team"):
            raise RuleError("a department task needs a team", where)
        if not 1 <= action.get("due_in_minutes", 60) <= 60 * 24 * 30:
            raise RuleError("due_in_minutes must be between 1 and 43200", where)
        _text(action, "title", where, limit=200)
        _text(action, "team", where, limit=64)
    if kind == "notify":
        if not _http_url(action["url"]):
            raise RuleError("url must be an http(s) URL (at most 2000 characters)", where)
        _text(action, "note", where, limit=500, blank_ok=True)
    if kind == "assign":
        member = action.get("member")
        if member is not None and not member.strip().isdigit():
            raise RuleError("member must be a member id", where)
        skills = action.get("skills", [])
        if not all(isinstance(x, str) and x.strip() and len(x) <= 40 for x in skills) or len(skills) > 20:
            raise RuleError("skills must be up to 20 names of 1-40 characters", where)
    if kind == "lookup_booking":
        _text(action, "not_found_text", where, limit=2000)
        _placeholders(action.get("not_found_text", ""), "not_found_text", where)
    if kind == "nearest_store":
        for name in ("text", "no_location_text", "no_store_text"):
            _text(action, name, where, limit=2000)
        _placeholders(action.get("text", ""), "text", where, store=True)
        for name in ("no_location_text", "no_store_text"):
            _placeholders(action.get(name, ""), name, where)
        km = action.get("max_distance_km")
        if km is not None and not 1 <= km <= MAX_STORE_DISTANCE_KM:
            raise RuleError(f"max_distance_km must be between 1 and {MAX_STORE_DISTANCE_KM}", where)


def rule_channels(conditions: Any, account_kinds: dict[str, str] | None = None) -> set[str]:
    """The channels a rule can fire on, as far as its `all` conditions on channel and
    channel_account say (other groups may or may not match, so they do not narrow it)."""
    possible = set(CHANNELS)
    items = conditions.get("all", []) if isinstance(conditions, dict) else []
    for cond in items:
        if not isinstance(cond, dict):
            continue
        name, op, value = cond.get("field"), cond.get("op"), cond.get("value")
        values = [value] if op in ("eq", "ne") else value if op in ("in", "not_in") else None
        if not isinstance(values, list):
            continue
        if name == "channel":
            kinds = {str(v).lower() for v in values}
        elif name == "channel_account" and account_kinds is not None:
            kinds = {account_kinds[str(v)] for v in values if str(v) in account_kinds}
            if op in ("ne", "not_in"):
                continue  # other accounts of the same kind remain possible
        else:
            continue
        possible = possible & kinds if op in ("eq", "in") else possible - kinds
    return possible


def _validate_reply_channels(
    action: dict[str, Any], conditions: Any, account_kinds: dict[str, str] | None, where: str
) -> None:
    msg_type = action.get("msg_type", "text")
    if msg_type == "text":
        return
    can = sorted(k for k, types in CHANNEL_REPLY_TYPES.items() if msg_type in types)
    cannot = sorted(
        k for k in rule_channels(conditions, account_kinds) if msg_type not in CHANNEL_REPLY_TYPES[k]
    )
    if cannot:
        raise RuleError(
            f"{_a(msg_type)} reply cannot be sent on {', '.join(cannot)}: add the condition"
            f" channel in [{', '.join(can)}] (channels that can send it)",
            where,
        )


def validate_rule(
    event: str, conditions: Any, actions: Any, account_kinds: dict[str, str] | None = None
) -> None:
    if event not in RULE_EVENTS:
        raise RuleError(f"unknown event {event!r} (use {', '.join(RULE_EVENTS)})", "event")
    validate_conditions(conditions)
    validate_actions(actions, event, conditions, account_kinds)


# -- rule chains ---------------------------------------------------------------------------------
def _added_labels(action: dict[str, Any]) -> set[str] | None:
    """The labels a labelling action can add (lower-case), None for other actions."""
    if action.get("type") == "label":
        return {str(x).strip()[:40].lower() for x in action.get("labels") or []}
    if action.get("type") == "close_spam":
        return {"spam"}
    return None


def _can_follow(action: dict[str, Any], nxt: RuleSpec) -> bool:
    """Whether the event `action` causes can make `nxt` fire, judged from the conditions of
    nxt's `all` list on what the event itself carries (labels.added); anything else might match."""
    added = _added_labels(action)
    if added is None:
        return True
    for cond in nxt.conditions.get("all", []) if isinstance(nxt.conditions, dict) else []:
        if not isinstance(cond, dict) or cond.get("field") != "labels.added":
            continue
        op, value = cond.get("op"), cond.get("value")
        if op == "has" and str(value).lower() not in added:
            return False
        if op == "has_any" and isinstance(value, list) and not ({str(v).lower() for v in value} & added):
            return False
        if op == "has_all" and isinstance(value, list) and not ({str(v).lower() for v in value} <= added):
            return False
    return True


def _chain_graph(rules: Sequence[RuleSpec]) -> dict[int, list[RuleSpec]]:
    by_event: dict[str, list[RuleSpec]] = {}
    for r in rules:
        by_event.setdefault(r.event, []).append(r)
    graph: dict[int, list[RuleSpec]] = {}
    for r in rules:
        out: dict[int, RuleSpec] = {}
        for action in r.actions:
            for ev in ACTION_EMITS.get(str(action.get("type")), ()):
                for nxt in by_event.get(ev, ()):
                    if _can_follow(action, nxt):
                        out[nxt.id] = nxt
        graph[r.id] = list(out.values())
    return graph


def find_cycle(rules: Sequence[RuleSpec]) -> list[str] | None:
    """A chain of rule names that triggers itself (label → on-labeled → label ...), or None.

    An edge A → B exists when an action of A causes the event B is on and B's `labels.added`
    conditions can match the labels that action adds; other conditions are assumed to match."""
    graph = _chain_graph(rules)
    state: dict[int, int] = {}  # 1 = on the stack, 2 = done
    stack: list[RuleSpec] = []

    def visit(r: RuleSpec) -> list[str] | None:
        state[r.id] = 1
        stack.append(r)
        for nxt in graph[r.id]:
            if state.get(nxt.id) == 1:
                start = next(i for i, s in enumerate(stack) if s.id == nxt.id)
                return [s.name for s in stack[start:]] + [nxt.name]
            if nxt.id not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[r.id] = 2
        return None

    for r in rules:
        if r.id not in state:
            found = visit(r)
            if found:
                return found
    return None


def longest_chain(rules: Sequence[RuleSpec], through: int | None = None) -> list[str]:
    """The longest chain of rules that trigger one another (names, first to last), for a rule
    set without cycles (find_cycle first); with `through`, the longest one through that rule."""
    graph = _chain_graph(rules)
    back: dict[int, list[RuleSpec]] = {r.id: [] for r in rules}
    for r in rules:
        for n in graph[r.id]:
            back[n.id].append(r)
    ahead: dict[int, list[str]] = {}
    behind: dict[int, list[str]] = {}

    def forward(r: RuleSpec) -> list[str]:  # r and the longest chain after it
        if r.id not in ahead:
            ahead[r.id] = [r.name, *max((forward(n) for n in graph[r.id]), key=len, default=[])]
        return ahead[r.id]

    def backward(r: RuleSpec) -> list[str]:  # the longest chain before r, and r
        if r.id not in behind:
            behind[r.id] = [*max((backward(p) for p in back[r.id]), key=len, default=[]), r.name]
        return behind[r.id]

    if through is not None:
        hit = next((x for x in rules if x.id == through), None)
        return [*backward(hit), *forward(hit)[1:]] if hit is not None else []
    return max((forward(r) for r in rules), key=len, default=[])


# -- what a rule looks at ------------------------------------------------------------------------
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_language(text: str) -> str:
    if _CJK.search(text):
        return "zh"
    if _LATIN.search(text):
        return "en"
    return "und"


@dataclass
class Subject:
    """The facts one evaluation looks at (built from the pipeline context or a conversation)."""

    event: str
    text: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    business_hours: Callable[[], bool] | None = None

    def get(self, name: str) -> Any:
        if name == "text":
            return self.text
        if name == "text_length":
            return len(self.text)
        if name == "language":
            return self.values.get("language") or detect_language(self.text)
        if name == "business_hours":
            return self.business_hours() if self.business_hours else True
        return self.values.get(name)


# -- compiling -----------------------------------------------------------------------------------
Pred = Callable[[Subject, frozenset[int]], bool]


@dataclass
class CompiledRule:
    spec: RuleSpec
    all: list[Pred]
    any: list[Pred]
    none: list[Pred]
    # Keyword ids of which at least one must occur for the rule to match (None: no such need).
    required_keywords: frozenset[int] | None

    def matches(self, subject: Subject, hits: frozenset[int]) -> bool:
        if self.required_keywords is not None and not (self.required_keywords & hits):
            return False
        for p in self.all:
            if not p(subject, hits):
                return False
        if self.any and not any(p(subject, hits) for p in self.any):
            return False
        return not any(p(subject, hits) for p in self.none)


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "present":
        return actual is not None and actual != ""
    if op == "absent":
        return actual is None or actual == ""
    if actual is None:
        return op in ("ne", "not_in")
    if op == "is":
        return bool(actual) is expected
    if op == "eq":
        return bool(_norm(actual) == _norm(expected))
    if op == "ne":
        return bool(_norm(actual) != _norm(expected))
    if op == "in":
        return _norm(actual) in {_norm(v) for v in expected}
    if op == "not_in":
        return _norm(actual) not in {_norm(v) for v in expected}
    try:
        a, b = float(actual), float(expected)
    except (TypeError, ValueError):
        return False
    return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]


class _Keywords:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def add(self, words: Iterable[Any]) -> frozenset[int]:
        out = set()
        for w in words:
            key = str(w).strip().lower()
            out.add(self.ids.setdefault(key, len(self.ids)))
        return frozenset(out)


def _compile_condition(cond: dict[str, Any], kw: _Keywords) -> tuple[Pred, frozenset[int] | None]:
    """A predicate, and the keyword ids it needs (for contains_any / contains_all)."""
    name, op = cond["field"], cond["op"]
    value: Any = cond.get("value")
    if op in ("contains_any", "contains_all", "not_contains_any"):
        ids = kw.add(value)
        if op == "contains_any":
            return (lambda _s, hits: bool(ids & hits)), ids
        if op == "contains_all":
            return (lambda _s, hits: ids <= hits), ids
        return (lambda _s, hits: not (ids & hits)), None
    if op in ("matches", "not_matches"):
        rx = re.compile(value)
        want = op == "matches"
        return (lambda s, _h: (rx.search(str(s.get(name) or "")) is not None) is want), None
    if op == "empty":
        return (lambda s, _h: not s.get(name)), None
    if FIELDS.get(name) == LIST:
        if op == "has":
            v = _norm(value)
            return (lambda s, _h: v in {_norm(x) for x in s.get(name) or ()}), None
        vals = {_norm(x) for x in value}
        if op == "has_any":
            return (lambda s, _h: bool(vals & {_norm(x) for x in s.get(name) or ()})), None
        if op == "has_all":
            return (lambda s, _h: vals <= {_norm(x) for x in s.get(name) or ()}), None
        return (lambda s, _h: not (vals & {_norm(x) for x in s.get(name) or ()})), None
    if name == "text" and op == "eq":
        v = str(value).strip().lower()
        return (lambda s, _h: s.text.strip().lower() == v), None
    return (lambda s, _h: _compare(op, s.get(name), value)), None


class RuleSet:
    """Compiled rules of one workspace, by event, in position order."""

    def __init__(self, rules: Sequence[RuleSpec]) -> None:
        kw = _Keywords()
        self.by_event: dict[str, list[CompiledRule]] = {}
        for spec in sorted(rules, key=lambda r: (r.position, r.id)):
            conds = spec.conditions
            all_p: list[Pred] = []
            required: frozenset[int] | None = None
            for c in conds.get("all", []):
                pred, ids = _compile_condition(c, kw)
                all_p.append(pred)
                if ids is not None and required is None:
                    required = ids
            any_p = [_compile_condition(c, kw)[0] for c in conds.get("any", [])]
            none_p = [_compile_condition(c, kw)[0] for c in conds.get("none", [])]
            if required is None and conds.get("any"):
                # Every `any` branch needs a keyword: the rule can be skipped without one.
                needs = [_compile_condition(c, kw)[1] for c in conds["any"]]
                if all(n is not None for n in needs):
                    required = frozenset().union(*[n for n in needs if n is not None])
            self.by_event.setdefault(spec.event, []).append(
                CompiledRule(spec, all_p, any_p, none_p, required)
            )
        # Candidate index: rules that need a keyword are looked at only when one occurred.
        self._always: dict[str, list[int]] = {}
        self._by_keyword: dict[str, dict[int, list[int]]] = {}
        for event, compiled in self.by_event.items():
            always = self._always.setdefault(event, [])
            index = self._by_keyword.setdefault(event, {})
            for i, rule in enumerate(compiled):
                if rule.required_keywords is None:
                    always.append(i)
                else:
                    for k in rule.required_keywords:
                        index.setdefault(k, []).append(i)
        self.keyword_count = len(kw.ids)
        self._automaton: Any = None
        if kw.ids:
            automaton = ahocorasick.Automaton()
            for word, idx in kw.ids.items():
                automaton.add_word(word, idx)
            automaton.make_automaton()
            self._automaton = automaton

    def keyword_hits(self, text: str) -> frozenset[int]:
        if self._automaton is None or not text:
            return frozenset()
        return frozenset(idx for _end, idx in self._automaton.iter(text.lower()))

    def evaluate(self, subject: Subject) -> list[RuleSpec]:
        """The rules that fire, in order, honouring "stop after this rule"."""
        rules = self.by_event.get(subject.event)
        if not rules:
            return []
        hits = self.keyword_hits(subject.text)
        index = self._by_keyword[subject.event]
        candidates = set(self._always[subject.event])
        for k in hits:
            found = index.get(k)
            if found:
                candidates.update(found)
        fired: list[RuleSpec] = []
        for i in sorted(candidates):
            rule = rules[i]
            if rule.matches(subject, hits):
                fired.append(rule.spec)
                if rule.spec.stop:
                    break
        return fired
