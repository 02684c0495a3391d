"""Checking a generic webhook channel's settings before they are stored (no database)."""

from __future__ import annotations

import re

from scrm.channels.base import InvalidAccount
from scrm.channels.registry import AccountSettings
from scrm.channels.wechat.accounts import URL, check_secrets, text_field

SECRET = re.compile(r"\S{16,256}")


def validate(settings: AccountSettings) -> AccountSettings:
    config = dict(settings.config)
    secrets = check_secrets("webhook", dict(settings.secrets), ("secret",))
    if SECRET.fullmatch(secrets.get("secret", "")) is None:
        raise InvalidAccount("the webhook secret must be 16-256 characters without spaces", field="secret")
    text_field(config, "callback_url", "the callback URL must start with http:// or https://", URL)
    return AccountSettings(external_id=settings.external_id.strip(), config=config, secrets=secrets)
