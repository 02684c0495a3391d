"""Glue between the registry and the Weibo layer (no database here).

Account fields: external id / ``config.uid`` = the brand's uid; secrets ``app_secret`` (signs
fan-service pushes) and ``access_token`` (OAuth2, Open API + fan-service replies); config
``app_key``, ``poll`` (false turns polling off), ``poll_max_pages`` (200 items a page).
State: ``cursors`` = ``{"mentions", "comment_mentions", "comments"}`` since_ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scrm.channels.base import ChannelClient, InboundEvent
from scrm.channels.registry import AccountView, ChannelSpec, InboundAdapter, InboundPush, PollResult
from scrm.channels.weibo import handler
from scrm.channels.weibo.client import WeiboClient
from scrm.channels.weibo.config import NAMESPACE, WeiboAccountConfig
from scrm.config import Settings

SECRET_FIELDS = ("app_secret", "access_token")
CONFIG_FIELDS = ("uid", "app_key", "poll", "poll_max_pages")
POLL_PAGE_SIZE = 200
DEFAULT_POLL_MAX_PAGES = 50  # 10,000 items per endpoint per poll before older ones are skipped


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
    poll=poll,
    poll_interval_seconds=180.0,
    help="weibo: --external-id UID; secrets app_secret, access_token; config app_key, poll, poll_max_pages",
)
