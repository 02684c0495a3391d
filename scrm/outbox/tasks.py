"""Delivering outbox rows through their channel, with retries; never twice per key."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from scrm import events, metrics
from scrm.channels import registry as channels
from scrm.channels.base import (
    ChannelClient,
    ChannelError,
    OutboundMessage,
    PermanentChannelError,
    RateLimitedError,
    SendRefused,
    SendResult,
    SentLookup,
)
from scrm.config import Settings
from scrm.contact import service as contact_service
from scrm.errors import NotFound
from scrm.kit.time import as_utc, utcnow
from scrm.models import ChannelAccount, Message
from scrm.outbox import ratelimit, repository
from scrm.worker.registry import RetryLater, job
from scrm.worker.runner import JobContext
from scrm.workspace import service as workspace

log = logging.getLogger(__name__)

_clients: dict[tuple[int, str], ChannelClient] = {}
_clients_lock = threading.Lock()


def client_for(account: ChannelAccount, settings: Settings) -> ChannelClient:
    """One client per account and configuration, reused across sends (connection pooling)."""
    key = (account.id, f"{account.config}|{account.secrets}")
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            for old in [k for k in _clients if k[0] == account.id]:
                _clients.pop(old).close()
            build = channels.get(account.kind).build_client
            if build is None:
                raise PermanentChannelError(f"{account.kind} accounts cannot send", code="receive_only")
            client = build(workspace.account_view(account), settings)
            _clients[key] = client
        return client


def _finish_failed(ctx: JobContext, row: Any, message: Message | None, error: str, code: str) -> None:
    row.status = "failed"
    row.last_error = error
    if message is not None:
        message.status = "failed"
        message.error = error
        events.emit(
            ctx.session,
            ctx.workspace_id,
            "message.failed",
            {
                "conversation_id": str(row.conversation_id),
                "message_id": str(message.id),
                "error": error,
                "code": code,
            },
        )


def precheck(ctx: JobContext, account: ChannelAccount, row: Any, outbound: OutboundMessage) -> None:
    """The channel's own rules before any API call (unsubscribed fans, 48 h windows).

    The fan's follow state and window times are those of THIS account (ContactAccountState):
    every Weibo account shares the identity namespace "weibo", so the identity cannot say
    whether the fan follows this brand. A fan never seen by the account since that table exists
    falls back on the identity's flag (WeChat identities are per account already).
    """
    spec = channels.get(account.kind)
    if spec.precheck is None:
        return
    view = workspace.account_view(account)
    state = None
    subscribed: bool | None = None
    if outbound.recipient:
        state = contact_service.account_state(ctx.session, ctx.workspace_id, account.id, outbound.recipient)
        if state is not None:
            subscribed = state.subscribed
        elif spec.identity_namespace is not None:
            identity = contact_service.identity(
                ctx.session, ctx.workspace_id, spec.identity_namespace(view), outbound.recipient
            )
            subscribed = identity.subscribed if identity is not None else None
    last_inbound = as_utc(state.last_message_at) if state is not None and state.last_message_at else None
    last_interaction = (
        as_utc(state.last_interaction_at) if state is not None and state.last_interaction_at else None
    )
    sent = 0
    if last_inbound is not None:
        sent = repository.delivered_since(
            ctx.session, ctx.workspace_id, account.id, outbound.recipient, last_inbound, exclude_id=row.id
        )
    spec.precheck(
        channels.SendContext(
            account=view,
            message=outbound,
            subscribed=subscribed,
            last_inbound_at=last_inbound,
            sent_since_inbound=sent,
            now=utcnow(),
            last_interaction_at=last_interaction,
        )
    )


_FALLBACK_LABELS = {
    "template": "备用模板消息 (fallback template message)",
    "subscribe": "备用订阅消息 (fallback subscription message)",
}


def _queue_fallback(ctx: JobContext, row: Any, fallback: OutboundMessage) -> None:
    """Deliver the channel's substitute (e.g. a template message) as its own outbox row.

    Keyed by the fallback's own idempotency key (original key + kind): however often the
    original is retried or refused, at most one fallback of each kind is ever queued.
    """
    from scrm.outbox import service as outbox

    original_message = row.message_id or row.payload.get("fallback_for_message")
    outbox.queue(
        ctx.session,
        ctx.workspace_id,
        channel_account_id=row.channel_account_id,
        idempotency_key=f"fallback:{fallback.idempotency_key}"[:200],
        payload={
            "recipient": fallback.recipient,
            "text": fallback.text,
            "msg_type": fallback.msg_type,
            "visibility": fallback.visibility,
            "thread_key": fallback.thread_key,
            "reply_to_external_id": fallback.reply_to_external_id,
            "payload": dict(fallback.payload),
            "fallback_for": row.id,
            "fallback_for_message": original_message,
        },
        conversation_id=row.conversation_id,
    )


def _note_fallback(ctx: JobContext, row: Any, outcome: str) -> None:
    """Tell the agent, on the reply that could not go out, what became of its fallback."""
    message_id = row.payload.get("fallback_for_message")
    if not message_id:
        return
    message = ctx.session.get(Message, (ctx.workspace_id, int(message_id)))
    if message is None:
        return
    label = _FALLBACK_LABELS.get(str(row.payload.get("msg_type")), "备用消息 (fallback)")
    message.error = f"{message.error or ''} → {label}{outcome}"[-2000:]


def _mark_unfollowed(ctx: JobContext, account: ChannelAccount, recipient: str) -> None:
    """The platform says the fan left the account: nothing more is sent there."""
    spec = channels.get(account.kind)
    if spec.identity_namespace is None:
        return
    namespace = spec.identity_namespace(workspace.account_view(account))
    contact_service.note_unfollowed(ctx.session, ctx.workspace_id, account.id, namespace, recipient)


# How far a platform's clock may trail ours when matching a reply an earlier attempt posted.
CLOCK_SKEW = dt.timedelta(minutes=2)


def _sent_earlier(ctx: JobContext, client: Any, row: Any, outbound: OutboundMessage) -> SendResult | None:
    """On a retry, the reply an earlier attempt may already have posted (its answer timed out, or
    the worker died before committing): a channel that can list its sent messages is asked first,
    so the retry does not post it twice."""
    if ctx.job.attempts <= 1 or not isinstance(client, SentLookup):
        return None
    try:
        found = client.find_sent(outbound, not_before=as_utc(row.created_at) - CLOCK_SKEW)
    except PermanentChannelError as exc:
        # The listing itself is refused for good (e.g. the app lacks that API): sending again
        # risks a duplicate, never sending would lose the reply.
        log.warning("outbox %s: cannot look for an earlier delivery (%s); sending", row.id, exc.code)
        return None
    if found is not None:
        log.info(
            "outbox %s: an earlier attempt was delivered (%s); not sent again",
            row.id,
            found.external_message_id,
        )
    return found


@job("outbox.send", max_attempts=8)
def send(ctx: JobContext, payload: dict[str, Any]) -> None:
    session = ctx.session
    found = repository.get_for_send(session, ctx.workspace_id, int(payload["outbox_id"]))
    if found is None or found[0].status != "pending":
        return  # already sent or given up: never twice
    row, account, message = found
    if account is None:
        raise NotFound("no such channel account")
    p = row.payload
    outbound = OutboundMessage(
        idempotency_key=row.idempotency_key,
        recipient=str(p.get("recipient") or ""),
        text=str(p.get("text") or ""),
        msg_type=str(p.get("msg_type") or "text"),
        visibility="public" if p.get("visibility") == "public" else "private",
        thread_key=str(p.get("thread_key") or ""),
        reply_to_external_id=p.get("reply_to_external_id"),
        payload=dict(p.get("payload") or {}),
    )
    # The job's attempt count survives the rollback of a failed attempt; the row's would not.
    row.attempts = ctx.job.attempts
    try:
        precheck(ctx, account, row, outbound)
        ratelimit.acquire(ctx, account)  # per-account quota shared by all workers; may RetryLater
        client = client_for(account, ctx.settings)
        result = _sent_earlier(ctx, client, row, outbound) or client.send(outbound)
    except SendRefused as exc:
        # Refused by our precheck, or by the platform at send time (WeChat 45015 / 45047): the
        # same outcome either way, the reply fails with its reason and the fallback is queued.
        metrics.OUTBOUND_ERRORS.labels(account.kind, exc.code).inc()
        _finish_failed(ctx, row, message, str(exc), exc.code)
        _note_fallback(ctx, row, f"未送达 (not delivered)：{exc}")
        if exc.fallback is not None:
            _queue_fallback(ctx, row, exc.fallback)
        return
    except RateLimitedError as exc:
        metrics.OUTBOUND_ERRORS.labels(account.kind, exc.code).inc()
        raise RetryLater(exc.retry_after, str(exc)) from exc
    except PermanentChannelError as exc:
        metrics.OUTBOUND_ERRORS.labels(account.kind, exc.code).inc()
        _finish_failed(ctx, row, message, str(exc), exc.code)
        _note_fallback(ctx, row, f"未送达 (not delivered)：{exc}")
        if getattr(exc, "recipient_unsubscribed", False) and outbound.recipient:
            _mark_unfollowed(ctx, account, outbound.recipient)
        return
    except ChannelError as exc:
        metrics.OUTBOUND_ERRORS.labels(account.kind, exc.code).inc()
        if ctx.job.attempts >= ctx.job.max_attempts:
            _finish_failed(ctx, row, message, f"gave up after {ctx.job.attempts} attempts: {exc}", exc.code)
            _note_fallback(ctx, row, f"未送达 (not delivered)：{exc}")
            return
        raise
    row.status = "sent"
    row.sent_at = utcnow()
    row.external_message_id = result.external_message_id
    row.last_error = None
    metrics.OUTBOUND_SENT.labels(account.kind).inc()
    _note_fallback(ctx, row, "已送达 (delivered)")
    if message is not None:
        message.status = "sent"
        message.sent_at = row.sent_at
        message.channel_message_id = result.external_message_id
        events.emit(
            session,
            ctx.workspace_id,
            "message.sent",
            {"conversation_id": str(row.conversation_id), "message_id": str(message.id)},
        )
