"""Typed outbound errors for Weibo ``error_code`` values (reference §2.2)."""

from __future__ import annotations

from scrm.channels.base import ChannelError, PermanentChannelError, RateLimitedError

RATE_LIMIT_CODES = frozenset({10022, 10023, 10024, 20016})
DEFAULT_RETRY_AFTER = 900.0  # Weibo's limits are hourly windows; poll again in a while


class WeiboApiError(ChannelError):
    code = "weibo_api_error"
    error_code: int = 0


class WeiboPermanentError(PermanentChannelError):
    code = "weibo_rejected"
    error_code: int = 0


class WeiboAuthError(WeiboPermanentError):
    """The access token is expired, revoked or lacks the grant: the account must re-authorise."""

    code = "weibo_auth"


class WeiboRateLimitedError(RateLimitedError):
    code = "weibo_rate_limited"
    error_code: int = 0


_AUTH = frozenset({21301, 21314, 21315, 21316, 21317, 21319, 21327, 21332, 21501, 10006, 10014})
_RETRYABLE = frozenset({10001, 10009, 10010, 10011, 10012})
_MESSAGES = {
    10022: "IP request rate limit reached",
    10023: "user request rate limit reached",
    10024: "user request rate limit for this API reached",
    20016: "posting too fast",
    21327: "access token expired: re-authorise the account",
    21332: "access token invalid: re-authorise the account",
    20019: "duplicate content",
    20003: "user does not exist",
    20101: "the post does not exist (deleted?)",
    20206: "the author does not allow comments from this account",
    10014: "the app lacks permission for this API",
}


def error_for(
    error_code: int, error: str, api: str, *, status: int, retry_after: float | None
) -> ChannelError:
    message = f"Weibo {api} failed: error_code {error_code} ({_MESSAGES.get(error_code, error or 'error')})"
    result: WeiboApiError | WeiboPermanentError | WeiboRateLimitedError
    if error_code in RATE_LIMIT_CODES or status == 429:
        result = WeiboRateLimitedError(message, retry_after=retry_after or DEFAULT_RETRY_AFTER)
    elif error_code in _AUTH or status == 401:
        result = WeiboAuthError(message)
    elif error_code in _RETRYABLE or status >= 500:
        result = WeiboApiError(message)
    else:
        result = WeiboPermanentError(message)
    result.error_code = error_code
    return result
