"""Glue between the registry and the WeChat Official Account layer (no database here).

Account fields: external id / ``config.appid`` = AppID; secrets ``token`` (signs pushes),
``secret`` (AppSecret, for ``stable_token``), optional ``encoding_aes_key`` (safe mode) and
``previous_encoding_aes_key`` (rotation); config ``original_id`` (gh_…), ``require_encryption``,
and what to send when a customer-service message cannot go out (48 h / 5-message window, also
when WeChat itself answers 45015 or 45047): ``fallback_template_id`` (+ ``fallback_template_data``,
``fallback_template_url``) for a template message, ``fallback_subscribe_template_id``
(+ ``fallback_subscribe_data``, ``fallback_subscribe_page``) for a subscription message, and
``fallback_order`` (default ``["template", "subscribe"]``): the first configured kind is sent;
if WeChat refuses it for good, the next one is tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scrm.channels.base import ChannelClient, OutboundMessage, SendRefused, SendResult
from scrm.channels.registry import AccountView, ChannelSpec, InboundAdapter, InboundPush, SendContext
from scrm.channels.wechat import handler
from scrm.channels.wechat.client import SERVICE_WINDOW_MESSAGES, WechatClient, in_service_window
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.errors import (
    ServiceQuotaExceededError,
    ServiceWindowClosedError,
    WechatCredentialsError,
    WechatPermanentError,
)
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
    "fallback_subscribe_template_id",
    "fallback_subscribe_data",
    "fallback_subscribe_page",
    "fallback_order",
)
FALLBACK_KINDS = ("template", "subscribe")
_FALLBACK_LABELS = {"template": "模板消息 (template message)", "subscribe": "订阅消息 (subscription message)"}


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


def make_client(account: AccountView, settings: Settings) -> WechatClient:
    """The account's API client, on the shared (database) token store."""
    from scrm.workspace.tokens import token_store_for  # the store knows the database, not us

    return WechatClient(
        account_config(account),
        base_url=settings.wechat_api_base,
        token_store=token_store_for(account, settings),
        timeout=settings.channel_api_timeout,
    )


class FallbackClient:
    """The outbox's client: a customer-service message that WeChat itself refuses with 45015
    (window closed) or 45047 (5 messages used up) becomes :class:`SendRefused` carrying the
    account's fallback, exactly like the outbox's own pre-send refusal; a fallback that WeChat
    refuses for good hands on to the next configured kind."""

    def __init__(self, account: AccountView, client: WechatClient) -> None:
        self.account = account
        self.client = client

    def send(self, message: OutboundMessage) -> SendResult:
        try:
            return self.client.send(message)
        except (ServiceWindowClosedError, ServiceQuotaExceededError) as exc:
            if message.msg_type in FALLBACK_KINDS:
                raise
            closed = isinstance(exc, ServiceWindowClosedError)
            why = (
                "微信返回 45015：已超过 48 小时回复时限或粉丝已取消关注"
                " (WeChat 45015: reply time limit exceeded or the fan unfollowed)"
                if closed
                else "微信返回 45047：自粉丝上条消息后客服消息已达上限"
                " (WeChat 45047: out of response count limit)"
            )
            fallback = fallback_message(self.account, message)
            raise SendRefused(
                f"微信拒绝了这条客服消息：{why}，消息未发送；{_fallback_tail(fallback)}。",
                code="window_closed" if closed else "service_quota",
                fallback=fallback,
            ) from exc
        except WechatCredentialsError:
            raise  # the admin must fix the account: another kind of message would fail the same way
        except WechatPermanentError as exc:
            kind = message.msg_type
            if kind not in FALLBACK_KINDS or not message.payload.get("fallback_for_key"):
                raise
            fallback = fallback_message(self.account, message, after=kind)
            if fallback is None:
                raise
            raise SendRefused(
                f"备用{_FALLBACK_LABELS[kind]}发送失败：{exc}；{_fallback_tail(fallback)}。",
                code=exc.code,
                fallback=fallback,
            ) from exc

    def close(self) -> None:
        self.client.close()


def _build_client(account: AccountView, settings: Settings) -> ChannelClient:
    return FallbackClient(account, make_client(account, settings))


def _verify(query: Mapping[str, str], account: AccountView) -> str:
    return handler.verify_url(query, cached_account_config(account))


def _parse(query: Mapping[str, str], body: bytes, account: AccountView) -> InboundPush:
    push = handler.parse_push(query, body, cached_account_config(account))
    return InboundPush(
        events=push.events,
        raw=push.plaintext,
        render_reply=lambda reply: handler.render_passive_reply(push, reply),
    )


def fallback_order(config: Mapping[str, Any]) -> list[str]:
    """The configured fallback kinds, in order (unknown names ignored)."""
    order = config.get("fallback_order") or list(FALLBACK_KINDS)
    if isinstance(order, str):
        order = [part.strip() for part in order.split(",")]
    if not isinstance(order, list):
        return list(FALLBACK_KINDS)
    out: list[str] = []
    for kind in order:
        if kind in FALLBACK_KINDS and kind not in out:
            out.append(kind)
    return out


def _template_data(raw: Any, preview: str, default: dict[str, str]) -> dict[str, Any]:
    data = raw if isinstance(raw, Mapping) and raw else default
    return {str(k): (v.replace("{text}", preview) if isinstance(v, str) else v) for k, v in data.items()}


def fallback_message(
    account: AccountView, message: OutboundMessage, *, after: str | None = None
) -> OutboundMessage | None:
    """What to send instead of customer-service `message` the fan cannot receive: the first
    configured kind of ``fallback_order`` (after `after`, when that kind just failed), or None.

    `message` may itself be a fallback: its original text and key are carried in its payload.
    """
    config = account.config
    order = fallback_order(config)
    if after is not None:
        order = order[order.index(after) + 1 :] if after in order else []
    text = str(message.payload.get("fallback_text", message.text))
    key = str(message.payload.get("fallback_for_key", message.idempotency_key))
    preview = text[:100]
    for kind in order:
        carried = {"fallback_text": text, "fallback_for_key": key}
        if kind == "template" and config.get("fallback_template_id"):
            payload: dict[str, Any] = {
                "template_id": str(config["fallback_template_id"]),
                "data": _template_data(
                    config.get("fallback_template_data"),
                    preview,
                    {
                        "first": "您有一条新的客服回复",
                        "keyword1": preview,
                        "remark": "回复公众号任意消息即可继续与客服对话",
                    },
                ),
                **carried,
            }
            if config.get("fallback_template_url"):
                payload["url"] = str(config["fallback_template_url"])
        elif kind == "subscribe" and config.get("fallback_subscribe_template_id"):
            payload = {
                "template_id": str(config["fallback_subscribe_template_id"]),
                # Subscription data fields are typed (thing ≤ 20 characters, …): keep it short.
                "data": _template_data(
                    config.get("fallback_subscribe_data"), text[:20], {"thing1": text[:20]}
                ),
                **carried,
            }
            if config.get("fallback_subscribe_page"):
                payload["page"] = str(config["fallback_subscribe_page"])
        else:
            continue
        return OutboundMessage(
            idempotency_key=f"{key}:fallback:{kind}",
            recipient=message.recipient,
            msg_type=kind,
            payload=payload,
        )
    return None


def fallback_template(ctx: SendContext) -> OutboundMessage | None:
    """The substitute configured for fans outside the service window (template or subscription)."""
    return fallback_message(ctx.account, ctx.message)


def _fallback_tail(fallback: OutboundMessage | None) -> str:
    if fallback is None:
        return "未配置备用模板/订阅消息 (no fallback template or subscription message configured)"
    return f"已改发{_FALLBACK_LABELS[fallback.msg_type]}"


def precheck(ctx: SendContext) -> None:
    """Refuse before calling WeChat: unsubscribed fans, and customer-service sends outside the
    48-hour / 5-message window (template messages are not bound by it)."""
    if ctx.subscribed is False:
        raise SendRefused(
            "该粉丝已取消关注公众号，消息未发送 (the fan unsubscribed from this Official Account)",
            code="unsubscribed",
        )
    if ctx.message.msg_type in FALLBACK_KINDS:
        return  # template and subscription messages are not bound by the window
    if not in_service_window(ctx.last_inbound_at, ctx.sent_since_inbound, ctx.now):
        if ctx.last_inbound_at is None:
            why = "粉丝从未发来消息 (the fan has never written)"
        elif ctx.sent_since_inbound >= SERVICE_WINDOW_MESSAGES:
            why = f"自粉丝上条消息后已发送 {ctx.sent_since_inbound} 条 (5 replies per fan message)"
        else:
            why = "粉丝上条消息已超过 48 小时 (the fan's last message is older than 48 hours)"
        fallback = fallback_template(ctx)
        raise SendRefused(
            f"微信客服消息窗口已关闭：{why}，消息未发送；{_fallback_tail(fallback)}。"
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
