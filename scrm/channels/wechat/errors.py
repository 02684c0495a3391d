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


class RecipientUnsubscribedError(WechatPermanentError):
    """43004: the recipient no longer follows the account."""

    code = "wechat_unsubscribed"


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
    elif errcode in _CREDENTIALS:
        error = WechatCredentialsError(message)
    else:
        error = WechatPermanentError(message)
    error.errcode = errcode
    error.errmsg = errmsg
    return error
