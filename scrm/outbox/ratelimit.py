"""Per-channel-account send quotas, shared by every worker process: a token bucket row per
account (`channel_rate_limit`).

WeChat and Weibo enforce API quotas per account. Taking a token is a short transaction of its
own on PostgreSQL (the bucket row is locked for milliseconds, not for the HTTP call), so many
workers share one quota without serialising their sends. With no token left the send is
postponed with :class:`RetryLater` (queued, no attempt counted), never failed.

Limits come from the account's config (`rate_limit_per_second`, `rate_limit_burst`), else the
settings `outbound_rate_per_second` / `outbound_rate_burst`; a rate of 0 turns the limit off.
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy.orm import Session

from scrm import metrics
from scrm.config import Settings
from scrm.kit.time import as_utc, utcnow
from scrm.models import ChannelAccount
from scrm.outbox import repository
from scrm.worker.registry import RetryLater


def limits_for(account: ChannelAccount, settings: Settings) -> tuple[float, float]:
    """(tokens per second, bucket size) for this account."""
    config: dict[str, Any] = account.config or {}
    rate = float(config.get("rate_limit_per_second", settings.outbound_rate_per_second) or 0)
    burst = float(config.get("rate_limit_burst", settings.outbound_rate_burst) or 0)
    return max(0.0, rate), max(1.0, burst)


def take(session: Session, workspace_id: int, channel_account_id: int, rate: float, burst: float) -> float:
    """Take one token: 0.0 if taken, else the seconds until one will be there."""
    now = utcnow()
    bucket = repository.rate_bucket_for_update(session, workspace_id, channel_account_id)
    if bucket is None:
        repository.insert_rate_bucket_if_absent(session, workspace_id, channel_account_id, rate, burst, now)
        bucket = repository.rate_bucket_for_update(session, workspace_id, channel_account_id)
        assert bucket is not None
    elapsed = max(0.0, (now - as_utc(bucket.updated_at)).total_seconds())
    tokens = min(burst, bucket.tokens + elapsed * rate)
    bucket.rate_per_second = rate
    bucket.burst = burst
    bucket.updated_at = now
    if tokens >= 1.0:
        bucket.tokens = tokens - 1.0
        return 0.0
    bucket.tokens = tokens
    return (1.0 - tokens) / rate


def acquire(ctx: Any, account: ChannelAccount) -> None:
    """Called by the outbox send (a JobContext) before the channel API: take a token or postpone."""
    rate, burst = limits_for(account, ctx.settings)
    if rate <= 0:
        return
    if ctx.db.is_sqlite:
        # One writer at a time on SQLite, and the job already holds it: take it in the job's
        # own transaction (a second writer would wait on the first for ever).
        wait = take(ctx.session, ctx.workspace_id, account.id, rate, burst)
    else:
        with ctx.db.transaction() as session:
            wait = take(session, ctx.workspace_id, account.id, rate, burst)
    if wait > 0:
        metrics.OUTBOUND_THROTTLED.labels(account.kind).inc()
        # Spread the postponed sends so they do not all come back in the same instant.
        raise RetryLater(
            wait + random.uniform(0.0, 1.0), f"send quota of account {account.id} ({rate:g}/s) used up"
        )
