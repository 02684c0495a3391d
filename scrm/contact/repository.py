from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, case, or_, select
from sqlalchemy.orm import Session

from scrm.db import DIALECTS, CommitBuffer, conflict_insert, keys_in
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow
from scrm.models import Contact, ContactAccountState, ContactIdentity, Conversation, Membership, Order


def identity(session: Session, workspace_id: int, namespace: str, external_id: str) -> ContactIdentity | None:
    return session.execute(
        select(ContactIdentity).where(
            ContactIdentity.workspace_id == workspace_id,
            ContactIdentity.namespace == namespace,
            ContactIdentity.external_id == external_id,
        )
    ).scalar_one_or_none()


_WITH_CONTACT = select(ContactIdentity, Contact).outerjoin(
    Contact,
    and_(Contact.workspace_id == ContactIdentity.workspace_id, Contact.id == ContactIdentity.contact_id),
)
_IDENTITY_WITH_CONTACT = _WITH_CONTACT.where(
    ContactIdentity.workspace_id == bindparam("ws"),
    ContactIdentity.namespace == bindparam("ns"),
    ContactIdentity.external_id == bindparam("ext"),
)


def identity_with_contact(
    session: Session, workspace_id: int, namespace: str, external_id: str
) -> tuple[ContactIdentity, Contact | None] | None:
    """The identity and its contact in one read (the inbound hot path needs both)."""
    row = session.execute(
        _IDENTITY_WITH_CONTACT, {"ws": workspace_id, "ns": namespace, "ext": external_id}
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def identities_with_contacts(
    session: Session, workspace_id: int, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[ContactIdentity, Contact | None]]:
    """`identity_with_contact` for many (namespace, external id) pairs in one read."""
    if not keys:
        return {}
    rows = session.execute(
        _WITH_CONTACT.where(
            ContactIdentity.workspace_id == workspace_id,
            keys_in((ContactIdentity.namespace, ContactIdentity.external_id), keys),
        )
    ).all()
    return {(ident.namespace, ident.external_id): (ident, contact) for ident, contact in rows}


def identities_of(session: Session, workspace_id: int, contact_id: int) -> Sequence[ContactIdentity]:
    return (
        session.execute(
            select(ContactIdentity)
            .where(ContactIdentity.workspace_id == workspace_id, ContactIdentity.contact_id == contact_id)
            .order_by(ContactIdentity.id)
        )
        .scalars()
        .all()
    )


def get(session: Session, workspace_id: int, contact_id: int) -> Contact | None:
    return session.get(Contact, (workspace_id, contact_id))


def by_phone(session: Session, workspace_id: int, phone: str) -> Contact | None:
    return session.execute(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.phone == phone).limit(1)
    ).scalar_one_or_none()


def by_member_no(session: Session, workspace_id: int, member_no: str) -> Contact | None:
    return session.execute(
        select(Contact).where(Contact.workspace_id == workspace_id, Contact.member_no == member_no).limit(1)
    ).scalar_one_or_none()


def search(
    session: Session, workspace_id: int, *, query: str | None, limit: int, before_id: int | None
) -> Sequence[Contact]:
    stmt = select(Contact).where(Contact.workspace_id == workspace_id, Contact.merged_into_id.is_(None))
    if query:
        like = f"%{query}%"
        stmt = stmt.where(
            or_(Contact.name.like(like), Contact.phone.like(like), Contact.member_no.like(like))
        )
    if before_id is not None:
        stmt = stmt.where(Contact.id < before_id)
    return session.execute(stmt.order_by(Contact.id.desc()).limit(limit)).scalars().all()


def orders_of(session: Session, workspace_id: int, contact_id: int, limit: int = 50) -> Sequence[Order]:
    return (
        session.execute(
            select(Order)
            .where(Order.workspace_id == workspace_id, Order.contact_id == contact_id)
            .order_by(Order.placed_at.desc(), Order.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )


def memberships_of(session: Session, workspace_id: int, contact_id: int) -> Sequence[Membership]:
    return (
        session.execute(
            select(Membership).where(
                Membership.workspace_id == workspace_id, Membership.contact_id == contact_id
            )
        )
        .scalars()
        .all()
    )


def membership(session: Session, workspace_id: int, program: str, member_no: str) -> Membership | None:
    return session.execute(
        select(Membership).where(
            Membership.workspace_id == workspace_id,
            Membership.program == program,
            Membership.member_no == member_no,
        )
    ).scalar_one_or_none()


def order(session: Session, workspace_id: int, source: str, external_id: str) -> Order | None:
    return session.execute(
        select(Order).where(
            Order.workspace_id == workspace_id, Order.source == source, Order.external_id == external_id
        )
    ).scalar_one_or_none()


def insert_identity_returning(
    session: Session,
    *,
    workspace_id: int,
    contact_id: int,
    namespace: str,
    external_id: str,
    display_name: str | None,
) -> ContactIdentity | None:
    """Insert the identity unless it exists; hands back the new row (None if it existed)."""
    rows = [(contact_id, namespace, external_id, display_name)]
    return insert_identities_returning(session, workspace_id, rows).get((namespace, external_id))


_INSERT_IDENTITIES = {
    dialect: conflict_insert(dialect, ContactIdentity).on_conflict_do_nothing().returning(ContactIdentity)
    for dialect in DIALECTS
}


def insert_identities_returning(
    session: Session, workspace_id: int, rows: Sequence[tuple[int, str, str, str | None]]
) -> dict[tuple[str, str], ContactIdentity]:
    """Insert many (contact id, namespace, external id, display name) identities in one
    statement (an executemany that SQLAlchemy sends as one multi-row INSERT, compiled once),
    skipping those that exist; hands back the new rows by (namespace, external id)."""
    if not rows:
        return {}
    now = utcnow()
    params = [
        {
            "workspace_id": workspace_id,
            "id": new_id(),
            "contact_id": contact_id,
            "namespace": namespace,
            "external_id": external_id,
            "display_name": name,
            "subscribed": True,
            "created_at": now,
        }
        for contact_id, namespace, external_id, name in rows
    ]
    stmt = _INSERT_IDENTITIES[session.get_bind().dialect.name]
    return {(i.namespace, i.external_id): i for i in session.scalars(stmt, params)}


def insert_identity_if_absent(
    session: Session,
    *,
    workspace_id: int,
    contact_id: int,
    namespace: str,
    external_id: str,
    display_name: str | None,
) -> bool:
    # RETURNING, not rowcount: an ORM-enabled INSERT reports rowcount -1 on psycopg 3, which
    # made every repeat look new on PostgreSQL.
    return (
        insert_identity_returning(
            session,
            workspace_id=workspace_id,
            contact_id=contact_id,
            namespace=namespace,
            external_id=external_id,
            display_name=display_name,
        )
        is not None
    )


def conversations_of(
    session: Session, workspace_id: int, contact_id: int, limit: int = 20
) -> Sequence[Conversation]:
    return (
        session.execute(
            select(Conversation)
            .where(Conversation.workspace_id == workspace_id, Conversation.contact_id == contact_id)
            .order_by(Conversation.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )


def identity_by_external_prefix(
    session: Session, workspace_id: int, namespace_prefix: str, external_id: str
) -> ContactIdentity | None:
    return session.execute(
        select(ContactIdentity)
        .where(
            ContactIdentity.workspace_id == workspace_id,
            ContactIdentity.namespace.like(f"{namespace_prefix}%"),
            ContactIdentity.external_id == external_id,
        )
        .limit(1)
    ).scalar_one_or_none()


# -- per channel account state (follow, reply windows) -------------------------------------------


def account_state(
    session: Session, workspace_id: int, channel_account_id: int, external_id: str
) -> ContactAccountState | None:
    _account_states.flush(session)
    return session.execute(
        select(ContactAccountState)
        .where(
            ContactAccountState.workspace_id == workspace_id,
            ContactAccountState.channel_account_id == channel_account_id,
            ContactAccountState.external_id == external_id,
        )
        .execution_options(populate_existing=True)  # upsert_account_state bypasses the ORM
    ).scalar_one_or_none()


def account_states_of(
    session: Session, workspace_id: int, namespace: str, external_id: str
) -> Sequence[ContactAccountState]:
    """The fan's state on every account of `namespace` (one for WeChat, one per Weibo brand)."""
    _account_states.flush(session)
    return (
        session.execute(
            select(ContactAccountState)
            .where(
                ContactAccountState.workspace_id == workspace_id,
                ContactAccountState.namespace == namespace,
                ContactAccountState.external_id == external_id,
            )
            .order_by(ContactAccountState.channel_account_id)
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )


def _later(column: Any, value: Any) -> Any:
    """SQL: the later of the stored `column` and the new `value` (NULL counts as earliest)."""
    return case((or_(column.is_(None), column < value), value), else_=column)


_UPSERTS: dict[tuple[str, bool, bool, bool], Any] = {}


def _upsert_statement(dialect: str, message: bool, interaction: bool, follow: bool) -> Any:
    """The upsert for one shape of event, built once (building it costs more than running it)."""
    key = (dialect, message, interaction, follow)
    stmt = _UPSERTS.get(key)
    if stmt is not None:
        return stmt
    names = (
        "workspace_id",
        "id",
        "channel_account_id",
        "namespace",
        "external_id",
        "subscribed",
        "subscription_changed_at",
        "last_message_at",
        "last_interaction_at",
        "updated_at",
        "created_at",
    )
    base = conflict_insert(dialect, ContactAccountState).values({name: bindparam(name) for name in names})
    table = ContactAccountState.__table__.c
    new = base.excluded
    updates: dict[str, Any] = {"updated_at": new.updated_at}
    if message:
        updates["last_message_at"] = _later(table.last_message_at, new.last_message_at)
    if interaction:
        updates["last_interaction_at"] = _later(table.last_interaction_at, new.last_interaction_at)
    if follow:
        newer = or_(
            table.subscription_changed_at.is_(None),
            table.subscription_changed_at <= new.subscription_changed_at,
        )
        updates["subscribed"] = case((newer, new.subscribed), else_=table.subscribed)
        updates["subscription_changed_at"] = _later(
            table.subscription_changed_at, new.subscription_changed_at
        )
    stmt = base.on_conflict_do_update(
        index_elements=["workspace_id", "channel_account_id", "external_id"], set_=updates
    )
    _UPSERTS[key] = stmt
    return stmt


def _write_account_states(session: Session, rows: list[dict[str, Any]]) -> None:
    """The queued upserts, merged to one row per fan and account (one statement must not update a
    row twice, and rows of different statements must not depend on their order): the later
    times, the follow state of the newest follow event (the later one on a tie), which is what
    applying them one after another leaves; then one executemany per shape."""
    merged: dict[tuple[Any, ...], tuple[list[bool], dict[str, Any]]] = {}
    for queued in rows:
        row = dict(queued)
        shape = row.pop("_shape")
        key = (row["workspace_id"], row["channel_account_id"], row["external_id"])
        have = merged.get(key)
        if have is None:
            merged[key] = (list(shape), row)
            continue
        flags, kept = have
        flags[:] = [x or y for x, y in zip(flags, shape, strict=True)]
        for column in ("last_message_at", "last_interaction_at"):
            if row[column] is not None and (kept[column] is None or row[column] > kept[column]):
                kept[column] = row[column]
        changed = row["subscription_changed_at"]
        if changed is not None and (
            kept["subscription_changed_at"] is None or changed >= kept["subscription_changed_at"]
        ):
            kept["subscription_changed_at"], kept["subscribed"] = changed, row["subscribed"]
        kept["updated_at"] = max(kept["updated_at"], row["updated_at"])
    by_shape: dict[tuple[bool, ...], list[dict[str, Any]]] = {}
    for flags, row in merged.values():
        by_shape.setdefault(tuple(flags), []).append(row)
    dialect = session.get_bind().dialect.name
    connection = session.connection()
    for (message, interaction, follow), params in by_shape.items():
        connection.execute(_upsert_statement(dialect, message, interaction, follow), params)


# Account-state upserts go out in one executemany per shape when the transaction commits (each
# inbound message moves its fan's window; a group of jobs sharing a transaction, many fans).
# Readers in the same transaction (`account_state`, `account_states_of`) write them first.
_account_states = CommitBuffer("account_states", _write_account_states)


def upsert_account_state(
    session: Session,
    *,
    workspace_id: int,
    channel_account_id: int,
    namespace: str,
    external_id: str,
    at: dt.datetime,
    message: bool,
    interaction: bool,
    subscribed: bool | None,
) -> None:
    """Queued for the commit; safe under concurrency: create the row or move its times forward;
    set the follow state only if this event is not older than the one that set it last."""
    now = utcnow()
    _account_states.add(
        session,
        {
            "_shape": (message, interaction, subscribed is not None),
            "workspace_id": workspace_id,
            "id": new_id(),
            "channel_account_id": channel_account_id,
            "namespace": namespace,
            "external_id": external_id,
            "subscribed": subscribed,
            "subscription_changed_at": at if subscribed is not None else None,
            "last_message_at": at if message else None,
            "last_interaction_at": at if interaction else None,
            "updated_at": now,
            "created_at": now,
        },
    )
