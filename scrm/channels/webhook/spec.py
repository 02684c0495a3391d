from __future__ import annotations

from scrm.channels.base import ChannelClient
from scrm.channels.registry import AccountView, ChannelSpec
from scrm.channels.webhook.client import WebhookClient
from scrm.config import Settings


def _build_client(account: AccountView, settings: Settings) -> ChannelClient:
    return WebhookClient(str(account.config.get("callback_url") or ""), account.secrets["secret"])


SPEC = ChannelSpec(
    kind="webhook",
    label="Webhook",
    build_client=_build_client,
    secret_fields=("secret",),
    config_fields=("callback_url",),
)
