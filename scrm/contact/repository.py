from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from scrm.models import Contact, ContactIdentity, Conversation, Membership, Order


def identity(session: Session, workspace_id: int, namespace: str, external_id: str) -> ContactIdentity | None:
    return session.execute(
        select(ContactIdentity).where(
            ContactIdentity.workspace_id == workspace_id,
            ContactIdentity.namespace == namespace,
            ContactIdentity.external_id == external_id,
        )
    ).scalar_one_or_none()


_IDENTITY_WITH_CONTACT = (
    select(ContactIdentity, Contact)
    .outerjoin(
        Contact,
        and_(Contact.workspace_id == ContactIdentity.workspace_id, Contact.id == ContactIdentity.contact_id),
    )
    .where(
        ContactIdentity.workspace_id == bindparam("ws"),
        ContactIdentity.namespace == bindparam("ns"),
        ContactIdentity.external_id == bindparam("ext"),
    )
)


def identity_with_contact(
    session: Session, workspace_id: int, namespace: str, external_id: str
) -> tuple[ContactIdentity, Contact | None] | None:
    """The identity and its contact in one read (the inbound hot path needs both)."""
    row = session.execute(
        _IDENTITY_WITH_CONTACT, {"ws": workspace_id, "ns": namespace, "ext": external_id}
    ).one_or_none()
    return None if row is None else (row[0], row[1])


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
    from scrm.kit.ids import new_id
    from scrm.kit.time import utcnow

    ins = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        ins(ContactIdentity)
        .values(
            workspace_id=workspace_id,
            id=new_id(),
            contact_id=contact_id,
            namespace=namespace,
            external_id=external_id,
            display_name=display_name,
            subscribed=True,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(ContactIdentity)
    )
    return session.scalars(stmt).one_or_none()


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
