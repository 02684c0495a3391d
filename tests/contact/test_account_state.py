"""Per-channel-account follow state and window times (contact_account_state): what the inbound
pipeline records, and the migration's backfill from existing conversations."""

from __future__ import annotations

import datetime as dt

from alembic.script import ScriptDirectory
from sqlalchemy import select, update

from scrm import migrate
from scrm.channels.base import InboundEvent, Sender
from scrm.config import Settings
from scrm.contact import service as contact_service
from scrm.db import Database
from scrm.models import ContactAccountState, ContactIdentity
from scrm.workspace import service
from tests.conftest import Workspace
from tests.helpers import run_jobs
from tests.outbox import test_weibo_replies
from tests.outbox.test_weibo_replies import BRANDS, FAN, Env

MIGRATION = "e6b2c8d45a17"
weibo_env = test_weibo_replies.env  # two Weibo brand accounts and the fake Weibo API


def _accounts(db: Database, ws: Workspace) -> tuple[int, int]:
    with db.transaction() as s:
        ids = []
        for key, (uid, secret, token) in BRANDS.items():
            account = service.create_channel_account(
                s,
                ws.id,
                "weibo",
                f"品牌{key}",
                external_id=uid,
                secrets={"app_secret": secret, "access_token": token},
            )
            ids.append(account.id)
    return ids[0], ids[1]


def _event(kind: str, at: dt.datetime, visibility: str = "private") -> InboundEvent:
    return InboundEvent(
        external_id=f"{kind}:{at.timestamp()}",
        kind=kind,  # type: ignore[arg-type]
        sender=Sender(external_id=FAN, namespace="weibo"),
        sent_at=at,
        visibility=visibility,  # type: ignore[arg-type]
    )


def _record(db: Database, ws: Workspace, account_id: int, event: InboundEvent) -> None:
    with db.transaction() as s:
        resolved = contact_service.resolve(s, ws.id, event.sender)
        contact_service.record_account_event(s, ws.id, resolved.identity, account_id, event)


def _state(db: Database, account_id: int) -> ContactAccountState | None:
    with db.transaction(readonly=True) as s:
        return s.execute(
            select(ContactAccountState).where(ContactAccountState.channel_account_id == account_id)
        ).scalar_one_or_none()


def _identity(db: Database) -> ContactIdentity:
    with db.transaction(readonly=True) as s:
        return s.execute(select(ContactIdentity).where(ContactIdentity.namespace == "weibo")).scalar_one()


def test_times_only_move_forward_and_public_posts_open_no_private_window(
    db: Database, workspace: Workspace
) -> None:
    a, _ = _accounts(db, workspace)
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    _record(db, workspace, a, _event("message", t0))
    _record(db, workspace, a, _event("message", t0 - dt.timedelta(hours=1)))  # older, processed late
    _record(db, workspace, a, _event("mention", t0 + dt.timedelta(hours=1), visibility="public"))
    state = _state(db, a)
    assert state is not None and state.subscribed is None
    assert state.last_message_at == state.last_interaction_at
    assert abs((state.last_message_at - t0).total_seconds() - 1) < 0.01  # type: ignore[operator]
    _record(db, workspace, a, _event("click", t0 + dt.timedelta(hours=2)))
    state = _state(db, a)
    assert state is not None and state.last_message_at is not None and state.last_interaction_at is not None
    assert state.last_interaction_at - state.last_message_at == dt.timedelta(hours=2)


def test_a_stamp_from_the_future_counts_as_now(db: Database, workspace: Workspace) -> None:
    a, _ = _accounts(db, workspace)
    _record(db, workspace, a, _event("message", dt.datetime.now(dt.UTC) + dt.timedelta(days=30)))
    state = _state(db, a)
    assert state is not None and state.last_message_at is not None
    assert state.last_message_at <= dt.datetime.now(dt.UTC)


def test_identity_flag_is_false_only_when_every_account_was_left(db: Database, workspace: Workspace) -> None:
    a, b = _accounts(db, workspace)
    now = dt.datetime.now(dt.UTC)
    _record(db, workspace, a, _event("subscribe", now - dt.timedelta(minutes=3)))
    _record(db, workspace, b, _event("subscribe", now - dt.timedelta(minutes=3)))
    _record(db, workspace, a, _event("unsubscribe", now - dt.timedelta(minutes=2)))
    assert _identity(db).subscribed is True
    _record(db, workspace, b, _event("unsubscribe", now - dt.timedelta(minutes=1)))
    assert _identity(db).subscribed is False
    assert _state(db, a).subscribed is False and _state(db, b).subscribed is False  # type: ignore[union-attr]
    _record(db, workspace, b, _event("subscribe", now))
    assert _identity(db).subscribed is True
    assert _state(db, a).subscribed is False  # type: ignore[union-attr]


def _record_all(db: Database, ws: Workspace, account_id: int, events: list[InboundEvent]) -> None:
    with db.transaction() as s:  # a group of inbound jobs sharing one transaction
        for event in events:
            resolved = contact_service.resolve(s, ws.id, event.sender)
            contact_service.record_account_event(s, ws.id, resolved.identity, account_id, event)


def _snapshot(state: ContactAccountState | None) -> tuple[object, ...]:
    assert state is not None
    return (state.subscribed, state.subscription_changed_at, state.last_message_at, state.last_interaction_at)


def test_many_events_in_one_transaction_leave_what_one_per_transaction_leaves(
    db: Database, workspace: Workspace
) -> None:
    # The upserts of a transaction are queued and merged per fan and account at the commit: the
    # result must be that of applying them one by one, whatever their order (follow and unfollow
    # in the same second: the later one wins, as it would one by one).
    a, b = _accounts(db, workspace)
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    sequence = [
        _event("message", t0 + dt.timedelta(minutes=5)),
        _event("subscribe", t0),
        _event("message", t0),  # older, processed late
        _event("click", t0 + dt.timedelta(minutes=9)),
        _event("unsubscribe", t0 + dt.timedelta(minutes=3)),
        _event("subscribe", t0 + dt.timedelta(minutes=3)),  # same second: wins, being later
        _event("unsubscribe", t0 + dt.timedelta(minutes=1)),  # older than the follow: ignored
        _event("mention", t0 + dt.timedelta(minutes=20), visibility="public"),
    ]
    for event in sequence:
        _record(db, workspace, a, event)
    _record_all(db, workspace, b, sequence)
    one_by_one, together = _snapshot(_state(db, a)), _snapshot(_state(db, b))
    assert together == one_by_one
    assert together[0] is True and together[1] == t0 + dt.timedelta(minutes=3, seconds=1)
    assert together[3] == t0 + dt.timedelta(minutes=9, seconds=1)


def test_a_reader_in_the_transaction_sees_the_queued_upserts_and_a_rollback_keeps_none(
    db: Database, workspace: Workspace
) -> None:
    a, _ = _accounts(db, workspace)
    now = dt.datetime.now(dt.UTC)
    with db.transaction() as s:
        resolved = contact_service.resolve(s, workspace.id, Sender(external_id=FAN, namespace="weibo"))
        contact_service.record_account_event(s, workspace.id, resolved.identity, a, _event("subscribe", now))
        seen = contact_service.account_state(s, workspace.id, a, FAN)
        assert seen is not None and seen.subscribed is True
    try:
        with db.transaction() as s:
            resolved = contact_service.resolve(s, workspace.id, Sender(external_id=FAN, namespace="weibo"))
            later = now + dt.timedelta(seconds=5)
            contact_service.record_account_event(
                s, workspace.id, resolved.identity, a, _event("unsubscribe", later)
            )
            raise RuntimeError("the job failed")
    except RuntimeError:
        pass
    assert _state(db, a).subscribed is True  # type: ignore[union-attr]


def test_migration_backfills_from_private_conversations(
    weibo_env: Env, db: Database, settings: Settings, workspace: Workspace
) -> None:
    env = weibo_env
    env.push("a", text="A 店")
    env.push("b", text="B 店")
    run_jobs(db, settings)
    a, b = env.brands["a"].id, env.brands["b"].id
    before = {s: _state(db, s).last_message_at for s in (a, b)}  # type: ignore[union-attr]
    with db.transaction() as s:  # the old, workspace-wide opt-out of a Weibo fan
        s.execute(
            update(ContactIdentity).where(ContactIdentity.namespace == "weibo").values(subscribed=False)
        )
    script = ScriptDirectory.from_config(migrate.alembic_config(db.url))
    down = script.get_revision(MIGRATION).down_revision
    assert isinstance(down, str)
    migrate.downgrade(db, down)
    migrate.upgrade(db)
    for account_id in (a, b):
        state = _state(db, account_id)
        assert state is not None and state.namespace == "weibo" and state.external_id == FAN
        assert state.subscribed is False  # kept opted out until the fan follows again
        assert state.last_message_at is not None and before[account_id] is not None
        # Backfilled from the conversation (stamped on arrival), within seconds of the event.
        assert abs((state.last_message_at - before[account_id]).total_seconds()) < 5
