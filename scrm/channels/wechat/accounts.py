"""Checking a WeChat Official Account's settings before they are stored (no database).

Used by the registry's ``validate_account`` for ``scrm channels create/update``, the REST API
and the admin page alike, so a bad EncodingAESKey is refused when it is entered instead of
failing every encrypted push afterwards. WeCom checks its keys with the same helpers.
"""

from __future__ import annotations

import re
from typing import Any

from scrm.channels.base import InvalidAccount
from scrm.channels.registry import AccountSettings
from scrm.channels.wechat.crypto import decode_encoding_aes_key
from scrm.channels.wechat.spec import FALLBACK_KINDS

APPID = re.compile(r"[A-Za-z0-9_-]{3,64}")
TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")  # WeChat's rule for the server-configuration Token
PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SECRET = re.compile(r"\S{1,256}")
URL = re.compile(r"https?://\S{1,1000}")
TEMPLATE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
PAGE = re.compile(r"\S{1,256}")
SECRET_NAMES = ("token", "secret", "encoding_aes_key", "previous_encoding_aes_key")


def text_field(config: dict[str, Any], name: str, message: str, pattern: re.Pattern[str]) -> str | None:
    """A config value that is an optional string matching `pattern`; "" or None removes it."""
    value = config.get(name)
    if value is None or value == "":
        config.pop(name, None)
        return None
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidAccount(message, field=name)
    return value


def bool_field(config: dict[str, Any], name: str) -> bool | None:
    value = config.get(name)
    if value is None:
        config.pop(name, None)
        return None
    if not isinstance(value, bool):
        raise InvalidAccount(f"{name} must be true or false", field=name)
    return value


def account_id(
    settings: AccountSettings,
    config: dict[str, Any],
    name: str,
    label: str,
    pattern: re.Pattern[str],
    message: str,
) -> str:
    """The platform id given as the external id and/or ``config[name]``; both kept equal."""
    value = config.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value not in (None, "") and not isinstance(value, str):
        raise InvalidAccount(message, field=name)
    external = settings.external_id.strip()
    given = (value or "").strip()
    if external and given and external != given:
        raise InvalidAccount(
            f"the {label} in config ({given}) differs from the external id ({external})", field=name
        )
    chosen = external or given
    if not chosen:
        raise InvalidAccount(f"the {label} is required (the external id)", field=name)
    if pattern.fullmatch(chosen) is None:
        raise InvalidAccount(message, field=name)
    config[name] = chosen
    return chosen


def check_secrets(kind: str, secrets: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """Known secret names only; empty values dropped (an optional secret left blank)."""
    unknown = sorted(set(secrets) - set(names))
    if unknown:
        raise InvalidAccount(
            f"unknown secret {unknown[0]!r}; {kind} takes {', '.join(names)}", field="secrets"
        )
    return {k: v.strip() for k, v in secrets.items() if v.strip()}


def check_aes_keys(secrets: dict[str, str], *, required: bool) -> None:
    """EncodingAESKey (and the previous one kept during a rotation): 43 letters or digits that
    decode to a 32-byte AES key. A previous key equal to the current one is dropped."""
    for name in ("encoding_aes_key", "previous_encoding_aes_key"):
        key = secrets.get(name)
        if key is None:
            continue
        try:
            if len(decode_encoding_aes_key(key)) != 32:
                raise ValueError
        except ValueError:
            label = "EncodingAESKey" if name == "encoding_aes_key" else "the previous EncodingAESKey"
            raise InvalidAccount(f"{label} must be 43 letters or digits", field=name) from None
    if required and "encoding_aes_key" not in secrets:
        raise InvalidAccount("EncodingAESKey is required (43 letters or digits)", field="encoding_aes_key")
    if "previous_encoding_aes_key" in secrets:
        if "encoding_aes_key" not in secrets:
            raise InvalidAccount(
                "a previous EncodingAESKey needs a current one", field="previous_encoding_aes_key"
            )
        if secrets["previous_encoding_aes_key"] == secrets["encoding_aes_key"]:
            del secrets["previous_encoding_aes_key"]


def validate(settings: AccountSettings) -> AccountSettings:
    config = dict(settings.config)
    appid = account_id(
        settings, config, "appid", "AppID", APPID, "AppID must be 3-64 letters, digits, _ or -"
    )
    secrets = check_secrets("wechat", dict(settings.secrets), SECRET_NAMES)
    if TOKEN.fullmatch(secrets.get("token", "")) is None:
        raise InvalidAccount("Token must be 3-32 letters or digits (WeChat's rule)", field="token")
    if SECRET.fullmatch(secrets.get("secret", "")) is None:
        raise InvalidAccount("AppSecret is required (no spaces)", field="secret")
    check_aes_keys(secrets, required=False)
    text_field(config, "original_id", "the original id looks like gh_0123456789ab", PLAIN_ID)
    if bool_field(config, "require_encryption") and "encoding_aes_key" not in secrets:
        raise InvalidAccount("safe mode needs the EncodingAESKey", field="encoding_aes_key")
    text_field(
        config,
        "fallback_template_id",
        "the fallback template id is letters, digits, _ or -",
        TEMPLATE_ID,
    )
    text_field(
        config, "fallback_template_url", "the fallback template URL must start with http:// or https://", URL
    )
    text_field(
        config,
        "fallback_subscribe_template_id",
        "the fallback subscription template id is letters, digits, _ or -",
        TEMPLATE_ID,
    )
    text_field(
        config,
        "fallback_subscribe_page",
        "the fallback subscription page is a path of at most 256 characters, without spaces",
        PAGE,
    )
    for name in ("fallback_template_data", "fallback_subscribe_data"):
        data = config.get(name)
        if data is not None and (not isinstance(data, dict) or len(data) > 20):
            raise InvalidAccount(f"{name} must be an object of at most 20 fields", field=name)
    _fallback_order(config)
    return AccountSettings(external_id=appid, config=config, secrets=secrets)


def _fallback_order(config: dict[str, Any]) -> None:
    """``fallback_order``: the fallback kinds to try, in order, as a list (or "a, b")."""
    order = config.get("fallback_order")
    if order is None or order == "" or order == []:
        config.pop("fallback_order", None)
        return
    if isinstance(order, str):
        order = [part.strip() for part in order.split(",")]
    message = "fallback_order lists template and/or subscribe, each once"
    if not isinstance(order, list) or not all(isinstance(k, str) for k in order):
        raise InvalidAccount(message, field="fallback_order")
    unknown = [k for k in order if k not in FALLBACK_KINDS]
    if unknown:
        raise InvalidAccount(f"unknown fallback kind {unknown[0][:40]!r}: {message}", field="fallback_order")
    if len(set(order)) != len(order):
        raise InvalidAccount(message, field="fallback_order")
    config["fallback_order"] = order
