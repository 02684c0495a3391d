"""Stores: the nearest one to a point (haversine), upserts from an import, the list."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from scrm.kit.geo import haversine_km
from scrm.models import Store
from scrm.store import repository
from scrm.store.schemas import StoreRow


@dataclass(frozen=True)
class Nearest:
    store: Store
    distance_km: float


def nearest(
    session: Session, workspace_id: int, lat: float, lng: float, *, max_km: float | None = None
) -> Nearest | None:
    """The workspace's active store closest to (lat, lng), or None (no stores, or none within
    `max_km`)."""
    best: Nearest | None = None
    for store in repository.list_stores(session, workspace_id, active_only=True):
        km = haversine_km(lat, lng, store.latitude, store.longitude)
        if best is None or km < best.distance_km:
            best = Nearest(store, km)
    if best is None or (max_km is not None and best.distance_km > max_km):
        return None
    return best


def list_stores(session: Session, workspace_id: int, *, active_only: bool = False) -> list[Store]:
    return list(repository.list_stores(session, workspace_id, active_only=active_only))


def upsert(session: Session, workspace_id: int, row: StoreRow) -> bool:
    """Insert or update the store with this code; True when it is new."""
    store = repository.by_code(session, workspace_id, row.code)
    created = store is None
    if store is None:
        store = Store(workspace_id=workspace_id, code=row.code)
        session.add(store)
    store.name = row.name
    store.city = row.city
    store.address = row.address
    store.hours = row.hours
    store.phone = row.phone
    store.latitude = row.latitude
    store.longitude = row.longitude
    store.active = row.active
    session.flush()
    return created
