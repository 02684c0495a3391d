"""Glue between the registry and the Weibo layer (no database here).

Account fields: external id / ``config.uid`` = the brand's uid; secrets ``app_secret`` (signs
fan-service pushes) and ``access_token`` (OAuth2, Open API + fan-service replies); config
``app_key``, ``poll`` (false turns polling off), ``poll_max_pages`` (200 items a page).
State: ``cursors`` = ``{"mentions", "comment_mentions", "comments"}`` since_ids.

Replies (reference §2.1): a private message (fan-service ``messages/reply``) may go out only
within 48 hours of the fan's last private message, follow, menu click or QR scan on THIS
account, and never after the fan unfollowed it; :func:`precheck` refuses the rest before any
call. Public replies (comments on a mention or comment) are not bound by that window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from scrm.channels.base import ChannelClient, InboundEvent, SendRefused
from scrm.channels.registry import (
    AccountView,
    ChannelSpec,
    InboundAdapter,
    InboundPush,
    PollResult,
    SendContext,
)
from scrm.channels.weibo import handler
from scrm.channels.weibo.client import WeiboClient
from scrm.channels.weibo.config import NAMESPACE, WeiboAccountConfig
from scrm.config import Settings

SECRET_FIELDS = ("app_secret", "access_token")
CONFIG_FIELDS = ("uid", "app_key", "poll", "poll_max_pages")
POLL_PAGE_SIZE = 200
DEFAULT_POLL_MAX_PAGES = 50  # 10,000 items per endpoint per poll before older ones are skipped
PRIVATE_REPLY_WINDOW = dt.timedelta(hours=48)


def uid_of(account: AccountView) -> str:
    return str(account.config.get("uid") or account.external_id)


def account_config(account: AccountView) -> WeiboAccountConfig:
    return WeiboAccountConfig(
        uid=uid_of(account),
        app_key=str(account.config.get("app_key") or ""),
        app_secret=account.secrets.get("app_secret", ""),
        access_token=account.secrets.get("access_token", ""),
    )


def make_client(account: AccountView, settings: Settings) -> WeiboClient:
    return WeiboClient(
        account_config(account),
        base_url=settings.weibo_api_base,
        page_size=POLL_PAGE_SIZE,
        max_pages=int(account.config.get("poll_max_pages") or DEFAULT_POLL_MAX_PAGES),
        timeout=settings.channel_api_timeout,
    )


def _build_client(account: AccountView, settings: Settings) -> ChannelClient:
    return make_client(account, settings)


def _verify(query: Mapping[str, str], account: AccountView) -> str:
    return handler.verify_url(query, account_config(account))


def _parse(query: Mapping[str, str], body: bytes, account: AccountView) -> InboundPush:
    push = handler.parse_push(query, body, account_config(account))
    return InboundPush(
        events=push.events, raw=push.raw, render_reply=lambda text: handler.render_passive_reply(push, text)
    )


def poll(account: AccountView, settings: Settings) -> PollResult:
    """Everything new since the stored cursors: @mentions, comments that @mention the brand and
    comments on the brand's posts. The caller stores the events and the new state together."""
    if account.config.get("poll") is False:
        return PollResult([], dict(account.state))
    cursors: dict[str, Any] = dict(account.state.get("cursors") or {})
    events: dict[str, InboundEvent] = {}
    with make_client(account, settings) as client:
        for name, fetch in (
            ("mentions", client.fetch_mentions),
            ("comment_mentions", client.fetch_comment_mentions),
            ("comments", client.fetch_comments),
        ):
            fetched, cursor = fetch(cursors.get(name))
            for event in fetched:  # the two comment endpoints can return the same comment
                events.setdefault(event.external_id, event)
            if cursor is not None:
                cursors[name] = cursor
    state = {**account.state, "cursors": cursors}
    return PollResult(sorted(events.values(), key=lambda e: e.sent_at), state)


def precheck(ctx: SendContext) -> None:
    """Refuse a private reply the fan-service API would refuse: after an unfollow of this
    account, or more than 48 h after the fan's last private message / follow / click / scan
    here. Public comment replies are always allowed; the error tells the agent to use one."""
    if ctx.message.visibility != "private":
        return
    if ctx.subscribed is False:
        raise SendRefused(
            "该粉丝已取消关注本微博账号，私信未发送；可改为公开评论回复。"
            " (The fan unfollowed this Weibo account: the private message was not sent;"
            " answer with a public comment instead.)",
            code="unsubscribed",
        )
    opened = max((t for t in (ctx.last_interaction_at, ctx.last_inbound_at) if t is not None), default=None)
    if opened is None:
        why = "粉丝从未私信、关注或点击本账号菜单 (the fan never messaged, followed or clicked this account)"
    elif ctx.now - opened >= PRIVATE_REPLY_WINDOW:
        why = (
            "粉丝最近一次私信/关注/点击已超过 48 小时 (the fan's last private contact is older than 48 hours)"
        )
    else:
        return
    raise SendRefused(
        f"微博私信窗口已关闭：{why}，私信未发送；可改为公开评论回复。"
        " Weibo private-message window closed: the reply was not sent; answer with a public comment.",
        code="window_closed",
    )


SPEC = ChannelSpec(
    kind="weibo",
    label="新浪微博 Sina Weibo",
    build_client=_build_client,
    secret_fields=SECRET_FIELDS,
    config_fields=CONFIG_FIELDS,
    inbound=InboundAdapter(
        max_body=handler.MAX_BODY,
        verify=_verify,
        parse=_parse,
        ack=handler.ACK,
        ack_media_type="text/plain",
        reply_media_type="application/json",
    ),
    identity_namespace=lambda account: NAMESPACE,
    precheck=precheck,
    poll=poll,
    poll_interval_seconds=180.0,
    help="weibo: --external-id UID; secrets app_secret, access_token; config app_key, poll, poll_max_pages",
)
