"""WeCom callback XML → :class:`InboundEvent`.

The decrypted document has the Official Account's shape plus ``AgentID``; ``FromUserName`` is
the member's userid. Standard messages and subscribe/unsubscribe/click/view/location events map
as for WeChat; WeCom-only events (``enter_agent``, ``change_contact``…) become
``kind="unknown"`` with their fields kept.
"""

from __future__ import annotations

from scrm.channels.base import InboundEvent, InboundRejected
from scrm.channels.wechat.parser import MAX_BODY, Fields, parse_message, parse_xml
from scrm.channels.wecom.config import WecomAccountConfig

__all__ = ["MAX_BODY", "parse_callback_message", "parse_xml"]


def parse_callback_message(fields: Fields, account: WecomAccountConfig) -> InboundEvent:
    agent_id = fields.get("AgentID")
    agent = agent_id.strip() if isinstance(agent_id, str) else ""
    if account.agent_id and agent and agent != account.agent_id:
        raise InboundRejected(403, "AgentID is not this app")
    return parse_message(
        fields,
        namespace=account.namespace,
        original_id=account.corpid if account.receive_id is None else None,
        extra_metadata={"agent_id": agent} if agent else None,
    )
