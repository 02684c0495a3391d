"""Which channels exist. Adding a channel is a folder plus one line in `_load`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from scrm.channels.base import (
    ChannelClient,
    InboundEvent,
    InvalidAccount,
    OutboundMessage,
    json_problem,
    text_problem,
)
from scrm.config import Settings


@dataclass(frozen=True)
class AccountView:
    """What a channel may know of a configured account: no database, secrets decrypted."""

    id: int
    workspace_id: int
    kind: str
    name: str
    external_id: str
    config: dict[str, Any]
    secrets: dict[str, str]
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountSettings:
    """What an admin gives for an account (before it is stored): checked by the channel."""

    external_id: str
    config: dict[str, Any]
    secrets: dict[str, str]


# Checks (and normalises) an account's settings without any database: raises InvalidAccount.
AccountValidator = Callable[[AccountSettings], AccountSettings]


@dataclass(frozen=True)
class InboundPush:
    """A verified, parsed push: its events, the bytes to store, and how to answer it."""

    events: tuple[InboundEvent, ...]
    raw: bytes  # stored as the event's raw record (the decrypted plaintext for encrypted pushes)
    # Renders a passive reply (a str or a channel reply object) as the response body.
    render_reply: Callable[[Any], bytes] | None = None


@dataclass(frozen=True)
class InboundAdapter:
    """How `/hooks/<kind>/<account id>` verifies and parses a platform's callbacks (pure)."""

    max_body: int
    verify: Callable[[Mapping[str, str], AccountView], str]  # GET → text/plain answer
    parse: Callable[[Mapping[str, str], bytes, AccountView], InboundPush]  # POST; InboundRejected
    ack: bytes  # the answer that stops the platform's retries when there is no passive reply
    ack_media_type: str = "text/plain"
    reply_media_type: str = "application/xml"


@dataclass(frozen=True)
class SendContext:
    """What the outbox knows about a send before it calls the channel (no database here)."""

    account: AccountView
    message: OutboundMessage
    subscribed: bool | None  # the fan's follow state on this account; None when unknown
    last_inbound_at: dt.datetime | None  # the fan's last message on this account
    sent_since_inbound: int  # messages delivered to the fan on this account since then
    now: dt.datetime
    # The fan's last private message, follow, menu click or QR scan on this account (Weibo's
    # 48-hour window opens on any of them); None when unknown.
    last_interaction_at: dt.datetime | None = None


@dataclass(frozen=True)
class PollResult:
    events: list[InboundEvent]
    state: dict[str, Any]  # the account's new state (cursors), stored with the events


@dataclass(frozen=True)
class ChannelSpec:
    kind: str
    label: str
    build_client: Callable[[AccountView, Settings], ChannelClient] | None
    # Secret fields an admin must provide when connecting an account, and the config fields.
    secret_fields: tuple[str, ...] = ()
    config_fields: tuple[str, ...] = ()
    # Callback endpoint `/hooks/<kind>/<id>` (None: the channel has its own route or none).
    inbound: InboundAdapter | None = None
    # The contact-identity namespace of this account's fans (e.g. "wechat:<appid>").
    identity_namespace: Callable[[AccountView], str] | None = None
    # Called by the outbox before sending: raise `SendRefused` (optionally with a fallback).
    precheck: Callable[[SendContext], None] | None = None
    # Periodic import (job `<kind>.poll`): fetch what is new since `state`.
    poll: Callable[[AccountView, Settings], PollResult] | None = None
    poll_interval_seconds: float = 180.0
    help: str = ""  # shown by `scrm channels create --help`
    # Checks an account's external id, config and secrets before they are stored (create and
    # update), so a bad EncodingAESKey is refused then, not on every push afterwards.
    validate_account: AccountValidator | None = None

    @property
    def can_send(self) -> bool:
        return self.build_client is not None


_SPECS: dict[str, ChannelSpec] = {}


def register(spec: ChannelSpec, *, validate: AccountValidator | None = None) -> None:
    if validate is not None:
        spec = replace(spec, validate_account=validate)
    _SPECS[spec.kind] = spec


MAX_SECRET_CHARS = 1024
# Config every channel takes (the outbox's send rate per account, scrm/outbox/ratelimit.py).
COMMON_CONFIG_FIELDS = ("rate_limit_per_second", "rate_limit_burst")


def validate_account(kind: str, settings: AccountSettings) -> AccountSettings:
    """The settings as they will be stored, or InvalidAccount naming the field.

    Every channel: config keys are the spec's `config_fields`, config values are storable
    JSON, secrets are non-empty text without control characters. Then the channel's own
    `validate_account` (formats, required fields, consistency).
    """
    spec = get(kind)
    if len(settings.external_id) > 128 or text_problem(settings.external_id):
        raise InvalidAccount("the external id must be at most 128 characters of text", field="external_id")
    allowed = (*spec.config_fields, *COMMON_CONFIG_FIELDS)
    unknown = sorted(set(settings.config) - set(allowed))
    if unknown:
        raise InvalidAccount(
            f"unknown config field {unknown[0]!r}; {kind} takes {', '.join(allowed)}", field="config"
        )
    problem = json_problem(settings.config)
    if problem:
        raise InvalidAccount(f"config holds {problem}", field="config")
    for name in COMMON_CONFIG_FIELDS:
        value = settings.config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise InvalidAccount(f"{name} must be a number of at least 0 (0 = unlimited)", field=name)
    for name, value in settings.secrets.items():
        if not isinstance(value, str) or len(value) > MAX_SECRET_CHARS:
            raise InvalidAccount(
                f"secret {name!r} must be text of at most {MAX_SECRET_CHARS} characters", field=name
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in value) or text_problem(value):
            raise InvalidAccount(f"secret {name!r} holds a control character", field=name)
    if spec.validate_account is not None:
        settings = spec.validate_account(settings)
    return settings


def get(kind: str) -> ChannelSpec:
    _load()
    try:
        return _SPECS[kind]
    except KeyError:
        raise KeyError(f"unknown channel kind {kind!r}") from None


def all_specs() -> dict[str, ChannelSpec]:
    _load()
    return dict(_SPECS)


def _load() -> None:
    if _SPECS:
        return
    from scrm.channels.webhook import accounts as webhook_accounts
    from scrm.channels.webhook import spec as webhook
    from scrm.channels.wechat import accounts as wechat_accounts
    from scrm.channels.wechat import spec as wechat
    from scrm.channels.wecom import accounts as wecom_accounts
    from scrm.channels.wecom import spec as wecom
    from scrm.channels.weibo import accounts as weibo_accounts
    from scrm.channels.weibo import spec as weibo

    register(webhook.SPEC, validate=webhook_accounts.validate)
    register(wechat.SPEC, validate=wechat_accounts.validate)
    register(weibo.SPEC, validate=weibo_accounts.validate)
    register(wecom.SPEC, validate=wecom_accounts.validate)
