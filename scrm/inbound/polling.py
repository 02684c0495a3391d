"""Periodic imports for channels that must be polled (Weibo mentions and comments).

For every channel spec with a ``poll`` hook, job ``<kind>.poll`` runs once per interval per
workspace (``scrm.worker.runner.periodic``) and enqueues ``<kind>.poll_account`` for each
active account of that kind (idempotent per slot, ordered per account so two polls of one
account never overlap). ``poll_account`` fetches what is new since the cursors in
``ChannelAccount.state`` and stores the events (``inbound.service.accept``) and the new cursors
IN THE SAME TRANSACTION: a crash or restart at any point neither re-imports nor skips
anything (and re-imported items would dedup on their ``status:<id>`` / ``comment:<id>`` keys).
A rate limit leaves everything as it was and retries after the platform's ``retry_after``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from scrm.channels import registry
from scrm.channels.base import ChannelError, InboundRejected, RateLimitedError
from scrm.inbound import codec, service
from scrm.worker.registry import RetryLater, job
from scrm.worker.runner import JobContext, periodic
from scrm.worker.service import enqueue
from scrm.workspace import service as workspace

log = logging.getLogger(__name__)


def poll_account(ctx: JobContext, account_id: int) -> int:
    """Import one account's new items; returns how many events were new."""
    session = ctx.session
    account = workspace.get_channel_account(session, ctx.workspace_id, account_id)
    spec = registry.get(account.kind)
    if spec.poll is None or account.status != "active":
        return 0
    view = workspace.account_view(account)
    try:
        result = spec.poll(view, ctx.settings)
    except RateLimitedError as exc:
        raise RetryLater(exc.retry_after, f"{account.kind} rate limit: {exc}") from exc
    except ChannelError as exc:
        # Unreachable or refusing: nothing stored, the cursor stays; the next slot tries again
        # (no retries or dead letters for a poll the schedule repeats anyway).
        log.warning("%s account %s: poll failed: %s", account.kind, account.id, exc)
        return 0
    new = 0
    for event in result.events:  # one raw record per item: the parsed item is its own record
        raw = json.dumps(codec.to_json(event), ensure_ascii=False, default=str)
        try:
            accepted = service.accept(
                session,
                workspace_id=ctx.workspace_id,
                channel_account_id=account.id,
                channel_kind=account.kind,
                events=[event],
                raw=raw,
            )
        except InboundRejected as exc:  # one unstorable item must not stop every later poll
            log.warning(
                "%s account %s: item %s skipped: %s", account.kind, account.id, event.external_id, exc
            )
            continue
        new += sum(1 for a in accepted if a.new)
    if result.state != account.state:
        account.state = dict(result.state)  # same transaction as the events above
    if result.events:
        log.info("%s account %s: polled %s items, %s new", account.kind, account.id, len(result.events), new)
    return new


def enqueue_poll(session: Session, workspace_id: int, kind: str, account_id: int, slot: str) -> int | None:
    """Queue one poll of one account (once per slot; polls of one account run in order)."""
    return enqueue(
        session,
        workspace_id,
        f"{kind}.poll_account",
        {"account_id": account_id},
        idempotency_key=f"{account_id}:{slot}",
        ordering_key=f"poll:{account_id}",
    )


def _register(spec: registry.ChannelSpec) -> None:
    kind = spec.kind

    @job(f"{kind}.poll_account", max_attempts=5, timeout_seconds=300)
    def _poll_one(ctx: JobContext, payload: dict[str, Any]) -> None:
        poll_account(ctx, int(payload["account_id"]))

    @job(f"{kind}.poll", max_attempts=3)
    def _poll_workspace(ctx: JobContext, payload: dict[str, Any]) -> None:
        for account in workspace.list_channel_accounts(ctx.session, ctx.workspace_id, kind):
            if account.status != "active" or account.config.get("poll") is False:
                continue
            enqueue_poll(ctx.session, ctx.workspace_id, kind, account.id, str(payload.get("slot", "")))

    periodic(f"{kind}.poll", spec.poll_interval_seconds)


for _spec in registry.all_specs().values():
    if _spec.poll is not None:
        _register(_spec)
