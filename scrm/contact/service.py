"""Contacts: resolving channel identities to people, profiles, orders and memberships."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from scrm.channels.base import InboundEvent, Sender
from scrm.contact import repository
from scrm.contact.schemas import ContactIn
from scrm.db import ReadAhead
from scrm.errors import NotFound
from scrm.kit.geo import valid_point
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow
from scrm.models import Contact, ContactAccountState, ContactIdentity, Conversation, Membership, Order


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


# (workspace id, namespace, external id) -> (identity, contact) or None
_identities_ahead = ReadAhead("identity")


def read_ahead(
    session: Session, workspace_id: int, senders: Sequence[Sender]
) -> dict[tuple[str, str], tuple[ContactIdentity, Contact | None]]:
    """Look up many senders' identities and contacts in one statement, for the `resolve` calls
    that follow in the same transaction (a group of inbound jobs); the new fans among them are
    then created `CREATE_AHEAD` at a time (`_create_ahead`). Returns those found, by
    (namespace, external id)."""
    keys = list(dict.fromkeys((s.namespace, s.external_id) for s in senders))
    found = repository.identities_with_contacts(session, workspace_id, keys)
    _identities_ahead.put(
        session, {(workspace_id, *k): v for k, v in found.items()}, [(workspace_id, *k) for k in keys]
    )
    _plan_creation(session, workspace_id, senders)
    return found


# (workspace id, namespace, external id) -> True: `_create_ahead` made this fan's contact
_created_ahead = ReadAhead("identity_created")
# (workspace id,) -> {(namespace, external id): sender}: new fans of the group not yet created
_pending_ahead = ReadAhead("identity_pending")
# New fans created together when the group's first uncreated one is resolved. Not all at once:
# a group may stop early (the transaction's time budget), and the fans of the jobs it leaves
# for later should not appear before their messages.
CREATE_AHEAD = 10


def _plan_creation(session: Session, workspace_id: int, senders: Sequence[Sender]) -> None:
    """Remember the senders `read_ahead` did not find, for `_create_ahead`. Senders that may
    belong to an existing contact (a WeChat unionid, a phone number) are left to `resolve`'s
    own path, which looks those up."""
    new: dict[tuple[str, str], Sender] = {}
    for s in senders:
        key = (s.namespace, s.external_id)
        if s.unionid or s.attributes.get("phone") or key in new:
            continue
        if _identities_ahead.get(session, (workspace_id, *key)) is None:
            new[key] = s
    if new:
        _pending_ahead.put(session, {(workspace_id,): new})


def _create_ahead(session: Session, workspace_id: int, first: tuple[str, str]) -> bool:
    """Create the contacts and identities of `first` and the next pending new fans of the group
    in two statements (instead of two each), for the `resolve` calls of the same transaction.
    False if `first` is not pending. If another transaction created one of the identities
    meanwhile, its contact is used and the one made here is deleted again."""
    pending = _pending_ahead.get(session, (workspace_id,))
    if pending is ReadAhead.NOT_READ or pending is None or first not in pending:
        return False
    chunk = [first, *[k for k in pending if k != first][: CREATE_AHEAD - 1]]
    new = {key: pending.pop(key) for key in chunk}
    contacts = {
        key: Contact(
            workspace_id=workspace_id,
            id=new_id(),
            name=s.name or "",
            followers=s.followers,
            attributes={},
            tags=[],
        )
        for key, s in new.items()
    }
    session.add_all(contacts.values())
    session.flush()
    linked = repository.insert_identities_returning(
        session,
        workspace_id,
        [(contacts[key].id, key[0], key[1], s.name) for key, s in new.items()],
    )
    lost = [key for key in new if key not in linked]
    if lost:  # another transaction was first: use its contacts, drop ours
        winners = repository.identities_with_contacts(session, workspace_id, lost)
        for key in lost:
            session.delete(contacts.pop(key))
        session.flush()
        _identities_ahead.put(session, {(workspace_id, *k): v for k, v in winners.items()})
    _identities_ahead.put(session, {(workspace_id, *key): (linked[key], c) for key, c in contacts.items()})
    _created_ahead.put(session, {(workspace_id, *key): True for key in contacts})
    return True


def resolve(session: Session, workspace_id: int, sender: Sender) -> Resolved:
    """Find the person behind a channel identity, creating them on first contact.

    Identities join people across channels: a WeChat unionid, a phone number the sender gave,
    or an imported Weibo uid / openid all lead to the same contact.
    """
    key = (workspace_id, sender.namespace, sender.external_id)
    found = _identities_ahead.get(session, key)  # None: there was no such identity then
    if found is ReadAhead.NOT_READ:
        found = repository.identity_with_contact(session, workspace_id, sender.namespace, sender.external_id)
    elif found is None and _create_ahead(session, workspace_id, key[1:]):
        found = _identities_ahead.get(session, key)
    if found is not None:
        ident, contact = found
        if contact is None:  # pragma: no cover - guarded by the foreign key
            raise NotFound("identity points at a missing contact")
        contact = _follow_merges(session, workspace_id, contact)
        _refresh(contact, ident, sender)
        return Resolved(contact, ident, _created_ahead.pop(session, key) is True)

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
    _identities_ahead.record(session, key, (ident, contact))  # for a later sender in the group
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


def set_subscribed(identity: ContactIdentity, contact: Contact, subscribed: bool) -> None:
    """The identity-wide flag only; the inbound pipeline uses :func:`record_account_event`,
    which keeps the state per channel account (what the outbox checks)."""
    identity.subscribed = subscribed


# Events that open the platform's reply window on the account they arrive on (reference §2.1:
# Weibo lets the account answer within 48 h of a message, follow, menu click or QR scan).
_WINDOW_EVENTS = frozenset({"subscribe", "scan", "click"})
_MESSAGE_KINDS = frozenset({"message", "mention", "comment"})
_STAMP_RESOLUTION = dt.timedelta(seconds=1)


def record_account_event(
    session: Session,
    workspace_id: int,
    identity: ContactIdentity,
    channel_account_id: int,
    event: InboundEvent,
) -> None:
    """Keep the fan's standing with the account the event came in on (ContactAccountState).

    Private messages move the last-message and last-interaction times; follows, menu clicks
    and QR scans the last-interaction time; follow / unfollow set the follow state on this
    account only: an unfollow of Weibo brand A leaves brand B alone, although both know the fan
    under the one "weibo" identity. The identity's own `subscribed` flag then says whether the
    fan still follows at least one account of its namespace. Public mentions and comments are
    not private contact and open no private window.
    """
    kind = event.kind
    private = event.visibility == "private"
    message = kind in _MESSAGE_KINDS and private
    subscribed = True if kind == "subscribe" else False if kind == "unsubscribe" else None
    interaction = message or kind in _WINDOW_EVENTS
    if not (message or interaction or subscribed is not None):
        return
    now = utcnow()
    # Platforms stamp events to the second (CreateTime, created_at): the event happened within
    # the second after its stamp, so replies sent earlier in that second are not counted
    # against the window it opens. Never later than now (a clock ahead, a forged stamp).
    at = min(event.sent_at + _STAMP_RESOLUTION, now) if event.sent_at.tzinfo is not None else now
    repository.upsert_account_state(
        session,
        workspace_id=workspace_id,
        channel_account_id=channel_account_id,
        namespace=identity.namespace,
        external_id=identity.external_id,
        at=at,
        message=message,
        interaction=interaction,
        subscribed=subscribed,
    )
    if subscribed is True:
        identity.subscribed = True
    elif subscribed is False:
        states = repository.account_states_of(session, workspace_id, identity.namespace, identity.external_id)
        identity.subscribed = any(
            s.subscribed is not False for s in states if s.channel_account_id != channel_account_id
        )


# Where the fan last said they are (a WeChat location message or LOCATION report, a Weibo
# position): kept on the contact for the nearest-store reply.
LOCATION_ATTRIBUTE = "last_location"


def record_location(contact: Contact, event: InboundEvent) -> bool:
    """Keep the event's location as the fan's last known one; True if it was stored.

    Coordinates that are not finite or out of range are ignored (the parsers already drop
    what is not a number); an older event processed late never replaces a newer location."""
    loc = event.location or {}
    point = valid_point(loc.get("lat"), loc.get("lng"))
    if point is None:
        return False
    at = event.sent_at if event.sent_at.tzinfo is not None else utcnow()
    attrs = dict(contact.attributes or {})
    current = last_location(contact)
    if current is not None and current.at > at:
        return False
    label = loc.get("label")
    attrs[LOCATION_ATTRIBUTE] = {
        "lat": point[0],
        "lng": point[1],
        "label": str(label)[:200] if isinstance(label, str) else "",
        "at": at.isoformat(),
        "source": "report" if event.kind == "location" else "message",
    }
    contact.attributes = attrs  # a new dict: the JSON column sees the change
    return True


@dataclass(frozen=True)
class Location:
    lat: float
    lng: float
    label: str
    at: dt.datetime


def last_location(contact: Contact) -> Location | None:
    """The fan's last shared location, or None."""
    raw = (contact.attributes or {}).get(LOCATION_ATTRIBUTE)
    if not isinstance(raw, dict):
        return None
    point = valid_point(raw.get("lat"), raw.get("lng"))
    if point is None:
        return None
    try:
        at = dt.datetime.fromisoformat(str(raw.get("at")))
    except ValueError:
        at = dt.datetime.min.replace(tzinfo=dt.UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return Location(point[0], point[1], str(raw.get("label") or ""), at)


def note_unfollowed(
    session: Session, workspace_id: int, channel_account_id: int, namespace: str, external_id: str
) -> None:
    """The platform said the fan no longer follows the account (WeChat 43004 at send time),
    whether or not we saw the unfollow event: opt them out there, as that event would."""
    repository.upsert_account_state(
        session,
        workspace_id=workspace_id,
        channel_account_id=channel_account_id,
        namespace=namespace,
        external_id=external_id,
        at=utcnow(),
        message=False,
        interaction=False,
        subscribed=False,
    )
    identity = repository.identity(session, workspace_id, namespace, external_id)
    if identity is not None:
        states = repository.account_states_of(session, workspace_id, namespace, external_id)
        identity.subscribed = any(
            s.subscribed is not False for s in states if s.channel_account_id != channel_account_id
        )


def account_state(
    session: Session, workspace_id: int, channel_account_id: int, external_id: str
) -> ContactAccountState | None:
    """The fan's follow state and window times on one channel account, or None if never seen."""
    return repository.account_state(session, workspace_id, channel_account_id, external_id)


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
