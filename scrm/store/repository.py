"""Store queries (every one scoped to its workspace)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from scrm.models import Store

# A brand's store list is hundreds to a few thousand rows: the nearest one is found in Python
# over the workspace's active stores, read with one indexed query.
MAX_STORES = 20_000


def by_code(session: Session, workspace_id: int, code: str) -> Store | None:
    return session.execute(
        select(Store).where(Store.workspace_id == workspace_id, Store.code == code)
    ).scalar_one_or_none()


def list_stores(session: Session, workspace_id: int, *, active_only: bool = False) -> Sequence[Store]:
    stmt = select(Store).where(Store.workspace_id == workspace_id)
    if active_only:
        stmt = stmt.where(Store.active.is_(True))
    return session.execute(stmt.order_by(Store.code).limit(MAX_STORES)).scalars().all()
