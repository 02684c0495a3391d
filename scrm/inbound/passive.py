"""Passive replies: the answer a platform gets in the body of its own push (WeChat, Weibo, WeCom).

Only for answers something already knows at once (a welcome on subscribe, a keyword
auto-reply); everything else is queued and answered through the outbox. The callback answers
every retry of one push the same way, so a replier must be deterministic for (account, event)
and fast (the platform waits at most 5 s; we aim for < 50 ms). It must not write to the
database: the push is already stored when it runs. Register with :func:`register`; a replier
returns a ``str`` (text) or a channel reply object (``scrm.channels.wechat.replies.*``), or None.
Recording the passive reply in the conversation is the replier owner's job (e.g. the pipeline
step that handles the same event can see it was answered by checking the same rule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from scrm.channels.base import InboundEvent
from scrm.channels.registry import AccountView

log = logging.getLogger(__name__)

PassiveReplier = Callable[[AccountView, InboundEvent], Any | None]
_REPLIERS: list[PassiveReplier] = []


def register(replier: PassiveReplier) -> PassiveReplier:
    if replier not in _REPLIERS:
        _REPLIERS.append(replier)
    return replier


def unregister(replier: PassiveReplier) -> None:
    if replier in _REPLIERS:
        _REPLIERS.remove(replier)


def passive_reply_for(account: AccountView, event: InboundEvent) -> Any | None:
    """The first registered replier's answer, or None (acknowledge without a reply)."""
    for replier in list(_REPLIERS):
        try:
            reply = replier(account, event)
        except Exception:
            log.exception("passive replier %r failed; acknowledging without a reply", replier)
            continue
        if reply is not None:
            return reply
    return None
