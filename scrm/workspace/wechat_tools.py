"""WeChat Official Account tools for admins: QR codes with a scene, the custom menu, fan tags.

The channel layer (``scrm.channels.wechat.client``) speaks to WeChat and knows nothing of the
database; this module loads the account of one workspace, builds its client on the shared
token store, and turns every failure into an :class:`~scrm.errors.AppError` with a clear
status: bad input 422 (before any call), WeChat's refusals 404/409/422 with WeChat's
``errcode``, its quotas 429, an unreachable or failing WeChat 502/504. Never a 500.

Transactions belong to the caller (endpoints, CLI): load the account in one, call WeChat
outside any, record the change (:func:`audit_change`) in another.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from scrm.channels.base import ChannelError, RateLimitedError
from scrm.channels.registry import AccountView
from scrm.channels.wechat import spec as wechat_spec
from scrm.channels.wechat.client import MAX_TEMP_QR_SECONDS, WechatClient, WechatTag
from scrm.channels.wechat.errors import (
    WechatCredentialsError,
    WechatPermanentError,
    WechatRateLimitedError,
)
from scrm.channels.wechat.menu import MenuError, validate_buttons
from scrm.config import Settings
from scrm.errors import AppError, Conflict, Invalid, NotFound, TooManyRequests
from scrm.governance.service import audit
from scrm.kit.time import utcnow
from scrm.workspace import service as workspace

T = TypeVar("T")

MAX_OPENIDS_PER_REQUEST = 1000  # split into WeChat's batches of 50


class WechatUnavailable(AppError):
    """WeChat could not be reached, failed, or refused this server (not the caller's fault)."""

    status_code = 502
    code = "wechat_unavailable"


class WechatTimeout(WechatUnavailable):
    status_code = 504
    code = "wechat_timeout"


# WeChat's refusals that mean "no such thing" / "not in this state", with the rest a plain 422.
_NOT_FOUND = frozenset({45159, 46003, 40003, 49003})
_CONFLICT = frozenset({45056, 45057, 45058, 45059, 45157})


def account(session: Session, workspace_id: int, channel_id: int) -> AccountView:
    """The WeChat Official Account `channel_id` of this workspace (404 otherwise)."""
    row = workspace.get_channel_account(session, workspace_id, channel_id)  # scoped: 404
    if row.kind != "wechat":
        raise NotFound(f"channel {channel_id} is a {row.kind} account, not a WeChat Official Account")
    if row.status != "active":
        raise Conflict(f"channel {channel_id} is {row.status}")
    return workspace.account_view(row)


@contextmanager
def _client(view: AccountView, settings: Settings) -> Iterator[WechatClient]:
    client = wechat_spec.make_client(view, settings)
    try:
        yield client
    finally:
        client.close()


def call(view: AccountView, settings: Settings, fn: Callable[[WechatClient], T]) -> T:
    """Run `fn` with the account's client; every channel failure becomes a clear AppError."""
    try:
        with _client(view, settings) as client:
            return fn(client)
    except MenuError as exc:
        raise Invalid(str(exc), field=exc.path) from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    except ChannelError as exc:
        raise as_app_error(exc) from None


def as_app_error(exc: ChannelError) -> AppError:
    errcode = int(getattr(exc, "errcode", 0) or 0)
    extra: dict[str, Any] = {"wechat_error": exc.code}
    if errcode:
        extra["errcode"] = errcode
    message = str(exc)
    if isinstance(exc, WechatRateLimitedError | RateLimitedError):
        return TooManyRequests(message, extra={**extra, "retry_after": round(exc.retry_after)})
    if isinstance(exc, WechatCredentialsError):
        return WechatUnavailable(
            f"{message}. Fix the account's AppID/AppSecret or the IP whitelist.", extra=extra
        )
    if isinstance(exc, WechatPermanentError):
        if errcode in _NOT_FOUND:
            return NotFound(message, extra=extra)
        if errcode in _CONFLICT:
            return Conflict(message, extra=extra)
        return Invalid(message, extra={**extra, "error_from": "wechat"})
    if exc.code == "timeout":
        return WechatTimeout(message, extra=extra)
    return WechatUnavailable(message, extra=extra)  # 5xx, network, system busy (-1), bad JSON


def audit_change(
    session: Session,
    view: AccountView,
    action: str,
    data: dict[str, Any],
    *,
    actor_id: int | None = None,
    actor_label: str = "",
) -> None:
    audit(
        session,
        view.workspace_id,
        action,
        actor_id=actor_id,
        actor_label=actor_label,
        target_type="channel_account",
        target_id=view.id,
        data=data,
    )


# -- QR codes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QrCodeOut:
    ticket: str
    url: str
    image_url: str
    scene: int | str
    temporary: bool
    expire_seconds: int | None
    expires_at: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "url": self.url,
            "image_url": self.image_url,
            "scene": self.scene,
            "temporary": self.temporary,
            "expire_seconds": self.expire_seconds,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def create_qrcode(
    view: AccountView,
    settings: Settings,
    *,
    scene: int | str,
    temporary: bool = True,
    expire_seconds: int = MAX_TEMP_QR_SECONDS,
) -> QrCodeOut:
    """A QR code whose scans / follows arrive with `scene` (scene_id for ints, scene_str else)."""
    started = utcnow()
    code = call(
        view,
        settings,
        lambda c: c.create_qrcode(scene, permanent=not temporary, expire_seconds=expire_seconds),
    )
    expires = started + dt.timedelta(seconds=code.expire_seconds) if code.expire_seconds else None
    return QrCodeOut(
        ticket=code.ticket,
        url=code.url,
        image_url=code.image_url,
        scene=scene,
        temporary=temporary,
        expire_seconds=code.expire_seconds,
        expires_at=expires,
    )


# -- menu -----------------------------------------------------------------------------------------


def get_menu(view: AccountView, settings: Settings) -> dict[str, Any]:
    """``{"menu": {"button": [...]}, "conditionalmenu": [...]}``; ``menu`` is None when unset."""

    def fetch(client: WechatClient) -> dict[str, Any]:
        try:
            data = client.get_menu()
        except WechatPermanentError as exc:
            if exc.errcode == 46003:  # no menu: not an error for the admin
                return {"menu": None, "conditionalmenu": []}
            raise
        menu = data.get("menu")
        return {
            "menu": menu if isinstance(menu, dict) else None,
            "conditionalmenu": data.get("conditionalmenu") or [],
        }

    return call(view, settings, fetch)


def set_menu(view: AccountView, settings: Settings, body: Any) -> list[dict[str, Any]]:
    """Replace the menu with ``body`` = ``{"button": [...]}`` (or the bare list); returns it."""
    buttons = body.get("button") if isinstance(body, dict) else body
    if isinstance(body, dict) and set(body) - {"button"}:
        raise Invalid(f'unknown field {sorted(set(body) - {"button"})[0]!r}: a menu is {{"button": [...]}}')
    try:
        clean = validate_buttons(buttons)
    except MenuError as exc:
        raise Invalid(str(exc), field=exc.path) from None
    call(view, settings, lambda c: c.create_menu(clean))
    return clean


def delete_menu(view: AccountView, settings: Settings) -> None:
    call(view, settings, lambda c: c.delete_menu())


# -- tags -----------------------------------------------------------------------------------------


def tag_dict(tag: WechatTag) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.name, "count": tag.count}


def list_tags(view: AccountView, settings: Settings) -> list[dict[str, Any]]:
    return [tag_dict(t) for t in call(view, settings, lambda c: c.get_tags())]


def create_tag(view: AccountView, settings: Settings, name: str) -> dict[str, Any]:
    return tag_dict(call(view, settings, lambda c: c.create_tag(name)))


def rename_tag(view: AccountView, settings: Settings, tag_id: int, name: str) -> dict[str, Any]:
    call(view, settings, lambda c: c.update_tag(tag_id, name))
    return {"id": tag_id, "name": name.strip()}


def delete_tag(view: AccountView, settings: Settings, tag_id: int) -> None:
    call(view, settings, lambda c: c.delete_tag(tag_id))


def _check_openids(openids: Sequence[Any]) -> list[str]:
    if len(openids) > MAX_OPENIDS_PER_REQUEST:
        raise Invalid(f"at most {MAX_OPENIDS_PER_REQUEST} openids per request", field="openids")
    return list(dict.fromkeys(openids))  # keep the order, drop repeats


def tag_fans(view: AccountView, settings: Settings, tag_id: int, openids: Sequence[Any]) -> int:
    fans = _check_openids(openids)
    call(view, settings, lambda c: c.batch_tag(fans, tag_id))
    return len(fans)


def untag_fans(view: AccountView, settings: Settings, tag_id: int, openids: Sequence[Any]) -> int:
    fans = _check_openids(openids)
    call(view, settings, lambda c: c.batch_untag(fans, tag_id))
    return len(fans)


def fans_of_tag(view: AccountView, settings: Settings, tag_id: int, next_openid: str = "") -> dict[str, Any]:
    if len(next_openid) > 64:
        raise Invalid("next_openid is an openid (at most 64 characters)", field="next_openid")
    openids, cursor = call(view, settings, lambda c: c.tag_fans(tag_id, next_openid))
    return {"tag_id": tag_id, "openids": openids, "next_openid": cursor}


def tags_of_fan(view: AccountView, settings: Settings, openid: str) -> dict[str, Any]:
    """The fan's tag ids (``tags/getidlist``) with their names when WeChat still has them."""

    def fetch(client: WechatClient) -> dict[str, Any]:
        ids = client.fan_tag_ids(openid)
        names = {t.id: t.name for t in client.get_tags()} if ids else {}
        return {
            "openid": openid,
            "tag_ids": ids,
            "tags": [{"id": i, "name": names.get(i, "")} for i in ids],
        }

    return call(view, settings, fetch)
