"""Checking a WeCom app's callback settings before they are stored (no database)."""

from __future__ import annotations

import re

from scrm.channels.base import InvalidAccount
from scrm.channels.registry import AccountSettings
from scrm.channels.wechat.accounts import PLAIN_ID, account_id, check_aes_keys, check_secrets

TOKEN = re.compile(r"[A-Za-z0-9]{1,32}")  # WeCom: letters or digits, at most 32
AGENT_ID = re.compile(r"[0-9]{1,20}")
SECRET_NAMES = ("token", "encoding_aes_key", "previous_encoding_aes_key")


def validate(settings: AccountSettings) -> AccountSettings:
    config = dict(settings.config)
    corpid = account_id(
        settings, config, "corpid", "CorpID", PLAIN_ID, "CorpID must be 1-64 letters, digits, _ or -"
    )
    secrets = check_secrets("wecom", dict(settings.secrets), SECRET_NAMES)
    if TOKEN.fullmatch(secrets.get("token", "")) is None:
        raise InvalidAccount("Token must be 1-32 letters or digits (WeCom's rule)", field="token")
    check_aes_keys(secrets, required=True)
    agent = config.get("agent_id")
    if isinstance(agent, int) and not isinstance(agent, bool):
        config["agent_id"] = agent = str(agent)
    if agent in (None, ""):
        config.pop("agent_id", None)
    elif not isinstance(agent, str) or AGENT_ID.fullmatch(agent) is None:
        raise InvalidAccount("AgentID is a number", field="agent_id")
    receive_id = config.get("receive_id")
    if receive_id is None:
        config.pop("receive_id", None)
    elif not isinstance(receive_id, str) or (receive_id and PLAIN_ID.fullmatch(receive_id) is None):
        raise InvalidAccount('receive_id is the suite id, or "" for smart robots', field="receive_id")
    return AccountSettings(external_id=corpid, config=config, secrets=secrets)
