"""Custom menu rules (reference §1.5 ``menu/create``), checked before WeChat sees the menu.

WeChat answers a bad menu with one errcode (40016 … 40027) and no field name; checking here
gives the admin the exact path of the offending field ("button[1].sub_button[0].url").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

MAX_BUTTONS = 3
MAX_SUB_BUTTONS = 5
MAX_NAME_BYTES = 16  # top-level button; UTF-8 bytes (a Chinese character is 3)
MAX_SUB_NAME_BYTES = 60
MAX_KEY_BYTES = 128
MAX_URL_BYTES = 1024

# type → the fields it needs (besides name)
BUTTON_TYPES: dict[str, tuple[str, ...]] = {
    "click": ("key",),
    "view": ("url",),
    "scancode_push": ("key",),
    "scancode_waitmsg": ("key",),
    "pic_sysphoto": ("key",),
    "pic_photo_or_album": ("key",),
    "pic_weixin": ("key",),
    "location_select": ("key",),
    "media_id": ("media_id",),
    "view_limited": ("media_id",),
    "article_id": ("article_id",),
    "article_view_limited": ("article_id",),
    "miniprogram": ("url", "appid", "pagepath"),
}
_FIELDS = frozenset(
    {"type", "name", "key", "url", "media_id", "appid", "pagepath", "article_id", "sub_button"}
)
_MAX_FIELD_BYTES = {"key": MAX_KEY_BYTES, "url": MAX_URL_BYTES}


class MenuError(ValueError):
    """A menu WeChat would refuse; `path` names the field (e.g. ``button[0].sub_button[2].key``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


def validate_buttons(buttons: Any) -> list[dict[str, Any]]:
    """The menu's ``button`` list, checked and normalised (only known fields, strings kept)."""
    if not isinstance(buttons, Sequence) or isinstance(buttons, str | bytes):
        raise MenuError("button", "must be a list of buttons")
    if not 1 <= len(buttons) <= MAX_BUTTONS:
        raise MenuError("button", f"a menu has 1 to {MAX_BUTTONS} top-level buttons")
    return [_button(b, f"button[{i}]", top=True) for i, b in enumerate(buttons)]


def _button(button: Any, path: str, *, top: bool) -> dict[str, Any]:
    if not isinstance(button, Mapping):
        raise MenuError(path, "must be an object")
    unknown = sorted(str(k) for k in button if k not in _FIELDS)
    if unknown:
        raise MenuError(f"{path}.{unknown[0]}", "unknown field")
    name = _text(button.get("name"), f"{path}.name", MAX_NAME_BYTES if top else MAX_SUB_NAME_BYTES)
    out: dict[str, Any] = {"name": name}
    subs = button.get("sub_button")
    if subs is not None and not (isinstance(subs, Sequence) and not isinstance(subs, str | bytes)):
        raise MenuError(f"{path}.sub_button", "must be a list of buttons")
    if subs:
        if not top:
            raise MenuError(f"{path}.sub_button", "sub-buttons cannot have sub-buttons")
        if len(subs) > MAX_SUB_BUTTONS:
            raise MenuError(f"{path}.sub_button", f"at most {MAX_SUB_BUTTONS} sub-buttons")
        if "type" in button:
            raise MenuError(f"{path}.type", "a button with sub-buttons has no type of its own")
        out["sub_button"] = [_button(s, f"{path}.sub_button[{j}]", top=False) for j, s in enumerate(subs)]
        return out
    kind = button.get("type")
    if not isinstance(kind, str) or kind not in BUTTON_TYPES:
        raise MenuError(f"{path}.type", f"must be one of {', '.join(BUTTON_TYPES)}")
    out["type"] = kind
    for field in BUTTON_TYPES[kind]:
        value = _text(button.get(field), f"{path}.{field}", _MAX_FIELD_BYTES.get(field, 256))
        if field == "url":
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise MenuError(f"{path}.url", "must be an http(s) URL")
        out[field] = value
    return out


def _text(value: Any, path: str, max_bytes: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MenuError(path, "is required (a non-empty string)")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise MenuError(path, "must not contain control characters")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise MenuError(path, "is not valid Unicode (a lone surrogate)") from None
    if size > max_bytes:
        raise MenuError(path, f"is longer than {max_bytes} bytes (UTF-8; a Chinese character is 3)")
    return value
