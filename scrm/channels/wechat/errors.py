"""Typed outbound errors for WeChat API ``errcode`` values (reference §1.5)."""

from __future__ import annotations

from scrm.channels.base import ChannelError, PermanentChannelError, RateLimitedError

TOKEN_INVALID_CODES = frozenset({40001, 40014, 42001})  # refresh the token once and retry once


class WechatApiError(ChannelError):
    """A non-zero ``errcode`` that may go away (system busy, unknown transient failure)."""

    code = "wechat_api_error"
    errcode: int = 0
    errmsg: str = ""


class WechatPermanentError(PermanentChannelError):
    """WeChat refused the request for good (bad openid, bad template, content, permission…)."""

    code = "wechat_rejected"
    errcode: int = 0
    errmsg: str = ""


class ServiceWindowClosedError(WechatPermanentError):
    """45015: the fan has not written within 48 h (or unfollowed). Use a template message."""

    code = "wechat_window_closed"


class ServiceQuotaExceededError(WechatPermanentError):
    """45047: the 5 customer-service messages allowed since the fan's last message are used up."""

    code = "wechat_service_quota"


class SubscriptionRefusedError(WechatPermanentError):
    """43101: the fan has not accepted this subscription message (or used up a one-time consent)."""

    code = "wechat_subscription_refused"


class RecipientUnsubscribedError(WechatPermanentError):
    """43004: the recipient no longer follows the account."""

    code = "wechat_unsubscribed"
    recipient_unsubscribed = True  # the outbox marks the fan unfollowed on this account


class WechatCredentialsError(WechatPermanentError):
    """AppID/AppSecret refused or the server's IP is not whitelisted: an admin must act."""

    code = "wechat_credentials"


class WechatRateLimitedError(RateLimitedError):
    """API call quota (per minute or per day) reached."""

    code = "wechat_rate_limited"
    errcode: int = 0
    errmsg: str = ""


class WechatTokenError(WechatApiError):
    """The access token was refused again right after a refresh."""

    code = "wechat_token_invalid"


_RETRYABLE = frozenset({-1, 40001, 40014, 42001, 45033})
_RATE_LIMITS = {45009: 3600.0, 45011: 60.0, 45030: 60.0, 45031: 60.0, 45032: 60.0}
_CREDENTIALS = frozenset({40002, 40013, 40125, 40164, 41002, 41004, 48001, 61024, 89503})
_MESSAGES = {
    45015: "the 48-hour customer-service window is closed (or the fan unfollowed); "
    "send a template/subscription message instead",
    45047: "customer-service quota reached: at most 5 messages until the fan writes again",
    43004: "the recipient does not follow the account",
    40003: "invalid openid for this account",
    40037: "invalid template_id",
    40007: "invalid media_id",
    45002: "message content too long",
    40164: "this server's IP is not on the account's IP whitelist",
    40125: "invalid AppSecret",
    40013: "invalid AppID",
    48001: "the account is not authorised for this API",
    43101: "the fan has not accepted this subscription message (no consent, or a one-time consent used up)",
    47003: "a template/subscription data field is missing or has the wrong format",
    40016: "invalid number of menu buttons",
    40017: "invalid menu button type",
    40018: "menu button name too long",
    40019: "menu button key too long",
    40020: "menu button URL too long",
    40023: "invalid number of sub-buttons",
    40053: "invalid QR code action or scene",
    46003: "the account has no custom menu",
    45056: "too many tags (at most 100 per account)",
    45057: "the tag has more than 100,000 fans and cannot be deleted directly",
    45058: "tags 0, 1 and 2 are reserved and cannot be changed",
    45059: "a fan would have more than 20 tags",
    45157: "the tag name is already used (or invalid)",
    45158: "the tag name is longer than 30 bytes",
    45159: "no such tag id",
    40032: "at most 50 openids per call",
    49003: "the openid does not belong to this account",
}


def error_for(errcode: int, errmsg: str, api: str) -> ChannelError:
    """The typed exception for a non-zero ``errcode`` returned by `api` (never includes a token)."""
    hint = _MESSAGES.get(errcode, errmsg or "error")
    message = f"WeChat {api} failed: errcode {errcode} ({hint})"
    error: WechatApiError | WechatPermanentError | WechatRateLimitedError
    if errcode in _RATE_LIMITS:
        error = WechatRateLimitedError(message, retry_after=_RATE_LIMITS[errcode])
    elif errcode in _RETRYABLE:
        error = WechatTokenError(message) if errcode in TOKEN_INVALID_CODES else WechatApiError(message)
    elif errcode == 45015:
        error = ServiceWindowClosedError(message)
    elif errcode == 45047:
        error = ServiceQuotaExceededError(message)
    elif errcode == 43004:
        error = RecipientUnsubscribedError(message)
    elif errcode == 43101:
        error = SubscriptionRefusedError(message)
    elif errcode in _CREDENTIALS:
        error = WechatCredentialsError(message)
    else:
        error = WechatPermanentError(message)
    error.errcode = errcode
    error.errmsg = errmsg
    return error
