"""Contacts: resolving channel identities to people, profiles, orders and memberships."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from scrm.channels.base import Sender
from scrm.contact import repository
from scrm.contact.schemas import ContactIn
from scrm.errors import NotFound
from scrm.kit.time import utcnow
from scrm.models import Contact, ContactIdentity, Conversation, Membership, Order


@dataclass
class Resolved:
    contact: Contact
    identity: ContactIdentity
    created: bool


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "****" + phone[-4:]


def _follow_merges(session: Session, workspace_id: int, contact: Contact) -> Contact:
    seen = 0
    while contact.merged_into_id is not None and seen < 10:
        nxt = repository.get(session, workspace_id, contact.merged_into_id)
        if nxt is None:
            break
        contact, seen = nxt, seen + 1
    return contact


def resolve(session: Session, workspace_id: int, sender: Sender) -> Resolved:
    """Find the person behind a channel identity, creating them on first contact.

    Identities join people across channels: a WeChat unionid, a phone number the sender gave,
    or an imported Weibo uid / openid all lead to the same contact.
    """
    found = repository.identity_with_contact(session, workspace_id, sender.namespace, sender.external_id)
    if found is not None:
        ident, contact = found
        if contact is None:  # pragma: no cover - guarded by the foreign key
            raise NotFound("identity points at a missing contact")
        contact = _follow_merges(session, workspace_id, contact)
        _refresh(contact, ident, sender)
        return Resolved(contact, ident, False)

    contact = None
    if sender.unionid:
        union = repository.identity(session, workspace_id, "wechat_union", sender.unionid)
        if union is not None:
            contact = repository.get(session, workspace_id, union.contact_id)
    phone = sender.attributes.get("phone")
    if contact is None and phone:
        contact = repository.by_phone(session, workspace_id, str(phone))
    created = contact is None
    if contact is None:
        contact = Contact(
            workspace_id=workspace_id,
            name=sender.name or "",
            phone=str(phone) if phone else None,
            followers=sender.followers,
            attributes={},
            tags=[],
        )
        session.add(contact)
        session.flush()
    else:
        contact = _follow_merges(session, workspace_id, contact)
    linked = repository.insert_identity_returning(
        session,
        workspace_id=workspace_id,
        contact_id=contact.id,
        namespace=sender.namespace,
        external_id=sender.external_id,
        display_name=sender.name,
    )
    if sender.unionid:
        _link(session, workspace_id, contact.id, "wechat_union", sender.unionid, None)
    if linked is None:  # it existed already (another process was first): read the winner's
        linked = repository.identity(session, workspace_id, sender.namespace, sender.external_id)
    assert linked is not None
    ident = linked
    if ident.contact_id != contact.id:  # lost a race to another process: use the winner's contact
        winner = repository.get(session, workspace_id, ident.contact_id)
        assert winner is not None
        contact, created = winner, False
    _refresh(contact, ident, sender)
    return Resolved(contact, ident, created)


def _link(
    session: Session, workspace_id: int, contact_id: int, namespace: str, external_id: str, name: str | None
) -> None:
    repository.insert_identity_if_absent(
        session,
        workspace_id=workspace_id,
        contact_id=contact_id,
        namespace=namespace,
        external_id=external_id,
        display_name=name,
    )


def _refresh(contact: Contact, ident: ContactIdentity, sender: Sender) -> None:
    if sender.name and not contact.name:
        contact.name = sender.name
    if sender.name and ident.display_name != sender.name:
        ident.display_name = sender.name
    if sender.followers is not None and contact.followers != sender.followers:
        contact.followers = sender.followers


def link_identity(
    session: Session, workspace_id: int, contact: Contact, namespace: str, external_id: str
) -> None:
    _link(session, workspace_id, contact.id, namespace, external_id, None)


def mark_inbound(identity: ContactIdentity) -> None:
    identity.last_inbound_at = utcnow()


def set_subscribed(identity: ContactIdentity, contact: Contact, subscribed: bool) -> None:
    """Unsubscribing opts the fan out on that account: nothing more is sent there."""
    identity.subscribed = subscribed


def get(session: Session, workspace_id: int, contact_id: int) -> Contact:
    contact = repository.get(session, workspace_id, contact_id)
    if contact is None:
        raise NotFound("no such contact")
    return contact


def identities(session: Session, workspace_id: int, contact_id: int) -> list[ContactIdentity]:
    return list(repository.identities_of(session, workspace_id, contact_id))


def identity(session: Session, workspace_id: int, namespace: str, external_id: str) -> ContactIdentity | None:
    return repository.identity(session, workspace_id, namespace, external_id)


def orders(session: Session, workspace_id: int, contact_id: int, limit: int = 50) -> list[Order]:
    return list(repository.orders_of(session, workspace_id, contact_id, limit))


def memberships(session: Session, workspace_id: int, contact_id: int) -> list[Membership]:
    return list(repository.memberships_of(session, workspace_id, contact_id))


def conversations(
    session: Session, workspace_id: int, contact_id: int, limit: int = 20
) -> list[Conversation]:
    return list(repository.conversations_of(session, workspace_id, contact_id, limit))


def search(
    session: Session,
    workspace_id: int,
    *,
    query: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[Contact]:
    return list(repository.search(session, workspace_id, query=query, limit=limit, before_id=before_id))


def create(session: Session, workspace_id: int, data: ContactIn) -> Contact:
    contact = Contact(
        workspace_id=workspace_id,
        name=data.name,
        phone=data.phone,
        email=data.email,
        member_no=data.member_no,
        city=data.city,
        gender=data.gender,
        tags=list(data.tags),
        attributes=dict(data.attributes),
    )
    session.add(contact)
    session.flush()
    if data.phone:
        _link(session, workspace_id, contact.id, "phone", data.phone, None)
    if data.member_no:
        _link(session, workspace_id, contact.id, "member", data.member_no, None)
    for ident in data.identities:
        ns, ext = ident.get("namespace", ""), ident.get("external_id", "")
        if ns and ext:
            _link(session, workspace_id, contact.id, ns, ext, None)
    return contact
