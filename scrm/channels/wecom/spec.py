"""Glue between the registry and the WeCom callback layer: receive only (no sending yet).

Account fields: external id / ``config.corpid`` = CorpID; secrets ``token``,
``encoding_aes_key`` (optional ``previous_encoding_aes_key``); config ``agent_id``, ``receive_id``.
"""

from __future__ import annotations

from collections.abc import Mapping

from scrm.channels.registry import AccountView, ChannelSpec, InboundAdapter, InboundPush
from scrm.channels.wecom import handler
from scrm.channels.wecom.config import WecomAccountConfig


def account_config(account: AccountView) -> WecomAccountConfig:
    agent_id = account.config.get("agent_id")
    receive_id = account.config.get("receive_id")
    return WecomAccountConfig(
        corpid=str(account.config.get("corpid") or account.external_id),
        token=account.secrets.get("token", ""),
        encoding_aes_key=account.secrets.get("encoding_aes_key", ""),
        previous_encoding_aes_key=account.secrets.get("previous_encoding_aes_key") or None,
        agent_id=str(agent_id) if agent_id not in (None, "") else None,
        receive_id=str(receive_id) if receive_id is not None else None,
    )


def _verify(query: Mapping[str, str], account: AccountView) -> str:
    return handler.verify_url(query, account_config(account))


def _parse(query: Mapping[str, str], body: bytes, account: AccountView) -> InboundPush:
    push = handler.parse_push(query, body, account_config(account))
    return InboundPush(
        events=push.events,
        raw=push.plaintext,
        render_reply=lambda reply: handler.render_passive_reply(push, reply),
    )


SPEC = ChannelSpec(
    kind="wecom",
    label="企业微信 WeCom (receive only)",
    build_client=None,
    secret_fields=("token", "encoding_aes_key"),
    config_fields=("corpid", "agent_id", "receive_id"),
    inbound=InboundAdapter(
        max_body=handler.MAX_BODY,
        verify=_verify,
        parse=_parse,
        ack=handler.SUCCESS,
        ack_media_type="text/plain",
        reply_media_type="application/xml",
    ),
    identity_namespace=lambda account: f"wecom:{account.config.get('corpid') or account.external_id}",
    help="wecom: --external-id CORPID; secrets token, encoding_aes_key; config agent_id, receive_id",
)
