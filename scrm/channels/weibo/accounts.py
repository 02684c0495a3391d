"""Checking a Sina Weibo account's settings before they are stored (no database)."""

from __future__ import annotations

import re

from scrm.channels.base import InvalidAccount
from scrm.channels.registry import AccountSettings
from scrm.channels.wechat.accounts import PLAIN_ID, SECRET, account_id, bool_field, check_secrets, text_field

UID = re.compile(r"[0-9]{1,20}")
SECRET_NAMES = ("app_secret", "access_token")
MAX_POLL_PAGES = 1000


def validate(settings: AccountSettings) -> AccountSettings:
    config = dict(settings.config)
    uid = account_id(settings, config, "uid", "brand's uid", UID, "the brand's uid is a number")
    secrets = check_secrets("weibo", dict(settings.secrets), SECRET_NAMES)
    if SECRET.fullmatch(secrets.get("app_secret", "")) is None:
        raise InvalidAccount("App Secret is required (no spaces)", field="app_secret")
    if SECRET.fullmatch(secrets.get("access_token", "")) is None:
        raise InvalidAccount("the access token is required (no spaces)", field="access_token")
    text_field(config, "app_key", "App Key must be letters or digits", PLAIN_ID)
    bool_field(config, "poll")
    pages = config.get("poll_max_pages")
    if pages is None:
        config.pop("poll_max_pages", None)
    elif isinstance(pages, bool) or not isinstance(pages, int) or not 1 <= pages <= MAX_POLL_PAGES:
        raise InvalidAccount(
            f"poll_max_pages must be a whole number from 1 to {MAX_POLL_PAGES}", field="poll_max_pages"
        )
    return AccountSettings(external_id=uid, config=config, secrets=secrets)
