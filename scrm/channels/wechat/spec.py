"""Glue between the registry and the WeChat Official Account layer (no database here).

Account fields: external id / ``config.appid`` = AppID; secrets ``token`` (signs pushes),
``secret`` (AppSecret, for ``stable_token``), optional ``encoding_aes_key`` (safe mode) and
``previous_encoding_aes_key`` (rotation); config ``original_id`` (gh_…), ``require_encryption``,
``fallback_template_id`` (+ ``fallback_template_data``, ``fallback_template_url``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scrm.channels.base import ChannelClient, OutboundMessage, SendRefused
from scrm.channels.registry import AccountView, ChannelSpec, InboundAdapter, InboundPush, SendContext
from scrm.channels.wechat import handler
from scrm.channels.wechat.client import SERVICE_WINDOW_MESSAGES, WechatClient, in_service_window
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.config import Settings

SECRET_FIELDS = ("token", "secret")
OPTIONAL_SECRETS = ("encoding_aes_key", "previous_encoding_aes_key")
CONFIG_FIELDS = (
    "appid",
    "original_id",
    "require_encryption",
    "fallback_template_id",
    "fallback_template_data",
    "fallback_template_url",
)


def appid_of(account: AccountView) -> str:
    return str(account.config.get("appid") or account.external_id)


def account_config(account: AccountView) -> WechatAccountConfig:
    secrets = account.secrets
    return WechatAccountConfig(
        appid=appid_of(account),
        token=secrets.get("token", ""),
        secret=secrets.get("secret", ""),
        encoding_aes_key=secrets.get("encoding_aes_key") or None,
        previous_encoding_aes_key=secrets.get("previous_encoding_aes_key") or None,
        original_id=account.config.get("original_id") or None,
        require_encryption=bool(account.config.get("require_encryption", False)),
    )


# The config of an account, per AccountView object: the inbound path gets the same view for as
# long as it caches the account row, so the pydantic model (and the MessageCrypto that
# `handler.crypto_for` keeps per config) is built once per view, not once per push. A new view
# (the account was read again, e.g. after an edit) builds a new config.
_CONFIG_CACHE_MAX = 1024
_configs: dict[int, tuple[AccountView, WechatAccountConfig]] = {}


def cached_account_config(account: AccountView) -> WechatAccountConfig:
    hit = _configs.get(account.id)
    if hit is not None and hit[0] is account:
        return hit[1]
    config = account_config(account)
    if len(_configs) >= _CONFIG_CACHE_MAX:
        _configs.clear()
    _configs[account.id] = (account, config)
    return config


def _build_client(account: AccountView, settings: Settings) -> ChannelClient:
    from scrm.workspace.tokens import token_store_for  # the store knows the database, not us

    return WechatClient(
        account_config(account),
        base_url=settings.wechat_api_base,
        token_store=token_store_for(account, settings),
    )


def _verify(query: Mapping[str, str], account: AccountView) -> str:
    return handler.verify_url(query, cached_account_config(account))


def _parse(query: Mapping[str, str], body: bytes, account: AccountView) -> InboundPush:
    push = handler.parse_push(query, body, cached_account_config(account))
    return InboundPush(
        events=push.events,
        raw=push.plaintext,
        render_reply=lambda reply: handler.render_passive_reply(push, reply),
    )


def fallback_template(ctx: SendContext) -> OutboundMessage | None:
    """The template message a workspace configured for fans outside the service window."""
    config = ctx.account.config
    template_id = config.get("fallback_template_id")
    if not template_id:
        return None
    preview = ctx.message.text[:100]
    data: dict[str, Any] = config.get("fallback_template_data") or {
        "first": "您有一条新的客服回复",
        "keyword1": preview,
        "remark": "回复公众号任意消息即可继续与客服对话",
    }
    data = {k: (v.replace("{text}", preview) if isinstance(v, str) else v) for k, v in data.items()}
    payload: dict[str, Any] = {"template_id": str(template_id), "data": data}
    if config.get("fallback_template_url"):
        payload["url"] = str(config["fallback_template_url"])
    return OutboundMessage(
        idempotency_key=f"{ctx.message.idempotency_key}:fallback",
        recipient=ctx.message.recipient,
        msg_type="template",
        payload=payload,
    )


def precheck(ctx: SendContext) -> None:
    """Refuse before calling WeChat: unsubscribed fans, and customer-service sends outside the
    48-hour / 5-message window (template messages are not bound by it)."""
    if ctx.subscribed is False:
        raise SendRefused(
            "该粉丝已取消关注公众号，消息未发送 (the fan unsubscribed from this Official Account)",
            code="unsubscribed",
        )
    if ctx.message.msg_type == "template":
        return
    if not in_service_window(ctx.last_inbound_at, ctx.sent_since_inbound, ctx.now):
        if ctx.last_inbound_at is None:
            why = "粉丝从未发来消息 (the fan has never written)"
        elif ctx.sent_since_inbound >= SERVICE_WINDOW_MESSAGES:
            why = f"自粉丝上条消息后已发送 {ctx.sent_since_inbound} 条 (5 replies per fan message)"
        else:
            why = "粉丝上条消息已超过 48 小时 (the fan's last message is older than 48 hours)"
        fallback = fallback_template(ctx)
        tail = "已改发模板消息 (a template message was sent instead)" if fallback else "未配置备用模板消息"
        raise SendRefused(
            f"微信客服消息窗口已关闭：{why}，消息未发送；{tail}。"
            " WeChat customer-service window closed: the reply was not sent.",
            code="window_closed",
            fallback=fallback,
        )


SPEC = ChannelSpec(
    kind="wechat",
    label="微信公众号 WeChat Official Account",
    build_client=_build_client,
    secret_fields=SECRET_FIELDS,
    config_fields=CONFIG_FIELDS,
    inbound=InboundAdapter(
        max_body=handler.MAX_BODY,
        verify=_verify,
        parse=_parse,
        ack=handler.SUCCESS,
        ack_media_type="text/plain",
        reply_media_type="application/xml",
    ),
    identity_namespace=lambda account: f"wechat:{appid_of(account)}",
    precheck=precheck,
    help=(
        "wechat: --external-id APPID; secrets token, secret (AppSecret), optional encoding_aes_key,"
        " previous_encoding_aes_key; config original_id, require_encryption, fallback_template_id"
    ),
)
