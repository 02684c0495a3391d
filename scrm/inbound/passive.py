"""Passive replies: the answer a platform gets in the body of its own push (WeChat, Weibo, WeCom).

Only for answers something already knows at once (a welcome on subscribe, a keyword
auto-reply); everything else is queued and answered through the outbox. The callback answers
every retry of one push the same way, so a replier must be deterministic for (account, event)
and fast (the platform waits at most 5 s; we aim for < 50 ms). It must not write to the
database. Register with :func:`register`; a replier returns a :class:`PassiveAnswer` (or a
plain ``str`` / channel reply object such as ``scrm.channels.wechat.replies.*``), or None.

The callback endpoint decides the answer *before* it stores the push and keeps
``PassiveAnswer.source`` in the stored event's metadata under ``passive_reply``: the pipeline
then records the reply in the conversation as already delivered instead of sending it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scrm.channels.base import InboundEvent
from scrm.channels.registry import AccountView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassiveAnswer:
    reply: Any  # a str (text) or a channel reply object
    source: dict[str, Any] = field(default_factory=dict)  # stored with the event, e.g. {"rule_id": ...}


PassiveReplier = Callable[[AccountView, InboundEvent], Any | None]
_REPLIERS: dict[str, PassiveReplier] = {}


def register(name: str, replier: PassiveReplier) -> PassiveReplier:
    """Register (or replace) the replier called `name`; repliers are asked in order of registration."""
    _REPLIERS[name] = replier
    return replier


def unregister(name: str) -> None:
    _REPLIERS.pop(name, None)


def passive_reply_for(account: AccountView, event: InboundEvent) -> PassiveAnswer | None:
    """The first registered replier's answer, or None (acknowledge without a reply)."""
    for name, replier in list(_REPLIERS.items()):
        try:
            reply = replier(account, event)
        except Exception:
            log.exception("passive replier %s failed; acknowledging without a reply", name)
            continue
        if reply is None:
            continue
        return reply if isinstance(reply, PassiveAnswer) else PassiveAnswer(reply)
    return None
