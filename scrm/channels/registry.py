"""Which channels exist. Adding a channel is a folder plus one line in `_load`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scrm.channels.base import ChannelClient
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
class ChannelSpec:
    kind: str
    label: str
    build_client: Callable[[AccountView, Settings], ChannelClient]
    # Secret fields an admin must provide when connecting an account, and the config fields.
    secret_fields: tuple[str, ...] = ()
    config_fields: tuple[str, ...] = ()


_SPECS: dict[str, ChannelSpec] = {}


def register(spec: ChannelSpec) -> None:
    _SPECS[spec.kind] = spec


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
    from scrm.channels.webhook import spec as webhook

    register(webhook.SPEC)
